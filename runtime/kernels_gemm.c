/* kernels_gemm.c — the runtime's one GEMM entry point and rt_matmul.
 *
 * rt_gemm forwards to single-threaded cblas_sgemm; it is the place where an
 * AVX-512 micro-kernel will go.  rt_matmul cuts each batch entry's output
 * into fixed tiles (MATMUL_TILE_M rows, and column strips when there are too
 * few row tiles to keep the cores busy) and runs one rt_gemm per tile in an
 * OpenMP loop; the tile grid depends on the shapes only, so the result does
 * not depend on the thread count. */
#include "kernels_internal.h"

#include <cblas.h>
#include <string.h>

#include "err.h"

#define MATMUL_TILE_M 256 /* rows per task: B is packed once per 2*256 flops per element */
#define MATMUL_MIN_TILE_N 64

void rt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta * C; cblas would reject lda = 0 */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    SDC_ASSERT(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n) && ldc >= n);
    SDC_ASSERT(lda <= INT32_MAX && ldb <= INT32_MAX && ldc <= INT32_MAX);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void rt_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c)
{
    rt_kernels_prepare();
    if (p->batch <= 0 || p->m <= 0 || p->n <= 0) return;
    int64_t tiles_m = rt_div_up(p->m, MATMUL_TILE_M);
    int64_t tiles_n = 1;
    if (p->batch * tiles_m < RT_MIN_TASKS)
        tiles_n = rt_max64(1, rt_min64(rt_div_up(RT_MIN_TASKS, p->batch * tiles_m), p->n / MATMUL_MIN_TILE_N));
    int64_t tile_n = (rt_div_up(p->n, tiles_n) + 15) & ~(int64_t)15;
    tiles_n = rt_div_up(p->n, tile_n);
    int64_t tasks = p->batch * tiles_m * tiles_n;

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bt = t / (tiles_m * tiles_n), tm = t / tiles_n % tiles_m, tn = t % tiles_n;
        int64_t i0 = tm * MATMUL_TILE_M, j0 = tn * tile_n;
        int mm = (int)rt_min64(MATMUL_TILE_M, p->m - i0), nn = (int)rt_min64(tile_n, p->n - j0);
        const float *A = a + bt * p->stride_a + (p->trans_a ? i0 : i0 * p->lda);
        const float *B = b + bt * p->stride_b + (p->trans_b ? j0 * p->ldb : j0);
        float *C = c + bt * p->stride_c + i0 * p->ldc + j0;
        if (bias)
            for (int i = 0; i < mm; i++) memcpy(C + i * p->ldc, bias + j0, (size_t)nn * sizeof(float));
        rt_gemm(p->trans_a, p->trans_b, mm, nn, p->k, 1.0f, A, p->lda, B, p->ldb, bias ? 1.0f : 0.0f, C, p->ldc);
    }
}
