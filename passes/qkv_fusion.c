/* qkv_fusion.c — the query, key and value projections of a self-attention
 * become one GEMM whose output the attention reads in place:
 *
 *   q = linear(x, wq, bq)   k = linear(x, wk, bk)   v = linear(x, wv, bv)
 *   y = attention(q, k, v)
 * ->
 *   qkv = linear(x, concat(wq, wk, wv), concat(bq, bk, bv))     [B, L, 3C]
 *   y   = attention_qkv(qkv)
 *
 * x is read once and three GEMMs become one three times as wide.  The
 * attention reads q, k and v as the thirds of each qkv row (row stride 3C,
 * AttentionParams' ldq/ldk/ldv): attention_qkv is attention with its
 * operands packed, so nothing is sliced or copied and the memory plan needs
 * no notion of strided views.
 *
 * The concatenated weights are new constants.  With a scratch folder (sdc
 * compile) they are computed now and written there as one safetensors file
 * (fusion_fold_consts), and the separate weights go; without one (sdc opt,
 * tests) the concat stays in the graph, which the interpreter and the C
 * backend run like any op (a copy of the weights on every call).
 *
 * Legal when q, k, v are three plain linears of the same x with the same
 * weight shape, all with a bias or none, each read only by the attention
 * (fusion_legal).  Run it after attention-fusion (it matches the attention
 * op) and before gsc-fusion (the LayerNorm before the three projections has
 * three readers until they are one).  Cross-attention (K and V from the
 * text) is left alone: hoist-text-kv computes it once per prompt. */
#include <stdlib.h>
#include <string.h>

#include "fusion_util.h"

/* q, k, v: linear(x, w[C,K] (, b)) with one x and one weight shape. */
static int same_projection(const Graph *g, int q, int k)
{
    const Node *a = &g->nodes[q], *b = &g->nodes[k];
    if (a->op != OP_LINEAR || b->op != OP_LINEAR || a->in[0] != b->in[0] || a->nin != b->nin) return 0;
    const Node *wa = &g->nodes[a->in[1]], *wb = &g->nodes[b->in[1]];
    return wa->ndim == 2 && wb->ndim == 2 && wa->shape[0] == wb->shape[0] && wa->shape[1] == wb->shape[1];
}

/* "<q's module>.to_qkv<suffix>": attn1.to_q -> attn1.to_qkv, self_attn.q_proj -> self_attn.to_qkv. */
static void qkv_name(const char *qname, const char *suffix, char *buf, size_t len)
{
    const char *dot = strrchr(qname, '.');
    int mod = dot ? (int)(dot - qname) : 0;
    snprintf(buf, len, "%.*s%sto_qkv%s", mod, qname, dot ? "." : "", suffix);
}

/* Folds the concatenated weights into constants in the scratch folder and
 * drops the separate weights that nothing else reads. */
static int fold(FusionRewrite *r, const int *cat, int ncat, const char *dir, int *folded, SdcErr *err)
{
    Graph *g = r->g;
    int *todo = xmalloc(sizeof(int) * (size_t)(ncat ? ncat : 1)), n = 0;
    for (int i = 0; i < ncat; i++) {
        const Node *c = &g->nodes[cat[i]];
        int all_const = 1;
        for (int k = 0; k < c->nin; k++) all_const &= g->nodes[c->in[k]].op == OP_CONST;
        if (!all_const) continue;
        todo[n++] = cat[i];
        for (int k = 0; k < c->nin; k++)
            if (--r->uses[c->in[k]] == 0 && !graph_is_output(g, c->in[k])) r->drop[c->in[k]] = 1;
    }
    int rc = fusion_fold_consts(g, todo, n, dir, "qkv", err);
    *folded = n;
    free(todo);
    return rc;
}

int pass_qkv_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    FusionRewrite r;
    fusion_rewrite_begin(&r, g);
    int n0 = g->n, rc = 0, ncat = 0, folded = 0;
    int *cat = xmalloc(sizeof(int) * (size_t)(2 * n0 + 1));
    int64_t fused = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        const Node *a = &g->nodes[i];
        if (a->op != OP_ATTENTION) continue;
        int qkv[3] = {a->in[0], a->in[1], a->in[2]}, group[1] = {i}, ok = 1;
        if (qkv[0] == qkv[1] || qkv[1] == qkv[2] || qkv[0] == qkv[2]) continue;
        for (int k = 0; k < 3 && ok; k++)
            ok = same_projection(g, qkv[0], qkv[k]) && r.uses[qkv[k]] == 1 && fusion_legal(g, r.uses, qkv[k], group, 1);
        if (!ok) continue;
        const Node *q = &g->nodes[qkv[0]];
        int has_bias = q->nin == 3, x = q->in[0], stage = a->stage;
        char name[512];
        int ops[3];
        Attr axis = attr_int("axis", 0);
        int lin_in[3] = {x, -1, -1};
        for (int part = 1; part <= 1 + has_bias && rc == 0; part++) { /* 1: weights, 2: biases */
            for (int k = 0; k < 3; k++) ops[k] = g->nodes[qkv[k]].in[part];
            qkv_name(g->nodes[qkv[0]].name, part == 1 ? ".weight" : ".bias", name, sizeof name);
            int id = graph_add_op(g, OP_CONCAT, name, 3, ops, 1, &axis, err);
            if (id < 0) rc = -1;
            else g->nodes[id].stage = stage, fusion_rewrite_added(&r, id), cat[ncat++] = lin_in[part] = id;
        }
        if (rc < 0) break;
        qkv_name(g->nodes[qkv[0]].name, "", name, sizeof name);
        int lin = graph_add_op(g, OP_LINEAR, name, 2 + has_bias, lin_in, 0, NULL, err);
        if (lin < 0) {
            rc = -1;
            break;
        }
        g->nodes[lin].stage = stage;
        fusion_rewrite_added(&r, lin);
        a = &g->nodes[i];
        Attr at[4];
        int na = 0;
        at[na++] = attr_int("heads", node_int(a, "heads", 1));
        at[na++] = attr_float("scale", node_float(a, "scale", 1.0));
        if (node_int(a, "causal", 0)) at[na++] = attr_int("causal", 1);
        if (node_int(a, "upcast", 0)) at[na++] = attr_int("upcast", 1);
        int att = graph_add_op(g, OP_ATTENTION_QKV, "attention", 1, &lin, na, at, err);
        if (att < 0) {
            rc = -1;
            break;
        }
        fusion_rewrite_node(&r, att, i, qkv, 3);
        fused++;
    }
    if (rc == 0 && opt->scratch_dir) rc = fold(&r, cat, ncat, opt->scratch_dir, &folded, err);
    fusion_rewrite_end(&r);
    free(cat);
    pass_count(c, "fused", fused);
    pass_count(c, "folded-weights", folded);
    return rc;
}
