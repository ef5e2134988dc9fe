/* gemm_avx2.c — the AVX2 micro-kernel (6 x 16 tile in 12 ymm accumulators)
 * and the portable one (the same tile in plain C), for CPUs without
 * AVX-512.  Same packed operands as gemm_avx512.c: one 16-column B
 * sub-panel per tile. */
#include "gemm.h"

#include <math.h>
#include <string.h>

/* Stores row i of a tile (gemm.h: RtTileStore); v holds its 16 values. */
static inline void store_row_c(float *c, const float *v, int i, int nr, const RtTileStore *st)
{
    for (int j = 0; j < nr; j++) {
        float x = v[j];
        if (st->alpha != 1.0f) x *= st->alpha;
        if (st->beta == 1.0f) x += c[j];
        else if (st->beta != 0.0f) x = fmaf(st->beta, c[j], x);
        if (st->row_bias) x += st->row_bias[i];
        if (st->col_bias) x += st->col_bias[j];
        if (st->row_add) x += st->row_add[i];
        if (st->res) x += st->res[i * st->ldr + j];
        if (st->scale != 1.0f) x *= st->scale;
        c[j] = x;
    }
}

static void kernel_generic(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc, int64_t cs,
                           int mr, int nr, const RtTileStore *st)
{
    (void)bs, (void)cs; /* one 16-column sub-panel */
    float acc[RT_GEMM_MR][16];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < RT_GEMM_MR; i++) {
            float av = a[k * RT_GEMM_MR + i];
            for (int j = 0; j < 16; j++) acc[i][j] += av * b[k * 16 + j];
        }
    for (int i = 0; i < mr; i++) store_row_c(c + i * ldc, acc[i], i, nr, st);
}

const RtGemmArch rt_gemm_generic = {"generic", 16, kernel_generic, 0};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

static AVX2 void kernel_avx2(int64_t kc, const float *a, const float *b, int64_t bs, float *c, int64_t ldc,
                             int64_t cs, int mr, int nr, const RtTileStore *st)
{
    (void)bs, (void)cs; /* one 16-column sub-panel */
    __m256 acc[RT_GEMM_MR][2];
    for (int i = 0; i < RT_GEMM_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
        const float *ak = a + k * RT_GEMM_MR;
#pragma GCC unroll 6
        for (int i = 0; i < RT_GEMM_MR; i++) {
            __m256 av = _mm256_broadcast_ss(ak + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    if (nr < 16) {
        float row[16] __attribute__((aligned(32)));
        for (int i = 0; i < mr; i++) {
            _mm256_store_ps(row, acc[i][0]);
            _mm256_store_ps(row + 8, acc[i][1]);
            store_row_c(c + i * ldc, row, i, nr, st);
        }
        return;
    }
    for (int i = 0; i < mr; i++) /* the terms of store_row_c, 8 columns at a time */
        for (int h = 0; h < 2; h++) {
            float *ci = c + i * ldc + 8 * h;
            __m256 v = acc[i][h];
            if (st->alpha != 1.0f) v = _mm256_mul_ps(v, _mm256_set1_ps(st->alpha));
            if (st->beta == 1.0f) v = _mm256_add_ps(v, _mm256_loadu_ps(ci));
            else if (st->beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(st->beta), _mm256_loadu_ps(ci), v);
            if (st->row_bias) v = _mm256_add_ps(v, _mm256_set1_ps(st->row_bias[i]));
            if (st->col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(st->col_bias + 8 * h));
            if (st->row_add) v = _mm256_add_ps(v, _mm256_set1_ps(st->row_add[i]));
            if (st->res) v = _mm256_add_ps(v, _mm256_loadu_ps(st->res + i * st->ldr + 8 * h));
            if (st->scale != 1.0f) v = _mm256_mul_ps(v, _mm256_set1_ps(st->scale));
            _mm256_storeu_ps(ci, v);
        }
}

const RtGemmArch rt_gemm_avx2 = {"avx2", 16, kernel_avx2, 0};

#else
const RtGemmArch rt_gemm_avx2 = {"avx2", 0, NULL, 0};
#endif
