/* kernels.h — the runtime's compute kernels, called by generated code.
 *
 * Each kernel has a twin in the interpreter (ir/ref_kernels.h, same params
 * struct) that is its oracle; tests/unit/test_kernels.c compares them on
 * random inputs, ragged sizes included.  Results must not depend on the
 * number of threads (each output element is reduced in the same order
 * whatever the split), so that executables are bit-reproducible across
 * --threads values. */
#ifndef SDC_KERNELS_H
#define SDC_KERNELS_H

#include <stdint.h>
#include "kernel_params.h"

/* Threads used by every kernel (OpenMP); 0 = all cores. */
void rt_set_threads(int n);
int rt_threads(void);

void rt_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y);
void rt_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c);
void rt_group_norm(const GroupNormParams *p, const float *x, const float *gamma, const float *beta, float *y);
void rt_layer_norm(const LayerNormParams *p, const float *x, const float *gamma, const float *beta, float *y);
void rt_softmax(int64_t rows, int64_t cols, const float *x, float *y);
void rt_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y);
void rt_timestep_embedding(const TimestepEmbParams *p, const float *t, float *y);
void rt_upsample_nearest2d(const UpsampleParams *p, const float *x, float *y);
/* Fused GEMMs (kernel_params.h; kernels_fused.c); absent operands are NULL. */
void rt_fused_conv2d(const FusedConv2dParams *p, const float *x, const float *gamma, const float *beta,
                     const float *w, const float *b, const float *chan_add, const float *residual, float *y);
void rt_fused_linear(const FusedLinearParams *p, const float *x, const float *gamma, const float *beta,
                     const float *w, const float *b, const float *residual, float *y);

/* Packed GEMM weights (kernel_params.h: RtWeightPack).  A conv weight has
 * rows = oc, k = c/groups*kh*kw; a linear weight rows = n, k = k.
 * rt_packed_weight_size gives the bytes of the packed form (padding
 * included); rt_pack_weight writes it (sdc compile, once per weight). */
int64_t rt_packed_weight_size(RtWeightPack pack, int groups, int64_t rows, int64_t k);
void rt_pack_weight(RtWeightPack pack, int groups, int64_t rows, int64_t k, const float *w, void *dst);
/* The packed layout in words, for the weights file's metadata. */
const char *rt_weight_packing(void);

/* Elementwise, y may alias x. */
void rt_silu(const float *x, float *y, int64_t n);
void rt_gelu(const float *x, float *y, int64_t n);       /* exact: 0.5x(1+erf(x/sqrt2)) */
void rt_quick_gelu(const float *x, float *y, int64_t n); /* x * sigmoid(1.702 x) */

typedef enum RtBinaryOp { RT_ADD, RT_SUB, RT_MUL, RT_DIV } RtBinaryOp;
/* y[i] = a[ia] op b[ib] over an output of `ndim` dims (<= 5); a and b are
 * read through element strides (0 on broadcast axes).  y is contiguous and
 * may alias a or b when that operand is not broadcast. */
void rt_binary(RtBinaryOp op, int ndim, const int64_t *shape, const float *a, const int64_t *sa,
               const float *b, const int64_t *sb, float *y);

#endif
