/* ref_kernels.h — the interpreter's reference kernels: plain loops,
 * accumulation in double, obviously correct rather than fast.  They are the
 * oracle for the runtime kernels (runtime/kernels.h, same parameter structs)
 * and for every pass and backend. */
#ifndef SDC_REF_KERNELS_H
#define SDC_REF_KERNELS_H

#include <stdint.h>
#include "kernel_params.h"
#include "kernels.h" /* RtBinaryOp */

void ref_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y);
void ref_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c);
void ref_group_norm(const GroupNormParams *p, const float *x, const float *gamma, const float *beta, float *y);
void ref_layer_norm(const LayerNormParams *p, const float *x, const float *gamma, const float *beta, float *y);
void ref_softmax(int64_t rows, int64_t cols, const float *x, float *y);
void ref_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y);
void ref_timestep_embedding(const TimestepEmbParams *p, const float *t, float *y);
void ref_upsample_nearest2d(const UpsampleParams *p, const float *x, float *y);
/* The fused kernels as their parts in sequence: normalisation into a
 * temporary, ref_conv2d / ref_matmul, then the epilogue in double. */
void ref_fused_conv2d(const FusedConv2dParams *p, const float *x, const float *gamma, const float *beta,
                      const float *w, const float *b, const float *chan_add, const float *residual, float *y);
void ref_fused_linear(const FusedLinearParams *p, const float *x, const float *gamma, const float *beta,
                      const float *w, const float *b, const float *residual, float *y);
void ref_silu(const float *x, float *y, int64_t n);
void ref_gelu(const float *x, float *y, int64_t n);
void ref_quick_gelu(const float *x, float *y, int64_t n);
void ref_binary(RtBinaryOp op, int ndim, const int64_t *shape, const float *a, const int64_t *sa,
                const float *b, const int64_t *sb, float *y);

#endif
