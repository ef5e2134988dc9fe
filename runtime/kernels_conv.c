/* kernels_conv.c — rt_conv2d as GEMMs on NCHW.
 *
 * Per image and group the output is Y[oc, oh*ow] = W[oc, c*kh*kw] X'[c*kh*kw, oh*ow].
 *  - 1x1, stride 1, no padding: X' is the input itself ([c, h*w]), one GEMM
 *    per tile with no copy.
 *  - otherwise X' is built tile by tile (im2col): a task owns a range of
 *    output positions (flattened oy*ow+ox, so a tile may start mid-row) and a
 *    block of output channels, and walks the input channels in chunks small
 *    enough that the im2col tile fits CONV_SCRATCH_FLOATS; each chunk adds
 *    its share with one GEMM (beta = 1).  The whole-tensor im2col (9x the
 *    input for 3x3) is never built.
 * The bias is written into the output tile first and the GEMMs add to it.
 * Tasks = images x groups x channel blocks x position tiles; their sizes
 * depend only on the shapes (see conv_plan), so results do not depend on
 * the thread count. */
#include "kernels_internal.h"

#include <string.h>

#include "err.h"

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

void rt_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y)
{
    rt_kernels_prepare();
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
            rt_gemm(0, 0, nob, (int)np, pl.cg, 1.0f, wt, pl.kdim, xg + p0, pl.hw, b ? 1.0f : 0.0f, yt, pl.ohw);
            continue;
        }
        float *col = rt_scratch(RT_SCRATCH_MAIN, (size_t)(pl.chan_chunk * khw * np));
        for (int c0 = 0; c0 < pl.cg; c0 += pl.chan_chunk) {
            int nch = (int)rt_min64(pl.chan_chunk, pl.cg - c0);
            im2col_tile(p, xg + c0 * pl.hw, nch, p0, np, col);
            rt_gemm(0, 0, nob, (int)np, (int)(nch * khw), 1.0f, wt + c0 * khw, pl.kdim, col, np,
                    (c0 > 0 || b) ? 1.0f : 0.0f, yt, pl.ohw);
        }
    }
}
