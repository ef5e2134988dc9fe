/* kernels_internal.h — what the runtime kernel files share (not for callers).
 *
 *   kernels.c           threads, per-thread scratch
 *   gemm.h              the GEMM engine: packed operands, micro-kernels, driver
 *   gemm_avx512.c       the AVX-512 micro-kernels (6 x 64; fp32 and bf16 pairs)
 *   gemm_avx2.c         the AVX2 and portable micro-kernels (6 x 16)
 *   gemm_pack.c         packing: operand blocks, weights at compile time
 *   kernels_gemm.c      the driver, rt_gemm and rt_matmul
 *   kernels_conv.c      rt_conv2d (implicit GEMM: im2col into the packed B blocks)
 *   kernels_attention.c rt_attention (tiled online softmax on the micro-kernel)
 *   kernels_fused.c     rt_fused_conv2d, rt_fused_linear (prologues, epilogues)
 *   kernels_norm.c      rt_group_norm, rt_layer_norm, rt_softmax
 *   kernels_eltwise.c   activations, rt_binary, upsampling, timestep embedding
 *   kernels_vec.c       the vectorised inner loops every file above uses
 *
 * Determinism: every kernel cuts its work into tasks whose boundaries depend
 * on the shapes only, never on the thread count, and every output element is
 * reduced inside one task on one thread.  Threads only decide who runs which
 * task, so 1 and N threads give bit-identical results. */
#ifndef SDC_KERNELS_INTERNAL_H
#define SDC_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "kernels.h"

/* ---- kernels.c ---------------------------------------------------------- */

/* Called at the top of every kernel: the first call sets up the scratch
 * memory's thread-exit hook. */
void rt_kernels_prepare(void);

/* Per-thread scratch that grows and is never shrunk: each OpenMP thread
 * keeps one buffer per slot for the life of the process.  The pointer is
 * 64-byte aligned and valid until the same thread asks for the same slot
 * again; contents are not preserved across growth. */
typedef enum RtScratchSlot {
    RT_SCRATCH_MAIN, /* im2col tile, attention score block */
    RT_SCRATCH_AUX,  /* attention accumulator and row statistics */
    RT_SCRATCH_PACK_A, /* rt_gemm_run: the packed A block */
    RT_SCRATCH_PACK_B, /* rt_gemm_run: the packed B block */
    RT_SCRATCH_SLAB,   /* rt_conv_tile: normalised input rows of a fused conv */
    RT_SCRATCH_ATTN_KV, /* rt_attention (calling thread): K and V of every head, packed */
    RT_SCRATCH_PAIRS_A, /* rt_gemm_run, bf16: the A block rounded to pairs */
    RT_SCRATCH_PAIRS_B, /* rt_gemm_run, bf16: the B block rounded to pairs */
    RT_SCRATCH_COUNT
} RtScratchSlot;
float *rt_scratch(RtScratchSlot slot, size_t count);

/* Largest scratch any one thread has held (bytes, all slots together). */
size_t rt_scratch_peak_bytes(void);

/* Compiles a function for AVX-512, AVX2 and baseline x86-64, picked at load
 * time (GCC's target_clones), for loops that vectorise but are not worth
 * intrinsics.  The build needs no -march flag. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RT_CLONES
#endif

static inline int64_t rt_div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t rt_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t rt_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Kernels split their work so that at least this many tasks exist when the
 * shapes allow it: enough to balance a few cores.  A constant (not the core
 * count), so that the split, and hence the result, is the same everywhere. */
#define RT_MIN_TASKS 8

/* ---- kernels_gemm.c ----------------------------------------------------- */

/* Row-major C[m,n] = alpha * op(A) op(B) + beta * C on the calling thread,
 * for plain matrices: op(A) is [m,k] (stored [k,m] with trans_a), op(B) is
 * [k,n] (stored [n,k] with trans_b).  The GEMM engine (gemm.h) with both
 * operands packed block by block; kernels with packed weights or their own
 * operand layout call rt_gemm_run directly.  Its result depends on its
 * arguments only (not on the thread). */
void rt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* ---- kernels_conv.c: the conv as GEMM tasks, shared with the fused conv ---- */

typedef struct RtConvPlan {
    int64_t hw, ohw;             /* input and output positions per channel */
    int cg, og;                  /* input and output channels per group */
    int64_t kdim;                /* cg*kh*kw: GEMM depth */
    int64_t tile_pos, tiles_pos; /* output positions per task */
    int64_t oc_block, oc_blocks; /* output channels per task (within a group; a multiple of 48) */
    int64_t tasks;               /* images x groups x oc_blocks x tiles_pos */
} RtConvPlan;

void rt_conv_plan(const Conv2dParams *p, RtConvPlan *pl);

struct RtChannelNorm; /* kernels_fused.h */

struct RtGemmEpi; /* gemm.h */

/* One task of a conv: output channels [o0, o0 + nob) of group g (o0 a
 * multiple of pl->oc_block) at output positions [pos0, pos0 + np) of one
 * image: y = conv(x', w) and the epilogue epi (rows: output channels,
 * columns: positions; NULL: none), y pointing at (o0, pos0) with row
 * stride ohw.  x points at the image's first input channel of the group;
 * x' = x, or with cn (one map per input channel of the group) the
 * normalised and optionally SiLU'd input (zero padding stays zero).  w is
 * the whole weight, laid out as p->wpack. */
void rt_conv_tile(const Conv2dParams *p, const RtConvPlan *pl, int g, const float *x, const void *w,
                  const struct RtChannelNorm *cn, int silu, int64_t o0, int nob, int64_t pos0, int np,
                  const struct RtGemmEpi *epi, float *y);

/* ---- kernels_vec.c: inner loops, compiled for AVX-512, AVX2 and SSE2 ---- */

float rt_vec_max(const float *x, int64_t n);
/* y = exp(x - shift); returns the sum of y (accumulated in double lanes). */
double rt_vec_exp_sum_d(float *y, const float *x, int64_t n, float shift);
/* One step of the online softmax on a transposed score block st[nk][nq]
 * (keys x queries, -inf where masked), per query r:
 *   m' = max(mx[r], max_j st[j][r]);  factor[r] = exp(mx[r] - m');
 *   st[j][r] = exp(st[j][r] - m');  sum[r] = sum[r] * factor[r] + sum_j st[j][r];
 *   mx[r] = m'.   col: nq floats of scratch. */
void rt_vec_softmax_step(float *st, int64_t nk, int64_t nq, float *mx, float *sum, float *factor, float *col);
/* rt_vec_softmax_step on one sub-panel of 16 queries: st[nk][16]; mx, sum,
 * factor: 16 each. */
void rt_vec_softmax_panel(float *st, int64_t nk, float *mx, float *sum, float *factor);
void rt_vec_scale(float *y, const float *x, int64_t n, float s);
void rt_vec_scale_rows(float *y, int64_t rows, int64_t cols, const float *factor); /* y[r][:] *= factor[r] */
void rt_vec_fill(float *y, int64_t n, float v);
double rt_vec_sum_d(const float *x, int64_t n);
double rt_vec_sq_dev_d(const float *x, int64_t n, double mean); /* sum (x-mean)^2 */
/* y = (x - mean) * a + b, then silu(y) when silu is set. */
void rt_vec_norm_channel(float *y, const float *x, int64_t n, float mean, float a, float b, int silu);
/* y[i] = (x[i] - mean) * inv * gamma[i] + beta[i]. */
void rt_vec_norm_row(float *y, const float *x, int64_t n, float mean, float inv, const float *gamma,
                     const float *beta);
void rt_vec_silu(float *y, const float *x, int64_t n);
void rt_vec_gelu(float *y, const float *x, int64_t n);
void rt_vec_quick_gelu(float *y, const float *x, int64_t n);
/* y[i] = a[i*sa] op b[i*sb]; fast when the strides are 0 or 1. */
void rt_vec_binary(RtBinaryOp op, int64_t n, const float *a, int64_t sa, const float *b, int64_t sb, float *y);
/* dst = float(src) for n bfloat16 (bf16 set) or IEEE half values. */
void rt_widen(int bf16, const uint16_t *src, float *dst, int64_t n);

#endif
