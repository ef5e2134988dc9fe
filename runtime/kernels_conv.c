/* kernels_conv.c — rt_conv2d as implicit GEMM on NCHW.
 *
 * Per image and group the output is Y[oc, oh*ow] = W[oc, c*kh*kw] X'[c*kh*kw, oh*ow]
 * (X' the im2col of the input), computed by the GEMM engine (gemm.h):
 *  - A is the weight: panels packed at compile time (p->wpack, used in
 *    place; 16-bit weights are widened block by block), or packed per
 *    block from the plain [oc, c*kh*kw] weight;
 *  - B is X', never stored whole: the engine asks for one block (a few
 *    input channels' kh*kw rows x up to a thousand output positions) at a
 *    time, and im2col writes it straight into the micro-kernel's 16-column
 *    sub-panels (conv padding as zeros).  A fused conv's prologue (GroupNorm
 *    + SiLU, kernels_fused.h) is applied here: the input rows a block reads
 *    are normalised once into a small slab and im2col copies from it.
 *
 * Tasks = images x groups x output-channel blocks x position tiles; their
 * sizes depend only on the shapes (rt_conv_plan), so results do not depend
 * on the thread count.  The bias is written into the output tile first and
 * the GEMM adds to it. */
#include "kernels_internal.h"

#include <string.h>

#include "err.h"
#include "gemm.h"
#include "kernels_fused.h"

#define CONV_TILE_POS 1024    /* output positions per task, at most */
#define CONV_MIN_TILE_POS 256 /* split positions down to this before output channels */
#define CONV_MIN_OC_BLOCK 96  /* and output channels down to about this */
#define CONV_OC_ALIGN 48      /* output-channel blocks start on whole A panels (6) and vectors (16) */

void rt_conv_plan(const Conv2dParams *p, RtConvPlan *pl)
{
    int64_t khw = (int64_t)p->kh * p->kw;
    pl->hw = (int64_t)p->h * p->w;
    pl->ohw = (int64_t)p->oh * p->ow;
    pl->cg = p->c / p->groups;
    pl->og = p->oc / p->groups;
    pl->kdim = pl->cg * khw;

    int64_t outer = (int64_t)p->n * p->groups;
    pl->tile_pos = rt_min64(pl->ohw, CONV_TILE_POS);
    while (outer * rt_div_up(pl->ohw, pl->tile_pos) < RT_MIN_TASKS && pl->tile_pos / 2 >= CONV_MIN_TILE_POS)
        pl->tile_pos = (rt_div_up(pl->tile_pos, 2) + 15) & ~(int64_t)15;
    pl->tiles_pos = rt_div_up(pl->ohw, pl->tile_pos);
    pl->oc_block = pl->og;
    while (outer * pl->tiles_pos * rt_div_up(pl->og, pl->oc_block) < RT_MIN_TASKS &&
           pl->oc_block / 2 >= CONV_MIN_OC_BLOCK)
        pl->oc_block = rt_div_up(rt_div_up(pl->oc_block, 2), CONV_OC_ALIGN) * CONV_OC_ALIGN;
    pl->oc_blocks = rt_div_up(pl->og, pl->oc_block);
    pl->tasks = outer * pl->oc_blocks * pl->tiles_pos;
}

/* ---- the A operand: the weight ------------------------------------------------- */

typedef struct ConvSrc {
    const Conv2dParams *p;
    const RtConvPlan *pl;
    const float *x;              /* the first input channel of this image and group */
    const void *w;               /* the whole weight, as p->wpack */
    int g;                       /* group */
    int64_t o0;                  /* first output channel of the task, within the group */
    int64_t pos0;                /* first output position of the task */
    const RtChannelNorm *cn;     /* prologue: one map per input channel of the group, or NULL */
    int silu;
} ConvSrc;

static RtPanels conv_a(const RtGemmSrc *s, int64_t i0, int mc, int64_t p0, int kc, float *buf)
{
    const ConvSrc *cs = s->ctx;
    const RtConvPlan *pl = cs->pl;
    int64_t row = cs->o0 + i0; /* within the group; a multiple of RT_GEMM_MR */
    if (cs->p->wpack == RT_WPACK_NONE) {
        const float *w = (const float *)cs->w + ((int64_t)cs->g * pl->og + row) * pl->kdim + p0;
        rt_pack_a_block(0, w, pl->kdim, mc, kc, buf);
        return (RtPanels){buf, (int64_t)kc * RT_GEMM_MR};
    }
    SDC_ASSERT(row % RT_GEMM_MR == 0 && p0 % rt_gemm_kc(pl->kdim) == 0);
    int64_t og_pad = rt_div_up(pl->og, RT_GEMM_MR) * RT_GEMM_MR;
    int64_t first = (int64_t)cs->g * og_pad * pl->kdim + p0 * og_pad + row * kc; /* gemm.h: packed layout */
    if (cs->p->wpack == RT_WPACK_CONV_F32) return (RtPanels){(const float *)cs->w + first, (int64_t)kc * RT_GEMM_MR};
    rt_widen(cs->p->wpack == RT_WPACK_CONV_BF16, (const uint16_t *)cs->w + first, buf,
             rt_div_up(mc, RT_GEMM_MR) * RT_GEMM_MR * kc);
    return (RtPanels){buf, (int64_t)kc * RT_GEMM_MR};
}

/* ---- the B operand: im2col into sub-panels ------------------------------------- */

/* One k row (tap ky, kx of one channel) for output positions [q0, q0 + n)
 * into column j of the block (element j % 16 of sub-panel j / 16, ps
 * floats apart); src holds the channel's input rows from row_lo on, zero
 * where the window reaches into the padding.  Portable version. */
RT_CLONES static void im2col_row(const Conv2dParams *p, const float *src, int row_lo, int ky, int kx, int64_t q0,
                                 int64_t n, float *blk, int64_t ps)
{
    for (int64_t j = 0; j < n; j += RT_GEMM_SUB) {
        float *d = blk + (j / RT_GEMM_SUB) * ps;
        int cnt = (int)rt_min64(RT_GEMM_SUB, n - j);
        int64_t pos = q0 + j;
        int oy = (int)(pos / p->ow), ox = (int)(pos % p->ow);
        int iy = oy * p->sh - p->pt + ky * p->dh;
        int ix = ox * p->sw - p->pl + kx * p->dw;
        if (cnt == RT_GEMM_SUB && p->sw == 1 && ox + RT_GEMM_SUB <= p->ow && iy >= 0 && iy < p->h && ix >= 0 &&
            ix + RT_GEMM_SUB <= p->w) {
            memcpy(d, src + (int64_t)(iy - row_lo) * p->w + ix, RT_GEMM_SUB * sizeof(float));
            continue;
        }
        for (int e = 0; e < cnt; e++) {
            int inside = iy >= 0 && iy < p->h && ix >= 0 && ix < p->w;
            d[e] = inside ? src[(int64_t)(iy - row_lo) * p->w + ix] : 0.0f;
            if (++ox == p->ow) { /* next output row */
                ox = 0;
                iy += p->sh;
                ix = -p->pl + kx * p->dw;
            } else {
                ix += p->sw;
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The same with AVX-512 for stride 1: each run of a 16-column chunk that
 * lies in one output row is one (masked, expanding) load of consecutive
 * input values into its lanes, so padding, row ends and 8-wide rows cost
 * no element-by-element work.  The expanding load reads only the valid
 * input values (no address outside the row is formed). */
__attribute__((target("avx512f"))) static void im2col_row_avx512(const Conv2dParams *p, const float *src, int row_lo,
                                                                int ky, int kx, int64_t q0, int64_t n, float *blk,
                                                                int64_t ps)
{
    for (int64_t j = 0; j < n; j += RT_GEMM_SUB) {
        int cnt = (int)rt_min64(RT_GEMM_SUB, n - j);
        int64_t pos = q0 + j;
        int oy = (int)(pos / p->ow), ox = (int)(pos % p->ow);
        __m512 v = _mm512_setzero_ps();
        for (int e = 0; e < cnt;) {
            int seg = p->ow - ox < cnt - e ? p->ow - ox : cnt - e;
            int iy = oy * p->sh - p->pt + ky * p->dh;
            if (iy >= 0 && iy < p->h) {
                int ix = ox - p->pl + kx * p->dw;
                int lo = ix >= 0 ? 0 : -ix, hi = p->w - ix < seg ? p->w - ix : seg;
                const float *row = src + (int64_t)(iy - row_lo) * p->w;
                if (lo == 0 && hi == RT_GEMM_SUB) v = _mm512_loadu_ps(row + ix);
                else if (hi > lo)
                    v = _mm512_mask_expandloadu_ps(v, (__mmask16)(((1u << (hi - lo)) - 1) << (e + lo)), row + ix + lo);
            }
            e += seg, ox = 0, oy++;
        }
        _mm512_storeu_ps(blk + (j / RT_GEMM_SUB) * ps, v);
    }
}
#endif

/* The input rows [lo, hi) that output positions [q0, q0 + n) read. */
static void rows_read(const Conv2dParams *p, int64_t q0, int64_t n, int *lo, int *hi)
{
    int64_t oy0 = q0 / p->ow, oy1 = (q0 + n - 1) / p->ow;
    int64_t a = oy0 * p->sh - p->pt, b = oy1 * p->sh - p->pt + (int64_t)(p->kh - 1) * p->dh + 1;
    *lo = (int)rt_max64(a, 0);
    *hi = (int)rt_max64(*lo, rt_min64(b, p->h));
}

static RtPanels conv_b(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf)
{
    const ConvSrc *cs = s->ctx;
    const Conv2dParams *p = cs->p;
    int khw = p->kh * p->kw;
    int64_t ps = (int64_t)kc * RT_GEMM_SUB, q0 = cs->pos0 + j0;
    int lo = 0, hi = p->h;
    float *slab = NULL;
    int fast = p->sw == 1 && rt_gemm_arch() == &rt_gemm_avx512; /* whole sub-panels, padding included */
    if (cs->cn) {
        rows_read(p, q0, nc, &lo, &hi);
        slab = rt_scratch(RT_SCRATCH_SLAB, (size_t)rt_max64(1, (int64_t)(hi - lo) * p->w));
    }
    /* k rows [p0, p0 + kc): channel k / khw, tap k % khw (a block may start or end inside a channel) */
    const float *src = NULL;
    for (int64_t k = p0; k < p0 + kc; k++) {
        int64_t ch = k / khw;
        int t = (int)(k % khw);
        if (t == 0 || k == p0) {
            src = cs->x + ch * cs->pl->hw + (int64_t)lo * p->w;
            if (cs->cn) { /* normalise the rows this block reads, once per channel */
                rt_prologue_channel(slab, src, (int64_t)(hi - lo) * p->w, &cs->cn[ch], cs->silu);
                src = slab;
            }
        }
        float *row = buf + (k - p0) * RT_GEMM_SUB;
#if defined(__x86_64__) && defined(__GNUC__)
        if (fast) {
            im2col_row_avx512(p, src, lo, t / p->kw, t % p->kw, q0, nc, row, ps);
            continue;
        }
#endif
        im2col_row(p, src, lo, t / p->kw, t % p->kw, q0, nc, row, ps);
    }
    if (nc % RT_GEMM_SUB && !fast) { /* the padding columns of the last sub-panel */
        float *last = buf + (int64_t)(nc / RT_GEMM_SUB) * ps;
        for (int k = 0; k < kc; k++)
            memset(last + (int64_t)k * RT_GEMM_SUB + nc % RT_GEMM_SUB, 0, (RT_GEMM_SUB - nc % RT_GEMM_SUB) * sizeof(float));
    }
    return (RtPanels){buf, ps};
}

/* A 1x1, stride 1, unpadded conv without prologue reads the input itself. */
static RtPanels conv_b_direct(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf)
{
    const ConvSrc *cs = s->ctx;
    rt_pack_b_block(0, cs->x + p0 * cs->pl->hw + cs->pos0 + j0, cs->pl->hw, kc, nc, buf);
    return (RtPanels){buf, (int64_t)kc * RT_GEMM_SUB};
}

void rt_conv_tile(const Conv2dParams *p, const RtConvPlan *pl, int g, const float *x, const void *w,
                  const RtChannelNorm *cn, int silu, int64_t o0, int nob, int64_t pos0, int np, float beta, float *y)
{
    ConvSrc cs = {p, pl, x, w, g, o0, pos0, cn, silu};
    int khw = p->kh * p->kw;
    int direct = khw == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl && !p->pb && !p->pr && !cn;
    RtGemmSrc src = {conv_a, direct ? conv_b_direct : conv_b, &cs};
    rt_gemm_run(&src, nob, np, (int)pl->kdim, 1.0f, beta, y, pl->ohw);
}

void rt_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y)
{
    rt_kernels_prepare();
    SDC_ASSERT(p->groups >= 1 && p->c >= p->groups && p->c % p->groups == 0 && p->oc % p->groups == 0);
    if (p->n <= 0 || p->oc <= 0 || p->oh <= 0 || p->ow <= 0) return;
    RtConvPlan pl;
    rt_conv_plan(p, &pl);

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < pl.tasks; t++) {
        int64_t tp = t % pl.tiles_pos, rest = t / pl.tiles_pos;
        int64_t ob = rest % pl.oc_blocks;
        rest /= pl.oc_blocks;
        int g = (int)(rest % p->groups);
        int64_t nb = rest / p->groups;
        int64_t p0 = tp * pl.tile_pos, np = rt_min64(pl.tile_pos, pl.ohw - p0);
        int64_t o0 = ob * pl.oc_block;
        int nob = (int)rt_min64(pl.oc_block, pl.og - o0);
        float *yt = y + (nb * p->oc + g * pl.og + o0) * pl.ohw + p0;
        if (b)
            for (int o = 0; o < nob; o++) rt_vec_fill(yt + o * pl.ohw, np, b[g * pl.og + o0 + o]);
        const float *xg = x + (nb * p->c + (int64_t)g * pl.cg) * pl.hw;
        rt_conv_tile(p, &pl, g, xg, w, NULL, 0, o0, nob, p0, (int)np, b ? 1.0f : 0.0f, yt);
    }
}
