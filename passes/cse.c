/* cse.c — common subexpression elimination.
 *
 * Two nodes are the same value when they have the same op, operands,
 * attributes (in any order), type and, for constants, the same bytes
 * source.  Walking in topological order, a node equal to an earlier one is
 * replaced by it; operands are already canonical when a node is reached, so
 * one pass finds whole equal subtrees.  Inputs are never merged. */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

static int attr_eq(const Attr *a, const Attr *b)
{
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case ATTR_INT: return a->i == b->i;
    case ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case ATTR_STR: return strcmp(a->s, b->s) == 0;
    case ATTR_INTS: return a->n == b->n && memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n) == 0;
    }
    return 0;
}

static int nodes_equal(const Node *a, const Node *b)
{
    if (a->op != b->op || a->dtype != b->dtype || a->ndim != b->ndim || a->nin != b->nin || a->nattr != b->nattr)
        return 0;
    if (memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) || memcmp(a->in, b->in, sizeof(int) * (size_t)a->nin))
        return 0;
    for (int i = 0; i < a->nattr; i++) {
        const Attr *other = node_attr(b, a->attr[i].key);
        if (!other || !attr_eq(&a->attr[i], other)) return 0;
    }
    if (a->op == OP_CONST) {
        if (a->ckind != b->ckind) return 0;
        if (a->ckind == CONST_FILE)
            return strcmp(a->cfile, b->cfile) == 0 && a->coffset == b->coffset && a->cdtype == b->cdtype;
        return a->ndense == b->ndense && memcmp(a->cdense, b->cdense, sizeof(double) * (size_t)a->ndense) == 0;
    }
    return 1;
}

static uint64_t node_hash(const Node *n)
{
    uint64_t h = (uint64_t)n->op * 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < n->nin; k++) h = (h ^ (uint64_t)n->in[k]) * 0x100000001b3ull;
    for (int d = 0; d < n->ndim; d++) h = (h ^ (uint64_t)n->shape[d]) * 0x100000001b3ull;
    if (n->op == OP_CONST && n->ckind == CONST_FILE) h ^= n->coffset * 0xff51afd7ed558ccdull;
    return h;
}

int pass_cse(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt, (void)err;
    int cap = 16;
    while (cap < 2 * g->n + 2) cap *= 2;
    int *table = xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < cap; i++) table[i] = -1;
    int *repl = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    int merged = 0;
    for (int i = 0; i < g->n; i++) {
        Node *n = &g->nodes[i];
        repl[i] = i;
        for (int k = 0; k < n->nin; k++) n->in[k] = repl[n->in[k]];
        if (n->op == OP_INPUT) continue;
        size_t h = node_hash(n) & (size_t)(cap - 1);
        for (; table[h] >= 0; h = (h + 1) & (size_t)(cap - 1))
            if (nodes_equal(&g->nodes[table[h]], n)) break;
        if (table[h] >= 0) {
            repl[i] = table[h];
            merged++;
        } else {
            table[h] = i;
        }
    }
    for (int o = 0; o < g->nout; o++) g->outputs[o] = repl[g->outputs[o]];
    if (merged) {
        char *drop = xcalloc((size_t)g->n, 1);
        for (int i = 0; i < g->n; i++) drop[i] = repl[i] != i;
        graph_remove_nodes(g, drop);
        free(drop);
    }
    pass_count(c, "merged", merged);
    free(table);
    free(repl);
    return 0;
}
