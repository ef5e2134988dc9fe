/* interp_ops.c — the op table's exec column: attributes and shapes are
 * turned into kernel parameters and handed to the reference kernels. */
#include "fused_ops.h"
#include "interp.h"
#include "op_impl.h"
#include "ref_kernels.h"

#include <math.h>
#include <string.h>

static int64_t prod(const int64_t *s, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= s[d];
    return p;
}

int exec_conv2d(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    int64_t stride[2] = {1, 1}, pad[4] = {0, 0, 0, 0}, dil[2] = {1, 1};
    node_ints(n, "stride", stride, 2);
    node_ints(n, "pad", pad, 4);
    node_ints(n, "dilation", dil, 2);
    const Tensor *x = in[0], *w = in[1];
    Conv2dParams p = {.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2], .w = (int)x->shape[3],
                      .oc = (int)w->shape[0], .kh = (int)w->shape[2], .kw = (int)w->shape[3],
                      .sh = (int)stride[0], .sw = (int)stride[1], .pt = (int)pad[0], .pl = (int)pad[1],
                      .pb = (int)pad[2], .pr = (int)pad[3], .dh = (int)dil[0], .dw = (int)dil[1],
                      .groups = (int)node_int(n, "groups", 1)};
    SDC_ASSERT(conv2d_params_finish(&p) == 0);
    ref_conv2d(&p, x->f, w->f, n->nin == 3 ? in[2]->f : NULL, out->f);
    return 0;
}

int exec_matmul(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *a = in[0], *b = in[1];
    int ta = (int)node_int(n, "transpose_a", 0), tb = (int)node_int(n, "transpose_b", 0);
    MatmulParams p = {.m = (int)out->shape[out->ndim - 2], .n = (int)out->shape[out->ndim - 1],
                      .k = (int)(ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1]), .trans_a = ta, .trans_b = tb};
    p.lda = a->shape[a->ndim - 1];
    p.ldb = b->shape[b->ndim - 1];
    p.ldc = p.n;
    p.batch = (int)prod(out->shape, 0, out->ndim - 2);
    p.stride_a = a->ndim > 2 ? a->shape[a->ndim - 1] * a->shape[a->ndim - 2] : 0;
    p.stride_b = b->ndim > 2 ? b->shape[b->ndim - 1] * b->shape[b->ndim - 2] : 0;
    p.stride_c = (int64_t)p.m * p.n;
    ref_matmul(&p, a->f, b->f, NULL, out->f);
    return 0;
}

int exec_linear(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *x = in[0], *w = in[1];
    int k = (int)w->shape[1];
    MatmulParams p = {.batch = 1, .m = (int)prod(x->shape, 0, x->ndim - 1), .n = (int)w->shape[0], .k = k,
                      .trans_b = 1, .lda = k, .ldb = k, .ldc = w->shape[0]};
    ref_matmul(&p, x->f, w->f, n->nin == 3 ? in[2]->f : NULL, out->f);
    return 0;
}

/* Element strides of t as seen from an output of rank nd (0 on broadcast axes). */
static void broadcast_strides(const Tensor *t, int nd, const int64_t *oshape, int64_t *st)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int dt = d - (nd - t->ndim);
        int64_t size = dt >= 0 ? t->shape[dt] : 1;
        st[d] = size == 1 && oshape[d] != 1 ? 0 : s;
        if (dt >= 0) s *= size;
    }
}

int exec_binary(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    static const RtBinaryOp map[OP_COUNT] = {[OP_ADD] = RT_ADD, [OP_SUB] = RT_SUB, [OP_MUL] = RT_MUL, [OP_DIV] = RT_DIV};
    int64_t sa[IR_MAX_DIMS], sb[IR_MAX_DIMS];
    broadcast_strides(in[0], out->ndim, out->shape, sa);
    broadcast_strides(in[1], out->ndim, out->shape, sb);
    ref_binary(map[n->op], out->ndim, out->shape, in[0]->f, sa, in[1]->f, sb, out->f);
    return 0;
}

int exec_unary(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    int64_t numel = tensor_numel(out);
    const float *x = in[0]->f;
    switch (n->op) {
    case OP_SILU: ref_silu(x, out->f, numel); break;
    case OP_GELU: ref_gelu(x, out->f, numel); break;
    case OP_QUICK_GELU: ref_quick_gelu(x, out->f, numel); break;
    case OP_SCALE: {
        double s = node_float(n, "value", 1.0);
        for (int64_t i = 0; i < numel; i++) out->f[i] = (float)(x[i] * s);
        break;
    }
    case OP_CLAMP: {
        double lo = node_float(n, "min", -INFINITY), hi = node_float(n, "max", INFINITY);
        for (int64_t i = 0; i < numel; i++) out->f[i] = (float)(x[i] < lo ? lo : x[i] > hi ? hi : x[i]);
        break;
    }
    default: SDC_ASSERT(!"not a unary op");
    }
    return 0;
}

int exec_cast(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)err;
    int64_t numel = tensor_numel(out);
    const Tensor *x = in[0];
    for (int64_t i = 0; i < numel; i++) {
        double v = x->f ? x->f[i] : (double)x->i[i];
        if (out->f)
            out->f[i] = (float)v;
        else
            out->i[i] = (int64_t)v; /* truncation toward zero, as PyTorch */
    }
    return 0;
}

int exec_group_norm(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *x = in[0];
    GroupNormParams p = {.n = (int)x->shape[0], .c = (int)x->shape[1], .hw = (int)prod(x->shape, 2, x->ndim),
                         .groups = (int)node_int(n, "groups", 1), .eps = (float)node_float(n, "eps", 1e-5)};
    ref_group_norm(&p, x->f, in[1]->f, in[2]->f, out->f);
    return 0;
}

int exec_layer_norm(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *x = in[0];
    LayerNormParams p = {.rows = (int)prod(x->shape, 0, x->ndim - 1), .cols = (int)x->shape[x->ndim - 1],
                         .eps = (float)node_float(n, "eps", 1e-5)};
    ref_layer_norm(&p, x->f, in[1]->f, in[2]->f, out->f);
    return 0;
}

int exec_softmax(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)err;
    const Tensor *x = in[0];
    ref_softmax(prod(x->shape, 0, x->ndim - 1), x->shape[x->ndim - 1], x->f, out->f);
    return 0;
}

int exec_causal_mask(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)err;
    const Tensor *x = in[0];
    int64_t lq = x->shape[x->ndim - 2], lk = x->shape[x->ndim - 1], mats = prod(x->shape, 0, x->ndim - 2);
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < lq; i++)
            for (int64_t j = 0; j < lk; j++) {
                int64_t at = (m * lq + i) * lk + j;
                out->f[at] = j > i ? -INFINITY : x->f[at];
            }
    return 0;
}

int exec_reshape(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)err;
    int64_t numel = tensor_numel(out);
    if (out->f) memcpy(out->f, in[0]->f, sizeof(float) * (size_t)numel);
    else memcpy(out->i, in[0]->i, sizeof(int64_t) * (size_t)numel);
    return 0;
}

int exec_permute(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *x = in[0];
    int nd = x->ndim;
    int64_t perm[IR_MAX_DIMS], xs[IR_MAX_DIMS], st[IR_MAX_DIMS], idx[IR_MAX_DIMS] = {0};
    node_ints(n, "perm", perm, IR_MAX_DIMS);
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) xs[d] = s, s *= x->shape[d];
    for (int d = 0; d < nd; d++) st[d] = xs[perm[d]]; /* input stride of output axis d */
    int64_t numel = tensor_numel(out);
    for (int64_t i = 0; i < numel; i++) {
        int64_t src = 0;
        for (int d = 0; d < nd; d++) src += idx[d] * st[d];
        if (out->f) out->f[i] = x->f[src];
        else out->i[i] = x->i[src];
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < out->shape[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

/* Copies rows of `inner` elements: the common core of concat and slice. */
static void copy_block(const Tensor *src, int64_t src_off, Tensor *dst, int64_t dst_off, int64_t len)
{
    if (dst->f) memcpy(dst->f + dst_off, src->f + src_off, sizeof(float) * (size_t)len);
    else memcpy(dst->i + dst_off, src->i + src_off, sizeof(int64_t) * (size_t)len);
}

int exec_concat(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    int axis = (int)node_int(n, "axis", 0);
    int64_t outer = prod(out->shape, 0, axis), inner = prod(out->shape, axis + 1, out->ndim);
    int64_t at = 0;
    for (int k = 0; k < n->nin; k++) {
        int64_t len = in[k]->shape[axis] * inner;
        for (int64_t o = 0; o < outer; o++) copy_block(in[k], o * len, out, o * out->shape[axis] * inner + at, len);
        at += len;
    }
    return 0;
}

int exec_slice(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *x = in[0];
    int axis = (int)node_int(n, "axis", 0);
    int64_t start = node_int(n, "start", 0);
    int64_t outer = prod(x->shape, 0, axis), inner = prod(x->shape, axis + 1, x->ndim);
    int64_t len = out->shape[axis] * inner;
    for (int64_t o = 0; o < outer; o++) copy_block(x, (o * x->shape[axis] + start) * inner, out, o * len, len);
    return 0;
}

int exec_upsample(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)err;
    const Tensor *x = in[0];
    UpsampleParams p = {.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2], .w = (int)x->shape[3],
                        .oh = (int)out->shape[2], .ow = (int)out->shape[3]};
    ref_upsample_nearest2d(&p, x->f, out->f);
    return 0;
}

int exec_timestep_embedding(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    TimestepEmbParams p = {.b = (int)in[0]->shape[0], .dim = (int)node_int(n, "dim", 0),
                           .flip_sin_to_cos = (int)node_int(n, "flip_sin_to_cos", 0),
                           .shift = (float)node_float(n, "shift", 0.0),
                           .max_period = (float)node_float(n, "max_period", 10000.0),
                           .scale = (float)node_float(n, "scale", 1.0)};
    ref_timestep_embedding(&p, in[0]->f, out->f);
    return 0;
}

int exec_embedding(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n;
    const Tensor *ids = in[0], *table = in[1];
    int64_t count = tensor_numel(ids), v = table->shape[0], dim = table->shape[1];
    for (int64_t i = 0; i < count; i++) {
        int64_t id = ids->i[i];
        if (id < 0 || id >= v)
            return sdc_err(err, "id %lld at position %lld is outside the table of %lld rows", (long long)id,
                           (long long)i, (long long)v);
        memcpy(out->f + i * dim, table->f + id * dim, sizeof(float) * (size_t)dim);
    }
    return 0;
}

int exec_attention(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *q = in[0], *k = in[1], *v = in[2];
    int heads = (int)node_int(n, "heads", 1);
    AttentionParams p = {.b = (int)q->shape[0], .lq = (int)q->shape[1], .lk = (int)k->shape[1], .heads = heads,
                         .dk = (int)(q->shape[2] / heads), .dv = (int)(v->shape[2] / heads),
                         .ldq = q->shape[2], .ldk = k->shape[2], .ldv = v->shape[2], .ldy = out->shape[2],
                         .scale = (float)node_float(n, "scale", 1.0), .causal = (int)node_int(n, "causal", 0),
                         .upcast = (int)node_int(n, "upcast", 0)};
    ref_attention(&p, q->f, k->f, v->f, out->f);
    return 0;
}

/* --- fused ops ------------------------------------------------------------------ */

static const float *slot(Tensor *const *in, int k) { return k >= 0 ? in[k]->f : NULL; }

int exec_fused_conv2d(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    FusedSlots s;
    fused_slots(n, &s);
    FusedConv2dParams p;
    SDC_ASSERT(fused_conv2d_params(n, in[s.x]->shape, in[s.w]->shape, s.chan_add >= 0 ? in[s.chan_add]->shape[0] : 0,
                                   &p) == 0);
    ref_fused_conv2d(&p, in[s.x]->f, slot(in, s.gamma), slot(in, s.beta), in[s.w]->f, slot(in, s.bias),
                     slot(in, s.chan_add), slot(in, s.residual), out->f);
    return 0;
}

int exec_fused_linear(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    FusedSlots s;
    fused_slots(n, &s);
    const Tensor *x = in[s.x], *w = in[s.w];
    FusedLinearParams p;
    fused_linear_params(n, x->shape, x->ndim, w->shape, &p);
    ref_fused_linear(&p, x->f, slot(in, s.gamma), slot(in, s.beta), w->f, slot(in, s.bias), slot(in, s.residual),
                     out->f);
    return 0;
}

/* q, k and v are the three thirds of each row of qkv, read in place. */
int exec_attention_qkv(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)err;
    const Tensor *qkv = in[0];
    int heads = (int)node_int(n, "heads", 1);
    int64_t ch = out->shape[2];
    AttentionParams p = {.b = (int)qkv->shape[0], .lq = (int)qkv->shape[1], .lk = (int)qkv->shape[1], .heads = heads,
                         .dk = (int)(ch / heads), .dv = (int)(ch / heads), .ldq = 3 * ch, .ldk = 3 * ch,
                         .ldv = 3 * ch, .ldy = ch, .scale = (float)node_float(n, "scale", 1.0),
                         .causal = (int)node_int(n, "causal", 0), .upcast = (int)node_int(n, "upcast", 0)};
    ref_attention(&p, qkv->f, qkv->f + ch, qkv->f + 2 * ch, out->f);
    return 0;
}
