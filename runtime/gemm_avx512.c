/* gemm_avx512.c — the AVX-512 micro-kernel: a 6 x 64 tile of C in 24 zmm
 * accumulators.
 *
 * Per k: 4 vector loads of the B sub-panels (64 floats), 6 broadcasts of
 * the A panel column, 24 FMAs: 10 loads for 24 FMAs keeps the two FMA
 * ports busy and leaves registers for the 4 B vectors and a broadcast
 * (29 of 32).  Narrower tiles (the right edge of C, thin GEMMs) use a
 * variant with 1, 2 or 3 sub-panels, so a 40-column attention GEMM does not
 * pay for 64.  Rows past mr and columns past nr are computed (the packed
 * operands are zero there) but never stored.
 *
 * Compiled with target attributes, so the file builds without -mavx512f and
 * the code only runs after rt_gemm_arch() found AVX-512F. */
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma,avx2")))

/* One 16-column piece of row i of the tile (gemm.h: RtTileStore). */
static AVX512 inline __attribute__((always_inline)) void store_piece(float *c, __m512 v, __mmask16 m, int i, int j,
                                                                       const RtTileStore *st)
{
    if (st->alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(st->alpha));
    if (st->beta == 1.0f) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, c));
    else if (st->beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(st->beta), _mm512_maskz_loadu_ps(m, c), v);
    if (st->row_bias) v = _mm512_add_ps(v, _mm512_set1_ps(st->row_bias[i]));
    if (st->col_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, st->col_bias + 16 * j));
    if (st->row_add) v = _mm512_add_ps(v, _mm512_set1_ps(st->row_add[i]));
    if (st->res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, st->res + i * st->ldr + 16 * j));
    if (st->scale != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(st->scale));
    _mm512_mask_storeu_ps(c, m, v);
}

/* The finished tile: rows past mr and columns past nr are not stored. */
static AVX512 inline __attribute__((always_inline)) void store_tile(const int nsub, __m512 acc[RT_GEMM_MR][4],
                                                                     float *c, int64_t ldc, int64_t cs, int mr,
                                                                     int nr, const RtTileStore *st)
{
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int j = 0; j < nsub; j++) {
        int cols = nr - 16 * j;
        mask[j] = cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
    }
#pragma GCC unroll 6
    for (int i = 0; i < RT_GEMM_MR; i++) {
        if (i >= mr) break;
#pragma GCC unroll 4
        for (int j = 0; j < nsub; j++) store_piece(c + i * ldc + cs * j, acc[i][j], mask[j], i, j, st);
    }
}

/* NSUB (1..4) is a constant in every instantiation below: the loops unroll
 * and the accumulators live in registers. */
static AVX512 inline __attribute__((always_inline)) void kernel_n(const int nsub, int64_t kc, const float *a,
                                                                    const float *b, int64_t bs, float *c, int64_t ldc,
                                                                    int64_t cs, int mr, int nr, const RtTileStore *st)
{
    __m512 acc[RT_GEMM_MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < RT_GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nsub; j++) acc[i][j] = _mm512_setzero_ps();
    if (st->beta != 0.0f) /* C is read at the end: start fetching it now */
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nsub; j++) _mm_prefetch((const char *)(c + i * ldc + cs * j), _MM_HINT_T0);
    const float *b0 = b, *b1 = b + bs, *b2 = b + 2 * bs, *b3 = b + 3 * bs;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 bv[4];
        bv[0] = _mm512_loadu_ps(b0 + k * 16);
        if (nsub > 1) bv[1] = _mm512_loadu_ps(b1 + k * 16);
        if (nsub > 2) bv[2] = _mm512_loadu_ps(b2 + k * 16);
        if (nsub > 3) bv[3] = _mm512_loadu_ps(b3 + k * 16);
        const float *ak = a + k * RT_GEMM_MR;
#pragma GCC unroll 6
        for (int i = 0; i < RT_GEMM_MR; i++) {
            __m512 av = _mm512_set1_ps(ak[i]);
#pragma GCC unroll 4
            for (int j = 0; j < nsub; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    store_tile(nsub, acc, c, ldc, cs, mr, nr, st);
}

static AVX512 void kernel1(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, const RtTileStore *st)
{
    kernel_n(1, kc, a, b, bs, c, ldc, cs, mr, nr, st);
}
static AVX512 void kernel2(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, const RtTileStore *st)
{
    kernel_n(2, kc, a, b, bs, c, ldc, cs, mr, nr, st);
}
static AVX512 void kernel3(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, const RtTileStore *st)
{
    kernel_n(3, kc, a, b, bs, c, ldc, cs, mr, nr, st);
}
static AVX512 void kernel4(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, const RtTileStore *st)
{
    kernel_n(4, kc, a, b, bs, c, ldc, cs, mr, nr, st);
}

static void kernel(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int64_t cs, int mr,
                   int nr, const RtTileStore *st)
{
    switch ((nr + 15) / 16) {
    case 1: kernel1(kc, a, b, bs, c, ldc, cs, mr, nr, st); break;
    case 2: kernel2(kc, a, b, bs, c, ldc, cs, mr, nr, st); break;
    case 3: kernel3(kc, a, b, bs, c, ldc, cs, mr, nr, st); break;
    default: kernel4(kc, a, b, bs, c, ldc, cs, mr, nr, st); break;
    }
}

/* ---- bf16: the same tile from pair panels (gemm.h) --------------------------------
 *
 * Per depth pair: NSUB loads of 16 column pairs, 6 broadcasts of a row's
 * pair (folded into the instruction as {1to16}), 24 VDPBF16PS.  Each adds
 * two products per lane: twice the multiply-adds of an FMA for the same
 * issue slot, with the products exact in fp32 and summed in fp32. */
#define AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,fma,avx2")))

static AVX512BF16 inline __attribute__((always_inline)) void kernel_bf16_n(const int nsub, int64_t kp,
                                                                             const float *a, const float *b,
                                                                             int64_t bs, float *c, int64_t ldc,
                                                                             int64_t cs, int mr, int nr,
                                                                             const RtTileStore *st)
{
    __m512 acc[RT_GEMM_MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < RT_GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nsub; j++) acc[i][j] = _mm512_setzero_ps();
    if (st->beta != 0.0f)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nsub; j++) _mm_prefetch((const char *)(c + i * ldc + cs * j), _MM_HINT_T0);
    const int32_t *aw = (const int32_t *)(const void *)a;
    const float *b0 = b, *b1 = b + bs, *b2 = b + 2 * bs, *b3 = b + 3 * bs;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kp; k++) {
        __m512bh bv[4];
        bv[0] = (__m512bh)_mm512_loadu_ps(b0 + k * 16);
        if (nsub > 1) bv[1] = (__m512bh)_mm512_loadu_ps(b1 + k * 16);
        if (nsub > 2) bv[2] = (__m512bh)_mm512_loadu_ps(b2 + k * 16);
        if (nsub > 3) bv[3] = (__m512bh)_mm512_loadu_ps(b3 + k * 16);
        const int32_t *ak = aw + k * RT_GEMM_MR;
#pragma GCC unroll 6
        for (int i = 0; i < RT_GEMM_MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32(ak[i]);
#pragma GCC unroll 4
            for (int j = 0; j < nsub; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
        }
    }
    store_tile(nsub, acc, c, ldc, cs, mr, nr, st);
}

#define BF16_KERNEL(NSUB)                                                                                         \
    static AVX512BF16 void kernel_bf16_##NSUB(int64_t kp, const float *a, const float *b, int64_t bs, float *c, \
                                              int64_t ldc, int64_t cs, int mr, int nr, const RtTileStore *st)    \
    {                                                                                                             \
        kernel_bf16_n(NSUB, kp, a, b, bs, c, ldc, cs, mr, nr, st);                                                \
    }
BF16_KERNEL(1)
BF16_KERNEL(2)
BF16_KERNEL(3)
BF16_KERNEL(4)

static void kernel_bf16(int64_t kp, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int64_t cs,
                        int mr, int nr, const RtTileStore *st)
{
    switch ((nr + 15) / 16) {
    case 1: kernel_bf16_1(kp, a, b, bs, c, ldc, cs, mr, nr, st); break;
    case 2: kernel_bf16_2(kp, a, b, bs, c, ldc, cs, mr, nr, st); break;
    case 3: kernel_bf16_3(kp, a, b, bs, c, ldc, cs, mr, nr, st); break;
    default: kernel_bf16_4(kp, a, b, bs, c, ldc, cs, mr, nr, st); break;
    }
}

/* ---- rounding fp32 panels into pair panels (gemm.h) ------------------------------ */

/* B: rows 2p and 2p+1 of a sub-panel (16 floats each) become 16 words:
 * VCVTNE2PS2BF16 puts them side by side, a word permutation interleaves. */
AVX512BF16 void rt_pairs_from_b(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    int kp = (int)rt_pairs(kc);
    for (int q = 0; q < panels; q++) {
        const float *s = src + q * stride;
        float *d = dst + q * dstride;
        int k = 0;
        for (; k + 1 < kc; k += 2) {
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + (k + 1) * 16), _mm512_loadu_ps(s + k * 16));
            _mm512_storeu_si512(d + k / 2 * 16, _mm512_permutexvar_epi16(idx, h));
        }
        if (k < kc) {
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_setzero_ps(), _mm512_loadu_ps(s + k * 16));
            _mm512_storeu_si512(d + (kp - 1) * 16, _mm512_permutexvar_epi16(idx, h));
        }
    }
}

/* A: two depth pairs of a panel (24 floats: depths 2p..2p+3, 6 rows each)
 * become 12 words; lane e of the converted vector is float e, and word
 * (pair t, row i) takes floats 12t + i (low) and 12t + 6 + i (high). */
AVX512BF16 void rt_pairs_from_a(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride)
{
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 23, 17, 22, 16, 21, 15, 20, 14, 19, 13, 18, 12, 11,
                                         5, 10, 4, 9, 3, 8, 2, 7, 1, 6, 0);
    for (int q = 0; q < panels; q++) {
        const float *s = src + q * stride;
        uint16_t *d = (uint16_t *)(dst + q * dstride);
        for (int k = 0; k < kc; k += 4) {
            int left = (kc - k) * RT_GEMM_MR; /* floats of this group that exist */
            __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            __mmask16 m1 = left >= 24 ? (__mmask16)0xff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
            __m512 x0 = _mm512_maskz_loadu_ps(m0, s + k * RT_GEMM_MR), x1 = _mm512_maskz_loadu_ps(m1, s + k * RT_GEMM_MR + 16);
            __m512i h = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
            int words = kc - k >= 3 ? 12 : 6; /* the pairs that exist: ceil((kc - k) / 2) of 2 */
            _mm512_mask_storeu_epi16(d + (int64_t)k / 2 * RT_GEMM_MR * 2, (__mmask32)((1ull << (2 * words)) - 1), h);
        }
    }
}

/* A row-major fp32 A straight into pair panels: per panel of 6 rows and 32
 * depths, each row becomes one vector of 16 pairs (consecutive depths are
 * already pairs in a row), then a transpose in registers puts the 6 rows of
 * each pair side by side: rows 2j and 2j+1 are interleaved into 64-bit
 * elements (q_j), and each output vector takes its 8 64-bit elements from
 * q_0, q_1, q_2 in the order (pair, j).  Rows past mc and depths past kc
 * are zero. */
AVX512BF16 void rt_pack_a_pairs(const float *a, int64_t lda, int mc, int kc, float *dst)
{
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    /* output vector o (of 3) from q0 (0-7) and q1 (8-15), then q2 where m2 says */
    const __m512i i01[3] = {_mm512_set_epi64(10, 2, 0, 9, 1, 0, 8, 0), _mm512_set_epi64(5, 0, 12, 4, 0, 11, 3, 0),
                            _mm512_set_epi64(0, 15, 7, 0, 14, 6, 0, 13)};
    const __m512i i2[3] = {_mm512_set_epi64(0, 0, 1, 0, 0, 0, 0, 0), _mm512_set_epi64(0, 4, 0, 0, 3, 0, 0, 2),
                           _mm512_set_epi64(7, 0, 0, 6, 0, 0, 5, 0)};
    const __mmask8 m2[3] = {0x24, 0x49, 0x92};
    int64_t kp = rt_pairs(kc);
    for (int i0 = 0; i0 < mc; i0 += RT_GEMM_MR, dst += RT_GEMM_MR * kp) {
        int rows = mc - i0 < RT_GEMM_MR ? mc - i0 : RT_GEMM_MR;
        for (int k = 0; k < kc; k += 32) {
            int left = kc - k < 32 ? kc - k : 32;
            __mmask16 ml = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            __mmask16 mh = left >= 32 ? (__mmask16)0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
            __m512i r[RT_GEMM_MR];
            for (int i = 0; i < RT_GEMM_MR; i++) {
                const float *src = a + (int64_t)(i0 + i) * lda + k;
                r[i] = i < rows ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(mh, src + 16),
                                                              _mm512_maskz_loadu_ps(ml, src))
                                : _mm512_setzero_si512();
            }
            int words = (left + 1) / 2 * RT_GEMM_MR; /* of the 96 this chunk would hold */
            float *d = dst + (int64_t)k / 2 * RT_GEMM_MR;
            for (int h = 0; h < 2; h++) { /* pairs 0-7, then 8-15 */
                const __m512i sel = h ? hi : lo;
                __m512i q0 = _mm512_permutex2var_epi32(r[0], sel, r[1]);
                __m512i q1 = _mm512_permutex2var_epi32(r[2], sel, r[3]);
                __m512i q2 = _mm512_permutex2var_epi32(r[4], sel, r[5]);
                for (int o = 0; o < 3; o++) {
                    __m512i v = _mm512_permutex2var_epi64(q0, i01[o], q1);
                    v = _mm512_mask_permutexvar_epi64(v, m2[o], i2[o], q2);
                    int at = (h * 3 + o) * 16, n = words - at;
                    if (n >= 16) _mm512_storeu_si512(d + at, v);
                    else if (n > 0) _mm512_mask_storeu_epi32(d + at, (__mmask16)((1u << n) - 1), v);
                }
            }
        }
    }
}

const RtGemmArch rt_gemm_avx512 = {"avx512", 64, kernel, NULL};
const RtGemmArch rt_gemm_avx512_bf16 = {"avx512bf16", 64, kernel, kernel_bf16};

#else
const RtGemmArch rt_gemm_avx512 = {"avx512", 0, NULL, NULL};
const RtGemmArch rt_gemm_avx512_bf16 = {"avx512bf16", 0, NULL, NULL};
void rt_pairs_from_a(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride)
{
    (void)src, (void)stride, (void)panels, (void)kc, (void)dst, (void)dstride;
}
void rt_pairs_from_b(const float *src, int64_t stride, int panels, int kc, float *dst, int64_t dstride)
{
    (void)src, (void)stride, (void)panels, (void)kc, (void)dst, (void)dstride;
}
void rt_pack_a_pairs(const float *a, int64_t lda, int mc, int kc, float *dst)
{
    (void)a, (void)lda, (void)mc, (void)kc, (void)dst;
}
#endif
