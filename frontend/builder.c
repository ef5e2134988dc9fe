/* builder.c — see builder.h. */
#include "builder.h"

#include <stdarg.h>
#include <string.h>

void b_init(Builder *b, Graph *g, WeightSet *ws, SdcErr *err)
{
    memset(b, 0, sizeof *b);
    b->g = g;
    b->ws = ws;
    b->err = err;
}

void b_push(Builder *b, const char *fmt, ...)
{
    SDC_ASSERT(b->depth < 16);
    size_t at = strlen(b->path);
    b->mark[b->depth++] = (int)at;
    if (at) b->path[at++] = '.';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->path + at, sizeof b->path - at, fmt, ap);
    va_end(ap);
}

void b_pop(Builder *b)
{
    SDC_ASSERT(b->depth > 0);
    b->path[b->mark[--b->depth]] = 0;
}

const char *b_name(Builder *b, const char *suffix)
{
    static char buf[640];
    if (!suffix || !*suffix) snprintf(buf, sizeof buf, "%s", b->path);
    else if (!b->path[0]) snprintf(buf, sizeof buf, "%s", suffix);
    else snprintf(buf, sizeof buf, "%s.%s", b->path, suffix);
    return buf;
}

/* After a failure, ids are -1 and callers may still read a shape before the
 * sticky error is checked: they get an empty node. */
const Node *b_node(Builder *b, int id)
{
    static const Node none;
    return id >= 0 && id < b->g->n ? &b->g->nodes[id] : &none;
}

int b_input(Builder *b, const char *name, DType dt, int ndim, const int64_t *shape)
{
    if (b->failed) return -1;
    return graph_add_input(b->g, name, dt, ndim, shape);
}

int b_weight(Builder *b, const char *suffix, WeightKind kind, int ndim, const int64_t *shape)
{
    if (b->failed) return -1;
    return ws_bind(b->ws, b->g, b_name(b, suffix), kind, ndim, shape);
}

int b_op(Builder *b, OpKind op, const char *name, int nin, const int *in, int nattr, const Attr *attrs)
{
    if (b->failed) return -1;
    for (int i = 0; i < nin; i++)
        if (in[i] < 0) return b->failed = 1, -1;
    int id = graph_add_op(b->g, op, name && *name ? b_name(b, name) : b_name(b, NULL), nin, in, nattr, attrs, b->err);
    if (id < 0) {
        /* a type error here is a bug in the importer, or a config whose sizes do not fit */
        sdc_err_prefix(b->err, "building %s", b->path[0] ? b->path : "graph");
        b->failed = 1;
    }
    return id;
}

int b_unary(Builder *b, OpKind op, const char *name, int x) { return b_op(b, op, name, 1, &x, 0, NULL); }

int b_binary(Builder *b, OpKind op, const char *name, int x, int y) { return b_op(b, op, name, 2, (int[]){x, y}, 0, NULL); }

int b_scale(Builder *b, const char *name, int x, double value)
{
    Attr a = attr_float("value", value);
    return b_op(b, OP_SCALE, name, 1, &x, 1, &a);
}

int b_reshape(Builder *b, const char *name, int x, int ndim, const int64_t *shape)
{
    Attr a = attr_ints("shape", ndim, shape);
    return b_op(b, OP_RESHAPE, name, 1, &x, 1, &a);
}

int b_permute(Builder *b, const char *name, int x, int ndim, const int64_t *perm)
{
    Attr a = attr_ints("perm", ndim, perm);
    return b_op(b, OP_PERMUTE, name, 1, &x, 1, &a);
}

int b_slice(Builder *b, const char *name, int x, int axis, int64_t start, int64_t end)
{
    Attr a[3] = {attr_int("axis", axis), attr_int("start", start), attr_int("end", end)};
    return b_op(b, OP_SLICE, name, 1, &x, 3, a);
}

int b_concat(Builder *b, const char *name, int n, const int *xs, int axis)
{
    Attr a = attr_int("axis", axis);
    return b_op(b, OP_CONCAT, name, n, xs, 1, &a);
}

int b_conv(Builder *b, const char *mod, int x, int cout, int k, int stride, const int64_t pad[4], int bias)
{
    if (b->failed || x < 0) return -1;
    int64_t cin = b_node(b, x)->shape[1];
    b_push(b, "%s", mod);
    int w = b_weight(b, "weight", WK_MATRIX, 4, (int64_t[]){cout, cin, k, k});
    int bb = bias ? b_weight(b, "bias", WK_BIAS, 1, (int64_t[]){cout}) : -1;
    Attr a[2] = {attr_ints("stride", 2, (int64_t[]){stride, stride}), attr_ints("pad", 4, pad)};
    int in[3] = {x, w, bb};
    int y = b_op(b, OP_CONV2D, "", bias ? 3 : 2, in, 2, a);
    b_pop(b);
    return y;
}

int b_conv_same(Builder *b, const char *mod, int x, int cout, int k)
{
    int64_t p = (k - 1) / 2, pad[4] = {p, p, p, p};
    return b_conv(b, mod, x, cout, k, 1, pad, 1);
}

int b_linear(Builder *b, const char *mod, int x, int out, int bias)
{
    if (b->failed || x < 0) return -1;
    const Node *n = b_node(b, x);
    int64_t in_features = n->shape[n->ndim - 1];
    b_push(b, "%s", mod);
    int w = b_weight(b, "weight", WK_MATRIX, 2, (int64_t[]){out, in_features});
    int bb = bias ? b_weight(b, "bias", WK_BIAS, 1, (int64_t[]){out}) : -1;
    int y = b_op(b, OP_LINEAR, "", bias ? 3 : 2, (int[]){x, w, bb}, 0, NULL);
    b_pop(b);
    return y;
}

int b_group_norm(Builder *b, const char *mod, int x, int groups, double eps)
{
    if (b->failed || x < 0) return -1;
    int64_t c = b_node(b, x)->shape[1];
    b_push(b, "%s", mod);
    int gamma = b_weight(b, "weight", WK_NORM_SCALE, 1, &c);
    int beta = b_weight(b, "bias", WK_NORM_SHIFT, 1, &c);
    Attr a[2] = {attr_int("groups", groups), attr_float("eps", eps)};
    int y = b_op(b, OP_GROUP_NORM, "", 3, (int[]){x, gamma, beta}, 2, a);
    b_pop(b);
    return y;
}

int b_layer_norm(Builder *b, const char *mod, int x, double eps)
{
    if (b->failed || x < 0) return -1;
    const Node *n = b_node(b, x);
    int64_t d = n->shape[n->ndim - 1];
    b_push(b, "%s", mod);
    int gamma = b_weight(b, "weight", WK_NORM_SCALE, 1, &d);
    int beta = b_weight(b, "bias", WK_NORM_SHIFT, 1, &d);
    Attr a = attr_float("eps", eps);
    int y = b_op(b, OP_LAYER_NORM, "", 3, (int[]){x, gamma, beta}, 1, &a);
    b_pop(b);
    return y;
}

/* [B, L, H*D] -> [B, H, L, D] */
static int split_heads(Builder *b, const char *name, int x, int heads)
{
    const Node *n = b_node(b, x);
    int64_t bs = n->shape[0], l = n->shape[1], d = n->shape[2] / heads;
    char nm[64];
    snprintf(nm, sizeof nm, "%s_heads", name);
    int r = b_reshape(b, nm, x, 4, (int64_t[]){bs, l, heads, d});
    return b_permute(b, name, r, 4, (int64_t[]){0, 2, 1, 3});
}

int b_attention_chain(Builder *b, const char *mod, int q, int k, int v, int heads, double scale, int causal,
                      int upcast)
{
    if (b->failed || q < 0 || k < 0 || v < 0) return -1;
    const Node *qn = b_node(b, q), *vn = b_node(b, v);
    int64_t bs = qn->shape[0], lq = qn->shape[1], cv = vn->shape[2];
    b_push(b, "%s", mod);
    int qh = split_heads(b, "q", q, heads), kh = split_heads(b, "k", k, heads), vh = split_heads(b, "v", v, heads);
    /* upcast_attention: the scores are marked, so that a reduced-precision
     * build (--weights-dtype bf16) keeps Q·Kᵀ in fp32 as diffusers does */
    Attr sa[2] = {attr_int("transpose_b", 1), attr_int("upcast", 1)};
    int s = b_op(b, OP_MATMUL, "scores", 2, (int[]){qh, kh}, upcast ? 2 : 1, sa);
    s = b_scale(b, "scores_scaled", s, scale);
    if (causal) s = b_unary(b, OP_CAUSAL_MASK, "scores_masked", s);
    int p = b_unary(b, OP_SOFTMAX, "probs", s);
    int o = b_op(b, OP_MATMUL, "context", 2, (int[]){p, vh}, 0, NULL);
    o = b_permute(b, "context_merged", o, 4, (int64_t[]){0, 2, 1, 3});
    o = b_reshape(b, "out", o, 3, (int64_t[]){bs, lq, cv});
    b_pop(b);
    return o;
}
