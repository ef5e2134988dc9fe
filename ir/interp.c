/* interp.c — runs a graph node by node with the op table's exec column. */
#include "interp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct Interp {
    const Graph *g;
    Tensor **vals;
};

int64_t tensor_numel(const Tensor *t)
{
    int64_t e = 1;
    for (int d = 0; d < t->ndim; d++) e *= t->shape[d];
    return e;
}

Tensor *tensor_new(DType dt, int ndim, const int64_t *shape)
{
    Tensor *t = xcalloc(1, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    size_t n = (size_t)tensor_numel(t);
    if (dtype_is_float(dt))
        t->f = xcalloc(n ? n : 1, sizeof(float));
    else
        t->i = xcalloc(n ? n : 1, sizeof(int64_t));
    return t;
}

Tensor *tensor_like_node(const Node *n) { return tensor_new(n->dtype, n->ndim, n->shape); }

void tensor_free(Tensor *t)
{
    if (!t) return;
    free(t->f);
    free(t->i);
    free(t);
}

/* Rounds float32 values to the precision of dt (no-op for f32). */
static void round_to(DType dt, float *x, int64_t n)
{
    if (dt == DT_F16)
        for (int64_t k = 0; k < n; k++) x[k] = f16_to_f32(f32_to_f16(x[k]));
    else if (dt == DT_BF16)
        for (int64_t k = 0; k < n; k++) x[k] = bf16_to_f32(f32_to_bf16(x[k]));
}

static char *join_path(const char *dir, const char *file)
{
    if (file[0] == '/' || !dir || !*dir || strcmp(dir, ".") == 0) return xstrdup(file);
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

Tensor *interp_load_const(const Graph *g, const Node *n, SdcErr *err)
{
    Tensor *t = tensor_like_node(n);
    int64_t numel = node_numel(n);
    if (n->ckind == CONST_DENSE) {
        for (int64_t k = 0; k < numel; k++) {
            double v = n->cdense[n->ndense == 1 ? 0 : k];
            if (t->f)
                t->f[k] = (float)v;
            else
                t->i[k] = (int64_t)v;
        }
        if (t->f) round_to(n->dtype, t->f, numel);
        return t;
    }
    char *path = join_path(g->base_dir, n->cfile);
    size_t bytes = (size_t)numel * dtype_size(n->cdtype);
    void *raw = xmalloc(bytes ? bytes : 1);
    FILE *f = fopen(path, "rb");
    int ok = f && fseeko(f, (off_t)n->coffset, SEEK_SET) == 0 && fread(raw, 1, bytes, f) == bytes;
    if (!ok) {
        sdc_err(err, "%s: cannot read %zu bytes at offset %llu for constant %%%s%s%s", path, bytes,
                (unsigned long long)n->coffset, n->name, f ? "" : ": ", f ? "" : strerror(errno));
        if (f) fclose(f);
        free(raw), free(path), tensor_free(t);
        return NULL;
    }
    fclose(f);
    if (t->f) {
        if (dtype_is_float(n->cdtype) || n->cdtype == DT_I32 || n->cdtype == DT_I64)
            dtype_to_f32(n->cdtype, raw, t->f, (size_t)numel);
        round_to(n->dtype, t->f, numel);
    } else {
        for (int64_t k = 0; k < numel; k++) {
            switch (n->cdtype) {
            case DT_I32: t->i[k] = ((int32_t *)raw)[k]; break;
            case DT_I64: t->i[k] = ((int64_t *)raw)[k]; break;
            default: {
                float v;
                dtype_to_f32(n->cdtype, (char *)raw + (size_t)k * dtype_size(n->cdtype), &v, 1);
                t->i[k] = (int64_t)v;
            }
            }
        }
    }
    free(raw);
    free(path);
    return t;
}

int exec_input(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)it, (void)n, (void)in, (void)out, (void)err;
    return 0; /* filled by interp_run */
}

int exec_const(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err)
{
    (void)in;
    Tensor *t = interp_load_const(it->g, n, err);
    if (!t) return -1;
    /* move the data into out */
    free(out->f), free(out->i);
    out->f = t->f, out->i = t->i;
    t->f = NULL, t->i = NULL;
    tensor_free(t);
    return 0;
}

static int same_shape(const Tensor *t, const Node *n)
{
    if (t->ndim != n->ndim) return 0;
    for (int d = 0; d < n->ndim; d++)
        if (t->shape[d] != n->shape[d]) return 0;
    return 1;
}

int interp_run(const Graph *g, Tensor *const *inputs, Tensor **outputs, int verbose, SdcErr *err)
{
    Interp it = {.g = g, .vals = xcalloc((size_t)(g->n ? g->n : 1), sizeof(Tensor *))};
    int *last_use = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    for (int i = 0; i < g->n; i++) last_use[i] = i;
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) last_use[g->nodes[i].in[k]] = i;
    for (int o = 0; o < g->nout; o++) last_use[g->outputs[o]] = g->n; /* kept */
    int rc = 0, next_input = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        const Node *n = &g->nodes[i];
        if (verbose) fprintf(stderr, "interp: %%%s = %s\n", n->name, op_table[n->op].name);
        if (n->op == OP_INPUT) {
            const Tensor *src = inputs[next_input++];
            char want[128];
            if (src->dtype != n->dtype || !same_shape(src, n)) {
                rc = sdc_err(err, "input %%%s: expected %s", n->name, node_type_str(n, want, sizeof want));
                break;
            }
            Tensor *t = tensor_like_node(n);
            int64_t numel = tensor_numel(t);
            if (t->f) memcpy(t->f, src->f, sizeof(float) * (size_t)numel), round_to(n->dtype, t->f, numel);
            else memcpy(t->i, src->i, sizeof(int64_t) * (size_t)numel);
            it.vals[i] = t;
            continue;
        }
        Tensor *in[IR_MAX_IN];
        for (int k = 0; k < n->nin; k++) in[k] = it.vals[n->in[k]];
        Tensor *out = tensor_like_node(n);
        if (op_table[n->op].exec(&it, n, in, out, err) < 0) {
            sdc_err_prefix(err, "%%%s = %s", n->name, op_table[n->op].name);
            tensor_free(out);
            rc = -1;
            break;
        }
        if (out->f) round_to(n->dtype, out->f, tensor_numel(out));
        it.vals[i] = out;
        for (int k = 0; k < n->nin; k++) {
            int u = n->in[k];
            if (last_use[u] == i && it.vals[u]) tensor_free(it.vals[u]), it.vals[u] = NULL;
        }
    }
    for (int o = 0; o < g->nout; o++) {
        int v = g->outputs[o];
        if (rc == 0) {
            /* two outputs may name the same value: copy for the second */
            int first = 1;
            for (int p = 0; p < o; p++) first &= g->outputs[p] != v;
            if (first) {
                outputs[o] = it.vals[v];
            } else {
                Tensor *c = tensor_like_node(&g->nodes[v]);
                int64_t numel = tensor_numel(c);
                if (c->f) memcpy(c->f, it.vals[v]->f, sizeof(float) * (size_t)numel);
                else memcpy(c->i, it.vals[v]->i, sizeof(int64_t) * (size_t)numel);
                outputs[o] = c;
            }
        }
    }
    for (int i = 0; i < g->n; i++) {
        int is_out = 0;
        for (int o = 0; o < g->nout; o++) is_out |= g->outputs[o] == i;
        if (!is_out || rc) tensor_free(it.vals[i]);
    }
    free(it.vals);
    free(last_use);
    return rc;
}
