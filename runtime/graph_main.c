/* graph_main.c — see graph_main.h. */
#include "graph_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "progress.h"
#include "safetensors.h"

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "error: %s%s\n", msg, arg ? arg : "");
    return 1;
}

/* A whole decimal number in [lo, hi] (atoi would take "x" as 0). */
static int parse_count(const char *flag, const char *v, long lo, long hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "error: %s: \"%s\" is not an integer in [%ld, %ld]\n", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int graph_main(const SdcStandaloneGraph *g, int argc, char **argv)
{
    const char *inputs = NULL, *out = NULL, *weights = NULL;
    int threads = 0, repeat = 1;
    for (int i = 1; i < argc; i += 2) { /* flag, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return fail("missing value for ", a);
        if (strcmp(a, "--inputs") == 0) inputs = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--weights") == 0) weights = v;
        else if (strcmp(a, "--threads") == 0) {
            if (parse_count(a, v, 0, 4096, &threads) < 0) return 1;
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_count(a, v, 1, 1000000, &repeat) < 0) return 1;
        }
        else return fail("unknown option ", a);
    }
    if (!out) return fail("--out is required", NULL);
    char wpath[4096];
    if (!weights) {
        ssize_t n = readlink("/proc/self/exe", wpath, sizeof wpath - 16);
        if (n < 0) return fail("cannot find the executable's path", NULL);
        wpath[n] = 0;
        strcat(wpath, ".weights");
        weights = wpath;
    }
    rt_set_threads(threads);
    SdcErr err = {{0}};
    StFile wf = {0}, inf = {0};
    if (st_open(&wf, weights, &err) < 0) return fail(err.msg, NULL);
    char want[32];
    pipeline_weights_id_str(g->weights_id, want);
    const char *have = st_meta(&wf, "sdc.weights_id");
    if (!have || strcmp(have, want) != 0) return st_close(&wf), fail(weights, ": weights file of another build");
    void *in[SDC_STANDALONE_MAX_IO] = {0}, *res[SDC_STANDALONE_MAX_IO] = {0};
    int rc = 1;
    if (g->nin && (!inputs || st_open(&inf, inputs, &err) < 0)) {
        fprintf(stderr, "error: %s\n", inputs ? err.msg : "--inputs is required");
        goto done;
    }
    for (int k = 0; k < g->nin; k++) {
        const SdcTensorDesc *d = &g->in[k];
        const StTensor *t = st_find(&inf, d->name);
        int64_t numel = 1;
        for (int j = 0; j < d->ndim; j++) numel *= d->shape[j];
        if (!t || st_numel(t) != numel) {
            fprintf(stderr, "error: %s: tensor \"%s\" missing or of the wrong size\n", inputs, d->name);
            goto done;
        }
        in[k] = xmalloc((size_t)numel * 8 + 8);
        if (d->is_int) {
            float *tmp = xmalloc((size_t)numel * 4 + 4);
            if (st_read_f32(&inf, t, tmp, &err) < 0) {
                free(tmp);
                fprintf(stderr, "error: %s\n", err.msg);
                goto done;
            }
            for (int64_t j = 0; j < numel; j++) ((int64_t *)in[k])[j] = (int64_t)tmp[j];
            free(tmp);
        } else if (st_read_f32(&inf, t, in[k], &err) < 0) {
            fprintf(stderr, "error: %s\n", err.msg);
            goto done;
        }
    }
    StEntry e[SDC_STANDALONE_MAX_IO];
    for (int k = 0; k < g->nout; k++) {
        const SdcTensorDesc *d = &g->out[k];
        int64_t numel = 1;
        for (int j = 0; j < d->ndim; j++) numel *= d->shape[j];
        res[k] = xcalloc((size_t)numel + 1, 4);
        e[k] = (StEntry){.name = d->name, .dtype = DT_F32, .ndim = d->ndim, .data = res[k]};
        memcpy(e[k].shape, d->shape, sizeof d->shape);
    }
    uint8_t *arena = aligned_alloc(64, (g->arena_bytes + 63) / 64 * 64 + 64);
    if (!arena) {
        fprintf(stderr, "error: cannot allocate %llu bytes of activation memory\n", (unsigned long long)g->arena_bytes);
        goto done;
    }
    double t0 = rt_now();
    for (int r = 0; r < repeat; r++) g->run(arena, wf.base, in, res);
    double dt = (rt_now() - t0) / (repeat > 0 ? repeat : 1);
    free(arena);
    if (repeat > 1) fprintf(stderr, "%.6f s per run\n", dt);
    if (st_write(out, g->nout, e, &err) < 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    for (int k = 0; k < SDC_STANDALONE_MAX_IO; k++) free(in[k]), free(res[k]);
    st_close(&inf);
    st_close(&wf);
    return rc;
}
