/* fold_time_embedding.c — the timestep's part of the UNet becomes per-step tables.
 *
 * With the sampler fixed at compile time, the timesteps are known: the
 * sinusoidal embedding, the time MLP and every ResNet block's
 * time_emb_proj(silu(temb)) depend only on the `timestep` input and on
 * weights, so their values at each step can be computed now.  The pass
 * finds the values that depend on `timestep` alone and are used by the rest
 * of the graph (the frontier), evaluates them with the interpreter for
 * every step, writes the tables [steps, ...] to the scratch folder, and
 * replaces each by a row lookup:  reshape(embedding(%step, table)).  The
 * graph gets a new input `step` (i64 [1], the index of the sampler's step);
 * `timestep` stays an input of the graph but is no longer read.
 * Needs the sampler's timesteps and a scratch folder (sdc compile gives
 * both); elsewhere it changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "interp.h"
#include "pass.h"
#include "safetensors.h"

/* Evaluates the frontier values of g for every step: tables[f][step * numel + k]. */
static int evaluate(const Graph *g, int tin, const int *front, int nfront, const PassOptions *opt, float **tables,
                    SdcErr *err)
{
    Graph *h = graph_clone(g);
    free(h->outputs);
    h->outputs = xmalloc(sizeof(int) * (size_t)nfront);
    h->nout = nfront;
    memcpy(h->outputs, front, sizeof(int) * (size_t)nfront);
    int nin = 0;
    Tensor *in[16] = {0}, **out = xcalloc((size_t)nfront, sizeof(Tensor *));
    int tpos = -1, rc = 0;
    for (int i = 0; i < h->n && nin < 16; i++)
        if (h->nodes[i].op == OP_INPUT) {
            if (i == tin) tpos = nin;
            in[nin++] = tensor_like_node(&h->nodes[i]); /* unused inputs stay zero */
        }
    graph_compact(h, 1);
    for (int s = 0; s < opt->n_steps && rc == 0; s++) {
        for (int64_t b = 0; b < tensor_numel(in[tpos]); b++) in[tpos]->f[b] = opt->timesteps[s];
        rc = interp_run(h, in, out, 0, err);
        for (int f = 0; f < nfront && rc == 0; f++) {
            int64_t m = tensor_numel(out[f]);
            memcpy(tables[f] + (int64_t)s * m, out[f]->f, sizeof(float) * (size_t)m);
        }
        for (int f = 0; f < nfront; f++) tensor_free(out[f]), out[f] = NULL;
    }
    for (int i = 0; i < nin; i++) tensor_free(in[i]);
    free(out);
    graph_free(h);
    return rc;
}

int pass_fold_time_embedding(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    int tin = graph_find(g, "timestep");
    if (!opt->scratch_dir || opt->n_steps < 1 || tin < 0 || g->nodes[tin].op != OP_INPUT) return 0;
    /* time-only values: depend on timestep, and on nothing but constants besides */
    char *timeonly = xcalloc((size_t)g->n, 1), *other = xcalloc((size_t)g->n, 1);
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_INPUT) timeonly[i] = i == tin, other[i] = i != tin;
        for (int k = 0; k < n->nin; k++) timeonly[i] |= timeonly[n->in[k]], other[i] |= other[n->in[k]];
    }
    for (int i = 0; i < g->n; i++) timeonly[i] &= !other[i] && i != tin;
    /* the frontier: time-only values read by something else (or returned) */
    int *front = xmalloc(sizeof(int) * (size_t)g->n), nfront = 0;
    char *is_front = xcalloc((size_t)g->n, 1);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) {
            int u = g->nodes[i].in[k];
            if (timeonly[u] && !timeonly[i] && !is_front[u]) is_front[u] = 1, front[nfront++] = u;
        }
    for (int o = 0; o < g->nout; o++)
        if (timeonly[g->outputs[o]] && !is_front[g->outputs[o]]) is_front[g->outputs[o]] = 1, front[nfront++] = g->outputs[o];
    double flops = 0;
    for (int i = 0; i < g->n; i++)
        if (timeonly[i]) {
            OpCost cost = {0};
            op_table[g->nodes[i].op].cost(g, &g->nodes[i], &cost);
            flops += cost.flops;
        }
    int rc = 0;
    if (nfront) {
        float **tables = xcalloc((size_t)nfront, sizeof(float *));
        StEntry *e = xcalloc((size_t)nfront, sizeof(StEntry));
        char **names = xcalloc((size_t)nfront, sizeof(char *));
        for (int f = 0; f < nfront; f++) {
            const Node *n = &g->nodes[front[f]];
            tables[f] = xmalloc(sizeof(float) * (size_t)(node_numel(n) * opt->n_steps));
            size_t len = strlen(n->name) + 16;
            names[f] = xmalloc(len);
            snprintf(names[f], len, "%s.steps", n->name);
            e[f] = (StEntry){.name = names[f], .dtype = DT_F32, .ndim = 2, .shape = {opt->n_steps, node_numel(n)},
                             .data = tables[f]};
        }
        char file[96];
        snprintf(file, sizeof file, "%s_time_tables.safetensors", g->name);
        char *path = path_join(opt->scratch_dir, file);
        rc = evaluate(g, tin, front, nfront, opt, tables, err);
        if (rc == 0) rc = st_write(path, nfront, e, err);
        StFile sf = {0};
        if (rc == 0) rc = st_open(&sf, path, err);
        int step = -1;
        for (int f = 0; f < nfront && rc == 0; f++) {
            if (step < 0) {
                step = graph_find(g, "step");
                if (step < 0 || g->nodes[step].op != OP_INPUT) step = graph_add_input(g, "step", DT_I64, 1, (int64_t[]){1});
            }
            Node *n = &g->nodes[front[f]];
            int64_t m = node_numel(n), shape[IR_MAX_DIMS];
            int ndim = n->ndim;
            memcpy(shape, n->shape, sizeof shape);
            char *nm = xstrdup(n->name);
            const StTensor *t = st_find(&sf, names[f]);
            int table = graph_add_const_file(g, names[f], DT_F32, 2, (int64_t[]){opt->n_steps, m}, path, t->offset, DT_F32);
            int row = graph_add_op(g, OP_EMBEDDING, "", 2, (int[]){step, table}, 0, NULL, err);
            Attr a = attr_ints("shape", ndim, shape);
            int r = row < 0 ? -1 : graph_add_op(g, OP_RESHAPE, "", 1, &row, 1, &a, err);
            if (r < 0) {
                free(nm);
                rc = -1;
                break;
            }
            graph_replace_uses(g, front[f], r);
            graph_rename(g, front[f], "\x01folded");
            graph_rename(g, r, nm);
            free(nm);
        }
        st_close(&sf);
        if (rc == 0) graph_compact(g, 1);
        for (int f = 0; f < nfront; f++) free(tables[f]), free(names[f]);
        free(tables), free(names), free(e), free(path);
    }
    pass_count(c, "tables", nfront);
    pass_count(c, "mflop-per-call-saved", (int64_t)(flops / 1e6));
    free(timeonly), free(other), free(front), free(is_front);
    return rc;
}
