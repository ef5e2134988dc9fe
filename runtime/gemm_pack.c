/* gemm_pack.c — packing GEMM operands into the micro-kernel's layout
 * (gemm.h): blocks of plain matrices at run time, and whole weights once,
 * when `sdc compile` writes the weights file (kernels.h: rt_pack_weight).
 *
 * Packed A: panels of RT_GEMM_MR rows, each [k][MR]; packed B: sub-panels
 * of 16 columns, each [k][16].  Padding rows and columns are zero, so the
 * micro-kernel can always run full tiles. */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "err.h"
#include "kernels_internal.h"

void rt_pack_a_block(int trans, const float *a, int64_t lda, int mc, int kc, float *dst)
{
    for (int i0 = 0; i0 < mc; i0 += RT_GEMM_MR, dst += (int64_t)kc * RT_GEMM_MR) {
        int rows = mc - i0 < RT_GEMM_MR ? mc - i0 : RT_GEMM_MR;
        if (trans) { /* A stored [k][m]: each k gives `rows` contiguous values */
            const float *src = a + i0;
            for (int k = 0; k < kc; k++) {
                float *d = dst + (int64_t)k * RT_GEMM_MR;
                for (int i = 0; i < rows; i++) d[i] = src[k * lda + i];
                for (int i = rows; i < RT_GEMM_MR; i++) d[i] = 0.0f;
            }
        } else if (rows == RT_GEMM_MR) {
            const float *r0 = a + i0 * lda, *r1 = r0 + lda, *r2 = r1 + lda, *r3 = r2 + lda, *r4 = r3 + lda,
                        *r5 = r4 + lda;
            for (int k = 0; k < kc; k++) {
                float *d = dst + (int64_t)k * RT_GEMM_MR;
                d[0] = r0[k], d[1] = r1[k], d[2] = r2[k], d[3] = r3[k], d[4] = r4[k], d[5] = r5[k];
            }
        } else {
            for (int k = 0; k < kc; k++) {
                float *d = dst + (int64_t)k * RT_GEMM_MR;
                for (int i = 0; i < rows; i++) d[i] = a[(i0 + i) * lda + k];
                for (int i = rows; i < RT_GEMM_MR; i++) d[i] = 0.0f;
            }
        }
    }
}

void rt_pack_b_block(int trans, const float *b, int64_t ldb, int kc, int nc, int64_t ps, float *dst)
{
    int full = nc / RT_GEMM_SUB, rest = nc % RT_GEMM_SUB;
    if (!trans) { /* B stored [k][n]: row k goes to row k of every sub-panel (the source is read in order) */
        for (int k = 0; k < kc; k++) {
            const float *src = b + k * ldb;
            float *d = dst + (int64_t)k * RT_GEMM_SUB;
            for (int q = 0; q < full; q++) memcpy(d + q * ps, src + q * RT_GEMM_SUB, RT_GEMM_SUB * sizeof(float));
            if (rest) {
                memcpy(d + full * ps, src + full * RT_GEMM_SUB, (size_t)rest * sizeof(float));
                memset(d + full * ps + rest, 0, (size_t)(RT_GEMM_SUB - rest) * sizeof(float));
            }
        }
        return;
    }
    /* B stored [n][k]: column j of sub-panel q is row 16q + j of the source */
    for (int q = 0; q <= full; q++) {
        int cols = q < full ? RT_GEMM_SUB : rest;
        if (cols == 0) break;
        float *d = dst + q * ps;
        if (cols < RT_GEMM_SUB) memset(d, 0, (size_t)ps * sizeof(float));
        for (int j = 0; j < cols; j++) {
            const float *src = b + (int64_t)(q * RT_GEMM_SUB + j) * ldb;
            for (int k = 0; k < kc; k++) d[(int64_t)k * RT_GEMM_SUB + j] = src[k];
        }
    }
}

/* ---- providers over plain matrices ------------------------------------------ */

RtPanels rt_gemm_plain_a(const RtGemmSrc *s, int64_t i0, int mc, int64_t p0, int kc, float *buf)
{
    const RtPlainOperand *a = &((const RtGemmOperands *)s->ctx)->a;
    const float *at = a->trans ? a->p + p0 * a->ld + i0 : a->p + i0 * a->ld + p0;
    if (s->bf16 && !a->trans) { /* rounded straight into pair panels (buf has room: they are smaller) */
        rt_pack_a_pairs(at, a->ld, mc, kc, buf);
        return (RtPanels){buf, RT_GEMM_MR * rt_pairs(kc), 1};
    }
    rt_pack_a_block(a->trans, at, a->ld, mc, kc, buf);
    return (RtPanels){buf, (int64_t)kc * RT_GEMM_MR};
}

RtPanels rt_gemm_plain_b(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf)
{
    const RtPlainOperand *b = &((const RtGemmOperands *)s->ctx)->b;
    const float *bt = b->trans ? b->p + j0 * b->ld + p0 : b->p + p0 * b->ld + j0;
    rt_pack_b_block(b->trans, bt, b->ld, kc, nc, rt_gemm_b_stride(kc), buf);
    return (RtPanels){buf, rt_gemm_b_stride(kc)};
}

static RtPanels packed_b(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf);

void rt_gemm_use_packed_b(RtGemmSrc *src, RtGemmOperands *ops, const void *w, int pack, int64_t bk, int64_t bn,
                          int64_t bj0)
{
    SDC_ASSERT(src->ctx == ops && pack >= RT_WPACK_LINEAR_F32 && pack <= RT_WPACK_LINEAR_BF16);
    ops->bpacked = w, ops->bpack = pack, ops->bk = bk, ops->bn = bn, ops->bj0 = bj0;
    src->b = packed_b;
    src->bf16 = pack == RT_WPACK_LINEAR_BF16 && rt_gemm_arch()->kernel_bf16 != NULL;
    src->b_in_place = pack == RT_WPACK_LINEAR_F32 || src->bf16;
}

static RtPanels packed_b(const RtGemmSrc *s, int64_t p0, int kc, int64_t j0, int nc, float *buf)
{
    const RtGemmOperands *o = s->ctx;
    int64_t j = o->bj0 + j0;
    SDC_ASSERT(j % RT_GEMM_SUB == 0 && p0 % rt_gemm_kc(o->bk) == 0);
    int64_t npad = rt_div_up(o->bn, RT_GEMM_SUB) * RT_GEMM_SUB, nsub = rt_div_up(nc, RT_GEMM_SUB);
    if (o->bpack == RT_WPACK_LINEAR_BF16) { /* pair sub-panels (gemm.h), 16-bit units */
        const uint16_t *w = (const uint16_t *)o->bpacked + p0 * npad + j / RT_GEMM_SUB * RT_GEMM_SUB * rt_pairs(kc) * 2;
        RtPanels pp = {(const float *)(const void *)w, rt_pairs(kc) * RT_GEMM_SUB, 1};
        if (s->bf16) return pp;
        rt_pairs_widen(pp.p, pp.stride, RT_GEMM_SUB, (int)nsub, kc, buf, (int64_t)kc * RT_GEMM_SUB);
        return (RtPanels){buf, (int64_t)kc * RT_GEMM_SUB, 0};
    }
    int64_t first = p0 * npad + j / RT_GEMM_SUB * kc * RT_GEMM_SUB;
    if (o->bpack == RT_WPACK_LINEAR_F32)
        return (RtPanels){(const float *)o->bpacked + first, (int64_t)kc * RT_GEMM_SUB, 0};
    rt_widen(0, (const uint16_t *)o->bpacked + first, buf, nsub * RT_GEMM_SUB * kc);
    return (RtPanels){buf, (int64_t)kc * RT_GEMM_SUB, 0};
}

void rt_pairs_widen(const float *src, int64_t sstride, int width, int panels, int kc, float *dst, int64_t dstride)
{
    for (int q = 0; q < panels; q++) {
        const uint16_t *s = (const uint16_t *)(const void *)(src + q * sstride);
        float *d = dst + q * dstride;
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < width; i++) d[k * width + i] = bf16_to_f32(s[(k / 2 * width + i) * 2 + k % 2]);
    }
}

/* ---- weights packed at compile time ------------------------------------------- */

static int pack_is_conv(RtWeightPack pack) { return pack >= RT_WPACK_CONV_F32 && pack <= RT_WPACK_CONV_BF16; }

static DType pack_dtype(RtWeightPack pack)
{
    switch (pack) {
    case RT_WPACK_CONV_F16:
    case RT_WPACK_LINEAR_F16: return DT_F16;
    case RT_WPACK_CONV_BF16:
    case RT_WPACK_LINEAR_BF16: return DT_BF16;
    default: return DT_F32;
    }
}

int64_t rt_packed_weight_size(RtWeightPack pack, int groups, int64_t rows, int64_t k)
{
    SDC_ASSERT(pack > RT_WPACK_NONE && pack < RT_WPACK_COUNT && groups >= 1 && rows % groups == 0);
    /* bf16 pairs: an odd depth gets a zero high half in its last pair */
    int64_t depth = pack_dtype(pack) == DT_BF16 ? rt_pairs(k) * 2 : k;
    int64_t numel = pack_is_conv(pack) ? groups * rt_div_up(rows / groups, RT_GEMM_MR) * RT_GEMM_MR * depth
                                       : rt_div_up(rows, RT_GEMM_SUB) * RT_GEMM_SUB * depth;
    return numel * (int64_t)dtype_size(pack_dtype(pack));
}

/* bf16: each depth block's fp32 panels (f, as the f32 packing has them) into
 * pair panels at dst; width = RT_GEMM_MR (A) or RT_GEMM_SUB (B). */
static void pairs_block(const float *f, int width, int64_t panels, int kcb, uint16_t *dst)
{
    int64_t kp = rt_pairs(kcb);
    for (int64_t q = 0; q < panels; q++) {
        const float *s = f + q * kcb * width;
        uint16_t *d = dst + q * kp * width * 2;
        for (int64_t t = 0; t < kp * width * 2; t++) {
            int64_t k = t / (width * 2) * 2 + t % 2, i = t / 2 % width;
            d[t] = k < kcb ? f32_to_bf16(s[k * width + i]) : 0;
        }
    }
}

void rt_pack_weight(RtWeightPack pack, int groups, int64_t rows, int64_t k, const float *w, void *dst)
{
    DType dt = pack_dtype(pack);
    int conv = pack_is_conv(pack);
    int64_t kc = rt_gemm_kc(k), og = rows / groups, og_pad = rt_div_up(og, RT_GEMM_MR) * RT_GEMM_MR;
    int64_t npad = rt_div_up(rows, RT_GEMM_SUB) * RT_GEMM_SUB;
    /* one depth block of one group in f32 panels at a time, then stored in the pack's dtype */
    int64_t blk_rows = conv ? og_pad : npad;
    float *f = xmalloc(sizeof(float) * (size_t)(blk_rows * kc));
    int64_t gstride = blk_rows * (dt == DT_BF16 ? rt_pairs(k) * 2 : k); /* elements per group */
    for (int g = 0; g < (conv ? groups : 1); g++)
        for (int64_t p0 = 0; p0 < k; p0 += kc) { /* depth block by depth block (gemm.h) */
            int kcb = (int)rt_min64(kc, k - p0);
            if (conv) /* A panels: rows of this group */
                rt_pack_a_block(0, w + g * og * k + p0, k, (int)og, kcb, f);
            else /* B = w^T: B[k][j] = w[j][k] */
                rt_pack_b_block(1, w + p0, k, kcb, (int)rows, (int64_t)kcb * RT_GEMM_SUB, f);
            int64_t at = g * gstride + p0 * blk_rows, n = blk_rows * kcb; /* earlier blocks are even deep */
            int width = conv ? RT_GEMM_MR : RT_GEMM_SUB;
            if (dt == DT_BF16) pairs_block(f, width, blk_rows / width, kcb, (uint16_t *)dst + at);
            else if (dt == DT_F16) dtype_from_f32(DT_F16, f, (uint16_t *)dst + at, (size_t)n);
            else memcpy((float *)dst + at, f, sizeof(float) * (size_t)n);
        }
    free(f);
}

#define STR_(x) #x
#define STR(x) STR_(x)
const char *rt_weight_packing(void)
{
    return "packed GEMM weights: conv A panels of " STR(RT_GEMM_MR) " rows, linear B panels of " STR(RT_GEMM_SUB)
           " columns, depth blocks of at most " STR(RT_GEMM_KC_MAX) "; bf16 as depth pairs";
}
