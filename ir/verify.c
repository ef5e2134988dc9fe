/* verify.c — checks a graph against the op table.
 *
 * Run after every pass in tests and debug builds: operand counts and
 * order (SSA, topological), attribute names, dtypes and shapes (by
 * re-running type inference on a copy of the node and comparing), outputs. */
#include "ir.h"

#include <string.h>

static int attr_known(const OpInfo *op, const char *key)
{
    size_t len = strlen(key);
    for (const char *p = op->attrs; (p = strstr(p, key)) != NULL; p += len) {
        int starts = p == op->attrs || p[-1] == ' ';
        int ends = p[len] == 0 || p[len] == ' ';
        if (starts && ends) return 1;
    }
    return 0;
}

/* Element and byte counts of the declared type stay within
 * IR_MAX_GRAPH_BYTES, so that node_numel, node_bytes, the memory planner and
 * the backends may multiply dims without overflow checks. */
int ir_check_value_size(const Node *n, SdcErr *err)
{
    char ty[160];
    uint64_t bytes = dtype_size(n->dtype), numel = 1;
    int overflow = 0;
    for (int d = 0; d < n->ndim; d++) {
        if (n->shape[d] < 0) return sdc_err(err, "dimension %d is negative", d);
        /* zero dims are skipped: node_numel's partial products before a zero must fit too */
        if (n->shape[d] > 0) overflow |= __builtin_mul_overflow(numel, (uint64_t)n->shape[d], &numel);
    }
    overflow |= __builtin_mul_overflow(bytes, numel, &bytes);
    if (overflow || bytes > IR_MAX_GRAPH_BYTES)
        return sdc_err(err, "%s is too large (more than %llu EiB)", node_type_str(n, ty, sizeof ty),
                       (unsigned long long)(IR_MAX_GRAPH_BYTES >> 60));
    return 0;
}

/* Adds n's bytes to *total; -1 once the graph holds more than IR_MAX_GRAPH_BYTES
 * (n itself is within it, so the sum cannot wrap). */
static int add_size(const Graph *g, const Node *n, uint64_t *total, SdcErr *err)
{
    *total += node_bytes(n);
    if (*total > IR_MAX_GRAPH_BYTES)
        return sdc_err(err, "graph @%s: its values add up to more than %llu EiB", g->name,
                       (unsigned long long)(IR_MAX_GRAPH_BYTES >> 60));
    return 0;
}

static int node_err(const Node *n, SdcErr *err)
{
    if (n->line) return sdc_err_prefix(err, "line %d: %%%s", n->line, n->name);
    return sdc_err_prefix(err, "%%%s", n->name);
}

int ir_check_sizes(const Graph *g, SdcErr *err)
{
    uint64_t total = 0;
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->ndim < 0 || n->ndim > IR_MAX_DIMS || ir_check_value_size(n, err) < 0)
            return n->ndim < 0 || n->ndim > IR_MAX_DIMS ? sdc_err(err, "%%%s: rank %d out of range", n->name, n->ndim)
                                                       : node_err(n, err);
        if (add_size(g, n, &total, err) < 0) return -1;
    }
    return 0;
}

static int verify_node(const Graph *g, int i, SdcErr *err)
{
    const Node *n = &g->nodes[i];
    const OpInfo *op = &op_table[n->op];
    if ((unsigned)n->op >= OP_COUNT) return sdc_err(err, "unknown op %d", (int)n->op);
    if (n->nin < op->min_in || n->nin > op->max_in) {
        if (op->min_in == op->max_in)
            return sdc_err(err, "%s takes %d operand(s), not %d", op->name, op->min_in, n->nin);
        return sdc_err(err, "%s takes %d to %d operands, not %d", op->name, op->min_in, op->max_in, n->nin);
    }
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] < 0 || n->in[k] >= i)
            return sdc_err(err, "operand %d is not defined before its use", k);
    for (int a = 0; a < n->nattr; a++)
        if (!attr_known(op, n->attr[a].key)) return sdc_err(err, "%s has no attribute %s", op->name, n->attr[a].key);
    /* a value computed once per prompt cannot depend on one computed per call */
    if (n->stage == NODE_STAGE_PROMPT)
        for (int k = 0; k < n->nin; k++) {
            const Node *u = &g->nodes[n->in[k]];
            if (u->stage != NODE_STAGE_PROMPT && u->op != OP_CONST && u->op != OP_INPUT)
                return sdc_err(err, "@prompt value depends on %%%s, which is computed on every call", u->name);
        }
    if (n->ndim < 0 || n->ndim > IR_MAX_DIMS) return sdc_err(err, "rank %d out of range", n->ndim);
    if (ir_check_value_size(n, err) < 0) return -1;
    if (n->op == OP_CONST || n->op == OP_INPUT) return op->infer(g, (Node *)n, err);
    Node tmp = *n;
    if (op->infer(g, &tmp, err) < 0) return -1;
    char want[128], have[128];
    if (tmp.dtype != n->dtype || tmp.ndim != n->ndim || memcmp(tmp.shape, n->shape, sizeof(int64_t) * (size_t)n->ndim))
        return sdc_err(err, "declared type %s, but %s gives %s", node_type_str(n, have, sizeof have), op->name,
                       node_type_str(&tmp, want, sizeof want));
    return 0;
}

int ir_verify(const Graph *g, SdcErr *err)
{
    uint64_t total = 0;
    for (int i = 0; i < g->n; i++) {
        if (verify_node(g, i, err) < 0) return node_err(&g->nodes[i], err);
        if (add_size(g, &g->nodes[i], &total, err) < 0) return -1;
        if (graph_find(g, g->nodes[i].name) != i) return sdc_err(err, "value %%%s is defined twice", g->nodes[i].name);
    }
    if (g->nout == 0) return sdc_err(err, "graph @%s has no outputs", g->name);
    for (int o = 0; o < g->nout; o++)
        if (g->outputs[o] < 0 || g->outputs[o] >= g->n) return sdc_err(err, "output %d is not a value", o);
    return 0;
}
