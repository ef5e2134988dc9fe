/* kernel_params.h — the shapes and attributes of the compute kernels.
 *
 * Two implementations take these structs: the reference kernels of the
 * interpreter (ir/ref_kernels.c, plain loops, the oracle) and the runtime
 * kernels that generated code calls (runtime/kernels.c, fast).  Tests run
 * both on the same random inputs.  All tensors are float32, contiguous,
 * NCHW for images and row-major [rows, cols] for matrices, unless a field
 * below gives a stride. */
#ifndef SDC_KERNEL_PARAMS_H
#define SDC_KERNEL_PARAMS_H

#include <stdint.h>

/* How a GEMM weight is stored in the weights file.  `sdc compile` packs
 * conv and linear weights into the runtime GEMM's panel layout (and, with
 * --weights-dtype, into 16-bit floats) once, so that the executable uses
 * them in place (runtime/gemm.h; rt_pack_weight in kernels.h).  The
 * reference kernels only ever see RT_WPACK_NONE. */
typedef enum RtWeightPack {
    RT_WPACK_NONE = 0,        /* as the graph has it, f32 */
    RT_WPACK_CONV_F32 = 1,    /* conv [oc, c/g, kh, kw]: per group, panels of 6 output channels,
                               * each [c/g*kh*kw][6]: [g][ceil(og/6)][c/g*kh*kw][6] */
    RT_WPACK_CONV_F16 = 2,    /* the same layout in IEEE half */
    RT_WPACK_CONV_BF16 = 3,   /* the same layout in bfloat16 */
    RT_WPACK_LINEAR_F32 = 4,  /* linear [n, k] as the B operand of x w^T: panels of 16 output
                               * features, each [k][16]: [ceil(n/16)][k][16] */
    RT_WPACK_LINEAR_F16 = 5,
    RT_WPACK_LINEAR_BF16 = 6,
    RT_WPACK_COUNT
} RtWeightPack;

/* y[n,oc,oh,ow] = b[oc] + sum_{ic in group, ky, kx} x[n,ic,oy*sh-pt+ky*dh, ox*sw-pl+kx*dw] * w[oc,ic%(c/g),ky,kx]
 * x: [n, c, h, w]; w: [oc, c/groups, kh, kw]; b: [oc] or NULL.
 * Padding may be asymmetric (diffusers pads (0,1,0,1) before a stride-2 conv
 * when downsample_padding is 0): pt/pl/pb/pr = top/left/bottom/right.
 * oh = (h + pt + pb - dh*(kh-1) - 1) / sh + 1, likewise ow. */
typedef struct Conv2dParams {
    int n, c, h, w;     /* input */
    int oc, kh, kw;     /* weight */
    int sh, sw;         /* stride */
    int pt, pl, pb, pr; /* zero padding */
    int dh, dw;         /* dilation (1 in SD) */
    int groups;
    int oh, ow;         /* output, computed by conv2d_params_finish */
    int wpack;          /* RtWeightPack of w: RT_WPACK_NONE or RT_WPACK_CONV_* */
} Conv2dParams;

/* Fills oh/ow; returns -1 if the output would be empty or sizes are invalid. */
static inline int conv2d_params_finish(Conv2dParams *p)
{
    if (p->sh < 1 || p->sw < 1 || p->dh < 1 || p->dw < 1 || p->groups < 1) return -1;
    if (p->c % p->groups || p->oc % p->groups) return -1;
    int64_t eh = (int64_t)p->h + p->pt + p->pb - (int64_t)p->dh * (p->kh - 1) - 1;
    int64_t ew = (int64_t)p->w + p->pl + p->pr - (int64_t)p->dw * (p->kw - 1) - 1;
    if (eh < 0 || ew < 0) return -1;
    p->oh = (int)(eh / p->sh + 1);
    p->ow = (int)(ew / p->sw + 1);
    return 0;
}

/* C[b] = op(A[b]) @ op(B[b]) (+ bias[n] if bias) for b < batch.
 * op(A) is [m,k]: A is stored [m,k] (lda >= k) or, with trans_a, [k,m].
 * op(B) is [k,n]: B is stored [k,n] or, with trans_b, [n,k] (a linear layer's
 * weight is [n,k], so linear = trans_b).  Batch strides in elements; 0 means
 * the operand is shared by every batch entry (broadcast). */
typedef struct MatmulParams {
    int batch, m, n, k;
    int trans_a, trans_b;
    int64_t lda, ldb, ldc;                 /* row strides */
    int64_t stride_a, stride_b, stride_c;  /* batch strides */
    int bpack; /* RtWeightPack of B: RT_WPACK_NONE, or RT_WPACK_LINEAR_* for a linear weight
                * (trans_b, shared by every batch entry) */
} MatmulParams;

/* y = (x - mean_g) / sqrt(var_g + eps) * gamma[c] + beta[c] over groups of
 * c/groups channels × hw positions, biased variance (as PyTorch); then
 * y = silu(y) when silu is set.  x, y: [n, c, hw]. */
typedef struct GroupNormParams {
    int n, c, hw, groups;
    float eps;
    int silu;
} GroupNormParams;

/* Normalises each of `rows` rows of `cols` elements; gamma/beta: [cols]. */
typedef struct LayerNormParams {
    int rows, cols;
    float eps;
} LayerNormParams;

/* Scaled dot-product attention with heads packed in the channel dimension,
 * the layout diffusers and CLIP use before splitting heads:
 *   q: [b, lq, heads*dk] (row stride ldq), k: [b, lk, heads*dk] (ldk),
 *   v: [b, lk, heads*dv] (ldv), y: [b, lq, heads*dv] (ldy).
 * Per head h: y_h = softmax(scale * q_h k_h^T + mask) v_h, where the causal
 * mask hides key j > query i.  Batch strides are lq*ldq etc.  The upcast flag
 * records diffusers' upcast_attention (scores in fp32): with fp32 inputs it
 * changes nothing, and kernels that compute in lower precision honour it. */
typedef struct AttentionParams {
    int b, lq, lk, heads, dk, dv;
    int64_t ldq, ldk, ldv, ldy;
    float scale;
    int causal;
    int upcast;
    int bf16; /* both products on bf16-rounded operands (fp32 sums) where the CPU has a bf16
               * dot product (the compile's bf16 choice); with upcast the scores stay fp32 */
} AttentionParams;

/* Sinusoidal timestep embedding, as diffusers' get_timestep_embedding:
 *   half = dim/2; freq_i = exp(-ln(max_period) * i / (half - shift)) * scale
 *   emb = [sin(t*freq), cos(t*freq)], or [cos, sin] when flip_sin_to_cos;
 *   an odd dim gets one zero column at the end.
 * Computed in float32 as PyTorch does.  t: [b]; y: [b, dim]. */
typedef struct TimestepEmbParams {
    int b, dim;
    int flip_sin_to_cos;
    float shift;
    float max_period;
    float scale;
} TimestepEmbParams;

/* Nearest upsampling exactly as PyTorch's "nearest" (upsample_nearest2d):
 * per axis, out == in copies, out == 2*in takes src = dst >> 1, otherwise
 * src = min((int)floorf(dst * ((float)in / (float)out)), in - 1) in float32.
 * x: [n, c, h, w] -> y: [n, c, oh, ow]. */
typedef struct UpsampleParams {
    int n, c, h, w, oh, ow;
} UpsampleParams;

/* The fused GEMM kernels (fusion passes, runtime/kernels_fused.c).  Each is
 * prologue -> GEMM -> epilogue, and the normalised input and the
 * un-finished output are never stored whole:
 *
 * fused conv2d: x' = x, or when norm_groups > 0 the GroupNorm of x
 *   (statistics per image and group as GroupNormParams, eps), then silu(x')
 *   when silu is set; padding stays zero (the conv pads x', not x).
 *   y[n,o,i,j] = (conv2d(x', w)[n,o,i,j] + b[o] + chan_add[n',o] + residual[n,o,i,j]) * out_scale
 *   with n' = n, or 0 when chan_add_n is 1 (one row for every image).
 *   x: [n,c,h,w] (conv.groups must be 1); gamma, beta: [c]; b: [oc];
 *   chan_add: [chan_add_n, oc] (the time embedding of a ResNet block);
 *   residual, y: [n,oc,oh,ow].  Absent operands are NULL. */
typedef struct FusedConv2dParams {
    Conv2dParams conv;
    int norm_groups; /* 0: no normalisation */
    float eps;
    int silu;        /* after the normalisation (needs norm_groups > 0) */
    int chan_add_n;  /* rows of chan_add: conv.n or 1 */
    float out_scale; /* 1: none */
} FusedConv2dParams;

/* fused linear: x' = x, or LayerNorm over each row of x (gamma, beta: [k],
 * eps) when norm is set, or, when norm_groups > 0, x is channel-major
 * [m/hw images][k channels][hw positions] (a GroupNorm's NCHW input) and
 * row i of x' is position i % hw of image i / hw after GroupNorm (groups
 * norm_groups, eps; the spatial transformer's norm -> linear proj_in);
 * z = x' w^T + b (w: [n,k], b: [n]);
 * with geglu, z[:, j] = z[:, j] * gelu(z[:, n/2 + j]) for j < n/2 (diffusers'
 * GEGLU: hidden, gate = proj.chunk(2); hidden * gelu(gate));
 * y = (z + residual) * out_scale.  x: [m,k]; y, residual: [m, n or n/2]. */
typedef struct FusedLinearParams {
    int m, k, n;
    int norm;
    int norm_groups, hw; /* GroupNorm prologue on a channel-major x: groups, positions per image */
    float eps;
    int geglu;
    float out_scale;
    int wpack; /* RtWeightPack of w: RT_WPACK_NONE or RT_WPACK_LINEAR_* */
} FusedLinearParams;

#endif
