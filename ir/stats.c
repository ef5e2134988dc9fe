/* stats.c — sums the op table's cost column over a graph. */
#include "stats.h"

#include "memplan.h"

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

/* Does v reach a conv2d, or a linear (the tokens of a spatial transformer),
 * through silu, reshapes and permutes?  (Its first user, each step.) */
static int feeds_conv(const Graph *g, int v, const int *first_user)
{
    for (int depth = 0; depth < 4 && v >= 0; depth++) {
        int u = first_user[v];
        if (u < 0) return 0;
        OpKind op = g->nodes[u].op;
        if (op == OP_CONV2D || op == OP_LINEAR) return 1;
        if (op != OP_SILU && op != OP_RESHAPE && op != OP_PERMUTE) return 0;
        v = u;
    }
    return 0;
}

void graph_mem_stats(const Graph *g, MemStats *m)
{
    memset(m, 0, sizeof *m);
    MemPlan p;
    memplan_compute(g, &p);
    m->planned_peak = p.peak;
    m->lower_bound = p.lower_bound;
    m->prompt_bytes = p.persist_bytes;
    int *first_user = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    for (int i = 0; i < g->n; i++) first_user[i] = -1;
    for (int i = g->n - 1; i >= 0; i--)
        for (int k = 0; k < g->nodes[i].nin; k++) first_user[g->nodes[i].in[k]] = i;
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_INPUT || n->op == OP_CONST || n->op == OP_RESHAPE) continue;
        m->bytes_materialised += (double)node_bytes(n);
        if (n->op == OP_SOFTMAX && n->ndim >= 2 && n->shape[n->ndim - 1] > 1 && n->shape[n->ndim - 2] > 1)
            m->attention_score_buffers++;
        if (n->op == OP_GROUP_NORM && feeds_conv(g, i, first_user)) m->stored_norm_before_conv++;
        if (n->op == OP_PERMUTE) m->layout_conversions++, m->layout_conversion_bytes += (double)node_bytes(n);
        if (p.kind[i] != BUF_ARENA || p.root[i] != i) continue;
        /* keep the largest few, sorted, by insertion */
        uint64_t bytes = node_bytes(n);
        if (m->nlargest == STATS_LARGEST && node_bytes(&g->nodes[m->largest[STATS_LARGEST - 1]]) >= bytes) continue;
        int at = m->nlargest < STATS_LARGEST ? m->nlargest++ : STATS_LARGEST - 1;
        while (at > 0 && node_bytes(&g->nodes[m->largest[at - 1]]) < bytes) {
            m->largest[at] = m->largest[at - 1];
            at--;
        }
        m->largest[at] = i;
    }
    free(first_user);
    memplan_free(&p);
}

void stats_print_json(const Graph *g, FILE *out, const char *ind)
{
    GraphStats s;
    MemStats m;
    graph_stats(g, &s);
    graph_mem_stats(g, &m);
    fprintf(out, "{\n%s  \"nodes\": %d,\n%s  \"params\": %lld,\n%s  \"param_bytes\": %.0f,\n", ind, s.nodes, ind,
            (long long)s.params, ind, s.param_bytes);
    fprintf(out, "%s  \"flops\": %.0f,\n%s  \"bytes_moved\": %.0f,\n%s  \"bytes_materialised\": %.0f,\n", ind, s.flops,
            ind, s.bytes_read + s.bytes_written, ind, m.bytes_materialised);
    fprintf(out, "%s  \"planned_peak_bytes\": %llu,\n%s  \"peak_lower_bound_bytes\": %llu,\n%s  \"prompt_bytes\": %llu,\n",
            ind, (unsigned long long)m.planned_peak, ind, (unsigned long long)m.lower_bound, ind,
            (unsigned long long)m.prompt_bytes);
    fprintf(out, "%s  \"attention_score_buffers\": %d,\n%s  \"stored_norm_before_conv\": %d,\n", ind,
            m.attention_score_buffers, ind, m.stored_norm_before_conv);
    fprintf(out, "%s  \"layout_conversions\": {\"count\": %d, \"bytes\": %.0f},\n", ind, m.layout_conversions,
            m.layout_conversion_bytes);
    fprintf(out, "%s  \"ops_by_kind\": {", ind);
    for (int op = 0, k = 0; op < OP_COUNT; op++)
        if (s.ops_by_kind[op]) fprintf(out, "%s\"%s\": %d", k++ ? ", " : "", op_table[op].name, s.ops_by_kind[op]);
    fprintf(out, "},\n%s  \"fusions\": {", ind);
    for (int op = 0, k = 0; op < OP_COUNT; op++)
        if (s.ops_by_kind[op] && ((op_table[op].flags & OPF_FUSED) || op == OP_ATTENTION))
            fprintf(out, "%s\"%s\": %d", k++ ? ", " : "", op_table[op].name, s.ops_by_kind[op]);
    fprintf(out, "},\n%s  \"largest_buffers\": [", ind);
    for (int k = 0; k < m.nlargest; k++) {
        const Node *n = &g->nodes[m.largest[k]];
        fprintf(out, "%s\n%s    {\"name\": \"%s\", \"shape\": [", k ? "," : "", ind, n->name);
        for (int d = 0; d < n->ndim; d++) fprintf(out, d ? ", %lld" : "%lld", (long long)n->shape[d]);
        fprintf(out, "], \"bytes\": %llu}", (unsigned long long)node_bytes(n));
    }
    fprintf(out, "%s]\n%s}", m.nlargest ? "\n" : "", ind);
}
