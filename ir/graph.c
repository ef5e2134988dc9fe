/* graph.c — building, querying and re-ordering graphs.
 *
 * Names are the identity a reader sees, so every value keeps a unique one:
 * graph_add makes a requested name unique with a numeric suffix, and an
 * absent name becomes the node's index. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void hash_rebuild(Graph *g)
{
    free(g->hash);
    g->hcap = 64;
    while (g->hcap < g->n * 2 + 16) g->hcap *= 2;
    g->hash = xmalloc(sizeof(int) * (size_t)g->hcap);
    for (int i = 0; i < g->hcap; i++) g->hash[i] = -1;
    for (int i = 0; i < g->n; i++) {
        size_t h = hash_str(g->nodes[i].name) & (size_t)(g->hcap - 1);
        while (g->hash[h] >= 0) h = (h + 1) & (size_t)(g->hcap - 1);
        g->hash[h] = i;
    }
}

int graph_find(const Graph *g, const char *name)
{
    if (!g->hash) return -1;
    size_t h = hash_str(name) & (size_t)(g->hcap - 1);
    while (g->hash[h] >= 0) {
        if (strcmp(g->nodes[g->hash[h]].name, name) == 0) return g->hash[h];
        h = (h + 1) & (size_t)(g->hcap - 1);
    }
    return -1;
}

Graph *graph_new(const char *name)
{
    Graph *g = xcalloc(1, sizeof *g);
    g->name = xstrdup(name ? name : "main");
    g->base_dir = xstrdup(".");
    hash_rebuild(g);
    return g;
}

static void node_free_fields(Node *n)
{
    free(n->name);
    free(n->cfile);
    free(n->cdense);
    for (int a = 0; a < n->nattr; a++) free(n->attr[a].s);
}

void graph_free(Graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++) node_free_fields(&g->nodes[i]);
    for (int i = 0; i < g->nkeys; i++) free(g->keys[i]);
    free(g->keys);
    free(g->nodes);
    free(g->outputs);
    free(g->hash);
    free(g->name);
    free(g->base_dir);
    free(g);
}

const char *graph_intern(Graph *g, const char *key)
{
    for (int i = 0; i < g->nkeys; i++)
        if (strcmp(g->keys[i], key) == 0) return g->keys[i];
    g->keys = xrealloc(g->keys, sizeof(char *) * (size_t)(g->nkeys + 1));
    return g->keys[g->nkeys++] = xstrdup(key);
}

/* Deep copy of a node's owned fields; attribute keys re-interned in dst. */
static void node_copy_into(Graph *dst, Node *to, const Node *from)
{
    *to = *from;
    to->name = xstrdup(from->name);
    to->cfile = from->cfile ? xstrdup(from->cfile) : NULL;
    if (from->cdense) {
        to->cdense = xmalloc(sizeof(double) * (size_t)from->ndense);
        memcpy(to->cdense, from->cdense, sizeof(double) * (size_t)from->ndense);
    }
    for (int a = 0; a < from->nattr; a++) {
        to->attr[a].key = graph_intern(dst, from->attr[a].key);
        to->attr[a].s = from->attr[a].s ? xstrdup(from->attr[a].s) : NULL;
    }
}

Graph *graph_clone(const Graph *g)
{
    Graph *c = graph_new(g->name);
    free(c->base_dir);
    c->base_dir = xstrdup(g->base_dir);
    c->cap = g->n > 0 ? g->n : 1;
    c->nodes = xmalloc(sizeof(Node) * (size_t)c->cap);
    for (int i = 0; i < g->n; i++) node_copy_into(c, &c->nodes[i], &g->nodes[i]);
    c->n = g->n;
    c->nout = g->nout;
    c->outputs = xmalloc(sizeof(int) * (size_t)(g->nout ? g->nout : 1));
    memcpy(c->outputs, g->outputs, sizeof(int) * (size_t)g->nout);
    hash_rebuild(c);
    return c;
}

static void hash_insert(Graph *g, int idx)
{
    if (g->n * 2 + 16 > g->hcap) {
        hash_rebuild(g);
        return;
    }
    size_t h = hash_str(g->nodes[idx].name) & (size_t)(g->hcap - 1);
    while (g->hash[h] >= 0) h = (h + 1) & (size_t)(g->hcap - 1);
    g->hash[h] = idx;
}

static char *unique_name(const Graph *g, const char *want, int idx)
{
    char buf[512];
    if (!want || !*want) {
        snprintf(buf, sizeof buf, "%d", idx);
        want = buf;
    }
    if (graph_find(g, want) < 0) return xstrdup(want);
    char cand[600];
    for (int k = 1;; k++) {
        snprintf(cand, sizeof cand, "%s.%d", want, k);
        if (graph_find(g, cand) < 0) return xstrdup(cand);
    }
}

int graph_add(Graph *g, OpKind op, const char *name, int nin, const int *in)
{
    SDC_ASSERT(nin >= 0 && nin <= IR_MAX_IN);
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->nodes = xrealloc(g->nodes, sizeof(Node) * (size_t)g->cap);
    }
    int idx = g->n;
    Node *n = &g->nodes[idx];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    for (int i = 0; i < nin; i++) {
        SDC_ASSERT(in[i] >= 0 && in[i] < idx);
        n->in[i] = in[i];
    }
    n->name = unique_name(g, name, idx);
    g->n++;
    hash_insert(g, idx);
    return idx;
}

static void set_type(Node *n, DType dt, int ndim, const int64_t *shape)
{
    SDC_ASSERT(ndim >= 0 && ndim <= IR_MAX_DIMS);
    n->dtype = dt;
    n->ndim = ndim;
    for (int d = 0; d < ndim; d++) n->shape[d] = shape[d];
}

int graph_add_input(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape)
{
    int id = graph_add(g, OP_INPUT, name, 0, NULL);
    set_type(&g->nodes[id], dt, ndim, shape);
    return id;
}

int graph_add_const_file(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape, const char *file,
                         uint64_t offset, DType stored)
{
    int id = graph_add(g, OP_CONST, name, 0, NULL);
    Node *n = &g->nodes[id];
    set_type(n, dt, ndim, shape);
    n->ckind = CONST_FILE;
    n->cfile = xstrdup(file);
    n->coffset = offset;
    n->cdtype = stored;
    return id;
}

int graph_add_const_dense(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape, const double *vals,
                          int64_t nvals)
{
    int id = graph_add(g, OP_CONST, name, 0, NULL);
    Node *n = &g->nodes[id];
    set_type(n, dt, ndim, shape);
    n->ckind = CONST_DENSE;
    n->ndense = nvals;
    n->cdense = xmalloc(sizeof(double) * (size_t)(nvals ? nvals : 1));
    memcpy(n->cdense, vals, sizeof(double) * (size_t)nvals);
    return id;
}

int graph_add_op(Graph *g, OpKind op, const char *name, int nin, const int *in, int nattr, const Attr *attrs,
                 SdcErr *err)
{
    int id = graph_add(g, op, name, nin, in);
    Node *n = &g->nodes[id];
    for (int a = 0; a < nattr; a++) node_set_attr(g, n, attrs[a]);
    if (op_table[op].infer(g, n, err) < 0 || ir_check_value_size(n, err) < 0) {
        sdc_err_prefix(err, "%%%s = %s", n->name, op_table[op].name);
        return -1;
    }
    return id;
}

void graph_add_output(Graph *g, int node)
{
    g->outputs = xrealloc(g->outputs, sizeof(int) * (size_t)(g->nout + 1));
    g->outputs[g->nout++] = node;
}

void graph_rename(Graph *g, int node, const char *name)
{
    if (strcmp(g->nodes[node].name, name) == 0) return;
    char *old = g->nodes[node].name;
    g->nodes[node].name = xstrdup("\x01"); /* placeholder while choosing */
    hash_rebuild(g);
    char *u = unique_name(g, name, node);
    free(g->nodes[node].name);
    g->nodes[node].name = u;
    free(old);
    hash_rebuild(g);
}

/* --- attributes ----------------------------------------------------------- */

Attr attr_int(const char *key, int64_t v) { return (Attr){.key = key, .kind = ATTR_INT, .i = v}; }
Attr attr_float(const char *key, double v) { return (Attr){.key = key, .kind = ATTR_FLOAT, .f = v}; }
Attr attr_str(const char *key, const char *s) { return (Attr){.key = key, .kind = ATTR_STR, .s = (char *)s}; }

Attr attr_ints(const char *key, int n, const int64_t *v)
{
    Attr a = {.key = key, .kind = ATTR_INTS, .n = n};
    SDC_ASSERT(n >= 0 && n <= IR_MAX_INTS);
    for (int i = 0; i < n; i++) a.ints[i] = v[i];
    return a;
}

const Attr *node_attr(const Node *n, const char *key)
{
    for (int a = 0; a < n->nattr; a++)
        if (strcmp(n->attr[a].key, key) == 0) return &n->attr[a];
    return NULL;
}

int64_t node_int(const Node *n, const char *key, int64_t dflt)
{
    const Attr *a = node_attr(n, key);
    return a && a->kind == ATTR_INT ? a->i : dflt;
}

double node_float(const Node *n, const char *key, double dflt)
{
    const Attr *a = node_attr(n, key);
    if (!a) return dflt;
    if (a->kind == ATTR_FLOAT) return a->f;
    if (a->kind == ATTR_INT) return (double)a->i;
    return dflt;
}

int node_ints(const Node *n, const char *key, int64_t *out, int max)
{
    const Attr *a = node_attr(n, key);
    if (!a || a->kind != ATTR_INTS) return -1;
    for (int i = 0; i < a->n && i < max; i++) out[i] = a->ints[i];
    return a->n;
}

/* Takes a copy of the string of an ATTR_STR; the key is interned. */
void node_set_attr(Graph *g, Node *n, Attr a)
{
    a.key = graph_intern(g, a.key);
    a.s = a.kind == ATTR_STR && a.s ? xstrdup(a.s) : NULL;
    for (int i = 0; i < n->nattr; i++)
        if (n->attr[i].key == a.key) {
            free(n->attr[i].s);
            n->attr[i] = a;
            return;
        }
    SDC_ASSERT(n->nattr < IR_MAX_ATTR);
    n->attr[n->nattr++] = a;
}

/* --- queries ------------------------------------------------------------- */

int64_t node_numel(const Node *n)
{
    int64_t e = 1;
    for (int d = 0; d < n->ndim; d++) e *= n->shape[d];
    return e;
}

uint64_t node_bytes(const Node *n) { return (uint64_t)node_numel(n) * dtype_size(n->dtype); }

const char *node_type_str(const Node *n, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "%s[", dtype_name(n->dtype));
    for (int d = 0; d < n->ndim && at < len; d++)
        at += (size_t)snprintf(buf + at, len - at, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    if (at < len) snprintf(buf + at, len - at, "]");
    return buf;
}

void graph_replace_uses(Graph *g, int from, int to)
{
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (g->nodes[i].in[k] == from) g->nodes[i].in[k] = to;
    for (int o = 0; o < g->nout; o++)
        if (g->outputs[o] == from) g->outputs[o] = to;
}

int *graph_use_counts(const Graph *g)
{
    int *uses = xcalloc((size_t)(g->n ? g->n : 1), sizeof(int));
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) uses[g->nodes[i].in[k]]++;
    for (int o = 0; o < g->nout; o++) uses[g->outputs[o]]++;
    return uses;
}

int graph_is_output(const Graph *g, int node)
{
    for (int o = 0; o < g->nout; o++)
        if (g->outputs[o] == node) return 1;
    return 0;
}

/* --- re-ordering ------------------------------------------------------------ */

/* Post-order DFS from each node in index order: a node appended after its
 * users (as rewrites do) moves to just before its first user; everything
 * else keeps its place.  Iterative, since SD graphs are thousands deep. */
static void topo_visit(const Graph *g, int root, char *state, int *order, int *norder, int *stack, int *iter)
{
    int sp = 0;
    stack[sp] = root;
    iter[sp] = 0;
    state[root] = 1;
    while (sp >= 0) {
        int v = stack[sp];
        const Node *n = &g->nodes[v];
        if (iter[sp] < n->nin) {
            int u = n->in[iter[sp]++];
            SDC_ASSERT(state[u] != 1); /* a cycle would be a pass bug */
            if (state[u] == 0) {
                state[u] = 1;
                sp++;
                stack[sp] = u;
                iter[sp] = 0;
            }
        } else {
            state[v] = 2;
            order[(*norder)++] = v;
            sp--;
        }
    }
}

/* Keeps the nodes with keep[i] set, in a stable topological order. */
static int graph_rebuild(Graph *g, const char *keep)
{
    int n = g->n;
    char *state = xcalloc((size_t)(n ? n : 1), 1);
    int *stack = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int *iter = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int norder = 0;
    for (int i = 0; i < n; i++)
        if (keep[i] && !state[i]) topo_visit(g, i, state, order, &norder, stack, iter);
    int *newid = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) newid[i] = -1;
    for (int k = 0; k < norder; k++) newid[order[k]] = k;
    Node *nodes = xmalloc(sizeof(Node) * (size_t)(g->cap ? g->cap : 1));
    for (int k = 0; k < norder; k++) {
        nodes[k] = g->nodes[order[k]];
        for (int a = 0; a < nodes[k].nin; a++) {
            nodes[k].in[a] = newid[nodes[k].in[a]];
            SDC_ASSERT(nodes[k].in[a] >= 0);
        }
    }
    for (int i = 0; i < n; i++)
        if (newid[i] < 0) node_free_fields(&g->nodes[i]);
    for (int o = 0; o < g->nout; o++) {
        g->outputs[o] = newid[g->outputs[o]];
        SDC_ASSERT(g->outputs[o] >= 0);
    }
    free(g->nodes);
    g->nodes = nodes;
    g->n = norder;
    hash_rebuild(g);
    free(stack);
    free(state);
    free(order);
    free(iter);
    free(newid);
    return n - norder;
}

int graph_compact(Graph *g, int drop_dead)
{
    int n = g->n;
    char *live = xcalloc((size_t)(n ? n : 1), 1);
    int *stack = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int sp = 0;
    /* liveness backwards from outputs (operands may sit after users here) */
    for (int o = 0; o < g->nout; o++)
        if (!live[g->outputs[o]]) live[g->outputs[o]] = 1, stack[sp++] = g->outputs[o];
    for (int i = 0; i < n; i++)
        if ((g->nodes[i].op == OP_INPUT || !drop_dead) && !live[i]) live[i] = 1, stack[sp++] = i;
    while (sp > 0) {
        int v = stack[--sp];
        for (int k = 0; k < g->nodes[v].nin; k++) {
            int u = g->nodes[v].in[k];
            if (!live[u]) live[u] = 1, stack[sp++] = u;
        }
    }
    int dropped = graph_rebuild(g, live);
    free(live);
    free(stack);
    return dropped;
}

int graph_remove_nodes(Graph *g, const char *drop)
{
    char *keep = xmalloc((size_t)(g->n ? g->n : 1));
    for (int i = 0; i < g->n; i++) keep[i] = !drop[i];
    int dropped = graph_rebuild(g, keep);
    free(keep);
    return dropped;
}
