/* attention_fusion.c — Q·Kᵀ → scale → (causal mask) → softmax → ·V becomes
 * one attention op.
 *
 * The pattern, as the importer writes diffusers' attention (heads split by
 * reshape + permute around two batched matmuls):
 *
 *   qh = permute(reshape(q, [B,Lq,H,D]), [0,2,1,3])      (likewise kh, vh)
 *   s  = matmul(qh, kh) {transpose_b=1}
 *   s  = scale(s)            optional, any value
 *   s  = causal_mask(s)      optional
 *   p  = softmax(s)
 *   o  = matmul(p, vh)
 *   y  = reshape(permute(o, [0,2,1,3]), [B,Lq,H*Dv])
 *
 * becomes y = attention(q, k, v) {heads=H, scale, causal}: the runtime
 * computes it with an online softmax over key tiles, so the Lq×Lk scores
 * are never stored.  Legal when every intermediate has exactly one user and
 * none is a graph output (otherwise the scores are needed anyway).  The
 * scores matmul's upcast mark (diffusers' upcast_attention) becomes the
 * attention op's upcast: fp32 scores in a bf16 build. */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

typedef struct Match {
    int q, k, v;      /* [B,L,C] sources */
    int out;          /* the final reshape */
    double scale;
    int causal, heads, upcast;
    int chain[16];    /* nodes the attention op replaces */
    int nchain;
} Match;

static int single_use(const Graph *g, const int *uses, int v) { return uses[v] == 1 && !graph_is_output(g, v); }

static int is_perm_0213(const Node *n)
{
    int64_t p[IR_MAX_DIMS];
    return n->op == OP_PERMUTE && n->ndim == 4 && node_ints(n, "perm", p, 4) == 4 && p[0] == 0 && p[1] == 2 && p[2] == 1 &&
           p[3] == 3;
}

/* v = permute(reshape(src [B,L,C] -> [B,L,H,D]), 0213): returns src, or -1. */
static int split_heads_source(const Graph *g, const int *uses, int v, Match *m)
{
    const Node *p = &g->nodes[v];
    if (!is_perm_0213(p) || !single_use(g, uses, v)) return -1;
    int r = p->in[0];
    const Node *rs = &g->nodes[r];
    if (rs->op != OP_RESHAPE || !single_use(g, uses, r)) return -1;
    const Node *src = &g->nodes[rs->in[0]];
    if (src->ndim != 3 || rs->ndim != 4 || rs->shape[0] != src->shape[0] || rs->shape[1] != src->shape[1]) return -1;
    if (m->heads && rs->shape[2] != m->heads) return -1;
    m->heads = (int)rs->shape[2];
    m->chain[m->nchain++] = v;
    m->chain[m->nchain++] = r;
    return rs->in[0];
}

/* Tries to match with `pv` = the softmax·V matmul. */
static int match_at(const Graph *g, const int *uses, int *user, int pv, Match *m)
{
    memset(m, 0, sizeof *m);
    m->scale = 1.0;
    const Node *o = &g->nodes[pv];
    if (o->op != OP_MATMUL || o->ndim != 4 || node_int(o, "transpose_a", 0) || node_int(o, "transpose_b", 0)) return 0;
    m->chain[m->nchain++] = pv;
    int p = o->in[0];
    if (g->nodes[p].op != OP_SOFTMAX || !single_use(g, uses, p)) return 0;
    m->chain[m->nchain++] = p;
    int s = g->nodes[p].in[0];
    for (int steps = 0; steps < 2; steps++) { /* scale and mask, in either order */
        const Node *sn = &g->nodes[s];
        if (!single_use(g, uses, s)) return 0;
        if (sn->op == OP_SCALE && m->scale == 1.0) m->scale = node_float(sn, "value", 1.0);
        else if (sn->op == OP_CAUSAL_MASK && !m->causal) m->causal = 1;
        else break;
        m->chain[m->nchain++] = s;
        s = sn->in[0];
    }
    const Node *qk = &g->nodes[s];
    if (qk->op != OP_MATMUL || !single_use(g, uses, s) || node_int(qk, "transpose_a", 0) || !node_int(qk, "transpose_b", 0))
        return 0;
    m->chain[m->nchain++] = s;
    m->upcast = (int)node_int(qk, "upcast", 0);
    if ((m->q = split_heads_source(g, uses, qk->in[0], m)) < 0) return 0;
    if ((m->k = split_heads_source(g, uses, qk->in[1], m)) < 0) return 0;
    if ((m->v = split_heads_source(g, uses, o->in[1], m)) < 0) return 0;
    /* o -> permute 0213 -> reshape [B,Lq,H*Dv] */
    if (!single_use(g, uses, pv) || user[pv] < 0) return 0;
    int pm = user[pv];
    if (!is_perm_0213(&g->nodes[pm]) || !single_use(g, uses, pm) || user[pm] < 0) return 0;
    int rs = user[pm];
    const Node *rn = &g->nodes[rs];
    if (rn->op != OP_RESHAPE || rn->ndim != 3 || rn->shape[2] != o->shape[1] * o->shape[3]) return 0;
    m->chain[m->nchain++] = pm;
    m->out = rs;
    return 1;
}

int pass_attention_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt;
    int *uses = graph_use_counts(g);
    int *user = xmalloc(sizeof(int) * (size_t)g->n); /* the single user of each node, or -1 */
    for (int i = 0; i < g->n; i++) user[i] = -1;
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) user[g->nodes[i].in[k]] = i;
    char *drop = xcalloc((size_t)g->n + 1, 1);
    int fused = 0, n0 = g->n, rc = 0;
    double scores_bytes = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        Match m;
        if (!match_at(g, uses, user, i, &m)) continue;
        char *name = xstrdup(g->nodes[m.out].name);
        Attr a[4] = {attr_int("heads", m.heads), attr_float("scale", m.scale)};
        int na = 2;
        if (m.causal) a[na++] = attr_int("causal", 1);
        if (m.upcast) a[na++] = attr_int("upcast", 1);
        int id = graph_add_op(g, OP_ATTENTION, "attention", 3, (int[]){m.q, m.k, m.v}, na, a, err);
        if (id < 0) {
            free(name);
            rc = -1;
            break;
        }
        scores_bytes += (double)node_bytes(&g->nodes[g->nodes[i].in[0]]);
        graph_replace_uses(g, m.out, id);
        drop = xrealloc(drop, (size_t)g->n + 1);
        drop[id] = 0;
        drop[m.out] = 1;
        for (int k = 0; k < m.nchain; k++) drop[m.chain[k]] = 1;
        graph_rename(g, m.out, "\x01fused"); /* free the name for the new node */
        graph_rename(g, id, name);
        free(name);
        fused++;
    }
    if (fused && rc == 0) graph_remove_nodes(g, drop);
    pass_count(c, "fused", fused);
    pass_count(c, "scores-mb-avoided", (int64_t)(scores_bytes / 1e6));
    free(uses), free(user), free(drop);
    return rc;
}
