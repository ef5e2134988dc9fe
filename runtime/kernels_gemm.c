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

#include <pthread.h>
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
static const RtGemmArch *const arch_table[RT_GEMM_ISA_COUNT] = {&rt_gemm_generic, &rt_gemm_avx2, &rt_gemm_avx512,
                                                                &rt_gemm_avx512_bf16};
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static RtGemmIsa isa_best; /* the most this CPU (and OS) can run */

static void isa_detect(void)
{
    isa_best = RT_GEMM_GENERIC;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        isa_best = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") ? RT_GEMM_AVX512_BF16
                                                                                               : RT_GEMM_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa_best = RT_GEMM_AVX2;
#endif
}

const RtGemmArch *rt_gemm_arch(void)
{
    if (arch_forced) return arch_forced;
    pthread_once(&isa_once, isa_detect);
    return arch_table[isa_best];
}

int rt_gemm_force_isa(RtGemmIsa isa)
{
    if (isa == RT_GEMM_AUTO) {
        arch_forced = NULL;
        return 0;
    }
    pthread_once(&isa_once, isa_detect);
    if (isa < 0 || isa > isa_best || arch_table[isa]->nr == 0) return -1;
    arch_forced = arch_table[isa];
    return 0;
}

/* ---- the driver ---------------------------------------------------------------- */

/* k = 0: no product, only beta * C and the epilogue. */
static void empty_product(int m, int n, float beta, const RtGemmEpi *e, float *c, int64_t ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float v = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            if (e && e->row_bias) v += e->row_bias[i];
            if (e && e->col_bias) v += e->col_bias[j];
            if (e && e->row_add) v += e->row_add[i];
            if (e && e->res) v += e->res[i * e->ldr + j];
            if (e && e->scale != 0.0f) v *= e->scale;
            c[i * ldc + j] = v;
        }
}

void rt_gemm_run(const RtGemmSrc *src, int m, int n, int k, float alpha, float beta, const RtGemmEpi *epi, float *c,
                 int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        empty_product(m, n, beta, epi, c, ldc);
        return;
    }
    const RtGemmArch *ar = rt_gemm_arch();
    RtGemmEpi none = {0};
    const RtGemmEpi *e = epi ? epi : &none;
    int nr = ar->nr, bf16 = src->bf16;
    SDC_ASSERT(!bf16 || ar->kernel_bf16);
    RtMicroKernel *kernel = bf16 ? ar->kernel_bf16 : ar->kernel;
    int kc_blk = rt_gemm_kc(k);
    /* panels that exist already (weights packed at compile time) need no
     * buffer: all columns in one block, so that A is packed once */
    int nc_blk = src->b_in_place ? n : GEMM_NC;
    int mc_max = m < GEMM_MC ? m : GEMM_MC, nc_max = n < nc_blk ? n : nc_blk;
    int64_t a_panels = rt_div_up(mc_max, RT_GEMM_MR), b_panels = rt_div_up(nc_max, RT_GEMM_SUB);
    float *abuf = rt_scratch(RT_SCRATCH_PACK_A, (size_t)(a_panels * RT_GEMM_MR * kc_blk));
    float *bbuf = rt_scratch(RT_SCRATCH_PACK_B, (size_t)(b_panels * rt_gemm_b_stride(kc_blk)));
    /* bf16: fp32 blocks from the providers are rounded into pair panels here */
    float *apairs = bf16 ? rt_scratch(RT_SCRATCH_PAIRS_A, (size_t)(a_panels * RT_GEMM_MR * rt_pairs(kc_blk))) : NULL;
    float *bpairs = bf16 ? rt_scratch(RT_SCRATCH_PAIRS_B, (size_t)(b_panels * rt_pairs_b_stride(kc_blk))) : NULL;
    for (int jc = 0; jc < n; jc += nc_blk) {
        int nc = n - jc < nc_blk ? n - jc : nc_blk;
        for (int pc = 0; pc < k; pc += kc_blk) {
            int kc = k - pc < kc_blk ? k - pc : kc_blk;
            int first = pc == 0, last = pc + kc >= k;
            RtPanels bp = src->b(src, pc, kc, jc, nc, bbuf);
            if (bf16 && !bp.pairs) {
                rt_pairs_from_b(bp.p, bp.stride, (int)rt_div_up(nc, RT_GEMM_SUB), kc, bpairs, rt_pairs_b_stride(kc));
                bp = (RtPanels){bpairs, rt_pairs_b_stride(kc), 1};
            }
            SDC_ASSERT(bp.pairs == bf16);
            for (int ic = 0; ic < m; ic += GEMM_MC) {
                int mc = m - ic < GEMM_MC ? m - ic : GEMM_MC;
                RtPanels ap = src->a(src, ic, mc, pc, kc, abuf);
                if (bf16 && !ap.pairs) {
                    rt_pairs_from_a(ap.p, ap.stride, (int)rt_div_up(mc, RT_GEMM_MR), kc, apairs,
                                    RT_GEMM_MR * rt_pairs(kc));
                    ap = (RtPanels){apairs, RT_GEMM_MR * rt_pairs(kc), 1};
                }
                SDC_ASSERT(ap.pairs == bf16);
                int64_t steps = bf16 ? rt_pairs(kc) : kc;
                for (int jr = 0; jr < nc; jr += nr) {
                    const float *bj = bp.p + (int64_t)(jr / RT_GEMM_SUB) * bp.stride;
                    int nrr = nc - jr < nr ? nc - jr : nr;
                    for (int ir = 0; ir < mc; ir += RT_GEMM_MR) {
                        int i = ic + ir, j = jc + jr;
                        RtTileStore st = {
                            .alpha = alpha,
                            .beta = first ? beta : 1.0f,
                            .scale = last && e->scale != 0.0f ? e->scale : 1.0f,
                            .row_bias = first && e->row_bias ? e->row_bias + i : NULL,
                            .col_bias = first && e->col_bias ? e->col_bias + j : NULL,
                            .row_add = last && e->row_add ? e->row_add + i : NULL,
                            .res = last && e->res ? e->res + i * e->ldr + j : NULL,
                            .ldr = e->ldr,
                        };
                        kernel(steps, ap.p + (int64_t)(ir / RT_GEMM_MR) * ap.stride, bj, bp.stride,
                               c + (int64_t)i * ldc + j, ldc, RT_GEMM_SUB, mc - ir < RT_GEMM_MR ? mc - ir : RT_GEMM_MR,
                               nrr, &st);
                    }
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
    RtGemmSrc src = {rt_gemm_plain_a, rt_gemm_plain_b, &ops, 0};
    rt_gemm_run(&src, m, n, k, alpha, beta, NULL, c, ldc);
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
        RtGemmEpi epi = {.col_bias = bias ? bias + j0 : NULL};
        RtGemmOperands ops = {.a = {A, p->lda, p->trans_a}};
        RtGemmSrc src = {rt_gemm_plain_a, rt_gemm_plain_b, &ops, 0};
        if (p->bpack != RT_WPACK_NONE) { /* a linear weight packed at compile time, shared by the batch */
            SDC_ASSERT(p->trans_b && (p->batch == 1 || p->stride_b == 0));
            rt_gemm_use_packed_b(&src, &ops, b, p->bpack, p->k, p->n, j0);
        } else {
            ops.b = (RtPlainOperand){b + bt * p->stride_b + (p->trans_b ? j0 * p->ldb : j0), p->ldb, p->trans_b};
        }
        rt_gemm_run(&src, mm, nn, p->k, 1.0f, 0.0f, &epi, C, p->ldc);
    }
}
