/* gsc_fusion.c — a normalisation (and SiLU) feeding a conv or a linear
 * becomes the prologue of one fused op: the normalised tensor is never
 * stored.
 *
 * The rules (the consumer may be plain or already fused, but must not
 * normalise its input yet; the chain must be what it reads as x):
 *
 *   conv2d(silu(group_norm(x)))  ->  fused_conv2d(x, gamma, beta, w, ...) {norm_groups, eps, silu=1}
 *                                    (every ResNet block twice, conv_norm_out -> conv_out)
 *   conv2d(group_norm(x))        ->  fused_conv2d {norm_groups, eps}
 *                                    (the spatial transformer's norm -> proj_in 1x1 conv)
 *   linear(layer_norm(x))        ->  fused_linear {norm=1, eps}
 *                                    (norm1 -> fused Q/K/V, norm2 -> to_q, norm3 -> GEGLU projection, CLIP)
 *   linear(reshape(permute(group_norm(x), [0,2,3,1]), [B,H*W,C]))
 *                                ->  fused_linear(x, ...) {norm_groups, eps}
 *                                    (the spatial transformer's norm -> proj_in with linear projections, SD 2.x:
 *                                    the kernel also does the NCHW -> tokens transpose while it packs)
 *
 * The kernel computes the statistics in a first pass over x and normalises
 * while it packs the conv's / GEMM's input (runtime/kernels_fused.c).
 * Legal (fusion_legal) when the conv or linear is the only reader of the
 * chain and no link of it is a graph output.  Counters: each rule, and the
 * megabytes of normalised values no longer stored. */
#include "fusion_util.h"

/* v = reshape(permute(group_norm(x), [0,2,3,1]), [B, H*W, C]): the group
 * norm's id, with the permute and the reshape in links[0..1]; -1 if not. */
static int tokens_of_group_norm(const Graph *g, int v, int links[2])
{
    const Node *rs = &g->nodes[v];
    if (rs->op != OP_RESHAPE || rs->ndim != 3) return -1;
    int pm = rs->in[0];
    const Node *pn = &g->nodes[pm];
    int64_t perm[4];
    if (pn->op != OP_PERMUTE || pn->ndim != 4 || node_ints(pn, "perm", perm, 4) != 4 || perm[0] != 0 || perm[1] != 2 ||
        perm[2] != 3 || perm[3] != 1)
        return -1;
    if (rs->shape[0] != pn->shape[0] || rs->shape[1] != pn->shape[1] * pn->shape[2] || rs->shape[2] != pn->shape[3])
        return -1;
    int gn = pn->in[0];
    if (g->nodes[gn].op != OP_GROUP_NORM || g->nodes[gn].ndim != 4) return -1;
    links[0] = pm, links[1] = v;
    return gn;
}

int pass_gsc_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt;
    FusionRewrite r;
    fusion_rewrite_begin(&r, g);
    int n0 = g->n, rc = 0;
    int64_t gsc = 0, gc = 0, ll = 0, gl = 0;
    double bytes = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        FusedGemm f;
        if (!fused_gemm_read(g, i, &f) || f.gamma >= 0) continue;
        /* walk up from the consumer's input: [silu], then the norm; each link read once, by the group */
        int group[4] = {i}, ng = 1, v = f.x;
        if (f.conv && g->nodes[v].op == OP_SILU) {
            if (r.uses[v] != 1 || !fusion_legal(g, r.uses, v, group, ng)) continue;
            group[ng++] = v;
            v = g->nodes[v].in[0];
            f.silu = 1;
        }
        int links[2], gn = f.conv || f.norm_groups ? -1 : tokens_of_group_norm(g, v, links);
        if (gn >= 0) { /* GroupNorm -> tokens -> linear: the transpose goes into the fused op too */
            if (r.uses[links[1]] != 1 || !fusion_legal(g, r.uses, links[1], group, ng)) continue;
            group[ng++] = links[1];
            if (r.uses[links[0]] != 1 || !fusion_legal(g, r.uses, links[0], group, ng)) continue;
            group[ng++] = links[0];
            v = gn;
        }
        const Node *norm = &g->nodes[v];
        if (norm->op != (f.conv || gn >= 0 ? OP_GROUP_NORM : OP_LAYER_NORM) || r.uses[v] != 1 ||
            !fusion_legal(g, r.uses, v, group, ng))
            continue;
        group[ng++] = v;
        for (int k = 1; k < ng; k++) /* a reshape is a view: nothing of its own was stored */
            if (g->nodes[group[k]].op != OP_RESHAPE) bytes += (double)node_bytes(&g->nodes[group[k]]);
        f.x = norm->in[0], f.gamma = norm->in[1], f.beta = norm->in[2];
        f.eps = node_float(norm, "eps", 1e-5);
        if (f.conv || gn >= 0) f.norm_groups = (int)node_int(norm, "groups", 1);
        else f.norm = 1;
        if (fusion_rewrite_gemm(&r, &f, i, group + 1, ng - 1, err) < 0) rc = -1;
        if (gn >= 0) gl++;
        else if (!f.conv) ll++;
        else if (f.silu) gsc++;
        else gc++;
    }
    fusion_rewrite_end(&r);
    pass_count(c, "gn-silu-conv", gsc);
    pass_count(c, "gn-conv", gc);
    pass_count(c, "ln-linear", ll);
    pass_count(c, "gn-linear", gl);
    pass_count(c, "mb-not-stored", (int64_t)(bytes / 1e6));
    return rc;
}
