/* geglu_fusion.c — diffusers' GEGLU (the feed-forward of every
 * transformer block) becomes one op:
 *
 *   z = linear(x, w[2F,K], b)          (or a fused_linear without GEGLU,
 *   h = slice(z) {last axis, 0..F}      residual or output scale yet)
 *   g = slice(z) {last axis, F..2F}
 *   y = mul(h, gelu(g))   (either operand order)
 *
 * ->  y = fused_linear(x, w, b) {geglu=1}: the kernel computes the hidden
 * and the gate columns of each output tile and multiplies them there, so
 * the [tokens, 2F] projection (the largest activation of the feed-forward)
 * is never stored.  Legal (fusion_legal) when the slices and the gelu are
 * read only inside the pattern and z only by the two slices.  Counters:
 * fused, and the megabytes no longer stored (z, the gelu). */
#include "fusion_util.h"

/* v = slice(z) over z's last axis, [start, end): returns z or -1. */
static int last_axis_slice(const Graph *g, int v, int64_t start, int64_t end)
{
    const Node *s = &g->nodes[v];
    if (s->op != OP_SLICE) return -1;
    const Node *z = &g->nodes[s->in[0]];
    if (node_int(s, "axis", -1) != z->ndim - 1 || node_int(s, "start", -1) != start || node_int(s, "end", -1) != end)
        return -1;
    return s->in[0];
}

int pass_geglu_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt;
    FusionRewrite r;
    fusion_rewrite_begin(&r, g);
    int n0 = g->n, rc = 0;
    int64_t fused = 0;
    double bytes = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        const Node *m = &g->nodes[i];
        if (m->op != OP_MUL || m->in[0] == m->in[1]) continue;
        for (int k = 0; k < 2; k++) {
            int gelu = m->in[k], h = m->in[1 - k];
            if (g->nodes[gelu].op != OP_GELU) continue;
            int gs = g->nodes[gelu].in[0];
            const Node *hn = &g->nodes[h];
            int64_t width = hn->ndim ? hn->shape[hn->ndim - 1] : 0;
            int z = last_axis_slice(g, h, 0, width);
            if (width < 1 || z < 0 || last_axis_slice(g, gs, width, 2 * width) != z ||
                g->nodes[z].shape[g->nodes[z].ndim - 1] != 2 * width)
                continue;
            FusedGemm f;
            if (!fused_gemm_read(g, z, &f) || f.conv || f.geglu || f.residual >= 0 || f.out_scale != 1.0) continue;
            int group[4] = {i, gelu, h, gs};
            if (!fusion_legal(g, r.uses, gelu, group, 1) || !fusion_legal(g, r.uses, h, group, 1) ||
                !fusion_legal(g, r.uses, gs, group, 2) || !fusion_legal(g, r.uses, z, group, 4))
                continue;
            bytes += (double)(node_bytes(&g->nodes[z]) + node_bytes(&g->nodes[gelu]));
            f.geglu = 1;
            int dead[4] = {z, h, gs, gelu};
            if (fusion_rewrite_gemm(&r, &f, i, dead, 4, err) < 0) rc = -1;
            fused++;
            break;
        }
    }
    fusion_rewrite_end(&r);
    pass_count(c, "fused", fused);
    pass_count(c, "mb-not-stored", (int64_t)(bytes / 1e6));
    return rc;
}
