/* stats.c — sums the op table's cost column over a graph. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

/* Two constants naming the same bytes (a tied weight) count once. */
static int same_source(const Node *a, const Node *b)
{
    return a->ckind == CONST_FILE && b->ckind == CONST_FILE && a->coffset == b->coffset && strcmp(a->cfile, b->cfile) == 0;
}

void graph_stats(const Graph *g, GraphStats *s)
{
    memset(s, 0, sizeof *s);
    s->nodes = g->n;
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        s->ops_by_kind[n->op]++;
        if (n->op == OP_CONST && n->ckind == CONST_FILE) {
            int dup = 0;
            /* quadratic only in the worst case; tied weights are rare and adjacent */
            for (int j = i - 1; j >= 0 && j >= i - 8 && !dup; j--) dup = same_source(n, &g->nodes[j]);
            if (!dup) {
                s->params += node_numel(n);
                s->param_bytes += (double)node_numel(n) * (double)dtype_size(n->cdtype);
            }
            continue;
        }
        OpCost c = {0};
        op_table[n->op].cost(g, n, &c);
        s->flops += c.flops;
        s->flops_by_kind[n->op] += c.flops;
        s->bytes_read += c.bytes_read;
        s->bytes_written += c.bytes_written;
    }
}
