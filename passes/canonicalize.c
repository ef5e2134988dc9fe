/* canonicalize.c — local rewrites to a simpler equal graph.
 *
 * Rules (each a line in rewrite_node):
 *   reshape(x) to x's own shape           -> x
 *   reshape(reshape(x))                    -> reshape(x)
 *   permute(x) by the identity             -> x
 *   permute(permute(x, p), q)              -> permute(x, p∘q)
 *   scale(x) by 1                          -> x
 *   slice(x) covering the whole axis       -> x
 *   concat of one operand                  -> that operand
 *   cast(x) to x's own dtype               -> x
 * A node that becomes unused is removed by the next dce, not here, so
 * the rewrite stays visible in --print-ir-after=canonicalize only as
 * changed uses. */
#include "pass.h"

#include <string.h>

static int same_type(const Node *a, const Node *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* Returns the node that replaces n (n's index if none), or rewrites n in
 * place and returns its index with *folded set. */
static int rewrite_node(Graph *g, int i, int *folded)
{
    Node *n = &g->nodes[i];
    if (n->nin < 1) return i;
    const Node *x = &g->nodes[n->in[0]];
    switch (n->op) {
    case OP_RESHAPE:
        if (same_type(n, x)) return n->in[0];
        if (x->op == OP_RESHAPE) {
            n->in[0] = x->in[0];
            *folded = 1;
        }
        return i;
    case OP_PERMUTE: {
        int64_t p[IR_MAX_DIMS], q[IR_MAX_DIMS];
        node_ints(n, "perm", q, IR_MAX_DIMS);
        int identity = 1;
        for (int d = 0; d < n->ndim; d++) identity &= q[d] == d;
        if (identity) return n->in[0];
        if (x->op == OP_PERMUTE) {
            node_ints(x, "perm", p, IR_MAX_DIMS);
            int64_t r[IR_MAX_DIMS];
            for (int d = 0; d < n->ndim; d++) r[d] = p[q[d]];
            n->in[0] = x->in[0];
            node_set_attr(g, n, attr_ints("perm", n->ndim, r));
            *folded = 1;
        }
        return i;
    }
    case OP_SCALE: return node_float(n, "value", 0) == 1.0 ? n->in[0] : i;
    case OP_SLICE: {
        int64_t axis = node_int(n, "axis", 0);
        return node_int(n, "start", 0) == 0 && node_int(n, "end", 0) == x->shape[axis] ? n->in[0] : i;
    }
    case OP_CONCAT: return n->nin == 1 ? n->in[0] : i;
    case OP_CAST: return same_type(n, x) ? n->in[0] : i;
    default: return i;
    }
}

int pass_canonicalize(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt, (void)err;
    int removed = 0, folded_total = 0;
    for (int i = 0; i < g->n; i++) {
        int folded = 0;
        /* a fold can expose another rule (permute of permute giving the identity) */
        int r = rewrite_node(g, i, &folded);
        while (folded && r == i) {
            folded_total++;
            folded = 0;
            r = rewrite_node(g, i, &folded);
        }
        folded_total += folded;
        if (r != i) {
            graph_replace_uses(g, i, r);
            removed++;
        }
    }
    pass_count(c, "identities", removed);
    pass_count(c, "folded", folded_total);
    return 0;
}
