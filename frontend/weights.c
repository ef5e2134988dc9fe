/* weights.c — see weights.h. */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

int ws_open(WeightSet *ws, const char *label, int nfiles, const char *const *paths, const char *const *shown,
            SdcErr *err)
{
    memset(ws, 0, sizeof *ws);
    ws->label = xstrdup(label);
    ws->compute = DT_F32;
    if (nfiles > WS_MAX_FILES) return sdc_err(err, "%s: more than %d weight files", label, WS_MAX_FILES);
    for (int i = 0; i < nfiles; i++) {
        if (st_open(&ws->files[i], paths[i], err) < 0) {
            ws_close(ws);
            return -1;
        }
        ws->nfiles++;
        ws->shown[i] = xstrdup(shown[i]);
        ws->used[i] = xcalloc((size_t)(ws->files[i].n ? ws->files[i].n : 1), 1);
    }
    return 0;
}

void ws_collect(WeightSet *ws, const char *label)
{
    memset(ws, 0, sizeof *ws);
    ws->label = xstrdup(label);
    ws->compute = DT_F32;
    ws->collect = 1;
}

void ws_close(WeightSet *ws)
{
    for (int i = 0; i < ws->nfiles; i++) {
        st_close(&ws->files[i]);
        free(ws->shown[i]);
        free(ws->used[i]);
    }
    for (int i = 0; i < ws->nreq; i++) free(ws->req[i].name);
    for (int i = 0; i < WS_REPORT; i++) free(ws->missing[i]), free(ws->mismatch[i]);
    free(ws->req);
    free(ws->label);
    memset(ws, 0, sizeof *ws);
}

static void note(char **list, int *count, const char *fmt, const char *a, const char *b, const char *c)
{
    if (*count < WS_REPORT) {
        char buf[1024];
        if (snprintf(buf, sizeof buf, fmt, a, b, c) >= (int)sizeof buf) strcpy(buf + sizeof buf - 4, "...");
        list[*count] = xstrdup(buf);
    }
    (*count)++;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && at < len; d++) at += (size_t)snprintf(buf + at, len - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

/* Same numbers, ignoring unit dims (a [C,C,1,1] conv read as a [C,C] matrix). */
static int same_ignoring_units(int na, const int64_t *a, int nb, const int64_t *b)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == 1) i++;
        while (j < nb && b[j] == 1) j++;
        if (i == na || j == nb) return i == na && j == nb;
        if (a[i++] != b[j++]) return 0;
    }
}

/* A constant that stands for a parameter without its bytes: a missing one
 * (the build fails at ws_check) or, in collect mode, every one.  Each gets
 * its own fake offset so that no pass mistakes two of them for one value. */
static int placeholder(WeightSet *ws, Graph *g, const char *name, int ndim, const int64_t *shape)
{
    static uint64_t next;
    return graph_add_const_file(g, name, ws->compute, ndim, shape, CONST_NO_WEIGHTS, ++next, DT_F32);
}

int ws_bind(WeightSet *ws, Graph *g, const char *name, WeightKind kind, int ndim, const int64_t *shape)
{
    if (ws->collect) {
        ws->req = xrealloc(ws->req, sizeof(WeightReq) * (size_t)(ws->nreq + 1));
        WeightReq *r = &ws->req[ws->nreq++];
        r->name = xstrdup(name);
        r->kind = kind;
        r->ndim = ndim;
        memcpy(r->shape, shape, sizeof(int64_t) * (size_t)ndim);
        return placeholder(ws, g, name, ndim, shape);
    }
    char fname[512];
    int view_ok = 0;
    if (ws->translate) {
        if (ws->translate(ws->translate_ctx, name, fname, sizeof fname, &view_ok) < 0) {
            note(ws->missing, &ws->nmissing, "%s (no counterpart%s%s)", name, "", "");
            return placeholder(ws, g, name, ndim, shape);
        }
    } else {
        snprintf(fname, sizeof fname, "%s", name);
    }
    for (int f = 0; f < ws->nfiles; f++) {
        const StTensor *t = st_find(&ws->files[f], fname);
        if (!t) continue;
        ws->used[f][t - ws->files[f].tensors] = 1;
        char have[128], want[128];
        shape_str(t->ndim, t->shape, have, sizeof have);
        shape_str(ndim, shape, want, sizeof want);
        int shape_ok = t->ndim == ndim && memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0;
        if (!shape_ok && view_ok) shape_ok = same_ignoring_units(t->ndim, t->shape, ndim, shape);
        if (!shape_ok) {
            note(ws->mismatch, &ws->nmismatch, "%s: file has %s, config needs %s", fname, have, want);
            return placeholder(ws, g, name, ndim, shape);
        }
        if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16) {
            note(ws->mismatch, &ws->nmismatch, "%s: dtype %s (sdc reads F32, F16, BF16)%s", fname, t->dtype_str, "");
            return placeholder(ws, g, name, ndim, shape);
        }
        return graph_add_const_file(g, name, ws->compute, ndim, shape, ws->files[f].path, t->offset, t->dtype);
    }
    note(ws->missing, &ws->nmissing, "%s%s%s", fname, "", "");
    return placeholder(ws, g, name, ndim, shape);
}

static int is_ignored(const WeightSet *ws, const char *name)
{
    for (int i = 0; ws->ignore && ws->ignore[i]; i++)
        if (strcmp(ws->ignore[i], name) == 0) return 1;
    return 0;
}

/* Appends "N kind (a, b, c, and K more)" to buf. */
static void report(char *buf, size_t len, int count, char *const *names, const char *what)
{
    if (!count) return;
    size_t at = strlen(buf);
    at += (size_t)snprintf(buf + at, len > at ? len - at : 0, "%s%d %s (", at ? "; " : "", count, what);
    for (int i = 0; i < count && i < WS_REPORT; i++)
        at += (size_t)snprintf(buf + at, len > at ? len - at : 0, "%s%s", i ? ", " : "", names[i]);
    if (count > WS_REPORT) at += (size_t)snprintf(buf + at, len > at ? len - at : 0, ", and %d more", count - WS_REPORT);
    snprintf(buf + at, len > at ? len - at : 0, ")");
}

int ws_check(WeightSet *ws, SdcErr *err)
{
    if (ws->collect) return 0;
    char *unexpected[WS_REPORT] = {0};
    int nunexpected = 0;
    size_t plen = ws->prefix ? strlen(ws->prefix) : 0;
    for (int f = 0; f < ws->nfiles; f++)
        for (int t = 0; t < ws->files[f].n; t++) {
            const char *name = ws->files[f].tensors[t].name;
            if (ws->used[f][t]) continue;
            if (plen && strncmp(name, ws->prefix, plen) != 0) continue; /* another component's */
            if (is_ignored(ws, name + plen)) continue;
            note(unexpected, &nunexpected, "%s%s%s", name, "", "");
        }
    if (!ws->nmissing && !ws->nmismatch && !nunexpected) return 0;
    char buf[900] = "";
    report(buf, sizeof buf, ws->nmissing, ws->missing, "missing");
    report(buf, sizeof buf, ws->nmismatch, ws->mismatch, "mismatched");
    report(buf, sizeof buf, nunexpected, unexpected, "unexpected");
    for (int i = 0; i < WS_REPORT; i++) free(unexpected[i]);
    return sdc_err(err, "%s: weights do not fit the config: %s", ws->nfiles == 1 ? ws->shown[0] : ws->label, buf);
}
