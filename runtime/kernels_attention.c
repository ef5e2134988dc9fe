/* kernels_attention.c — rt_attention: scaled dot-product attention with a
 * tiled online softmax (the flash-attention recurrence) on the GEMM
 * engine's micro-kernel, so that no lq x lk score matrix is ever stored.
 *
 * First K and V of every (batch, head) are packed once, in parallel, as
 * A operands (gemm.h): K as panels of 6 keys x dk, V^T as panels of 6 value
 * channels x lk; every query block of that head reuses them.  A task is one
 * (batch, head, block of ATTN_QB queries); it packs Q^T once as B panels
 * (16 queries each) and walks the keys in blocks of ATTN_KB:
 *   S^T = scale * K Q^T        written by the micro-kernel straight into
 *                              B sub-panels [query/16][key][16]
 *   m' = max(m, colmax S^T);  P = exp(S^T - m');  l = l * exp(m - m') + colsum P
 *   O^T = O^T * exp(m - m') + V^T P   (P is already the B operand)
 * and finally y = (O^T)^T / l.  Keeping S transposed makes the softmax
 * statistics of the queries vector lanes (rt_vec_softmax_panel, one 16-query
 * sub-panel at a time): no horizontal reduction per row, and both GEMMs
 * run full-width tiles (64 queries) even though dk and dv are thin (40 in
 * SD).  With the causal mask, key blocks past the last query of the block
 * are skipped and hidden scores set to -inf.  Each output row is reduced by
 * one task in a fixed key order, so the result does not depend on the
 * thread count.
 *
 * bf16 (p->bf16, on a CPU with a bf16 dot product): K, Q^T and V^T are
 * packed as bf16 pair panels (gemm.h) and both GEMMs run on the bf16
 * micro-kernel; the softmax stays fp32 and writes P straight into pair
 * sub-panels (two key rows per pair).  With upcast (diffusers'
 * upcast_attention) the scores keep fp32 Q and K; only P V is bf16. */
#include "kernels_internal.h"

#include <math.h>

#include "err.h"
#include "gemm.h"

#define ATTN_QB 256 /* queries per task */
#define ATTN_KB 240 /* keys per block: a multiple of 6 (K panels); S^T is 240 x 256 floats (240 KiB) */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

/* exp(x) for x <= 0 (scores minus their running max): Cephes' reduction and
 * polynomial as kernels_vec.c's exp, with vscalefps for the 2^n, and 0 below
 * -87 (masked keys are -inf). */
static AVX512 inline __m512 exp_neg512(__m512 x)
{
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, e, n);
}

/* rt_vec_softmax_panel with one zmm per key row, two rows at a time. */
static AVX512 void softmax_panel_avx512(float *st, int64_t nk, float *mx, float *sum, float *factor)
{
    __m512 m0 = _mm512_loadu_ps(mx), m1 = m0;
    int64_t j = 0;
    for (; j + 1 < nk; j += 2) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(st + j * 16));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(st + j * 16 + 16));
    }
    if (j < nk) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(st + j * 16));
    __m512 old = _mm512_loadu_ps(mx), m = _mm512_max_ps(m0, m1);
    __mmask16 none = _mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ); /* nothing visible yet */
    __m512 f = _mm512_mask_blend_ps(none, exp_neg512(_mm512_sub_ps(old, m)), _mm512_set1_ps(1.0f));
    _mm512_storeu_ps(factor, f);
    _mm512_storeu_ps(mx, m);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (j = 0; j + 1 < nk; j += 2) {
        __m512 e0 = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(st + j * 16), m));
        __m512 e1 = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(st + j * 16 + 16), m));
        _mm512_storeu_ps(st + j * 16, e0);
        _mm512_storeu_ps(st + j * 16 + 16, e1);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
    }
    if (j < nk) {
        __m512 e0 = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(st + j * 16), m));
        _mm512_storeu_ps(st + j * 16, e0);
        s0 = _mm512_add_ps(s0, e0);
    }
    _mm512_storeu_ps(sum, _mm512_fmadd_ps(_mm512_loadu_ps(sum), f, _mm512_add_ps(s0, s1)));
}

/* exp(x) for x <= 0 at bf16's needs: 2^(x log2 e) as 2^n * 2^f, f in
 * [-1/2, 1/2], 2^f by its degree-5 Taylor polynomial (relative error at
 * most 4e-6, far under bf16's 2e-3).  Half the FMAs of exp_neg512: the softmax
 * shares the FMA pipes with the GEMMs around it.  x is clamped at -100
 * (2^-144 is 0 in float; -inf stays finite through f). */
static AVX512 inline __m512 exp_neg512_bf16(__m512 x)
{
    __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-100.0f)), _mm512_set1_ps(1.44269504088896341f));
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.3333558146e-3f); /* ln2^5 / 120 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076e-3f)); /* ln2^4 / 24 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108665e-2f)); /* ln2^3 / 6 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650696e-1f)); /* ln2^2 / 2 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718056e-1f)); /* ln2 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The same, but P goes to pair sub-panels pp ([ceil(nk/2)][16][2] bf16,
 * rounded to nearest even) instead of back into st: keys j and j+1 are
 * one pair, an odd last key pairs with zero.  The sum adds the fp32
 * values (the weights P V uses differ from them by the rounding only);
 * exp is exp_neg512_bf16. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void softmax_panel_pairs(const float *st, int64_t nk,
                                                                                     float *mx, float *sum,
                                                                                     float *factor, float *pp)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 m = _mm512_loadu_ps(mx);
    for (int64_t j = 0; j < nk; j++) m = _mm512_max_ps(m, _mm512_loadu_ps(st + j * 16));
    __m512 old = _mm512_loadu_ps(mx);
    __mmask16 none = _mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    __m512 f = _mm512_mask_blend_ps(none, exp_neg512_bf16(_mm512_sub_ps(old, m)), _mm512_set1_ps(1.0f));
    _mm512_storeu_ps(factor, f);
    _mm512_storeu_ps(mx, m);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; j += 2) {
        __m512 e0 = exp_neg512_bf16(_mm512_sub_ps(_mm512_loadu_ps(st + j * 16), m));
        __m512 e1 = j + 1 < nk ? exp_neg512_bf16(_mm512_sub_ps(_mm512_loadu_ps(st + j * 16 + 16), m)) : _mm512_setzero_ps();
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        _mm512_storeu_si512(pp + j / 2 * 16, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
    }
    _mm512_storeu_ps(sum, _mm512_fmadd_ps(_mm512_loadu_ps(sum), f, _mm512_add_ps(s0, s1)));
}
#endif

static void softmax_panel(int avx512, float *st, int64_t nk, float *mx, float *sum, float *factor)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (avx512) {
        softmax_panel_avx512(st, nk, mx, sum, factor);
        return;
    }
#endif
    (void)avx512;
    rt_vec_softmax_panel(st, nk, mx, sum, factor);
}

/* One head's K (keys x dk) and V^T (dv x keys) as A panels, fp32 or pairs. */
static void pack_kv(const AttentionParams *p, const float *k, const float *v, int qk16, int pv16, float *kd,
                    float *vd)
{
    if (qk16) rt_pack_a_pairs(k, p->ldk, p->lk, p->dk, kd); /* K is row-major: straight into pairs */
    else rt_pack_a_block(0, k, p->ldk, p->lk, p->dk, kd);
    /* V^T is read transposed: fp32 panels first, then pairs */
    int64_t vpan = rt_div_up(p->dv, RT_GEMM_MR);
    float *tmp = pv16 ? rt_scratch(RT_SCRATCH_MAIN, (size_t)(vpan * RT_GEMM_MR * p->lk)) : NULL;
    rt_pack_a_block(1, v, p->ldv, p->dv, p->lk, pv16 ? tmp : vd);
    if (pv16) rt_pairs_from_a(tmp, (int64_t)p->lk * RT_GEMM_MR, (int)vpan, p->lk, vd, RT_GEMM_MR * rt_pairs(p->lk));
}

void rt_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y)
{
    rt_kernels_prepare();
    if (p->b <= 0 || p->heads <= 0 || p->lq <= 0) return;
    SDC_ASSERT(p->lk > 0 && p->dk > 0 && p->dv > 0);
    const RtGemmArch *ar = rt_gemm_arch();
    /* bf16 products where asked and possible; scores stay fp32 under upcast */
    int pv16 = p->bf16 && ar->kernel_bf16 != NULL, qk16 = pv16 && !p->upcast;
    RtMicroKernel *kqk = qk16 ? ar->kernel_bf16 : ar->kernel, *kpv = pv16 ? ar->kernel_bf16 : ar->kernel;
    int64_t dkw = qk16 ? rt_pairs(p->dk) : p->dk; /* words per key (K) or query (Q^T) of depth */
    int64_t lkw = pv16 ? rt_pairs(p->lk) : p->lk; /* words per value channel (V^T) */
    int64_t nbh = (int64_t)p->b * p->heads;
    int64_t klen = rt_div_up(p->lk, RT_GEMM_MR) * RT_GEMM_MR * dkw; /* packed K of one head */
    int64_t vlen = rt_div_up(p->dv, RT_GEMM_MR) * RT_GEMM_MR * lkw; /* packed V^T of one head */
    float *kv = rt_scratch(RT_SCRATCH_ATTN_KV, (size_t)(nbh * (klen + vlen)));

#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t bh = 0; bh < nbh; bh++) {
        int64_t bi = bh / p->heads, h = bh % p->heads;
        pack_kv(p, k + bi * p->lk * p->ldk + h * p->dk, v + bi * p->lk * p->ldv + h * p->dv, qk16, pv16,
                kv + bh * klen, kv + nbh * klen + bh * vlen);
    }

    int64_t qblocks = rt_div_up(p->lq, ATTN_QB);
    int64_t tasks = nbh * qblocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t qb = t % qblocks, bh = t / qblocks;
        int64_t bi = bh / p->heads, h = bh % p->heads;
        int i0 = (int)(qb * ATTN_QB), nq = (int)rt_min64(ATTN_QB, p->lq - i0);
        int qpad = (int)rt_div_up(nq, RT_GEMM_SUB) * RT_GEMM_SUB; /* queries incl. the zero padding of Q */
        const float *kp = kv + bh * klen, *vp = kv + nbh * klen + bh * vlen;

        float *qp = rt_scratch(RT_SCRATCH_PACK_B, (size_t)qpad * p->dk);
        float *st = rt_scratch(RT_SCRATCH_MAIN, (size_t)qpad * ATTN_KB);
        float *ot = rt_scratch(RT_SCRATCH_AUX, (size_t)qpad * (p->dv + 3));
        float *mx = ot + (int64_t)qpad * p->dv, *sum = mx + qpad, *factor = sum + qpad;
        rt_pack_b_block(1, q + (bi * p->lq + i0) * p->ldq + h * p->dk, p->ldq, p->dk, nq, (int64_t)p->dk * RT_GEMM_SUB,
                        qp);
        if (qk16) { /* Q^T as pair sub-panels */
            float *q16 = rt_scratch(RT_SCRATCH_PAIRS_A, (size_t)(qpad * dkw));
            rt_pairs_from_b(qp, (int64_t)p->dk * RT_GEMM_SUB, qpad / RT_GEMM_SUB, p->dk, q16, dkw * RT_GEMM_SUB);
            qp = q16;
        }
        /* P as pair sub-panels (pv16): one per 16 queries, ATTN_KB/2 pairs deep */
        float *pp = pv16 ? rt_scratch(RT_SCRATCH_PAIRS_B, (size_t)qpad * rt_pairs(ATTN_KB)) : NULL;
        rt_vec_fill(mx, qpad, -INFINITY);
        rt_vec_fill(sum, qpad, 0.0f);

        int kend = p->causal ? (int)rt_min64(p->lk, i0 + nq) : p->lk;
        const RtTileStore scores = {.alpha = p->scale, .beta = 0.0f, .scale = 1.0f};
        const RtTileStore first = {.alpha = 1.0f, .beta = 0.0f, .scale = 1.0f};
        const RtTileStore more = {.alpha = 1.0f, .beta = 1.0f, .scale = 1.0f};
        for (int j0 = 0; j0 < kend; j0 += ATTN_KB) {
            int nk = (int)rt_min64(ATTN_KB, kend - j0);
            int64_t ps = (int64_t)nk * RT_GEMM_SUB;               /* sub-panel stride of S^T */
            int64_t pps = rt_pairs(nk) * RT_GEMM_SUB;             /* and of P's pairs */
            /* S^T[nk][qpad] = scale * K Q^T, as B sub-panels */
            for (int jr = 0; jr < qpad; jr += ar->nr)
                for (int ir = 0; ir < nk; ir += RT_GEMM_MR)
                    kqk(dkw, kp + (int64_t)(j0 + ir) / RT_GEMM_MR * RT_GEMM_MR * dkw, qp + (int64_t)jr * dkw,
                        dkw * RT_GEMM_SUB, st + jr / RT_GEMM_SUB * ps + ir * RT_GEMM_SUB, RT_GEMM_SUB, ps,
                        (int)rt_min64(RT_GEMM_MR, nk - ir), (int)rt_min64(ar->nr, qpad - jr), &scores);
            if (p->causal) /* key j0 + j is hidden from queries i0 + r < j0 + j */
                for (int j = 0; j < nk; j++)
                    for (int r = 0; r < nq && i0 + r < j0 + j; r++)
                        st[r / RT_GEMM_SUB * ps + j * RT_GEMM_SUB + r % RT_GEMM_SUB] = -INFINITY;
            for (int s = 0; s < qpad; s += RT_GEMM_SUB) {
#if defined(__x86_64__) && defined(__GNUC__)
                if (pv16) {
                    softmax_panel_pairs(st + s / RT_GEMM_SUB * ps, nk, mx + s, sum + s, factor + s,
                                        pp + s / RT_GEMM_SUB * pps);
                    continue;
                }
#endif
                softmax_panel(rt_gemm_is_avx512(ar), st + s / RT_GEMM_SUB * ps, nk, mx + s, sum + s, factor + s);
            }
            if (j0 > 0)
                for (int d = 0; d < p->dv; d++) {
                    float *od = ot + (int64_t)d * qpad;
                    rt_vec_binary(RT_MUL, qpad, od, 1, factor, 1, od);
                }
            /* O^T[dv][qpad] (+)= V^T P; the first block sets O^T.  j0 is even: pairs start on a whole word */
            const float *pb = pv16 ? pp : st;
            int64_t pbs = pv16 ? pps : ps, vstep = pv16 ? j0 / 2 : j0;
            for (int jr = 0; jr < qpad; jr += ar->nr)
                for (int ir = 0; ir < p->dv; ir += RT_GEMM_MR)
                    kpv(pv16 ? rt_pairs(nk) : nk, vp + (int64_t)ir * lkw + vstep * RT_GEMM_MR,
                        pb + jr / RT_GEMM_SUB * pbs, pbs, ot + (int64_t)ir * qpad + jr, qpad, RT_GEMM_SUB,
                        (int)rt_min64(RT_GEMM_MR, p->dv - ir), (int)rt_min64(ar->nr, qpad - jr),
                        j0 > 0 ? &more : &first);
        }
        for (int r = 0; r < nq; r++) {
            float inv = 1.0f / sum[r], *yr = y + (bi * p->lq + i0 + r) * p->ldy + h * p->dv;
            for (int d = 0; d < p->dv; d++) yr[d] = ot[(int64_t)d * qpad + r] * inv;
        }
    }
}
