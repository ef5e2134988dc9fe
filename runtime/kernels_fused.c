/* kernels_fused.c — rt_fused_conv2d and rt_fused_linear: prologue -> GEMM
 * -> epilogue (kernels_fused.h) without storing the normalised input or the
 * unfinished output.
 *
 * rt_fused_conv2d: when the input is normalised, a first pass computes the
 * GroupNorm statistics of every (image, group) and turns them into one
 * affine map per (image, channel).  The conv then runs exactly as
 * rt_conv2d (the same task grid, rt_conv_plan, and the same GEMM per task,
 * rt_conv_tile), with the maps handed to the im2col step: for each block
 * of input channels the GEMM engine asks for, the input rows the tile reads
 * are normalised (and activated) once into a small slab, and im2col copies
 * from there into the micro-kernel's panels; the normalised tensor never
 * exists whole and the conv's zero padding stays zero.  After the GEMM the
 * epilogue adds the per-(image, channel) term and the residual and scales,
 * on the tile while it is in cache.  Without a prologue the GEMM is
 * rt_conv2d's, so a fused conv gives the bits of the unfused sequence
 * whenever the float operations around the GEMM are the same.
 *
 * rt_fused_linear: tasks = row tiles x column strips as rt_matmul.  With a
 * LayerNorm the task normalises its rows into an A panel first (the same
 * reductions as rt_layer_norm); with a GroupNorm over a channel-major input
 * (norm_groups) the statistics pass is rt_fused_conv2d's and the task
 * gathers its positions' channels, normalised, into the A panel (a
 * transpose it would otherwise need a stored tensor for); with GEGLU it computes the hidden and the
 * gate columns of its strip as two GEMMs and multiplies them, so the
 * [m, n] projection is never stored.  The weight is read as it was packed
 * at compile time (p->wpack) or plain.
 *
 * Determinism: task boundaries depend on the shapes only, every statistic
 * is reduced inside one task, so 1 and N threads give the same bits. */
#include "kernels_fused.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gemm.h"

#define FLIN_TILE_M 256       /* rows per task */
#define FLIN_MIN_TILE_N 64    /* column strips are cut down to this when rows are few */
#define FLIN_GEGLU_TILE_N 512 /* GEGLU: gate tile of at most 256 x 512 floats (512 KiB) */

/* ---- hooks ----------------------------------------------------------------- */

void rt_group_norm_channels(int n, int c, int64_t hw, int groups, float eps, const float *x, const float *gamma,
                            const float *beta, RtChannelNorm *out)
{
    SDC_ASSERT(groups >= 1 && c % groups == 0);
    int cg = c / groups;
    int64_t count = (int64_t)cg * hw, tasks = (int64_t)n * groups;

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t g = t % groups, img = t / groups;
        const float *xg = x + t * count; /* (img*c + g*cg) * hw */
        double mean = count ? rt_vec_sum_d(xg, count) / (double)count : 0.0;
        double var = count ? rt_vec_sq_dev_d(xg, count, mean) / (double)count : 0.0;
        double inv = 1.0 / sqrt(var + eps);
        for (int ci = 0; ci < cg; ci++) {
            int64_t ch = g * cg + ci;
            out[img * c + ch] = (RtChannelNorm){(float)mean, (float)(inv * gamma[ch]), beta[ch]};
        }
    }
}

/* In the order the unfused graph adds (y + row_add, then + residual, then
 * the scale), with the vectorised loops of kernels_vec.c. */
void rt_epilogue_tile(const RtEpilogue *ep, float *y, int64_t ldy, int rows, int64_t cols)
{
    for (int i = 0; i < rows; i++) {
        float *yr = y + i * ldy;
        if (ep->row_add) rt_vec_binary(RT_ADD, cols, yr, 1, ep->row_add + i, 0, yr);
        if (ep->residual) rt_vec_binary(RT_ADD, cols, yr, 1, ep->residual + i * ep->ld_residual, 1, yr);
        if (ep->scale != 1.0f) rt_vec_scale(yr, yr, cols, ep->scale);
    }
}

/* ---- fused conv2d ---------------------------------------------------------------- */

void rt_fused_conv2d(const FusedConv2dParams *fp, const float *x, const float *gamma, const float *beta,
                     const float *w, const float *b, const float *chan_add, const float *residual, float *y)
{
    rt_kernels_prepare();
    const Conv2dParams *p = &fp->conv;
    SDC_ASSERT(p->groups == 1 && (fp->norm_groups > 0 || !fp->silu));
    if (p->n <= 0 || p->oc <= 0 || p->oh <= 0 || p->ow <= 0) return;
    RtConvPlan pl;
    rt_conv_plan(p, &pl);
    RtChannelNorm *norms = NULL;
    if (fp->norm_groups > 0) {
        norms = xmalloc(sizeof(RtChannelNorm) * (size_t)((int64_t)p->n * p->c + 1));
        rt_group_norm_channels(p->n, p->c, pl.hw, fp->norm_groups, fp->eps, x, gamma, beta, norms);
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < pl.tasks; t++) {
        int64_t tp = t % pl.tiles_pos, rest = t / pl.tiles_pos;
        int64_t ob = rest % pl.oc_blocks, nb = rest / pl.oc_blocks;
        int64_t p0 = tp * pl.tile_pos, np = rt_min64(pl.tile_pos, pl.ohw - p0);
        int64_t o0 = ob * pl.oc_block;
        int nob = (int)rt_min64(pl.oc_block, p->oc - o0);
        float *yt = y + (nb * p->oc + o0) * pl.ohw + p0;
        int64_t img = fp->chan_add_n == 1 ? 0 : nb;
        /* the epilogue inside the tiles: (conv + b + chan_add + residual) * out_scale */
        RtGemmEpi epi = {.row_bias = b ? b + o0 : NULL, .row_add = chan_add ? chan_add + img * p->oc + o0 : NULL,
                         .res = residual ? residual + (yt - y) : NULL, .ldr = pl.ohw, .scale = fp->out_scale};
        const RtChannelNorm *cn = norms ? norms + nb * p->c : NULL;
        rt_conv_tile(p, &pl, 0, x + nb * p->c * pl.hw, w, cn, fp->silu, o0, nob, p0, (int)np, &epi, yt);
    }
    free(norms);
}

/* ---- fused linear ------------------------------------------------------------------ */

/* c[mm, nn] = a[mm, k] w[j0 : j0 + nn]^T and the epilogue: the weight's rows
 * from j0, packed at compile time (p->wpack; j0 is then a multiple of 16)
 * or plain. */
static void linear_gemm(const FusedLinearParams *p, const float *a, const float *w, int64_t j0, int mm, int nn,
                        const RtGemmEpi *epi, float *c, int64_t ldc)
{
    RtGemmOperands ops = {.a = {a, p->k, 0}};
    RtGemmSrc src = {rt_gemm_plain_a, rt_gemm_plain_b, &ops, 0};
    if (p->wpack == RT_WPACK_NONE) {
        ops.b = (RtPlainOperand){w + j0 * p->k, p->k, 1};
    } else {
        rt_gemm_use_packed_b(&src, &ops, w, p->wpack, p->k, p->n, j0);
    }
    rt_gemm_run(&src, mm, nn, p->k, 1.0f, 0.0f, epi, c, ldc);
}

void rt_fused_linear(const FusedLinearParams *p, const float *x, const float *gamma, const float *beta,
                     const float *w, const float *b, const float *residual, float *y)
{
    rt_kernels_prepare();
    SDC_ASSERT(!p->geglu || p->n % 2 == 0);
    int ny = p->geglu ? p->n / 2 : p->n;
    if (p->m <= 0 || ny <= 0) return;
    int64_t tiles_m = rt_div_up(p->m, FLIN_TILE_M), tiles_n = 1;
    if (tiles_m < RT_MIN_TASKS) tiles_n = rt_max64(1, rt_min64(rt_div_up(RT_MIN_TASKS, tiles_m), ny / FLIN_MIN_TILE_N));
    if (p->geglu) tiles_n = rt_max64(tiles_n, rt_div_up(ny, FLIN_GEGLU_TILE_N));
    int64_t tile_n = (rt_div_up(ny, tiles_n) + 15) & ~(int64_t)15;
    tiles_n = rt_div_up(ny, tile_n);
    int64_t tasks = tiles_m * tiles_n;
    int norm = p->norm && p->k > 0, finish = residual || p->out_scale != 1.0f;
    RtChannelNorm *maps = NULL; /* GroupNorm prologue: one affine map per (image, channel) */
    if (p->norm_groups > 0 && p->k > 0) {
        SDC_ASSERT(p->hw > 0 && p->m % p->hw == 0);
        maps = xmalloc(sizeof(RtChannelNorm) * (size_t)((int64_t)(p->m / p->hw) * p->k + 1));
        rt_group_norm_channels(p->m / p->hw, p->k, p->hw, p->norm_groups, p->eps, x, gamma, beta, maps);
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i0 = t / tiles_n * FLIN_TILE_M, j0 = t % tiles_n * tile_n;
        int mm = (int)rt_min64(FLIN_TILE_M, p->m - i0), nn = (int)rt_min64(tile_n, ny - j0);
        const float *a = x + i0 * p->k;
        if (norm) { /* prologue: the A panel of normalised rows */
            float *panel = rt_scratch(RT_SCRATCH_MAIN, (size_t)mm * (size_t)p->k);
            for (int r = 0; r < mm; r++) {
                const float *xr = a + (int64_t)r * p->k;
                double mean = rt_vec_sum_d(xr, p->k) / p->k;
                double var = rt_vec_sq_dev_d(xr, p->k, mean) / p->k;
                rt_vec_norm_row(panel + (int64_t)r * p->k, xr, p->k, (float)mean, (float)(1.0 / sqrt(var + p->eps)),
                                gamma, beta);
            }
            a = panel;
        } else if (maps) { /* prologue: rows i0.. are positions of channel-major images, gathered and normalised */
            float *panel = rt_scratch(RT_SCRATCH_MAIN, (size_t)mm * (size_t)p->k);
            for (int r = 0; r < mm;) { /* runs of rows within one image: contiguous reads per channel */
                int64_t img = (i0 + r) / p->hw, q0 = (i0 + r) % p->hw;
                int run = (int)rt_min64(mm - r, p->hw - q0);
                for (int ch = 0; ch < p->k; ch++) {
                    const RtChannelNorm *cn = &maps[img * p->k + ch];
                    const float *src = x + (img * p->k + ch) * p->hw + q0;
                    for (int q = 0; q < run; q++) panel[(int64_t)(r + q) * p->k + ch] = (src[q] - cn->mean) * cn->a + cn->b;
                }
                r += run;
            }
            a = panel;
        }
        float *c = y + i0 * ny + j0;
        /* without GEGLU the whole epilogue happens inside the tiles: (x w^T + b + residual) * out_scale */
        RtGemmEpi epi = {.col_bias = b ? b + j0 : NULL};
        if (!p->geglu) epi.res = residual ? residual + i0 * ny + j0 : NULL, epi.ldr = ny, epi.scale = p->out_scale;
        linear_gemm(p, a, w, j0, mm, nn, &epi, c, ny);
        if (p->geglu) { /* the gate columns of this strip, then hidden * gelu(gate) */
            float *gate = rt_scratch(RT_SCRATCH_AUX, (size_t)mm * (size_t)nn);
            RtGemmEpi gepi = {.col_bias = b ? b + ny + j0 : NULL};
            linear_gemm(p, a, w, ny + j0, mm, nn, &gepi, gate, nn);
            for (int r = 0; r < mm; r++) {
                float *gr = gate + (int64_t)r * nn, *cr = c + (int64_t)r * ny;
                rt_vec_gelu(gr, gr, nn);
                rt_vec_binary(RT_MUL, nn, cr, 1, gr, 1, cr);
            }
        }
        if (p->geglu && finish) {
            RtEpilogue ep = {.residual = residual ? residual + i0 * ny + j0 : NULL, .ld_residual = ny,
                             .scale = p->out_scale};
            rt_epilogue_tile(&ep, c, ny, mm, nn);
        }
    }
    free(maps);
}
