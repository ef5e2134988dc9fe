/* ops.c — the op table's type inference and cost columns.
 *
 * infer_* compute a node's dtype and shape from its operands and
 * attributes and refuse combinations the reference kernels cannot run; the
 * builder calls them, the verifier re-runs them and compares.  cost_*
 * count FLOPs (a multiply-add is 2) and the bytes an op reads and writes
 * if nothing is fused: the figures `sdc stats` reports. */
#include "op_impl.h"
#include "fused_ops.h"
#include "kernel_params.h"

#include <string.h>

const OpInfo op_table[OP_COUNT] = {
#define OP(id, nm, mn, mx, fl, at, inf, cst, ex) [OP_##id] = {nm, mn, mx, fl, at, inf, cst, ex},
#include "ops.def"
#undef OP
};

_Static_assert(OP_COUNT == 30, "update this count when adding an op to ops.def");

int op_from_name(const char *name, OpKind *out)
{
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(op_table[i].name, name) == 0) return *out = (OpKind)i, 0;
    return -1;
}

static const Node *operand(const Graph *g, const Node *n, int k) { return &g->nodes[n->in[k]]; }

static void copy_type(Node *n, const Node *from)
{
    n->dtype = from->dtype;
    n->ndim = from->ndim;
    memcpy(n->shape, from->shape, sizeof n->shape);
}

static int need_float(const Node *x, const char *what, SdcErr *err)
{
    if (!dtype_is_float(x->dtype))
        return sdc_err(err, "%s %%%s must be a float tensor, not %s", what, x->name, dtype_name(x->dtype));
    return 0;
}

static int same_dtype(const Node *a, const Node *b, SdcErr *err)
{
    if (a->dtype != b->dtype)
        return sdc_err(err, "operands %%%s (%s) and %%%s (%s) differ in dtype", a->name, dtype_name(a->dtype),
                       b->name, dtype_name(b->dtype));
    return 0;
}

/* Checks that `v` is a vector of `len` elements (gamma, beta, bias). */
static int need_vector(const Node *v, int64_t len, const char *what, SdcErr *err)
{
    if (v->ndim != 1 || v->shape[0] != len)
        return sdc_err(err, "%s %%%s must have shape [%lld]", what, v->name, (long long)len);
    return 0;
}

static int need_attr(const Node *n, const char *key, AttrKind kind, SdcErr *err)
{
    const Attr *a = node_attr(n, key);
    static const char *kinds[] = {"an integer", "a number", "a list of integers", "a string"};
    if (!a) return sdc_err(err, "missing attribute %s", key);
    if (a->kind != kind && !(kind == ATTR_FLOAT && a->kind == ATTR_INT))
        return sdc_err(err, "attribute %s must be %s", key, kinds[kind]);
    return 0;
}

/* Reads an optional list attribute of exactly `len` ints (default dflt). */
static int ints_attr(const Node *n, const char *key, int len, const int64_t *dflt, int64_t *out, SdcErr *err)
{
    const Attr *a = node_attr(n, key);
    if (!a) {
        memcpy(out, dflt, sizeof(int64_t) * (size_t)len);
        return 0;
    }
    if (a->kind != ATTR_INTS || a->n != len) return sdc_err(err, "attribute %s must be a list of %d integers", key, len);
    memcpy(out, a->ints, sizeof(int64_t) * (size_t)len);
    return 0;
}

/* --- leaves ---------------------------------------------------------------- */

int infer_leaf(const Graph *g, Node *n, SdcErr *err)
{
    (void)g;
    if (n->dtype >= DT_OTHER) return sdc_err(err, "unsupported dtype");
    for (int d = 0; d < n->ndim; d++)
        if (n->shape[d] < 0) return sdc_err(err, "negative dimension");
    if (n->op == OP_CONST) {
        if (n->ckind == CONST_DENSE && n->ndense != 1 && n->ndense != node_numel(n))
            return sdc_err(err, "dense constant has %lld values for %lld elements", (long long)n->ndense,
                           (long long)node_numel(n));
        if (n->ckind == CONST_FILE && (n->cdtype >= DT_OTHER || !n->cfile))
            return sdc_err(err, "file constant needs a file and a stored dtype");
        if (n->ckind == CONST_NONE) return sdc_err(err, "constant without values");
    }
    return 0;
}

void cost_none(const Graph *g, const Node *n, OpCost *c)
{
    (void)g;
    (void)n;
    memset(c, 0, sizeof *c);
}

/* --- conv, matmul, linear ------------------------------------------------- */

int infer_conv2d(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0), *w = operand(g, n, 1);
    if (need_float(x, "input", err) || same_dtype(x, w, err)) return -1;
    if (x->ndim != 4 || w->ndim != 4) return sdc_err(err, "conv2d needs a 4-d input and a 4-d weight");
    int64_t stride[2], pad[4], dil[2];
    static const int64_t one2[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
    if (ints_attr(n, "stride", 2, one2, stride, err) || ints_attr(n, "pad", 4, zero4, pad, err) ||
        ints_attr(n, "dilation", 2, one2, dil, err))
        return -1;
    int64_t groups = node_int(n, "groups", 1);
    if (groups < 1 || x->shape[1] % groups || w->shape[0] % groups)
        return sdc_err(err, "groups %lld does not divide the channels", (long long)groups);
    if (w->shape[1] * groups != x->shape[1])
        return sdc_err(err, "weight %%%s has %lld input channels per group, input has %lld channels", w->name,
                       (long long)w->shape[1], (long long)x->shape[1]);
    if (n->nin == 3 && (same_dtype(x, operand(g, n, 2), err) || need_vector(operand(g, n, 2), w->shape[0], "bias", err)))
        return -1;
    Conv2dParams p = {.n = 1, .c = (int)x->shape[1], .h = (int)x->shape[2], .w = (int)x->shape[3],
                      .oc = (int)w->shape[0], .kh = (int)w->shape[2], .kw = (int)w->shape[3],
                      .sh = (int)stride[0], .sw = (int)stride[1], .pt = (int)pad[0], .pl = (int)pad[1],
                      .pb = (int)pad[2], .pr = (int)pad[3], .dh = (int)dil[0], .dw = (int)dil[1],
                      .groups = (int)groups};
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0) return sdc_err(err, "negative padding");
    if (conv2d_params_finish(&p) < 0) return sdc_err(err, "conv2d output would be empty (kernel larger than padded input)");
    n->dtype = x->dtype;
    n->ndim = 4;
    n->shape[0] = x->shape[0];
    n->shape[1] = w->shape[0];
    n->shape[2] = p.oh;
    n->shape[3] = p.ow;
    return 0;
}

void cost_conv2d(const Graph *g, const Node *n, OpCost *c)
{
    const Node *w = operand(g, n, 1);
    double macs = (double)node_numel(n) * (double)(w->shape[1] * w->shape[2] * w->shape[3]);
    c->flops = 2 * macs;
    c->bytes_read = 0;
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    c->bytes_written = (double)node_bytes(n);
}

int infer_matmul(const Graph *g, Node *n, SdcErr *err)
{
    const Node *a = operand(g, n, 0), *b = operand(g, n, 1);
    if (need_float(a, "operand", err) || same_dtype(a, b, err)) return -1;
    if (a->ndim < 2 || b->ndim < 2) return sdc_err(err, "matmul operands need at least 2 dims");
    int ta = (int)node_int(n, "transpose_a", 0), tb = (int)node_int(n, "transpose_b", 0);
    int64_t m = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    int64_t ka = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t kb = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    int64_t nn = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    if (ka != kb) return sdc_err(err, "inner dimensions differ (%lld vs %lld)", (long long)ka, (long long)kb);
    const Node *batch = a->ndim >= b->ndim ? a : b;
    if (a->ndim > 2 && b->ndim > 2) {
        if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)(a->ndim - 2)))
            return sdc_err(err, "batch dimensions differ");
    }
    n->dtype = a->dtype;
    n->ndim = batch->ndim;
    memcpy(n->shape, batch->shape, sizeof n->shape);
    n->shape[n->ndim - 2] = m;
    n->shape[n->ndim - 1] = nn;
    return 0;
}

void cost_matmul(const Graph *g, const Node *n, OpCost *c)
{
    const Node *a = operand(g, n, 0);
    int ta = (int)node_int(n, "transpose_a", 0);
    int64_t k = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    c->flops = 2.0 * (double)node_numel(n) * (double)k;
    c->bytes_read = (double)node_bytes(a) + (double)node_bytes(operand(g, n, 1));
    c->bytes_written = (double)node_bytes(n);
}

int infer_linear(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0), *w = operand(g, n, 1);
    if (need_float(x, "input", err) || same_dtype(x, w, err)) return -1;
    if (x->ndim < 1 || w->ndim != 2) return sdc_err(err, "linear needs x[...,K] and w[N,K]");
    if (x->shape[x->ndim - 1] != w->shape[1])
        return sdc_err(err, "input has %lld features, weight %%%s expects %lld", (long long)x->shape[x->ndim - 1],
                       w->name, (long long)w->shape[1]);
    if (n->nin == 3 && (same_dtype(x, operand(g, n, 2), err) || need_vector(operand(g, n, 2), w->shape[0], "bias", err)))
        return -1;
    copy_type(n, x);
    n->shape[n->ndim - 1] = w->shape[0];
    return 0;
}

void cost_linear(const Graph *g, const Node *n, OpCost *c)
{
    const Node *w = operand(g, n, 1);
    c->flops = 2.0 * (double)node_numel(n) * (double)w->shape[1];
    c->bytes_read = 0;
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    c->bytes_written = (double)node_bytes(n);
}

/* --- elementwise ------------------------------------------------------------- */

int infer_binary(const Graph *g, Node *n, SdcErr *err)
{
    const Node *a = operand(g, n, 0), *b = operand(g, n, 1);
    if (need_float(a, "operand", err) || same_dtype(a, b, err)) return -1;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    n->dtype = a->dtype;
    n->ndim = nd;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return sdc_err(err, "shapes do not broadcast at dim %d (%lld vs %lld)", d, (long long)sa, (long long)sb);
        n->shape[d] = sa == 1 ? sb : sa;
    }
    return 0;
}

int infer_same(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    if (need_float(x, "input", err)) return -1;
    if (n->op == OP_SCALE && need_attr(n, "value", ATTR_FLOAT, err)) return -1;
    if (n->op == OP_CLAMP && (need_attr(n, "min", ATTR_FLOAT, err) || need_attr(n, "max", ATTR_FLOAT, err))) return -1;
    if (n->op == OP_SOFTMAX && x->ndim < 1) return sdc_err(err, "softmax needs at least one dim");
    if (n->op == OP_CAUSAL_MASK && x->ndim < 2) return sdc_err(err, "causal_mask needs [...,Lq,Lk]");
    copy_type(n, x);
    return 0;
}

int infer_cast(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    const Attr *to = node_attr(n, "to");
    DType dt;
    if (!to || to->kind != ATTR_STR || dtype_from_name(to->s, &dt) < 0)
        return sdc_err(err, "attribute to must name a dtype (f32, f16, bf16, i32, i64)");
    copy_type(n, x);
    n->dtype = dt;
    return 0;
}

void cost_ew(const Graph *g, const Node *n, OpCost *c)
{
    c->flops = (double)node_numel(n);
    c->bytes_read = 0;
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    c->bytes_written = (double)node_bytes(n);
}

/* --- normalisation ----------------------------------------------------------- */

int infer_group_norm(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    if (need_float(x, "input", err) || need_attr(n, "groups", ATTR_INT, err)) return -1;
    if (x->ndim < 2) return sdc_err(err, "group_norm needs [N,C,...]");
    int64_t groups = node_int(n, "groups", 1);
    if (groups < 1 || x->shape[1] % groups)
        return sdc_err(err, "groups %lld does not divide %lld channels", (long long)groups, (long long)x->shape[1]);
    for (int k = 1; k < 3; k++)
        if (same_dtype(x, operand(g, n, k), err) || need_vector(operand(g, n, k), x->shape[1], "scale/shift", err))
            return -1;
    copy_type(n, x);
    return 0;
}

int infer_layer_norm(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    if (need_float(x, "input", err)) return -1;
    if (x->ndim < 1) return sdc_err(err, "layer_norm needs at least one dim");
    for (int k = 1; k < 3; k++)
        if (same_dtype(x, operand(g, n, k), err) ||
            need_vector(operand(g, n, k), x->shape[x->ndim - 1], "scale/shift", err))
            return -1;
    copy_type(n, x);
    return 0;
}

void cost_norm(const Graph *g, const Node *n, OpCost *c)
{
    c->flops = 5.0 * (double)node_numel(n);
    c->bytes_read = (double)node_bytes(operand(g, n, 0)); /* one pass for statistics is cached on chip at best */
    c->bytes_written = (double)node_bytes(n);
}

/* --- data movement ------------------------------------------------------------ */

int infer_reshape(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    int64_t shape[IR_MAX_INTS];
    int nd = node_ints(n, "shape", shape, IR_MAX_INTS);
    if (nd < 0 || nd > IR_MAX_DIMS) return sdc_err(err, "attribute shape must be a list of at most 5 integers");
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) {
        if (shape[d] < 0) return sdc_err(err, "negative dimension in shape");
        numel *= shape[d];
    }
    if (numel != node_numel(x))
        return sdc_err(err, "cannot reshape %lld elements into %lld", (long long)node_numel(x), (long long)numel);
    n->dtype = x->dtype;
    n->ndim = nd;
    memcpy(n->shape, shape, sizeof(int64_t) * (size_t)nd);
    return 0;
}

int infer_permute(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    int64_t perm[IR_MAX_INTS];
    int np = node_ints(n, "perm", perm, IR_MAX_INTS);
    if (np != x->ndim) return sdc_err(err, "attribute perm must list all %d dims", x->ndim);
    int seen[IR_MAX_DIMS] = {0};
    n->dtype = x->dtype;
    n->ndim = x->ndim;
    for (int d = 0; d < np; d++) {
        if (perm[d] < 0 || perm[d] >= np || seen[perm[d]]++) return sdc_err(err, "perm is not a permutation");
        n->shape[d] = x->shape[perm[d]];
    }
    return 0;
}

int infer_concat(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    if (need_attr(n, "axis", ATTR_INT, err)) return -1;
    int64_t axis = node_int(n, "axis", 0);
    if (axis < 0 || axis >= x->ndim) return sdc_err(err, "axis %lld out of range", (long long)axis);
    copy_type(n, x);
    for (int k = 1; k < n->nin; k++) {
        const Node *y = operand(g, n, k);
        if (same_dtype(x, y, err)) return -1;
        if (y->ndim != x->ndim) return sdc_err(err, "operands differ in rank");
        for (int d = 0; d < x->ndim; d++)
            if (d != axis && y->shape[d] != x->shape[d]) return sdc_err(err, "operands differ at dim %d", d);
        n->shape[axis] += y->shape[axis];
    }
    return 0;
}

int infer_slice(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    if (need_attr(n, "axis", ATTR_INT, err) || need_attr(n, "start", ATTR_INT, err) || need_attr(n, "end", ATTR_INT, err))
        return -1;
    int64_t axis = node_int(n, "axis", 0), start = node_int(n, "start", 0), end = node_int(n, "end", 0);
    if (axis < 0 || axis >= x->ndim) return sdc_err(err, "axis %lld out of range", (long long)axis);
    if (start < 0 || end < start || end > x->shape[axis])
        return sdc_err(err, "slice [%lld, %lld) out of range for size %lld", (long long)start, (long long)end,
                       (long long)x->shape[axis]);
    copy_type(n, x);
    n->shape[axis] = end - start;
    return 0;
}

int infer_upsample(const Graph *g, Node *n, SdcErr *err)
{
    const Node *x = operand(g, n, 0);
    int64_t size[2];
    if (need_float(x, "input", err)) return -1;
    if (x->ndim != 4) return sdc_err(err, "upsample_nearest2d needs [N,C,H,W]");
    if (node_ints(n, "size", size, 2) != 2 || size[0] < 1 || size[1] < 1)
        return sdc_err(err, "attribute size must be [OH,OW] with positive values");
    copy_type(n, x);
    n->shape[2] = size[0];
    n->shape[3] = size[1];
    return 0;
}

void cost_move(const Graph *g, const Node *n, OpCost *c)
{
    c->flops = 0;
    c->bytes_read = 0;
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    if (n->op == OP_EMBEDDING || n->op == OP_SLICE) c->bytes_read = (double)node_bytes(n);
    /* reshape is free in any real backend: no copy */
    if (n->op == OP_RESHAPE) c->bytes_read = 0;
    c->bytes_written = n->op == OP_RESHAPE ? 0 : (double)node_bytes(n);
}

/* --- SD-specific --------------------------------------------------------------- */

int infer_timestep_embedding(const Graph *g, Node *n, SdcErr *err)
{
    const Node *t = operand(g, n, 0);
    if (need_float(t, "timesteps", err) || need_attr(n, "dim", ATTR_INT, err)) return -1;
    if (t->ndim != 1) return sdc_err(err, "timesteps must be a vector [B]");
    int64_t dim = node_int(n, "dim", 0);
    if (dim < 2) return sdc_err(err, "dim must be at least 2");
    n->dtype = t->dtype;
    n->ndim = 2;
    n->shape[0] = t->shape[0];
    n->shape[1] = dim;
    return 0;
}

int infer_embedding(const Graph *g, Node *n, SdcErr *err)
{
    const Node *ids = operand(g, n, 0), *table = operand(g, n, 1);
    if (ids->dtype != DT_I32 && ids->dtype != DT_I64) return sdc_err(err, "ids %%%s must be i32 or i64", ids->name);
    if (need_float(table, "table", err)) return -1;
    if (table->ndim != 2) return sdc_err(err, "table must be [V,D]");
    if (ids->ndim + 1 > IR_MAX_DIMS) return sdc_err(err, "ids have too many dims");
    n->dtype = table->dtype;
    n->ndim = ids->ndim + 1;
    memcpy(n->shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    n->shape[ids->ndim] = table->shape[1];
    return 0;
}

int infer_attention(const Graph *g, Node *n, SdcErr *err)
{
    const Node *q = operand(g, n, 0), *k = operand(g, n, 1), *v = operand(g, n, 2);
    if (need_float(q, "query", err) || same_dtype(q, k, err) || same_dtype(q, v, err)) return -1;
    if (need_attr(n, "heads", ATTR_INT, err) || need_attr(n, "scale", ATTR_FLOAT, err)) return -1;
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3) return sdc_err(err, "attention needs [B,L,C] operands");
    int64_t heads = node_int(n, "heads", 1);
    if (heads < 1 || q->shape[2] % heads || v->shape[2] % heads)
        return sdc_err(err, "heads %lld does not divide the channels", (long long)heads);
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0]) return sdc_err(err, "batch sizes differ");
    if (k->shape[2] != q->shape[2]) return sdc_err(err, "query and key channels differ");
    if (v->shape[1] != k->shape[1]) return sdc_err(err, "key and value lengths differ");
    n->dtype = q->dtype;
    n->ndim = 3;
    n->shape[0] = q->shape[0];
    n->shape[1] = q->shape[1];
    n->shape[2] = v->shape[2];
    return 0;
}

void cost_attention(const Graph *g, const Node *n, OpCost *c)
{
    const Node *q = operand(g, n, 0), *k = operand(g, n, 1), *v = operand(g, n, 2);
    double b = (double)q->shape[0], lq = (double)q->shape[1], lk = (double)k->shape[1];
    c->flops = 2.0 * b * lq * lk * (double)(q->shape[2] + v->shape[2]);
    c->bytes_read = (double)(node_bytes(q) + node_bytes(k) + node_bytes(v));
    c->bytes_written = (double)node_bytes(n);
}

/* --- fused ops (fusion passes) --------------------------------------------------------- */

/* The flag attributes are 0 or 1, and the operand count is what they call for. */
static int fused_layout(const Node *n, FusedSlots *s, SdcErr *err)
{
    static const char *const flags[] = {"silu", "bias", "chan_add", "residual", "norm", "geglu"};
    if (n->op == OP_FUSED_LINEAR && node_int(n, "norm", 0) && node_int(n, "norm_groups", 0))
        return sdc_err(err, "norm=1 (LayerNorm) and norm_groups (GroupNorm) are two prologues: one at most");
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int64_t v = node_int(n, flags[i], 0);
        if (v != 0 && v != 1) return sdc_err(err, "attribute %s must be 0 or 1", flags[i]);
    }
    fused_slots(n, s);
    if (n->nin != s->count)
        return sdc_err(err, "%d operands where the attributes call for %d (x, [gamma, beta], w, [bias], %sresidual])",
                       n->nin, s->count, n->op == OP_FUSED_CONV2D ? "[chan_add], [" : "[");
    return 0;
}

/* gamma and beta of a normalising prologue: [len] each, the input's dtype. */
static int need_norm_params(const Graph *g, const Node *n, const FusedSlots *s, int64_t len, SdcErr *err)
{
    if (s->gamma < 0) return 0;
    const Node *x = operand(g, n, s->x);
    for (int k = s->gamma; k <= s->beta; k++)
        if (same_dtype(x, operand(g, n, k), err) || need_vector(operand(g, n, k), len, "scale/shift", err)) return -1;
    return 0;
}

/* The residual operand has the output's type. */
static int need_residual(const Graph *g, const Node *n, const FusedSlots *s, SdcErr *err)
{
    if (s->residual < 0) return 0;
    const Node *r = operand(g, n, s->residual);
    if (r->dtype != n->dtype || r->ndim != n->ndim || memcmp(r->shape, n->shape, sizeof(int64_t) * (size_t)n->ndim))
        return sdc_err(err, "residual %%%s must have the output's type", r->name);
    return 0;
}

int infer_fused_conv2d(const Graph *g, Node *n, SdcErr *err)
{
    FusedSlots s;
    if (fused_layout(n, &s, err)) return -1;
    const Node *x = operand(g, n, s.x), *w = operand(g, n, s.w);
    if (need_float(x, "input", err) || same_dtype(x, w, err)) return -1;
    if (x->ndim != 4 || w->ndim != 4) return sdc_err(err, "fused_conv2d needs a 4-d input and a 4-d weight");
    int64_t groups = node_int(n, "norm_groups", 0);
    if (groups < 0 || (groups > 0 && x->shape[1] % groups))
        return sdc_err(err, "norm_groups %lld does not divide %lld channels", (long long)groups, (long long)x->shape[1]);
    if (node_int(n, "silu", 0) && groups == 0) return sdc_err(err, "silu=1 needs a normalisation (norm_groups > 0)");
    if (need_norm_params(g, n, &s, x->shape[1], err)) return -1;
    if (w->shape[1] != x->shape[1])
        return sdc_err(err, "weight %%%s has %lld input channels, input has %lld", w->name, (long long)w->shape[1],
                       (long long)x->shape[1]);
    static const int64_t one2[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
    int64_t v[4];
    if (ints_attr(n, "stride", 2, one2, v, err) || ints_attr(n, "pad", 4, zero4, v, err) ||
        ints_attr(n, "dilation", 2, one2, v, err))
        return -1;
    FusedConv2dParams p;
    if (fused_conv2d_params(n, x->shape, w->shape, 0, &p) < 0)
        return sdc_err(err, "invalid conv geometry (negative padding, or a kernel larger than the padded input)");
    if (s.bias >= 0 && (same_dtype(x, operand(g, n, s.bias), err) || need_vector(operand(g, n, s.bias), w->shape[0], "bias", err)))
        return -1;
    if (s.chan_add >= 0) {
        const Node *t = operand(g, n, s.chan_add);
        if (same_dtype(x, t, err)) return -1;
        if (t->ndim != 4 || (t->shape[0] != x->shape[0] && t->shape[0] != 1) || t->shape[1] != w->shape[0] ||
            t->shape[2] != 1 || t->shape[3] != 1)
            return sdc_err(err, "chan_add %%%s must be [%lld or 1,%lld,1,1]", t->name, (long long)x->shape[0],
                           (long long)w->shape[0]);
    }
    n->dtype = x->dtype;
    n->ndim = 4;
    n->shape[0] = x->shape[0];
    n->shape[1] = w->shape[0];
    n->shape[2] = p.conv.oh;
    n->shape[3] = p.conv.ow;
    return need_residual(g, n, &s, err);
}

/* The statistics pass reads the input once more; the epilogue reads its addends. */
void cost_fused_conv2d(const Graph *g, const Node *n, OpCost *c)
{
    FusedSlots s;
    fused_slots(n, &s);
    const Node *x = operand(g, n, s.x), *w = operand(g, n, s.w);
    double macs = (double)node_numel(n) * (double)(w->shape[1] * w->shape[2] * w->shape[3]);
    c->flops = 2 * macs + (s.gamma >= 0 ? 5.0 * (double)node_numel(x) : 0) +
               (double)node_numel(n) * ((s.chan_add >= 0) + (s.residual >= 0) + (node_float(n, "out_scale", 1) != 1));
    c->bytes_read = s.gamma >= 0 ? (double)node_bytes(x) : 0;
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    c->bytes_written = (double)node_bytes(n);
}

int infer_fused_linear(const Graph *g, Node *n, SdcErr *err)
{
    FusedSlots s;
    if (fused_layout(n, &s, err)) return -1;
    const Node *x = operand(g, n, s.x), *w = operand(g, n, s.w);
    if (need_float(x, "input", err) || same_dtype(x, w, err)) return -1;
    int64_t groups = node_int(n, "norm_groups", 0);
    if (groups < 0) return sdc_err(err, "norm_groups must be >= 0, not %lld", (long long)groups);
    if (w->ndim != 2) return sdc_err(err, "fused_linear needs w[N,K]");
    if (groups > 0) { /* channel-major input: [B, K, spatial...] */
        if (x->ndim < 3) return sdc_err(err, "norm_groups needs a channel-major input [B,K,spatial...]");
        if (x->shape[1] != w->shape[1])
            return sdc_err(err, "input has %lld channels, weight %%%s expects %lld", (long long)x->shape[1], w->name,
                           (long long)w->shape[1]);
        if (x->shape[1] % groups)
            return sdc_err(err, "norm_groups %lld does not divide %lld channels", (long long)groups,
                           (long long)x->shape[1]);
    } else if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) {
        return sdc_err(err, "input has %lld features, weight %%%s expects %lld",
                       (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), w->name, (long long)w->shape[1]);
    }
    if (need_norm_params(g, n, &s, w->shape[1], err)) return -1;
    if (s.bias >= 0 && (same_dtype(x, operand(g, n, s.bias), err) || need_vector(operand(g, n, s.bias), w->shape[0], "bias", err)))
        return -1;
    int geglu = (int)node_int(n, "geglu", 0);
    if (geglu && w->shape[0] % 2) return sdc_err(err, "geglu=1 needs an even number of projections, not %lld", (long long)w->shape[0]);
    copy_type(n, x);
    if (groups > 0) { /* rows are the positions of each image */
        int64_t pos = 1;
        for (int d = 2; d < x->ndim; d++) pos *= x->shape[d];
        n->ndim = 3, n->shape[1] = pos, n->shape[2] = 0;
    }
    n->shape[n->ndim - 1] = geglu ? w->shape[0] / 2 : w->shape[0];
    return need_residual(g, n, &s, err);
}

void cost_fused_linear(const Graph *g, const Node *n, OpCost *c)
{
    FusedSlots s;
    fused_slots(n, &s);
    const Node *x = operand(g, n, s.x), *w = operand(g, n, s.w);
    double rows = (double)(node_numel(x) / (w->shape[1] ? w->shape[1] : 1));
    c->flops = 2.0 * rows * (double)(w->shape[0] * w->shape[1]) + (s.gamma >= 0 ? 5.0 * (double)node_numel(x) : 0) +
               (double)node_numel(n) * (2.0 * node_int(n, "geglu", 0) + (s.residual >= 0) +
                                        (node_float(n, "out_scale", 1) != 1));
    c->bytes_read = 0; /* a LayerNorm's rows are normalised while in cache: no second read */
    for (int k = 0; k < n->nin; k++) c->bytes_read += (double)node_bytes(operand(g, n, k));
    c->bytes_written = (double)node_bytes(n);
}

int infer_attention_qkv(const Graph *g, Node *n, SdcErr *err)
{
    const Node *qkv = operand(g, n, 0);
    if (need_float(qkv, "qkv", err)) return -1;
    if (need_attr(n, "heads", ATTR_INT, err) || need_attr(n, "scale", ATTR_FLOAT, err)) return -1;
    if (qkv->ndim != 3 || qkv->shape[2] % 3) return sdc_err(err, "attention_qkv needs [B,L,3*C]");
    int64_t heads = node_int(n, "heads", 1), ch = qkv->shape[2] / 3;
    if (heads < 1 || ch % heads) return sdc_err(err, "heads %lld does not divide %lld channels", (long long)heads, (long long)ch);
    copy_type(n, qkv);
    n->shape[2] = ch;
    return 0;
}

void cost_attention_qkv(const Graph *g, const Node *n, OpCost *c)
{
    const Node *qkv = operand(g, n, 0);
    double b = (double)qkv->shape[0], l = (double)qkv->shape[1];
    c->flops = 2.0 * b * l * l * 2.0 * (double)n->shape[2];
    c->bytes_read = (double)node_bytes(qkv);
    c->bytes_written = (double)node_bytes(n);
}
