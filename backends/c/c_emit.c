/* c_emit.c — the C backend: one C function per graph, one runtime call per node.
 *
 * Every shape, parameter and buffer offset is a constant in the emitted code;
 * each node's block is preceded by the IR line it implements, so the C can
 * be read next to `sdc compile --print-ir-after`.  Values live where the
 * memory plan put them: A(off) in the activation arena, W(off) in the
 * mmap-ed weights file, in[k] / out[k] for the graph's inputs and outputs.
 * The per-op lowering is the table `lower` at the bottom: one function per
 * op kind, NULL for ops this backend does not lower. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "fused_ops.h"
#include "kernel_params.h"
#include "weight_pack.h"

extern const Backend backend_c;

typedef struct Emit {
    FILE *out;
    const EmitGraph *eg;
    const Graph *g;
    int prof_index; /* running index of profiled nodes */
} Emit;

/* The C expression for node v's data, as float* (or int64_t* for ids). */
static void ref(const Emit *e, int v, char *buf, size_t len)
{
    const MemPlan *p = e->eg->plan;
    const Node *n = &e->g->nodes[v];
    const char *ty = dtype_is_float(n->dtype) ? "float" : "int64_t";
    switch (p->kind[v]) {
    case BUF_ARENA: snprintf(buf, len, "((%s *)(arena + %" PRId64 "))", ty, p->offset[v]); break;
    case BUF_INPUT: snprintf(buf, len, "((%s *)in[%" PRId64 "])", ty, p->offset[v]); break;
    case BUF_OUTPUT: snprintf(buf, len, "((%s *)out[%" PRId64 "])", ty, p->offset[v]); break;
    case BUF_WEIGHT:
        snprintf(buf, len, "((const %s *)(weights + %" PRId64 "))", ty, e->eg->weight_offset[p->root[v]]);
        break;
    case BUF_PERSIST: snprintf(buf, len, "((%s *)(persist + %" PRId64 "))", ty, p->offset[v]); break;
    default: snprintf(buf, len, "NULL"); break;
    }
}

#define REF(name, v) \
    char name[96];   \
    ref(e, (v), name, sizeof name)

static int64_t prod(const int64_t *s, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= s[d];
    return p;
}

/* A float literal for C that reads back as the same float32 ("1.0f", "1e-05f");
 * rotating buffers so that several can appear in one printf. */
static const char *cf(double v)
{
    static char bufs[8][40];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 36, "%.9g", v);
    if (!strpbrk(b, ".en")) strcat(b, ".0");
    strcat(b, "f");
    return b;
}

static const Node *in(const Emit *e, const Node *n, int k) { return &e->g->nodes[n->in[k]]; }

static void emit_ints(FILE *o, const char *name, int n, const int64_t *v)
{
    fprintf(o, "        static const int64_t %s[] = {", name);
    for (int i = 0; i < n; i++) fprintf(o, i ? ", %" PRId64 : "%" PRId64, v[i]);
    fprintf(o, "};\n");
}

/* --- lowering of each op ---------------------------------------------------- */

static void lower_conv2d(Emit *e, const Node *n, int id)
{
    int64_t stride[2] = {1, 1}, pad[4] = {0, 0, 0, 0}, dil[2] = {1, 1};
    node_ints(n, "stride", stride, 2), node_ints(n, "pad", pad, 4), node_ints(n, "dilation", dil, 2);
    const Node *x = in(e, n, 0), *w = in(e, n, 1);
    REF(xs, n->in[0]);
    REF(ws, n->in[1]);
    REF(ys, id);
    char bs[96] = "NULL";
    if (n->nin == 3) ref(e, n->in[2], bs, sizeof bs);
    fprintf(e->out,
            "        static const Conv2dParams p = {.n = %" PRId64 ", .c = %" PRId64 ", .h = %" PRId64 ", .w = %" PRId64
            ", .oc = %" PRId64 ", .kh = %" PRId64 ", .kw = %" PRId64 ",\n"
            "            .sh = %" PRId64 ", .sw = %" PRId64 ", .pt = %" PRId64 ", .pl = %" PRId64 ", .pb = %" PRId64
            ", .pr = %" PRId64 ", .dh = %" PRId64 ", .dw = %" PRId64 ", .groups = %" PRId64 ", .oh = %" PRId64
            ", .ow = %" PRId64 ", .wpack = %d};\n",
            x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3], stride[0],
            stride[1], pad[0], pad[1], pad[2], pad[3], dil[0], dil[1], node_int(n, "groups", 1), n->shape[2],
            n->shape[3], (int)weight_pack_of(e->eg->weight_pack, n, 1));
    fprintf(e->out, "        rt_conv2d(&p, %s, %s, %s, %s);\n", xs, ws, bs, ys);
}

static void emit_matmul_params(Emit *e, int batch, int64_t m, int64_t nn, int64_t k, int ta, int tb, int64_t lda,
                               int64_t ldb, int64_t sa, int64_t sb, RtWeightPack bpack)
{
    fprintf(e->out,
            "        static const MatmulParams p = {.batch = %d, .m = %" PRId64 ", .n = %" PRId64 ", .k = %" PRId64
            ", .trans_a = %d, .trans_b = %d,\n"
            "            .lda = %" PRId64 ", .ldb = %" PRId64 ", .ldc = %" PRId64 ", .stride_a = %" PRId64
            ", .stride_b = %" PRId64 ", .stride_c = %" PRId64 ", .bpack = %d};\n",
            batch, m, nn, k, ta, tb, lda, ldb, nn, sa, sb, m * nn, (int)bpack);
}

static void lower_matmul(Emit *e, const Node *n, int id)
{
    const Node *a = in(e, n, 0), *b = in(e, n, 1);
    int ta = (int)node_int(n, "transpose_a", 0), tb = (int)node_int(n, "transpose_b", 0);
    int64_t m = n->shape[n->ndim - 2], nn = n->shape[n->ndim - 1];
    int64_t k = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int batch = (int)prod(n->shape, 0, n->ndim - 2);
    int64_t sa = a->ndim > 2 ? a->shape[a->ndim - 1] * a->shape[a->ndim - 2] : 0;
    int64_t sb = b->ndim > 2 ? b->shape[b->ndim - 1] * b->shape[b->ndim - 2] : 0;
    emit_matmul_params(e, batch, m, nn, k, ta, tb, a->shape[a->ndim - 1], b->shape[b->ndim - 1], sa, sb, RT_WPACK_NONE);
    REF(as, n->in[0]);
    REF(bs, n->in[1]);
    REF(ys, id);
    fprintf(e->out, "        rt_matmul(&p, %s, %s, NULL, %s);\n", as, bs, ys);
}

static void lower_linear(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0), *w = in(e, n, 1);
    int64_t k = w->shape[1];
    emit_matmul_params(e, 1, prod(x->shape, 0, x->ndim - 1), w->shape[0], k, 0, 1, k, k, 0, 0,
                       weight_pack_of(e->eg->weight_pack, n, 1));
    REF(xs, n->in[0]);
    REF(ws, n->in[1]);
    REF(ys, id);
    char bs[96] = "NULL";
    if (n->nin == 3) ref(e, n->in[2], bs, sizeof bs);
    fprintf(e->out, "        rt_matmul(&p, %s, %s, %s, %s);\n", xs, ws, bs, ys);
}

static void broadcast_strides(const Node *t, int nd, const int64_t *oshape, int64_t *st)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int dt = d - (nd - t->ndim);
        int64_t size = dt >= 0 ? t->shape[dt] : 1;
        st[d] = size == 1 && oshape[d] != 1 ? 0 : s;
        if (dt >= 0) s *= size;
    }
}

static void lower_binary(Emit *e, const Node *n, int id)
{
    static const char *const names[OP_COUNT] = {[OP_ADD] = "RT_ADD", [OP_SUB] = "RT_SUB", [OP_MUL] = "RT_MUL",
                                                [OP_DIV] = "RT_DIV"};
    int64_t sa[IR_MAX_DIMS], sb[IR_MAX_DIMS];
    broadcast_strides(in(e, n, 0), n->ndim, n->shape, sa);
    broadcast_strides(in(e, n, 1), n->ndim, n->shape, sb);
    emit_ints(e->out, "shape", n->ndim, n->shape);
    emit_ints(e->out, "sa", n->ndim, sa);
    emit_ints(e->out, "sb", n->ndim, sb);
    REF(as, n->in[0]);
    REF(bs, n->in[1]);
    REF(ys, id);
    fprintf(e->out, "        rt_binary(%s, %d, shape, %s, sa, %s, sb, %s);\n", names[n->op], n->ndim, as, bs, ys);
}

static void lower_unary(Emit *e, const Node *n, int id)
{
    REF(xs, n->in[0]);
    REF(ys, id);
    int64_t numel = node_numel(n);
    switch (n->op) {
    case OP_SILU: fprintf(e->out, "        rt_silu(%s, %s, %" PRId64 ");\n", xs, ys, numel); break;
    case OP_GELU: fprintf(e->out, "        rt_gelu(%s, %s, %" PRId64 ");\n", xs, ys, numel); break;
    case OP_QUICK_GELU: fprintf(e->out, "        rt_quick_gelu(%s, %s, %" PRId64 ");\n", xs, ys, numel); break;
    case OP_SCALE:
        fprintf(e->out, "        rt_scale(%s, %s, %s, %" PRId64 ");\n", xs, cf(node_float(n, "value", 1)), ys, numel);
        break;
    case OP_CLAMP:
        fprintf(e->out, "        rt_clamp(%s, %s, %s, %s, %" PRId64 ");\n", xs, cf(node_float(n, "min", 0)),
                cf(node_float(n, "max", 0)), ys, numel);
        break;
    default: break;
    }
}

static void lower_group_norm(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0);
    REF(xs, n->in[0]);
    REF(gs, n->in[1]);
    REF(bs, n->in[2]);
    REF(ys, id);
    fprintf(e->out,
            "        static const GroupNormParams p = {.n = %" PRId64 ", .c = %" PRId64 ", .hw = %" PRId64
            ", .groups = %" PRId64 ", .eps = %s, .silu = 0};\n",
            x->shape[0], x->shape[1], prod(x->shape, 2, x->ndim), node_int(n, "groups", 1), cf(node_float(n, "eps", 1e-5)));
    fprintf(e->out, "        rt_group_norm(&p, %s, %s, %s, %s);\n", xs, gs, bs, ys);
}

static void lower_layer_norm(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0);
    REF(xs, n->in[0]);
    REF(gs, n->in[1]);
    REF(bs, n->in[2]);
    REF(ys, id);
    fprintf(e->out, "        static const LayerNormParams p = {.rows = %" PRId64 ", .cols = %" PRId64 ", .eps = %s};\n",
            prod(x->shape, 0, x->ndim - 1), x->shape[x->ndim - 1], cf(node_float(n, "eps", 1e-5)));
    fprintf(e->out, "        rt_layer_norm(&p, %s, %s, %s, %s);\n", xs, gs, bs, ys);
}

static void lower_softmax(Emit *e, const Node *n, int id)
{
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out, "        rt_softmax(%" PRId64 ", %" PRId64 ", %s, %s);\n", prod(n->shape, 0, n->ndim - 1),
            n->shape[n->ndim - 1], xs, ys);
}

static void lower_causal_mask(Emit *e, const Node *n, int id)
{
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out, "        rt_causal_mask(%s, %" PRId64 ", %" PRId64 ", %" PRId64 ", %s);\n", xs,
            prod(n->shape, 0, n->ndim - 2), n->shape[n->ndim - 2], n->shape[n->ndim - 1], ys);
}

/* Reshape is a view: nothing to do (the plan gave it its source's buffer). */
static void lower_reshape(Emit *e, const Node *n, int id) { (void)e, (void)n, (void)id; }

static void lower_permute(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0);
    int64_t perm[IR_MAX_DIMS];
    node_ints(n, "perm", perm, IR_MAX_DIMS);
    emit_ints(e->out, "shape", x->ndim, x->shape);
    emit_ints(e->out, "perm", x->ndim, perm);
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out, "        rt_permute(%s, %d, shape, perm, %s);\n", xs, x->ndim, ys);
}

static void lower_concat(Emit *e, const Node *n, int id)
{
    int axis = (int)node_int(n, "axis", 0);
    int64_t outer = prod(n->shape, 0, axis), inner = prod(n->shape, axis + 1, n->ndim), at = 0;
    int64_t ystride = n->shape[axis] * inner;
    REF(ys, id);
    for (int k = 0; k < n->nin; k++) {
        int64_t len = in(e, n, k)->shape[axis] * inner;
        REF(xs, n->in[k]);
        fprintf(e->out, "        rt_copy_rows(%s, %" PRId64 ", 0, %s, %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ");\n",
                xs, len, ys, ystride, at, outer, len);
        at += len;
    }
}

static void lower_slice(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0);
    int axis = (int)node_int(n, "axis", 0);
    int64_t outer = prod(x->shape, 0, axis), inner = prod(x->shape, axis + 1, x->ndim);
    int64_t len = n->shape[axis] * inner;
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out, "        rt_copy_rows(%s, %" PRId64 ", %" PRId64 ", %s, %" PRId64 ", 0, %" PRId64 ", %" PRId64 ");\n",
            xs, x->shape[axis] * inner, node_int(n, "start", 0) * inner, ys, len, outer, len);
}

static void lower_upsample(Emit *e, const Node *n, int id)
{
    const Node *x = in(e, n, 0);
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out,
            "        static const UpsampleParams p = {.n = %" PRId64 ", .c = %" PRId64 ", .h = %" PRId64 ", .w = %" PRId64
            ", .oh = %" PRId64 ", .ow = %" PRId64 "};\n",
            x->shape[0], x->shape[1], x->shape[2], x->shape[3], n->shape[2], n->shape[3]);
    fprintf(e->out, "        rt_upsample_nearest2d(&p, %s, %s);\n", xs, ys);
}

static void lower_timestep_embedding(Emit *e, const Node *n, int id)
{
    REF(xs, n->in[0]);
    REF(ys, id);
    fprintf(e->out,
            "        static const TimestepEmbParams p = {.b = %" PRId64 ", .dim = %" PRId64
            ", .flip_sin_to_cos = %d, .shift = %s, .max_period = %s, .scale = %s};\n",
            n->shape[0], n->shape[1], (int)node_int(n, "flip_sin_to_cos", 0), cf(node_float(n, "shift", 0)),
            cf(node_float(n, "max_period", 10000)), cf(node_float(n, "scale", 1)));
    fprintf(e->out, "        rt_timestep_embedding(&p, %s, %s);\n", xs, ys);
}

static void lower_embedding(Emit *e, const Node *n, int id)
{
    const Node *t = in(e, n, 1);
    REF(is, n->in[0]);
    REF(ts, n->in[1]);
    REF(ys, id);
    fprintf(e->out, "        if (rt_embedding(%s, %" PRId64 ", %s, %" PRId64 ", %" PRId64 ", %s) < 0) sdc_bad_token();\n",
            is, node_numel(in(e, n, 0)), ts, t->shape[0], t->shape[1], ys);
}

static void lower_attention(Emit *e, const Node *n, int id)
{
    const Node *q = in(e, n, 0), *k = in(e, n, 1), *v = in(e, n, 2);
    int64_t heads = node_int(n, "heads", 1);
    REF(qs, n->in[0]);
    REF(ks, n->in[1]);
    REF(vs, n->in[2]);
    REF(ys, id);
    fprintf(e->out,
            "        static const AttentionParams p = {.b = %" PRId64 ", .lq = %" PRId64 ", .lk = %" PRId64
            ", .heads = %" PRId64 ", .dk = %" PRId64 ", .dv = %" PRId64 ",\n"
            "            .ldq = %" PRId64 ", .ldk = %" PRId64 ", .ldv = %" PRId64 ", .ldy = %" PRId64
            ", .scale = %s, .causal = %d, .upcast = %d, .bf16 = %d};\n",
            q->shape[0], q->shape[1], k->shape[1], heads, q->shape[2] / heads, v->shape[2] / heads, q->shape[2],
            k->shape[2], v->shape[2], n->shape[2], cf(node_float(n, "scale", 1)), (int)node_int(n, "causal", 0),
            (int)node_int(n, "upcast", 0), e->eg->attention_bf16);
    fprintf(e->out, "        rt_attention(&p, %s, %s, %s, %s);\n", qs, ks, vs, ys);
}

/* The buffer of operand slot k of a fused op, or NULL when it is absent. */
static void slot_ref(const Emit *e, const Node *n, int k, char *buf, size_t len)
{
    if (k < 0) snprintf(buf, len, "NULL");
    else ref(e, n->in[k], buf, len);
}

static void lower_fused_conv2d(Emit *e, const Node *n, int id)
{
    FusedSlots s;
    fused_slots(n, &s);
    FusedConv2dParams p;
    fused_conv2d_params(n, in(e, n, s.x)->shape, in(e, n, s.w)->shape, s.chan_add >= 0 ? in(e, n, s.chan_add)->shape[0] : 0,
                        &p);
    const Conv2dParams *c = &p.conv;
    fprintf(e->out,
            "        static const FusedConv2dParams p = {.conv = {.n = %d, .c = %d, .h = %d, .w = %d, .oc = %d, .kh = %d,"
            " .kw = %d,\n            .sh = %d, .sw = %d, .pt = %d, .pl = %d, .pb = %d, .pr = %d, .dh = %d, .dw = %d,"
            " .groups = 1, .oh = %d, .ow = %d, .wpack = %d},\n"
            "            .norm_groups = %d, .eps = %s, .silu = %d, .chan_add_n = %d, .out_scale = %s};\n",
            c->n, c->c, c->h, c->w, c->oc, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl, c->pb, c->pr, c->dh, c->dw, c->oh,
            c->ow, (int)weight_pack_of(e->eg->weight_pack, n, s.w), p.norm_groups, cf(p.eps), p.silu, p.chan_add_n,
            cf(p.out_scale));
    char xs[96], gs[96], bts[96], ws[96], bs[96], cs[96], rs[96];
    slot_ref(e, n, s.x, xs, sizeof xs), slot_ref(e, n, s.gamma, gs, sizeof gs), slot_ref(e, n, s.beta, bts, sizeof bts);
    slot_ref(e, n, s.w, ws, sizeof ws), slot_ref(e, n, s.bias, bs, sizeof bs);
    slot_ref(e, n, s.chan_add, cs, sizeof cs), slot_ref(e, n, s.residual, rs, sizeof rs);
    REF(ys, id);
    fprintf(e->out, "        rt_fused_conv2d(&p, %s, %s, %s,\n            %s, %s, %s, %s, %s);\n", xs, gs, bts, ws, bs, cs,
            rs, ys);
}

static void lower_fused_linear(Emit *e, const Node *n, int id)
{
    FusedSlots s;
    fused_slots(n, &s);
    const Node *x = in(e, n, s.x), *w = in(e, n, s.w);
    FusedLinearParams p;
    fused_linear_params(n, x->shape, x->ndim, w->shape, &p);
    fprintf(e->out,
            "        static const FusedLinearParams p = {.m = %d, .k = %d, .n = %d, .norm = %d, .norm_groups = %d,"
            " .hw = %d, .eps = %s,\n            .geglu = %d, .out_scale = %s, .wpack = %d};\n",
            p.m, p.k, p.n, p.norm, p.norm_groups, p.hw, cf(p.eps), p.geglu, cf(p.out_scale),
            (int)weight_pack_of(e->eg->weight_pack, n, s.w));
    char xs[96], gs[96], bts[96], ws[96], bs[96], rs[96];
    slot_ref(e, n, s.x, xs, sizeof xs), slot_ref(e, n, s.gamma, gs, sizeof gs), slot_ref(e, n, s.beta, bts, sizeof bts);
    slot_ref(e, n, s.w, ws, sizeof ws), slot_ref(e, n, s.bias, bs, sizeof bs), slot_ref(e, n, s.residual, rs, sizeof rs);
    REF(ys, id);
    fprintf(e->out, "        rt_fused_linear(&p, %s, %s, %s,\n            %s, %s, %s, %s);\n", xs, gs, bts, ws, bs, rs, ys);
}

/* q, k and v are read in place from the fused projection: row stride 3C. */
static void lower_attention_qkv(Emit *e, const Node *n, int id)
{
    const Node *qkv = in(e, n, 0);
    int64_t heads = node_int(n, "heads", 1), ch = n->shape[2];
    REF(qs, n->in[0]);
    REF(ys, id);
    fprintf(e->out,
            "        static const AttentionParams p = {.b = %" PRId64 ", .lq = %" PRId64 ", .lk = %" PRId64
            ", .heads = %" PRId64 ", .dk = %" PRId64 ", .dv = %" PRId64 ",\n"
            "            .ldq = %" PRId64 ", .ldk = %" PRId64 ", .ldv = %" PRId64 ", .ldy = %" PRId64
            ", .scale = %s, .causal = %d, .upcast = %d, .bf16 = %d};\n",
            qkv->shape[0], qkv->shape[1], qkv->shape[1], heads, ch / heads, ch / heads, 3 * ch, 3 * ch, 3 * ch, ch,
            cf(node_float(n, "scale", 1)), (int)node_int(n, "causal", 0), (int)node_int(n, "upcast", 0),
            e->eg->attention_bf16);
    fprintf(e->out, "        rt_attention(&p, %s, %s + %" PRId64 ", %s + %" PRId64 ", %s);\n", qs, qs, ch, qs, 2 * ch, ys);
}

typedef void (*LowerFn)(Emit *e, const Node *n, int id);

static const LowerFn lower[OP_COUNT] = {
    [OP_CONV2D] = lower_conv2d,
    [OP_MATMUL] = lower_matmul,
    [OP_LINEAR] = lower_linear,
    [OP_ADD] = lower_binary,
    [OP_SUB] = lower_binary,
    [OP_MUL] = lower_binary,
    [OP_DIV] = lower_binary,
    [OP_SCALE] = lower_unary,
    [OP_SILU] = lower_unary,
    [OP_GELU] = lower_unary,
    [OP_QUICK_GELU] = lower_unary,
    [OP_CLAMP] = lower_unary,
    [OP_GROUP_NORM] = lower_group_norm,
    [OP_LAYER_NORM] = lower_layer_norm,
    [OP_SOFTMAX] = lower_softmax,
    [OP_CAUSAL_MASK] = lower_causal_mask,
    [OP_RESHAPE] = lower_reshape,
    [OP_PERMUTE] = lower_permute,
    [OP_CONCAT] = lower_concat,
    [OP_SLICE] = lower_slice,
    [OP_UPSAMPLE_NEAREST2D] = lower_upsample,
    [OP_TIMESTEP_EMBEDDING] = lower_timestep_embedding,
    [OP_EMBEDDING] = lower_embedding,
    [OP_ATTENTION] = lower_attention,
    [OP_FUSED_CONV2D] = lower_fused_conv2d,
    [OP_FUSED_LINEAR] = lower_fused_linear,
    [OP_ATTENTION_QKV] = lower_attention_qkv,
};

static int c_supports_op(const Graph *g, const Node *n, SdcErr *err)
{
    (void)g;
    if (n->op == OP_INPUT || n->op == OP_CONST) {
        if (n->dtype != DT_F32 && n->dtype != DT_I64) return sdc_err(err, "values of type %s", dtype_name(n->dtype)), 0;
        return 1;
    }
    if (!lower[n->op]) return sdc_err(err, "op not supported by this backend"), 0;
    if (n->op != OP_EMBEDDING && n->dtype != DT_F32) return sdc_err(err, "values of type %s", dtype_name(n->dtype)), 0;
    return 1;
}

/* --- graphs ------------------------------------------------------------------- */

static void print_ir_line(FILE *o, const Graph *g, const Node *n)
{
    char type[128];
    fprintf(o, "    /* %%%s = %s(", n->name, op_table[n->op].name);
    for (int k = 0; k < n->nin; k++) fprintf(o, k ? ", %%%s" : "%%%s", g->nodes[n->in[k]].name);
    fprintf(o, ") : %s */\n", node_type_str(n, type, sizeof type));
}

static int is_profiled(const Node *n) { return n->op != OP_INPUT && n->op != OP_CONST && n->op != OP_RESHAPE; }

static void emit_node(Emit *e, int i)
{
    const Node *n = &e->g->nodes[i];
    print_ir_line(e->out, e->g, n);
    fprintf(e->out, "    {\n        PROF_BEGIN;\n");
    lower[n->op](e, n, i);
    fprintf(e->out, "        PROF_END(%d, %d);\n    }\n", e->eg->index, e->prof_index++);
}

/* Values marked @prompt (hoist-text-kv) live in a buffer of the function's
 * own and are recomputed only when the inputs they depend on change: the
 * inputs are compared with a copy kept from the last computation, so the
 * result is the same however the caller sequences its calls. */
static void emit_prompt_stage(Emit *e)
{
    const Graph *g = e->g;
    FILE *o = e->out;
    char *used = xcalloc((size_t)g->n, 1);
    uint64_t key_bytes = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].stage == NODE_STAGE_PROMPT)
            for (int k = 0; k < g->nodes[i].nin; k++) {
                int u = e->eg->plan->root[g->nodes[i].in[k]];
                if (g->nodes[u].op == OP_INPUT && !used[u]) used[u] = 1, key_bytes += node_bytes(&g->nodes[u]);
            }
    fprintf(o, "    /* values computed once per prompt (@prompt): %" PRIu64 " bytes */\n", e->eg->plan->persist_bytes);
    fprintf(o, "    static uint8_t *persist, *key;\n    static int valid;\n");
    fprintf(o, "    if (!persist) persist = sdc_alloc(%" PRIu64 "), key = sdc_alloc(%" PRIu64 ");\n",
            e->eg->plan->persist_bytes, key_bytes ? key_bytes : 1);
    fprintf(o, "    int same = valid");
    uint64_t at = 0;
    for (int i = 0; i < g->n; i++)
        if (used[i]) {
            fprintf(o, " && memcmp(key + %" PRIu64 ", in[%" PRId64 "], %" PRIu64 ") == 0", at, e->eg->plan->offset[i],
                    node_bytes(&g->nodes[i]));
            at += node_bytes(&g->nodes[i]);
        }
    fprintf(o, ";\n    if (!same) {\n");
    for (int i = 0; i < g->n; i++)
        if (is_profiled(&g->nodes[i]) && g->nodes[i].stage == NODE_STAGE_PROMPT) emit_node(e, i);
    at = 0;
    for (int i = 0; i < g->n; i++)
        if (used[i]) {
            fprintf(o, "    memcpy(key + %" PRIu64 ", in[%" PRId64 "], %" PRIu64 ");\n", at, e->eg->plan->offset[i],
                    node_bytes(&g->nodes[i]));
            at += node_bytes(&g->nodes[i]);
        }
    fprintf(o, "    valid = 1;\n    }\n");
    free(used);
}

static void emit_graph(Emit *e)
{
    const Graph *g = e->g;
    const MemPlan *p = e->eg->plan;
    FILE *o = e->out;
    fprintf(o, "/* ==== graph %s: %d nodes, arena %" PRIu64 " bytes (lower bound %" PRIu64 ") ==== */\n\n", e->eg->name,
            g->n, p->peak, p->lower_bound);
    /* profiling tables, in the order the nodes are emitted: @prompt values first */
    int np = 0;
    fprintf(o, "static const char *const %s_node_names[] = {\n", e->eg->name);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->n; i++)
            if (is_profiled(&g->nodes[i]) && (g->nodes[i].stage == NODE_STAGE_PROMPT) == (pass == 0))
                fprintf(o, "    \"%%%s = %s\",\n", g->nodes[i].name, op_table[g->nodes[i].op].name), np++;
    fprintf(o, "    NULL};\nstatic const unsigned char %s_node_kind[] = {", e->eg->name);
    for (int pass = 0, k = 0; pass < 2; pass++)
        for (int i = 0; i < g->n; i++)
            if (is_profiled(&g->nodes[i]) && (g->nodes[i].stage == NODE_STAGE_PROMPT) == (pass == 0))
                fprintf(o, "%s%d", k++ ? ", " : "", (int)g->nodes[i].op);
    fprintf(o, "%s};\nstatic const double %s_node_flops[] = {", np ? "" : "0", e->eg->name);
    for (int pass = 0, k = 0; pass < 2; pass++)
        for (int i = 0; i < g->n; i++)
            if (is_profiled(&g->nodes[i]) && (g->nodes[i].stage == NODE_STAGE_PROMPT) == (pass == 0)) {
                OpCost c = {0};
                op_table[g->nodes[i].op].cost(g, &g->nodes[i], &c);
                fprintf(o, "%s%.17g", k++ ? ", " : "", c.flops);
            }
    fprintf(o, "%s};\n\n", np ? "" : "0");
    fprintf(o, "static void graph_%s(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)\n{\n",
            e->eg->name);
    fprintf(o, "    (void)arena, (void)weights, (void)in, (void)out;\n");
    e->prof_index = 0;
    if (p->persist_bytes) emit_prompt_stage(e);
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (is_profiled(n) && n->stage != NODE_STAGE_PROMPT) emit_node(e, i);
    }
    /* outputs that are views, inputs, weights or repeated values are copied out */
    for (int o2 = 0; o2 < g->nout; o2++) {
        int v = g->outputs[o2];
        if (p->kind[v] == BUF_OUTPUT && p->offset[v] == o2 && p->root[v] == v) continue;
        char src[96];
        ref(e, v, src, sizeof src);
        fprintf(o, "    memcpy(out[%d], %s, %" PRIu64 ");\n", o2, src, node_bytes(&g->nodes[v]));
    }
    fprintf(o, "}\n\n");
}

static int c_emit_graphs(const EmitGraph *graphs, int n, FILE *out, SdcErr *err)
{
    fprintf(out,
            "#include <stdint.h>\n#include <string.h>\n\n#include \"kernels.h\"\n#include \"movement.h\"\n"
            "#include \"pipeline.h\"\n\n"
            "/* profiling: a node's time goes to sdc_prof_node when --bench asks for it */\n"
            "#define PROF_BEGIN double t0_ = sdc_prof_on ? sdc_prof_now() : 0.0\n"
            "#define PROF_END(g, i) if (sdc_prof_on) sdc_prof_node((g), (i), sdc_prof_now() - t0_)\n\n");
    for (int k = 0; k < n; k++) {
        if (backend_check(&backend_c, graphs[k].g, err) < 0) return -1;
        Emit e = {.out = out, .eg = &graphs[k], .g = graphs[k].g};
        emit_graph(&e);
    }
    return ferror(out) ? sdc_err(err, "write error while emitting C") : 0;
}

const Backend backend_c = {"c", c_supports_op, c_emit_graphs};
