/* kernels_gemm.c — the GEMM driver (gemm.h), rt_gemm and rt_matmul.
 *
 * rt_gemm_run cuts C into blocks for the caches and runs the micro-kernel
 * of this CPU on each tile:
 *   for jc (NC columns):  for pc (KC depth):  B block packed once (L2)
 *     for ic (MC rows):   A block packed once, or panels packed at compile time
 *       for jr (NR columns): for ir (MR rows): micro-kernel
 * An A panel (MR x KC = 6 KiB) and a B panel group (KC x NR) are what the
 * inner loops touch; C is read and written once per KC block.
 * rt_gemm is the plain-matrix entry point on top of it; rt_matmul cuts each
 * batch entry's output into fixed tiles (MATMUL_TILE_M rows, and column
 * strips when there are too few row tiles to keep the cores busy) and runs
 * one rt_gemm per tile in an OpenMP loop; the tile grid depends on the
 * shapes only, so the result does not depend on the thread count. */
#include "kernels_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gemm.h"

#define MATMUL_TILE_M 256 /* rows per task */
#define MATMUL_MIN_TILE_N 64

#ifndef GEMM_MC
#define GEMM_MC 144  /* rows of an A block: 144 x 384 floats = 216 KiB (L2) */
#endif
#ifndef GEMM_NC
#define GEMM_NC 1024 /* columns of a B block: 384 x 1024 floats = 1.5 MiB (L2) */
#endif

/* ---- which micro-kernel ------------------------------------------------------ */

static const RtGemmArch *arch_forced;

static const RtGemmArch *arch_detect(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return &rt_gemm_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &rt_gemm_avx2;
#endif
    return &rt_gemm_generic;
}

const RtGemmArch *rt_gemm_arch(void)
{
    static const RtGemmArch *detected;
    if (arch_forced) return arch_forced;
    if (!detected) detected = arch_detect(); /* idempotent: a race writes the same pointer */
    return detected;
}

int rt_gemm_force_isa(RtGemmIsa isa)
{
    static const RtGemmArch *const table[RT_GEMM_ISA_COUNT] = {&rt_gemm_generic, &rt_gemm_avx2, &rt_gemm_avx512};
    if (isa == RT_GEMM_AUTO) {
        arch_forced = NULL;
        return 0;
    }
    if (isa < 0 || isa >= RT_GEMM_ISA_COUNT) return -1;
    const RtGemmArch *best = arch_detect();
    if (table[isa]->nr == 0 || (isa == RT_GEMM_AVX512 && best != &rt_gemm_avx512) ||
        (isa == RT_GEMM_AVX2 && best == &rt_gemm_generic))
        return -1;
    arch_forced = table[isa];
    return 0;
}

/* ---- the driver ---------------------------------------------------------------- */

static void scale_c(int m, int n, float beta, float *c, int64_t ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

void rt_gemm_run(const RtGemmSrc *src, int m, int n, int k, float alpha, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    const RtGemmArch *ar = rt_gemm_arch();
    int nr = ar->nr;
    int kc_blk = rt_gemm_kc(k), kc_max = kc_blk;
    int mc_max = m < GEMM_MC ? m : GEMM_MC, nc_max = n < GEMM_NC ? n : GEMM_NC;
    float *abuf = rt_scratch(RT_SCRATCH_PACK_A, (size_t)rt_div_up(mc_max, RT_GEMM_MR) * RT_GEMM_MR * kc_max);
    float *bbuf = rt_scratch(RT_SCRATCH_PACK_B, (size_t)rt_div_up(nc_max, RT_GEMM_SUB) * RT_GEMM_SUB * kc_max);
    for (int jc = 0; jc < n; jc += GEMM_NC) {
        int nc = n - jc < GEMM_NC ? n - jc : GEMM_NC;
        for (int pc = 0; pc < k; pc += kc_blk) {
            int kc = k - pc < kc_blk ? k - pc : kc_blk;
            float bt = pc == 0 ? beta : 1.0f;
            RtPanels bp = src->b(src, pc, kc, jc, nc, bbuf);
            for (int ic = 0; ic < m; ic += GEMM_MC) {
                int mc = m - ic < GEMM_MC ? m - ic : GEMM_MC;
                RtPanels ap = src->a(src, ic, mc, pc, kc, abuf);
                for (int jr = 0; jr < nc; jr += nr) {
                    const float *bj = bp.p + (int64_t)(jr / RT_GEMM_SUB) * bp.stride;
                    int nrr = nc - jr < nr ? nc - jr : nr;
                    for (int ir = 0; ir < mc; ir += RT_GEMM_MR)
                        ar->kernel(kc, ap.p + (int64_t)(ir / RT_GEMM_MR) * ap.stride, bj, bp.stride,
                                   c + (int64_t)(ic + ir) * ldc + jc + jr, ldc, RT_GEMM_SUB,
                                   mc - ir < RT_GEMM_MR ? mc - ir : RT_GEMM_MR, nrr, alpha, bt);
                }
            }
        }
    }
}

void rt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    SDC_ASSERT(k <= 0 || (lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n)));
    SDC_ASSERT(ldc >= n);
    RtGemmOperands ops = {.a = {a, lda, trans_a}, .b = {b, ldb, trans_b}};
    RtGemmSrc src = {rt_gemm_plain_a, rt_gemm_plain_b, &ops};
    rt_gemm_run(&src, m, n, k, alpha, beta, c, ldc);
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
        float *C = c + bt * p->stride_c + i0 * p->ldc + j0;
        if (bias)
            for (int i = 0; i < mm; i++) memcpy(C + i * p->ldc, bias + j0, (size_t)nn * sizeof(float));
        if (p->bpack != RT_WPACK_NONE) { /* a linear weight packed at compile time, shared by the batch */
            SDC_ASSERT(p->trans_b && (p->batch == 1 || p->stride_b == 0));
            RtGemmOperands ops = {.a = {A, p->lda, p->trans_a}, .bpacked = b, .bpack = p->bpack, .bk = p->k,
                                   .bn = p->n, .bj0 = j0};
            RtGemmSrc src = {rt_gemm_plain_a, rt_gemm_packed_b, &ops};
            rt_gemm_run(&src, mm, nn, p->k, 1.0f, bias ? 1.0f : 0.0f, C, p->ldc);
            continue;
        }
        const float *B = b + bt * p->stride_b + (p->trans_b ? j0 * p->ldb : j0);
        rt_gemm(p->trans_a, p->trans_b, mm, nn, p->k, 1.0f, A, p->lda, B, p->ldb, bias ? 1.0f : 0.0f, C, p->ldc);
    }
}
