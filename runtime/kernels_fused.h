/* kernels_fused.h — the prologue and epilogue hooks of the fused GEMM
 * kernels (not for callers of the runtime; they use kernels.h).
 *
 * A fused kernel is  prologue -> GEMM -> epilogue  on tiles:
 *   prologue  applied to the input while a GEMM operand is packed (im2col
 *             slab of a conv, A panel of a linear): a per-channel affine map
 *             x' = (x - mean) * a + b, then SiLU when asked (GroupNorm+SiLU
 *             with statistics from a first pass), or a LayerNorm of a row;
 *   GEMM      rt_gemm on the packed tile (the bias initialises the tile);
 *   epilogue  applied to each finished output tile:
 *             y = (y + row_add[row] + residual) * scale.
 * A GEMM micro-kernel that packs its own panels calls rt_prologue_channel
 * on each channel row it packs and rt_epilogue_tile on each tile it
 * finishes; nothing else about the fusion leaks into it. */
#ifndef SDC_KERNELS_FUSED_H
#define SDC_KERNELS_FUSED_H

#include "kernels_internal.h"

/* x' = (x - mean) * a + b for one input channel of one image (GroupNorm:
 * mean of the group, a = inv_std * gamma[c], b = beta[c]). */
typedef struct RtChannelNorm {
    float mean, a, b;
} RtChannelNorm;

/* dst[j] = x'(src[j]), then silu when set; dst may be src. */
static inline void rt_prologue_channel(float *dst, const float *src, int64_t n, const RtChannelNorm *cn, int silu)
{
    rt_vec_norm_channel(dst, src, n, cn->mean, cn->a, cn->b, silu);
}

/* The statistics pass of a GroupNorm prologue: out[n*c + ch] for every
 * image and channel, computed per (image, group) with the same reductions
 * as rt_group_norm (so the affine maps are the ones it would apply). */
void rt_group_norm_channels(int n, int c, int64_t hw, int groups, float eps, const float *x, const float *gamma,
                            const float *beta, RtChannelNorm *out);

/* y[i*ldy + j] = (y[i*ldy + j] + row_add[i] + residual[i*ld_residual + j]) * scale
 * for i < rows, j < cols; row_add and residual may be NULL. */
typedef struct RtEpilogue {
    const float *row_add;
    const float *residual;
    int64_t ld_residual;
    float scale;
} RtEpilogue;

void rt_epilogue_tile(const RtEpilogue *ep, float *y, int64_t ldy, int rows, int64_t cols);

#endif
