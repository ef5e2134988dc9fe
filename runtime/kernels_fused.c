/* kernels_fused.c — rt_fused_conv2d and rt_fused_linear: prologue -> GEMM
 * -> epilogue (kernels_fused.h) without storing the normalised input or the
 * unfinished output.
 *
 * rt_fused_conv2d: when the input is normalised, a first pass computes the
 * GroupNorm statistics of every (image, group) and turns them into one
 * affine map per (image, channel).  The conv then runs as kernels_conv.c
 * does it (tasks = images x output-channel blocks x position tiles, im2col
 * in channel chunks, one GEMM per chunk), except that im2col, channel by
 * channel, first normalises (and activates) just the input rows the tile
 * reads into a small slab (a few rows: it stays in L1) and copies from
 * there: the normalised tensor never exists whole, each input element is
 * normalised once per tile (not once per kernel tap; the rows a tile
 * shares with its neighbour are done by both), and the conv's zero padding
 * stays zero.  After the last chunk the epilogue adds the per-(image,
 * channel) term and the residual and scales, on the tile while it is in
 * cache.  The GEMM calls are those of rt_conv2d, so a fused conv gives the
 * bits of the unfused sequence whenever the float operations around the
 * GEMM are the same (they are for a GroupNorm + SiLU prologue and add
 * epilogues; a 1x1 conv with a prologue cuts its GEMM into channel chunks
 * where rt_conv2d makes one).
 *
 * rt_fused_linear: tasks = row tiles x column strips as rt_matmul.  With a
 * LayerNorm the task normalises its rows into an A panel first (the same
 * reductions as rt_layer_norm); with GEGLU it computes the hidden and the
 * gate columns of its strip as two GEMMs and multiplies them, so the
 * [m, n] projection is never stored.
 *
 * Determinism: task boundaries depend on the shapes only, every statistic
 * is reduced inside one task, so 1 and N threads give the same bits. */
#include "kernels_fused.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define FCONV_TILE_POS 1024            /* output positions per task, at most */
#define FCONV_MIN_TILE_POS 256         /* split positions down to this before output channels */
#define FCONV_MIN_OC_BLOCK 64          /* and output channels down to about this */
#define FCONV_SCRATCH_FLOATS (1 << 18) /* im2col tile: 1 MiB per thread */
#define FCONV_SLAB_FLOATS (1 << 19)    /* 1x1 with a prologue: normalised [c, positions] block, 2 MiB;
                                        * SD's fit whole (320 x 1024, 1280 x 256), so the GEMM is one
                                        * call as in rt_conv2d */

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

typedef struct FConvPlan {
    int64_t hw, ohw, khw, kdim; /* kdim = c*kh*kw: GEMM depth and weight row length */
    int direct;                 /* 1x1, stride 1, unpadded: channel rows are the GEMM operand */
    int64_t tile_pos, tiles_pos;
    int64_t oc_block, oc_blocks;
    int chan_chunk; /* input channels per slab / im2col chunk */
    int64_t tasks;
} FConvPlan;

static void fconv_plan(const Conv2dParams *p, FConvPlan *pl)
{
    pl->khw = (int64_t)p->kh * p->kw;
    pl->hw = (int64_t)p->h * p->w;
    pl->ohw = (int64_t)p->oh * p->ow;
    pl->kdim = p->c * pl->khw;
    pl->direct = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl && !p->pb && !p->pr;
    pl->tile_pos = rt_min64(pl->ohw, FCONV_TILE_POS);
    while (p->n * rt_div_up(pl->ohw, pl->tile_pos) < RT_MIN_TASKS && pl->tile_pos / 2 >= FCONV_MIN_TILE_POS)
        pl->tile_pos = (rt_div_up(pl->tile_pos, 2) + 15) & ~(int64_t)15;
    pl->tiles_pos = rt_div_up(pl->ohw, pl->tile_pos);
    pl->oc_block = p->oc;
    while (p->n * pl->tiles_pos * rt_div_up(p->oc, pl->oc_block) < RT_MIN_TASKS && pl->oc_block / 2 >= FCONV_MIN_OC_BLOCK)
        pl->oc_block = (rt_div_up(pl->oc_block, 2) + 15) & ~(int64_t)15;
    pl->oc_blocks = rt_div_up(p->oc, pl->oc_block);
    int64_t budget = pl->direct ? FCONV_SLAB_FLOATS : FCONV_SCRATCH_FLOATS;
    pl->chan_chunk = (int)rt_max64(1, rt_min64(p->c, budget / (pl->khw * pl->tile_pos)));
    pl->tasks = p->n * pl->oc_blocks * pl->tiles_pos;
}

/* The input rows [lo, hi) that output positions [p0, p0 + np) read. */
static void tile_rows(const Conv2dParams *p, int64_t p0, int64_t np, int *lo, int *hi)
{
    int64_t oy0 = p0 / p->ow, oy1 = (p0 + np - 1) / p->ow;
    int64_t a = oy0 * p->sh - p->pt, b = oy1 * p->sh - p->pt + (int64_t)(p->kh - 1) * p->dh + 1;
    *lo = (int)rt_max64(a, 0);
    *hi = (int)rt_max64(*lo, rt_min64(b, p->h));
}

/* col[(ci*kh + ky)*kw + kx][j] = input[ci, iy, ix] at output position p0 + j,
 * zero in the padding.  Channel ci's rows [row_lo, ...) start at
 * src + ci*ch_stride (the input itself, or a slab of normalised rows). */
static void im2col_rows(const Conv2dParams *p, const float *src, int64_t ch_stride, int row_lo, int nch, int64_t p0,
                        int64_t np, float *col)
{
    for (int ci = 0; ci < nch; ci++)
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++) {
                float *row = col + ((int64_t)(ci * p->kh + ky) * p->kw + kx) * np;
                const float *xc = src + ci * ch_stride;
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
                    const float *xr = xc + (int64_t)(iy - row_lo) * p->w;
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

void rt_fused_conv2d(const FusedConv2dParams *fp, const float *x, const float *gamma, const float *beta,
                     const float *w, const float *b, const float *chan_add, const float *residual, float *y)
{
    rt_kernels_prepare();
    const Conv2dParams *p = &fp->conv;
    SDC_ASSERT(p->groups == 1 && (fp->norm_groups > 0 || !fp->silu));
    if (p->n <= 0 || p->oc <= 0 || p->oh <= 0 || p->ow <= 0) return;
    FConvPlan pl;
    fconv_plan(p, &pl);
    RtChannelNorm *norms = NULL;
    if (fp->norm_groups > 0) {
        norms = xmalloc(sizeof(RtChannelNorm) * (size_t)((int64_t)p->n * p->c + 1));
        rt_group_norm_channels(p->n, p->c, pl.hw, fp->norm_groups, fp->eps, x, gamma, beta, norms);
    }
    int finish = chan_add || residual || fp->out_scale != 1.0f;

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < pl.tasks; t++) {
        int64_t tp = t % pl.tiles_pos, rest = t / pl.tiles_pos;
        int64_t ob = rest % pl.oc_blocks, nb = rest / pl.oc_blocks;
        int64_t p0 = tp * pl.tile_pos, np = rt_min64(pl.tile_pos, pl.ohw - p0);
        int64_t o0 = ob * pl.oc_block;
        int nob = (int)rt_min64(pl.oc_block, p->oc - o0);
        float *yt = y + (nb * p->oc + o0) * pl.ohw + p0;
        if (b)
            for (int o = 0; o < nob; o++) rt_vec_fill(yt + o * pl.ohw, np, b[o0 + o]);
        const float *xn = x + nb * p->c * pl.hw;
        const RtChannelNorm *cn = norms ? norms + nb * p->c : NULL;
        const float *wt = w + o0 * pl.kdim;

        if (pl.direct && !cn) { /* a plain 1x1 conv: the input is the GEMM operand */
            rt_gemm(0, 0, nob, (int)np, p->c, 1.0f, wt, pl.kdim, xn + p0, pl.hw, b ? 1.0f : 0.0f, yt, pl.ohw);
        } else {
            for (int c0 = 0; c0 < p->c; c0 += pl.chan_chunk) {
                int nch = (int)rt_min64(pl.chan_chunk, p->c - c0);
                float acc = (c0 > 0 || b) ? 1.0f : 0.0f;
                const float *xc = xn + c0 * pl.hw;
                if (pl.direct) { /* normalise the tile's positions of each channel */
                    float *slab = rt_scratch(RT_SCRATCH_AUX, (size_t)(nch * np));
                    for (int ci = 0; ci < nch; ci++)
                        rt_prologue_channel(slab + ci * np, xc + ci * pl.hw + p0, np, &cn[c0 + ci], fp->silu);
                    rt_gemm(0, 0, nob, (int)np, nch, 1.0f, wt + c0, pl.kdim, slab, np, acc, yt, pl.ohw);
                    continue;
                }
                float *col = rt_scratch(RT_SCRATCH_MAIN, (size_t)(nch * pl.khw * np));
                if (cn) { /* per channel: normalise the rows this tile reads (a slab that stays in L1), then im2col */
                    int lo, hi;
                    tile_rows(p, p0, np, &lo, &hi);
                    int64_t len = (int64_t)(hi - lo) * p->w;
                    float *slab = rt_scratch(RT_SCRATCH_AUX, (size_t)rt_max64(1, len));
                    for (int ci = 0; ci < nch; ci++) {
                        rt_prologue_channel(slab, xc + ci * pl.hw + (int64_t)lo * p->w, len, &cn[c0 + ci], fp->silu);
                        im2col_rows(p, slab, len, lo, 1, p0, np, col + ci * pl.khw * np);
                    }
                } else {
                    im2col_rows(p, xc, pl.hw, 0, nch, p0, np, col);
                }
                rt_gemm(0, 0, nob, (int)np, (int)(nch * pl.khw), 1.0f, wt + c0 * pl.khw, pl.kdim, col, np, acc, yt,
                        pl.ohw);
            }
        }
        if (finish) {
            int64_t img = fp->chan_add_n == 1 ? 0 : nb;
            RtEpilogue ep = {.row_add = chan_add ? chan_add + img * p->oc + o0 : NULL,
                             .residual = residual ? residual + (yt - y) : NULL, .ld_residual = pl.ohw,
                             .scale = fp->out_scale};
            rt_epilogue_tile(&ep, yt, pl.ohw, nob, np);
        }
    }
    free(norms);
}

/* ---- fused linear ------------------------------------------------------------------ */

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
        }
        float *c = y + i0 * ny + j0;
        if (b)
            for (int r = 0; r < mm; r++) memcpy(c + (int64_t)r * ny, b + j0, (size_t)nn * sizeof(float));
        rt_gemm(0, 1, mm, nn, p->k, 1.0f, a, p->k, w + j0 * p->k, p->k, b ? 1.0f : 0.0f, c, ny);
        if (p->geglu) { /* the gate columns of this strip, then hidden * gelu(gate) */
            float *gate = rt_scratch(RT_SCRATCH_AUX, (size_t)mm * (size_t)nn);
            if (b)
                for (int r = 0; r < mm; r++) memcpy(gate + (int64_t)r * nn, b + ny + j0, (size_t)nn * sizeof(float));
            rt_gemm(0, 1, mm, nn, p->k, 1.0f, a, p->k, w + (ny + j0) * p->k, p->k, b ? 1.0f : 0.0f, gate, nn);
            for (int r = 0; r < mm; r++) {
                float *gr = gate + (int64_t)r * nn, *cr = c + (int64_t)r * ny;
                rt_vec_gelu(gr, gr, nn);
                rt_vec_binary(RT_MUL, nn, cr, 1, gr, 1, cr);
            }
        }
        if (finish) {
            RtEpilogue ep = {.residual = residual ? residual + i0 * ny + j0 : NULL, .ld_residual = ny,
                             .scale = p->out_scale};
            rt_epilogue_tile(&ep, c, ny, mm, nn);
        }
    }
}
