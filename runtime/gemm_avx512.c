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

static AVX512 inline __attribute__((always_inline)) void store_row(float *c, __m512 v, __mmask16 m, float alpha,
                                                                     float beta)
{
    if (alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(alpha));
    if (beta == 1.0f) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, c));
    else if (beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), v);
    _mm512_mask_storeu_ps(c, m, v);
}

/* NSUB (1..4) is a constant in every instantiation below: the loops unroll
 * and the accumulators live in registers. */
static AVX512 inline __attribute__((always_inline)) void kernel_n(const int nsub, int64_t kc, const float *a,
                                                                    const float *b, int64_t bs, float *c, int64_t ldc,
                                                                    int64_t cs, int mr, int nr, float alpha,
                                                                    float beta)
{
    __m512 acc[RT_GEMM_MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < RT_GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nsub; j++) acc[i][j] = _mm512_setzero_ps();
    if (beta != 0.0f) /* C is read at the end: start fetching it now */
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
        for (int j = 0; j < nsub; j++) store_row(c + i * ldc + cs * j, acc[i][j], mask[j], alpha, beta);
    }
}

static AVX512 void kernel1(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, float alpha, float beta)
{
    kernel_n(1, kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta);
}
static AVX512 void kernel2(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, float alpha, float beta)
{
    kernel_n(2, kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta);
}
static AVX512 void kernel3(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, float alpha, float beta)
{
    kernel_n(3, kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta);
}
static AVX512 void kernel4(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                           int64_t cs, int mr, int nr, float alpha, float beta)
{
    kernel_n(4, kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta);
}

static void kernel(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int64_t cs, int mr,
                   int nr, float alpha, float beta)
{
    switch ((nr + 15) / 16) {
    case 1: kernel1(kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta); break;
    case 2: kernel2(kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta); break;
    case 3: kernel3(kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta); break;
    default: kernel4(kc, a, b, bs, c, ldc, cs, mr, nr, alpha, beta); break;
    }
}

const RtGemmArch rt_gemm_avx512 = {"avx512", 64, kernel};

#else
const RtGemmArch rt_gemm_avx512 = {"avx512", 0, NULL};
#endif
