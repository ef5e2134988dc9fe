/* gemm.h — the runtime's GEMM engine (internal to the kernels).
 *
 * C[m,n] = alpha * A[m,k] B[k,n] + beta * C, computed BLIS-style: the
 * operands are cut into blocks that fit the caches and re-laid out
 * ("packed") so that a register-blocked micro-kernel streams them with
 * unit-stride loads:
 *   A as panels of RT_GEMM_MR rows, each panel k-major: [k][MR];
 *   B as sub-panels of RT_GEMM_SUB columns, each k-major: [k][16].
 * The micro-kernel keeps an MR x NR tile of C in registers (6 x 64 floats
 * on AVX-512: 24 zmm accumulators; 6 x 16 on AVX2: 12 ymm) and per k adds
 * the outer product of one A panel column (6 broadcasts) and NR/16 B
 * sub-panel rows (vector loads).
 *
 * MR and the 16-column sub-panel do not depend on the ISA, so weights packed
 * by `sdc compile` (gemm_pack.c) serve every micro-kernel: a conv weight
 * [oc, c*kh*kw] is the A operand (packed A over the whole depth), a linear
 * weight [n, k] is the B operand of x w^T (packed B over the whole depth).
 *
 * Where a block comes from is the caller's business: the driver asks two
 * providers for "A rows [i0, i0+mc) x depth [p0, p0+kc)" and "B depth
 * [p0, p0+kc) x columns [j0, j0+nc)" and gets panels back, either packed
 * into the buffer it offers (plain matrices, im2col of a conv input with a
 * GroupNorm prologue, a LayerNorm'd row block) or pointing into weights
 * packed at compile time.
 *
 * Determinism: the blocking depends on m, n, k only (never on the thread),
 * every C element is reduced over k in one fixed order by one call, so a
 * caller that splits only C (never k) across threads gets the same bits for
 * any thread count. */
#ifndef SDC_GEMM_H
#define SDC_GEMM_H

#include <stdint.h>

#define RT_GEMM_MR 6   /* rows of an A panel */
#define RT_GEMM_SUB 16 /* columns of a B sub-panel */
#ifndef RT_GEMM_KC_MAX
#define RT_GEMM_KC_MAX 384 /* deepest block: an A panel is 9 KiB, a B panel group 96 KiB */
#endif

/* The depth of the blocks for a GEMM of depth k: k cut into equal blocks of
 * at most RT_GEMM_KC_MAX (multiples of 16, the last one shorter).  Weights
 * packed at compile time are stored block by block with this depth, so
 * that the panels of one block are contiguous. */
static inline int rt_gemm_kc(int64_t k)
{
    if (k <= 0) return 1;
    int64_t nblk = (k + RT_GEMM_KC_MAX - 1) / RT_GEMM_KC_MAX;
    int64_t kc = ((k + nblk - 1) / nblk + 15) / 16 * 16;
    return (int)(kc < k ? kc : k);
}

/* Packed at compile time (kernel_params.h: RtWeightPack), a weight of
 * depth k is stored per depth block (rt_gemm_kc): block b holds all panels
 * (A: ceil(rows/MR), B: ceil(cols/16)) of depths [b*kc, b*kc + kcb), each
 * panel kcb deep; panel q of block b starts at b*kc*padded_rows + q*kcb*W
 * (W = MR or 16, padded_rows = the panel count times W). */

/* A set of panels: panel q starts at p + q * stride (floats).  With pairs
 * set they hold bf16 depth pairs (below), and p and stride count 32-bit
 * words (one pair each). */
typedef struct RtPanels {
    const float *p;
    int64_t stride;
    int pairs;
} RtPanels;

/* Where the driver gets its blocks.  `buf` has room for the block packed
 * (ceil(mc/MR)*MR*kc or ceil(nc/16)*16*kc floats); a provider either packs
 * into it and returns {buf, kc*MR} / {buf, kc*16}, or returns panels that
 * already exist (weights packed at compile time: stride K*MR or K*16).
 * Padding rows/columns of a packed block must be zero.
 *
 * bf16: the caller sets `bf16` (only where rt_gemm_arch()->kernel_bf16
 * exists) to run the GEMM on bf16 operands: a provider then may return
 * pair panels (pairs = 1: weights stored bf16, in place); fp32 panels are
 * rounded to bf16 pairs by the driver.  Without `bf16` a provider must
 * return fp32 panels (bf16 weights widened). */
typedef struct RtGemmSrc RtGemmSrc;
struct RtGemmSrc {
    RtPanels (*a)(const RtGemmSrc *s, int64_t i0, int mc, int64_t p0, int kc, float *buf);
    RtPanels (*b)(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf);
    const void *ctx; /* the provider's own data */
    int b_in_place;  /* b() returns existing panels (weights packed at compile time): never packs */
    int bf16;        /* products of bf16-rounded operands, summed in fp32 (kernel_bf16) */
};

/* How the micro-kernel stores its tile, in this order (each term optional):
 *   v = alpha * AB + beta * C          (beta == 0 never reads C)
 *   v += row_bias[i] + col_bias[j] + row_add[i] + res[i*ldr + j]
 *   C = v * scale
 * The pointers are at the tile's (0, 0).  The driver hands the biases to
 * the first depth block and row_add, res and scale to the last, so that a
 * fused epilogue (bias, time embedding, residual, output scale) costs no
 * pass over C of its own. */
typedef struct RtTileStore {
    float alpha, beta, scale;
    const float *row_bias, *col_bias, *row_add, *res;
    int64_t ldr;
} RtTileStore;

/* C[0:mr, 0:nr] from one A panel (kc x MR) and the B sub-panels b,
 * b + bstride, ... (kc x 16 each), stored as `st` says.  C's element (i, j)
 * is at c + i*ldc + (j/16)*csub + j%16: csub = 16 for a row-major C,
 * csub = rows*16 (ldc = 16) to write C as packed B sub-panels. */
typedef void RtMicroKernel(int64_t kc, const float *a, const float *b, int64_t bstride, float *c, int64_t ldc,
                           int64_t csub, int mr, int nr, const RtTileStore *st);

typedef enum RtGemmIsa {
    RT_GEMM_AUTO = -1, /* what cpuid says */
    RT_GEMM_GENERIC,
    RT_GEMM_AVX2,
    RT_GEMM_AVX512,
    RT_GEMM_AVX512_BF16, /* AVX-512 for f32, and VDPBF16PS for bf16 weights */
    RT_GEMM_ISA_COUNT
} RtGemmIsa;

typedef struct RtGemmArch {
    const char *name;
    int nr; /* columns of the micro-kernel's tile: a multiple of RT_GEMM_SUB */
    RtMicroKernel *kernel;
    /* The same tile from bf16 pair panels (below): kc counts depth pairs,
     * a, b and bstride 32-bit words.  NULL where the CPU has no bf16 dot
     * product; bf16 weights are then widened to fp32. */
    RtMicroKernel *kernel_bf16;
} RtGemmArch;

extern const RtGemmArch rt_gemm_generic, rt_gemm_avx2, rt_gemm_avx512, rt_gemm_avx512_bf16;

/* The micro-kernel this CPU runs (chosen once from cpuid: AVX512-BF16,
 * else AVX-512F, else AVX2+FMA, else portable C), or the one a test forced. */
const RtGemmArch *rt_gemm_arch(void);
/* Forces an ISA (tests, benchmarks; RT_GEMM_AUTO: back to cpuid's choice);
 * returns -1 if this CPU lacks it.  Not for use while kernels run. */
int rt_gemm_force_isa(RtGemmIsa isa);

/* The epilogue of a GEMM (NULL: none): C = (A B + beta C + row_bias[i] +
 * col_bias[j] + row_add[i] + res[i][j]) * scale, each term optional (scale
 * 0 means 1), applied inside the tiles (RtTileStore). */
typedef struct RtGemmEpi {
    const float *row_bias, *col_bias, *row_add, *res;
    int64_t ldr;
    float scale;
} RtGemmEpi;

/* The blocked driver on the calling thread: C[m,n] = alpha * A B + beta * C
 * and the epilogue, ldc the row stride of C. */
void rt_gemm_run(const RtGemmSrc *src, int m, int n, int k, float alpha, float beta, const RtGemmEpi *epi, float *c,
                 int64_t ldc);

static inline int rt_gemm_is_avx512(const RtGemmArch *a) { return a == &rt_gemm_avx512 || a == &rt_gemm_avx512_bf16; }

/* ---- bf16 pair panels ------------------------------------------------------------
 *
 * VDPBF16PS multiplies two bf16 pairs per 32-bit lane and adds both
 * products to an fp32 lane, so the bf16 layouts keep depths k and k+1 of
 * one row (A) or column (B) side by side in one 32-bit word:
 *   A panel:      [ceil(kc/2)][MR][2]  (a broadcast word per row)
 *   B sub-panel:  [ceil(kc/2)][16][2]  (one zmm per depth pair)
 * the low half holding the even depth; an odd kc ends with a zero high half.
 * Weights stored bf16 (RT_WPACK_*_BF16) are kept in exactly these panels,
 * depth block by depth block as the f32 packing (kernel_params.h). */

static inline int64_t rt_pairs(int64_t kc) { return (kc + 1) / 2; }
/* The sub-panel stride of a B block converted at run time (rt_gemm_b_stride's reason). */
static inline int64_t rt_pairs_b_stride(int kc) { return rt_pairs(kc) * RT_GEMM_SUB + RT_GEMM_SUB; }

/* fp32 panels as the driver gets them ([kc][MR] each, `stride` floats
 * apart, `panels` of them) into bf16 pair panels ([kc2][MR][2] each,
 * dstride words apart), rounding to nearest even; likewise B sub-panels
 * ([kc][16] into [kc2][16][2]).  Need AVX512-BF16 (only the bf16 driver
 * path calls them). */
void rt_pairs_from_a(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride);
void rt_pairs_from_b(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride);
/* Rows [0, mc) x depths [0, kc) of a row-major fp32 matrix (lda) straight
 * into pair panels ([kc2][MR][2], MR*kc2 words apart); AVX512-BF16. */
void rt_pack_a_pairs(const float *a, int64_t lda, int mc, int kc, float *dst);
/* The way back, for CPUs without a bf16 dot product: pair panels ([kc2][W][2],
 * sstride words apart) into fp32 panels ([kc][W], dstride floats apart), W
 * = RT_GEMM_MR or RT_GEMM_SUB. */
void rt_pairs_widen(const float *src, int64_t sstride, int width, int panels, int kc, float *dst, int64_t dstride);

/* ---- packing (gemm_pack.c) ---------------------------------------------- */

/* op(A) rows [0, mc) x depth [0, kc) into MR-row panels: a points at
 * element (0, 0); A is stored [m][k] (lda) or, with trans, [k][m]. */
void rt_pack_a_block(int trans, const float *a, int64_t lda, int mc, int kc, float *dst);
/* op(B) depth [0, kc) x columns [0, nc) into 16-column sub-panels ps floats
 * apart (ps >= kc*16): b points at element (0, 0); B is stored [k][n] (ldb)
 * or, with trans, [n][k]. */
void rt_pack_b_block(int trans, const float *b, int64_t ldb, int kc, int nc, int64_t ps, float *dst);

/* The sub-panel stride of a B block packed at run time: one cache line more
 * than the panel, so that writing row k of every sub-panel (im2col, a plain
 * B) does not send them all to one L1 set (kc*64 bytes is often a multiple
 * of 4 KiB: 384 deep, 24 KiB).  The driver sizes its buffer for it. */
static inline int64_t rt_gemm_b_stride(int kc) { return (int64_t)kc * RT_GEMM_SUB + RT_GEMM_SUB; }

/* The usual operands (ctx of the providers below): plain row-major
 * matrices, each pointing at element (0, 0) of this GEMM, and a B operand
 * packed at compile time (RT_WPACK_LINEAR_*: the whole weight, bk deep and
 * bn wide; this GEMM's column 0 is its column bj0, a multiple of 16). */
typedef struct RtPlainOperand {
    const float *p;
    int64_t ld;
    int trans;
} RtPlainOperand;
typedef struct RtGemmOperands {
    RtPlainOperand a, b;
    const void *bpacked;
    int bpack;
    int64_t bk, bn, bj0;
} RtGemmOperands;
/* src reads B from a linear weight packed at compile time (pack, bk x bn
 * whole, this GEMM's column 0 its column bj0): in place where it can, and
 * on bf16 operands (activations rounded too) when the weight is bf16 and
 * the CPU has a bf16 dot product.  src->ctx must be ops. */
void rt_gemm_use_packed_b(RtGemmSrc *src, RtGemmOperands *ops, const void *w, int pack, int64_t bk, int64_t bn,
                          int64_t bj0);
RtPanels rt_gemm_plain_a(const RtGemmSrc *s, int64_t i0, int mc, int64_t p0, int kc, float *buf);
RtPanels rt_gemm_plain_b(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf);
#endif
