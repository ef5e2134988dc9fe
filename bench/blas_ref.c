/* blas_ref.c — the runtime's kernels as they were before the GEMM engine
 * (gemm.h): tiled im2col conv, matmul and flash attention on single-threaded
 * cblas_sgemm, with the same task split.  bench/kernels_bench.c times them
 * next to the runtime's kernels, so that "ours vs OpenBLAS" is measured on
 * the same shapes in the same run (under whichever OPENBLAS_CORETYPE the
 * environment selects).  Not part of the runtime. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "err.h"
#include "kernels_internal.h"

void blas_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y);
void blas_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c);
void blas_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y);

/* The tasks call OpenBLAS concurrently: it must not start threads of its own. */
static void blas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

#define MATMUL_TILE_M 256
#define MATMUL_MIN_TILE_N 64

void blas_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c)
{
    openblas_set_num_threads(1);
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
        blas_gemm(p->trans_a, p->trans_b, mm, nn, p->k, 1.0f, A, p->lda, B, p->ldb, bias ? 1.0f : 0.0f, C, p->ldc);
    }
}


#define CONV_TILE_POS 1024            /* output positions per task, at most */
#define CONV_MIN_TILE_POS 256         /* split positions down to this before output channels */
#define CONV_MIN_OC_BLOCK 64          /* and output channels down to about this */
#define CONV_SCRATCH_FLOATS (1 << 18) /* im2col tile: 1 MiB per thread, stays in L2 */

typedef struct ConvPlan {
    int64_t hw, ohw;       /* input and output positions per channel */
    int cg, og;            /* input and output channels per group */
    int64_t kdim;          /* cg*kh*kw: GEMM depth and weight row length */
    int direct;            /* 1x1, stride 1, unpadded: GEMM on the input itself */
    int64_t tile_pos, tiles_pos;
    int64_t oc_block, oc_blocks; /* within a group */
    int chan_chunk;        /* input channels per im2col chunk */
    int64_t tasks;
} ConvPlan;

static void conv_plan(const Conv2dParams *p, ConvPlan *pl)
{
    int64_t khw = (int64_t)p->kh * p->kw;
    pl->hw = (int64_t)p->h * p->w;
    pl->ohw = (int64_t)p->oh * p->ow;
    pl->cg = p->c / p->groups;
    pl->og = p->oc / p->groups;
    pl->kdim = pl->cg * khw;
    pl->direct = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl && !p->pb && !p->pr;

    int64_t outer = (int64_t)p->n * p->groups;
    pl->tile_pos = rt_min64(pl->ohw, CONV_TILE_POS);
    while (outer * rt_div_up(pl->ohw, pl->tile_pos) < RT_MIN_TASKS && pl->tile_pos / 2 >= CONV_MIN_TILE_POS)
        pl->tile_pos = (rt_div_up(pl->tile_pos, 2) + 15) & ~(int64_t)15;
    pl->tiles_pos = rt_div_up(pl->ohw, pl->tile_pos);
    pl->oc_block = pl->og;
    while (outer * pl->tiles_pos * rt_div_up(pl->og, pl->oc_block) < RT_MIN_TASKS &&
           pl->oc_block / 2 >= CONV_MIN_OC_BLOCK)
        pl->oc_block = (rt_div_up(pl->oc_block, 2) + 15) & ~(int64_t)15;
    pl->oc_blocks = rt_div_up(pl->og, pl->oc_block);
    pl->chan_chunk = (int)rt_max64(1, rt_min64(pl->cg, CONV_SCRATCH_FLOATS / (khw * pl->tile_pos)));
    pl->tasks = outer * pl->oc_blocks * pl->tiles_pos;
}

/* col[(ci*kh + ky)*kw + kx][j] = x[ci, iy, ix] at output position p0 + j
 * (zero where the window reaches into the padding); x points at the first
 * of the nch channels, col rows are np long. */
static void im2col_tile(const Conv2dParams *p, const float *x, int nch, int64_t p0, int64_t np, float *col)
{
    int64_t hw = (int64_t)p->h * p->w;
    for (int ci = 0; ci < nch; ci++)
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++) {
                float *row = col + ((int64_t)(ci * p->kh + ky) * p->kw + kx) * np;
                const float *xc = x + ci * hw;
                for (int64_t pos = p0; pos < p0 + np;) {
                    int oy = (int)(pos / p->ow), ox0 = (int)(pos % p->ow);
                    int seg = (int)rt_min64(p->ow - ox0, p0 + np - pos);
                    float *dst = row + (pos - p0);
                    pos += seg;
                    int iy = oy * p->sh - p->pt + ky * p->dh;
                    if (iy < 0 || iy >= p->h) {
                        memset(dst, 0, (size_t)seg * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + (int64_t)iy * p->w;
                    /* ix = ix0 + j*sw must lie in [0, w): j in [lo, hi) */
                    int ix0 = ox0 * p->sw - p->pl + kx * p->dw;
                    int lo = ix0 >= 0 ? 0 : (-ix0 + p->sw - 1) / p->sw;
                    int hi = ix0 > p->w - 1 ? 0 : (p->w - 1 - ix0) / p->sw + 1;
                    lo = lo < seg ? lo : seg;
                    hi = hi < seg ? hi : seg;
                    hi = hi > lo ? hi : lo;
                    memset(dst, 0, (size_t)lo * sizeof(float));
                    if (p->sw == 1)
                        memcpy(dst + lo, xr + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int j = lo; j < hi; j++) dst[j] = xr[ix0 + j * p->sw];
                    memset(dst + hi, 0, (size_t)(seg - hi) * sizeof(float));
                }
            }
}

void blas_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y)
{
    openblas_set_num_threads(1);
    SDC_ASSERT(p->groups >= 1 && p->c >= p->groups && p->c % p->groups == 0 && p->oc % p->groups == 0);
    if (p->n <= 0 || p->oc <= 0 || p->oh <= 0 || p->ow <= 0) return;
    ConvPlan pl;
    conv_plan(p, &pl);
    int64_t khw = (int64_t)p->kh * p->kw;

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < pl.tasks; t++) {
        int64_t tp = t % pl.tiles_pos, rest = t / pl.tiles_pos;
        int64_t ob = rest % pl.oc_blocks;
        rest /= pl.oc_blocks;
        int64_t g = rest % p->groups, nb = rest / p->groups;
        int64_t p0 = tp * pl.tile_pos, np = rt_min64(pl.tile_pos, pl.ohw - p0);
        int64_t o0 = g * pl.og + ob * pl.oc_block;
        int nob = (int)rt_min64(pl.oc_block, pl.og - ob * pl.oc_block);

        float *yt = y + (nb * p->oc + o0) * pl.ohw + p0;
        if (b)
            for (int o = 0; o < nob; o++) rt_vec_fill(yt + o * pl.ohw, np, b[o0 + o]);
        const float *xg = x + (nb * p->c + g * pl.cg) * pl.hw;
        const float *wt = w + o0 * pl.kdim;
        if (pl.direct) {
            blas_gemm(0, 0, nob, (int)np, pl.cg, 1.0f, wt, pl.kdim, xg + p0, pl.hw, b ? 1.0f : 0.0f, yt, pl.ohw);
            continue;
        }
        float *col = rt_scratch(RT_SCRATCH_MAIN, (size_t)(pl.chan_chunk * khw * np));
        for (int c0 = 0; c0 < pl.cg; c0 += pl.chan_chunk) {
            int nch = (int)rt_min64(pl.chan_chunk, pl.cg - c0);
            im2col_tile(p, xg + c0 * pl.hw, nch, p0, np, col);
            blas_gemm(0, 0, nob, (int)np, (int)(nch * khw), 1.0f, wt + c0 * khw, pl.kdim, col, np,
                    (c0 > 0 || b) ? 1.0f : 0.0f, yt, pl.ohw);
        }
    }
}


#define ATTN_QB 256 /* queries per task */
#define ATTN_KB 256 /* keys per block: S is QB*KB floats (256 KiB) */

void blas_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y)
{
    openblas_set_num_threads(1);
    if (p->b <= 0 || p->heads <= 0 || p->lq <= 0) return;
    SDC_ASSERT(p->lk > 0);
    int64_t qblocks = rt_div_up(p->lq, ATTN_QB);
    int64_t tasks = (int64_t)p->b * p->heads * qblocks;

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t qb = t % qblocks, bh = t / qblocks;
        int64_t bi = bh / p->heads, h = bh % p->heads;
        int i0 = (int)(qb * ATTN_QB), nq = (int)rt_min64(ATTN_QB, p->lq - i0);
        const float *qt = q + (bi * p->lq + i0) * p->ldq + h * p->dk;
        const float *kh = k + bi * p->lk * p->ldk + h * p->dk;
        const float *vh = v + bi * p->lk * p->ldv + h * p->dv;

        float *st = rt_scratch(RT_SCRATCH_MAIN, (size_t)ATTN_KB * ATTN_QB);
        float *o = rt_scratch(RT_SCRATCH_AUX, (size_t)ATTN_QB * (p->dv + 4));
        float *mx = o + (int64_t)ATTN_QB * p->dv, *sum = mx + ATTN_QB, *factor = sum + ATTN_QB;
        float *col = factor + ATTN_QB;
        rt_vec_fill(mx, nq, -INFINITY);
        rt_vec_fill(sum, nq, 0.0f);

        int kend = p->causal ? (int)rt_min64(p->lk, i0 + nq) : p->lk;
        for (int j0 = 0; j0 < kend; j0 += ATTN_KB) {
            int nk = (int)rt_min64(ATTN_KB, kend - j0);
            /* S^T[nk, nq] = scale * K Q^T */
            blas_gemm(0, 1, nk, nq, p->dk, p->scale, kh + j0 * p->ldk, p->ldk, qt, p->ldq, 0.0f, st, nq);
            if (p->causal) /* key j0+j is hidden from queries i0+r < j0+j */
                for (int j = 0; j < nk; j++) rt_vec_fill(st + (int64_t)j * nq, rt_min64(nq, j0 + j - i0), -INFINITY);
            rt_vec_softmax_step(st, nk, nq, mx, sum, factor, col);
            if (j0 > 0) rt_vec_scale_rows(o, nq, p->dv, factor);
            /* O[nq, dv] (+)= P V, P = (S^T)^T; the first block sets O */
            blas_gemm(1, 0, nq, p->dv, nk, 1.0f, st, nq, vh + j0 * p->ldv, p->ldv, j0 > 0 ? 1.0f : 0.0f, o, p->dv);
        }
        for (int r = 0; r < nq; r++)
            rt_vec_scale(y + (bi * p->lq + i0 + r) * p->ldy + h * p->dv, o + (int64_t)r * p->dv, p->dv,
                         1.0f / sum[r]);
    }
}
