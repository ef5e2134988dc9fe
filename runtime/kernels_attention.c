/* kernels_attention.c — rt_attention: scaled dot-product attention with a
 * tiled online softmax (the flash-attention recurrence), so that no lq x lk
 * score matrix is ever stored.
 *
 * A task is one (batch, head, block of ATTN_QB queries).  It walks the keys
 * in blocks of ATTN_KB:
 *   S = scale * Q K^T                       (rt_gemm, stored transposed: [nk, nq])
 *   m' = max(m, rowmax S);  P = exp(S - m');  l = l * exp(m - m') + rowsum P
 *   O = O * exp(m - m') + P V               (rt_gemm, beta = 1)
 * and finally y = O / l.  S is kept keys x queries so that the softmax
 * statistics of the queries are vector lanes (rt_vec_softmax_step): no
 * horizontal reduction per row.  With the causal mask, key blocks past the
 * last query of the block are skipped and hidden scores set to -inf.  Each
 * output row is reduced by one task in a fixed key order, so the result
 * does not depend on the thread count.  QB = KB = 256 measured best among
 * 64..1024 for SD's dk = 40 (the GEMMs are thin: dk deep, dv wide). */
#include "kernels_internal.h"

#include <math.h>

#include "err.h"

#define ATTN_QB 256 /* queries per task */
#define ATTN_KB 256 /* keys per block: S is QB*KB floats (256 KiB) */

void rt_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y)
{
    rt_kernels_prepare();
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
            rt_gemm(0, 1, nk, nq, p->dk, p->scale, kh + j0 * p->ldk, p->ldk, qt, p->ldq, 0.0f, st, nq);
            if (p->causal) /* key j0+j is hidden from queries i0+r < j0+j */
                for (int j = 0; j < nk; j++) rt_vec_fill(st + (int64_t)j * nq, rt_min64(nq, j0 + j - i0), -INFINITY);
            rt_vec_softmax_step(st, nk, nq, mx, sum, factor, col);
            if (j0 > 0) rt_vec_scale_rows(o, nq, p->dv, factor);
            /* O[nq, dv] (+)= P V, P = (S^T)^T; the first block sets O */
            rt_gemm(1, 0, nq, p->dv, nk, 1.0f, st, nq, vh + j0 * p->ldv, p->ldv, j0 > 0 ? 1.0f : 0.0f, o, p->dv);
        }
        for (int r = 0; r < nq; r++)
            rt_vec_scale(y + (bi * p->lq + i0 + r) * p->ldy + h * p->dv, o + (int64_t)r * p->dv, p->dv,
                         1.0f / sum[r]);
    }
}
