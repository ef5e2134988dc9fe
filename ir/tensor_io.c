/* tensor_io.c — see tensor_io.h. */
#include "tensor_io.h"

#include <stdlib.h>
#include <string.h>

Tensor *tensor_io_read(const StFile *f, const StTensor *t, DType as, SdcErr *err)
{
    if (t->ndim > IR_MAX_DIMS) {
        sdc_err(err, "%s: tensor \"%s\" has %d dims (at most %d)", f->path, t->name, t->ndim, IR_MAX_DIMS);
        return NULL;
    }
    Tensor *x = tensor_new(as, t->ndim, t->shape);
    int64_t n = st_numel(t);
    if (x->f) {
        if (st_read_f32(f, t, x->f, err) < 0) goto fail;
        return x;
    }
    const void *raw = st_data(f, t);
    for (int64_t k = 0; k < n; k++) {
        switch (t->dtype) {
        case DT_I64: memcpy(&x->i[k], (const char *)raw + 8 * k, 8); break;
        case DT_I32: {
            int32_t v;
            memcpy(&v, (const char *)raw + 4 * k, 4);
            x->i[k] = v;
            break;
        }
        default:
            sdc_err(err, "%s: tensor \"%s\": expected integers (I32 or I64), found %s", f->path, t->name, t->dtype_str);
            goto fail;
        }
    }
    return x;
fail:
    tensor_free(x);
    return NULL;
}

int tensor_io_load_inputs(const Graph *g, const char *path, Tensor ***in, int *nin, SdcErr *err)
{
    int count = 0;
    for (int i = 0; i < g->n; i++) count += g->nodes[i].op == OP_INPUT;
    *in = xcalloc((size_t)(count ? count : 1), sizeof(Tensor *));
    *nin = 0;
    if (count == 0) return 0;
    if (!path) return sdc_err(err, "the graph has %d input(s): give them with --inputs FILE.safetensors", count);
    StFile f;
    if (st_open(&f, path, err) < 0) return -1;
    int rc = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT) continue;
        const StTensor *t = st_find(&f, n->name);
        char want[128];
        if (!t) {
            rc = sdc_err(err, "%s: no tensor named \"%s\" for graph input %%%s", path, n->name, n->name);
            break;
        }
        int ok = t->ndim == n->ndim;
        for (int d = 0; ok && d < n->ndim; d++) ok = t->shape[d] == n->shape[d];
        if (!ok) {
            rc = sdc_err(err, "%s: tensor \"%s\" has the wrong shape (graph input is %s)", path, n->name,
                         node_type_str(n, want, sizeof want));
            break;
        }
        Tensor *x = tensor_io_read(&f, t, n->dtype, err);
        if (!x) {
            rc = -1;
            break;
        }
        (*in)[(*nin)++] = x;
    }
    st_close(&f);
    return rc;
}

int tensor_io_save(const char *path, int n, const char *const *names, Tensor *const *t, SdcErr *err)
{
    StEntry *e = xcalloc((size_t)(n ? n : 1), sizeof *e);
    void **bufs = xcalloc((size_t)(n ? n : 1), sizeof(void *));
    for (int k = 0; k < n; k++) {
        const Tensor *x = t[k];
        int64_t numel = tensor_numel(x);
        e[k].name = names[k];
        e[k].dtype = x->dtype;
        e[k].ndim = x->ndim;
        memcpy(e[k].shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        bufs[k] = xmalloc((size_t)numel * dtype_size(x->dtype) + 1);
        if (x->f) {
            dtype_from_f32(x->dtype, x->f, bufs[k], (size_t)numel);
        } else if (x->dtype == DT_I64) {
            memcpy(bufs[k], x->i, sizeof(int64_t) * (size_t)numel);
        } else {
            for (int64_t i = 0; i < numel; i++) ((int32_t *)bufs[k])[i] = (int32_t)x->i[i];
        }
        e[k].data = bufs[k];
    }
    int rc = st_write(path, n, e, err);
    for (int k = 0; k < n; k++) free(bufs[k]);
    free(bufs);
    free(e);
    return rc;
}
