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
 * on the thread count.  The bias is added by the micro-kernel as it stores
 * the first depth block of a tile. */
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
    int64_t og_pad = rt_div_up(pl->og, RT_GEMM_MR) * RT_GEMM_MR, npan = rt_div_up(mc, RT_GEMM_MR);
    if (cs->p->wpack == RT_WPACK_CONV_BF16) { /* pair panels (gemm.h), 16-bit units; earlier blocks are even deep */
        const uint16_t *w = (const uint16_t *)cs->w + (int64_t)cs->g * og_pad * rt_pairs(pl->kdim) * 2 +
                            p0 * og_pad + row * rt_pairs(kc) * 2;
        RtPanels pp = {(const float *)(const void *)w, RT_GEMM_MR * rt_pairs(kc), 1};
        if (s->bf16) return pp;
        rt_pairs_widen(pp.p, pp.stride, RT_GEMM_MR, (int)npan, kc, buf, (int64_t)kc * RT_GEMM_MR);
        return (RtPanels){buf, (int64_t)kc * RT_GEMM_MR, 0};
    }
    int64_t first = (int64_t)cs->g * og_pad * pl->kdim + p0 * og_pad + row * kc; /* gemm.h: packed layout */
    if (cs->p->wpack == RT_WPACK_CONV_F32) return (RtPanels){(const float *)cs->w + first, (int64_t)kc * RT_GEMM_MR, 0};
    rt_widen(0, (const uint16_t *)cs->w + first, buf, npan * RT_GEMM_MR * kc);
    return (RtPanels){buf, (int64_t)kc * RT_GEMM_MR, 0};
}

/* ---- the B operand: im2col into sub-panels ------------------------------------- */

/* The 16 values of tap (ky, kx) for output positions [pos, pos + cnt) into
 * d[0..16), zero past cnt and where the window reaches into the padding;
 * src holds the channel's input rows from row_lo on.  Element by element:
 * any stride, any row width. */
static inline void chunk_scalar(const Conv2dParams *p, const float *src, int row_lo, int ky, int kx, int64_t pos,
                                int cnt, float *d)
{
    int oy = (int)(pos / p->ow), ox = (int)(pos % p->ow);
    int iy = oy * p->sh - p->pt + ky * p->dh, ix = ox * p->sw - p->pl + kx * p->dw;
    for (int e = 0; e < RT_GEMM_SUB; e++) {
        int inside = e < cnt && iy >= 0 && iy < p->h && ix >= 0 && ix < p->w;
        d[e] = inside ? src[(int64_t)(iy - row_lo) * p->w + ix] : 0.0f;
        if (++ox == p->ow) ox = 0, iy += p->sh, ix = -p->pl + kx * p->dw; /* next output row */
        else ix += p->sw;
    }
}

/* One k row (tap ky, kx of one channel) for output positions [q0, q0 + n)
 * into column j of the block (element j % 16 of sub-panel j / 16, ps
 * floats apart), the padding columns of the last sub-panel zero.  Portable
 * version: whole chunks inside one input row are copied. */
RT_CLONES static void im2col_row(const Conv2dParams *p, const float *src, int row_lo, int ky, int kx, int64_t q0,
                                 int64_t n, float *blk, int64_t ps)
{
    for (int64_t j = 0; j < n; j += RT_GEMM_SUB) {
        float *d = blk + (j / RT_GEMM_SUB) * ps;
        int cnt = (int)rt_min64(RT_GEMM_SUB, n - j);
        int64_t pos = q0 + j;
        int ox = (int)(pos % p->ow), iy = (int)(pos / p->ow) * p->sh - p->pt + ky * p->dh;
        int ix = ox * p->sw - p->pl + kx * p->dw;
        if (cnt == RT_GEMM_SUB && p->sw == 1 && ox + RT_GEMM_SUB <= p->ow && iy >= 0 && iy < p->h && ix >= 0 &&
            ix + RT_GEMM_SUB <= p->w)
            memcpy(d, src + (int64_t)(iy - row_lo) * p->w + ix, RT_GEMM_SUB * sizeof(float));
        else
            chunk_scalar(p, src, row_lo, ky, kx, pos, cnt, d);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The same with AVX-512 for stride 1: each run of a 16-column chunk that
 * lies in one output row is one (masked, expanding) load of consecutive
 * input values into its lanes, so padding, row ends and 8-wide rows cost
 * no element-by-element work.  The expanding load reads only the valid
 * input values (no address outside the row is formed).  A chunk is the
 * values of cnt positions from output row oy, column ox on, zero past cnt
 * (the callers step (oy, ox) along: no division per chunk). */
#define AVX512 __attribute__((target("avx512f")))
static AVX512 inline __attribute__((always_inline)) __m512 chunk_avx512(const Conv2dParams *p, const float *src,
                                                                        int row_lo, int ky, int kx, int oy, int ox,
                                                                        int cnt)
{
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
    return v;
}

static AVX512 void im2col_row_avx512(const Conv2dParams *p, const float *src, int row_lo, int ky, int kx, int64_t q0,
                                     int64_t n, float *blk, int64_t ps)
{
    int oy = (int)(q0 / p->ow), ox = (int)(q0 % p->ow);
    for (int64_t j = 0; j < n; j += RT_GEMM_SUB) {
        _mm512_storeu_ps(blk + (j / RT_GEMM_SUB) * ps,
                         chunk_avx512(p, src, row_lo, ky, kx, oy, ox, (int)rt_min64(RT_GEMM_SUB, n - j)));
        for (ox += RT_GEMM_SUB; ox >= p->ow; ox -= p->ow) oy++;
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
    int64_t ps = rt_gemm_b_stride(kc), q0 = cs->pos0 + j0;
    int lo, hi; /* the input rows this block reads */
    rows_read(p, q0, nc, &lo, &hi);
    float *slab = NULL;
    int fast = p->sw == 1 && rt_gemm_is_avx512(rt_gemm_arch()); /* whole sub-panels, padding included */
    if (cs->cn) slab = rt_scratch(RT_SCRATCH_SLAB, (size_t)rt_max64(1, (int64_t)(hi - lo) * p->w));
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
    return (RtPanels){buf, ps, 0};
}

#if defined(__x86_64__) && defined(__GNUC__)
/* chunk_scalar as a vector (strides other than 1). */
static AVX512 __m512 chunk_any(const Conv2dParams *p, const float *src, int row_lo, int ky, int kx, int64_t pos,
                               int cnt)
{
    float d[RT_GEMM_SUB];
    chunk_scalar(p, src, row_lo, ky, kx, pos, cnt, d);
    return _mm512_loadu_ps(d);
}

/* bf16 (the GEMM runs on pairs, gemm.h): im2col straight into pair
 * sub-panels, two depth rows at a time, rounded as they are stored; no
 * fp32 block is written.  The two rows of a pair may come from two input
 * channels (kh*kw is odd), so a GroupNorm prologue keeps two slabs, one per
 * channel parity; each channel is still normalised once per block. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static RtPanels conv_b_pairs(const RtGemmSrc *s, int64_t p0,
                                                                                   int kc, int64_t j0, int nc,
                                                                                   float *buf)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const ConvSrc *cs = s->ctx;
    const Conv2dParams *p = cs->p;
    int khw = p->kh * p->kw;
    int64_t ps = rt_pairs_b_stride(kc), q0 = cs->pos0 + j0, nsub = rt_div_up(nc, RT_GEMM_SUB);
    int lo, hi; /* the input rows this block reads */
    rows_read(p, q0, nc, &lo, &hi);
    int64_t slab_n = rt_max64(1, (int64_t)(hi - lo) * p->w);
    float *slabs = cs->cn ? rt_scratch(RT_SCRATCH_SLAB, (size_t)(2 * slab_n)) : NULL;
    const float *src[2] = {NULL, NULL}; /* per channel parity */
    int64_t have[2] = {-1, -1};
    int oy0 = (int)(q0 / p->ow), ox0 = (int)(q0 % p->ow);
    for (int64_t k = p0; k < p0 + kc; k += 2) {
        int rows = k + 1 < p0 + kc ? 2 : 1;
        int ky[2], kx[2];
        const float *rs[2];
        for (int r = 0; r < rows; r++) {
            int64_t ch = (k + r) / khw;
            int t = (int)((k + r) % khw), par = (int)(ch & 1);
            if (have[par] != ch) { /* a channel this block has not read yet */
                have[par] = ch;
                src[par] = cs->x + ch * cs->pl->hw + (int64_t)lo * p->w;
                if (cs->cn) {
                    rt_prologue_channel(slabs + par * slab_n, src[par], (int64_t)(hi - lo) * p->w, &cs->cn[ch], cs->silu);
                    src[par] = slabs + par * slab_n;
                }
            }
            rs[r] = src[par], ky[r] = t / p->kw, kx[r] = t % p->kw;
        }
        float *row = buf + (k - p0) / 2 * RT_GEMM_SUB;
        int oy = oy0, ox = ox0;
        for (int64_t q = 0; q < nsub; q++) {
            int cnt = (int)rt_min64(RT_GEMM_SUB, nc - q * RT_GEMM_SUB);
            __m512 v0, v1 = _mm512_setzero_ps();
            if (p->sw == 1) {
                v0 = chunk_avx512(p, rs[0], lo, ky[0], kx[0], oy, ox, cnt);
                if (rows == 2) v1 = chunk_avx512(p, rs[1], lo, ky[1], kx[1], oy, ox, cnt);
                for (ox += RT_GEMM_SUB; ox >= p->ow; ox -= p->ow) oy++;
            } else {
                int64_t pos = q0 + q * RT_GEMM_SUB;
                v0 = chunk_any(p, rs[0], lo, ky[0], kx[0], pos, cnt);
                if (rows == 2) v1 = chunk_any(p, rs[1], lo, ky[1], kx[1], pos, cnt);
            }
            _mm512_storeu_si512(row + q * ps, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(v1, v0)));
        }
    }
    return (RtPanels){buf, ps, 1};
}
#endif

/* A 1x1, stride 1, unpadded conv without prologue reads the input itself. */
static RtPanels conv_b_direct(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf)
{
    const ConvSrc *cs = s->ctx;
    rt_pack_b_block(0, cs->x + p0 * cs->pl->hw + cs->pos0 + j0, cs->pl->hw, kc, nc, rt_gemm_b_stride(kc), buf);
    return (RtPanels){buf, rt_gemm_b_stride(kc), 0};
}

void rt_conv_tile(const Conv2dParams *p, const RtConvPlan *pl, int g, const float *x, const void *w,
                  const RtChannelNorm *cn, int silu, int64_t o0, int nob, int64_t pos0, int np, const RtGemmEpi *epi,
                  float *y)
{
    ConvSrc cs = {p, pl, x, w, g, o0, pos0, cn, silu};
    int khw = p->kh * p->kw;
    int direct = khw == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl && !p->pb && !p->pr && !cn;
    /* bf16 weights where the CPU has a bf16 dot product: im2col rounded to bf16 too */
    RtGemmSrc src = {conv_a, direct ? conv_b_direct : conv_b, &cs, 0,
                     p->wpack == RT_WPACK_CONV_BF16 && rt_gemm_arch()->kernel_bf16 != NULL};
#if defined(__x86_64__) && defined(__GNUC__)
    if (src.bf16 && !direct) src.b = conv_b_pairs;
#endif
    rt_gemm_run(&src, nob, np, (int)pl->kdim, 1.0f, 0.0f, epi, y, pl->ohw);
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
        const float *xg = x + (nb * p->c + (int64_t)g * pl.cg) * pl.hw;
        RtGemmEpi epi = {.row_bias = b ? b + g * pl.og + o0 : NULL};
        rt_conv_tile(p, &pl, g, xg, w, NULL, 0, o0, nob, p0, (int)np, &epi, yt);
    }
}
