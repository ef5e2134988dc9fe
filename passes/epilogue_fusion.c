/* epilogue_fusion.c — what is done to a conv's or a linear's output right
 * after it, element by element, moves into its epilogue: the output tile is
 * finished while it is in cache instead of being stored, read and stored
 * again.
 *
 * The rules (P: a conv2d, linear or fused op read only by the add/scale):
 *
 *   add(P, t), t [N|1,O,1,1], P a conv  ->  chan_add = t   (a ResNet block's time embedding)
 *   add(P, r) or add(r, P), r P's type  ->  residual = r   (ResNet skip, attention, feed-forward
 *                                                           and proj_out residuals, CLIP)
 *   scale(P)                            ->  out_scale *= value  (output_scale_factor)
 *
 * The fused op computes (conv + bias + chan_add + residual) * out_scale, so
 * an add needs P's out_scale to be 1, a chan_add needs P to have no
 * residual yet, and each slot is filled once.  When both operands of an
 * add qualify, the one computed later absorbs the add and reads the other
 * as its residual (which was computed first and is live anyway).  The bias
 * is in the fused ops from the start (a conv's or linear's own operand).
 * Counters: each rule, and the megabytes of outputs no longer stored. */
#include <string.h>

#include "fusion_util.h"

enum { EP_NONE, EP_CHAN_ADD, EP_RESIDUAL };

static int same_type(const Node *a, const Node *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* How `add` (reading P and t) can go into P's epilogue, given P as f. */
static int add_kind(const Graph *g, const FusedGemm *f, int p, int t, int add)
{
    const Node *pn = &g->nodes[p], *tn = &g->nodes[t], *an = &g->nodes[add];
    if (f->out_scale != 1.0 || f->residual >= 0 || !same_type(pn, an)) return EP_NONE;
    if (same_type(tn, pn)) return EP_RESIDUAL;
    if (f->conv && f->chan_add < 0 && tn->ndim == 4 && tn->dtype == pn->dtype &&
        (tn->shape[0] == pn->shape[0] || tn->shape[0] == 1) && tn->shape[1] == pn->shape[1] && tn->shape[2] == 1 &&
        tn->shape[3] == 1)
        return EP_CHAN_ADD;
    return EP_NONE;
}

int pass_epilogue_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt;
    FusionRewrite r;
    fusion_rewrite_begin(&r, g);
    int n0 = g->n, rc = 0;
    int64_t chan = 0, res = 0, scale = 0;
    double bytes = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_ADD && n->op != OP_SCALE) continue;
        FusedGemm f, best;
        int p = -1, kind = EP_NONE, group[1] = {i};
        for (int k = 0; k < n->nin; k++) { /* the producer computed last wins */
            int cand = n->in[k], other = n->nin == 2 ? n->in[1 - k] : -1;
            if (cand < p || r.uses[cand] != 1 || !fused_gemm_read(g, cand, &f) || !fusion_legal(g, r.uses, cand, group, 1))
                continue;
            int kd = n->op == OP_SCALE ? EP_NONE : add_kind(g, &f, cand, other, i);
            if (n->op == OP_ADD && kd == EP_NONE) continue;
            if (n->op == OP_ADD && kd == EP_CHAN_ADD) best = f, best.chan_add = other;
            else if (n->op == OP_ADD) best = f, best.residual = other;
            else best = f, best.out_scale *= node_float(n, "value", 1.0);
            p = cand, kind = kd;
        }
        if (p < 0) continue;
        bytes += (double)node_bytes(&g->nodes[p]);
        if (fusion_rewrite_gemm(&r, &best, i, &p, 1, err) < 0) rc = -1;
        chan += kind == EP_CHAN_ADD, res += kind == EP_RESIDUAL, scale += kind == EP_NONE;
    }
    fusion_rewrite_end(&r);
    pass_count(c, "time-add", chan);
    pass_count(c, "residual-add", res);
    pass_count(c, "scale", scale);
    pass_count(c, "mb-not-stored", (int64_t)(bytes / 1e6));
    return rc;
}
