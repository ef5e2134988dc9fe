/* weights.h — binding a model's parameters to tensors in safetensors files.
 *
 * A graph builder asks for each parameter by its diffusers name and the
 * shape the config implies; the WeightSet finds it (through a name
 * translation for single-file LDM checkpoints), checks dtype and shape and
 * returns a constant node that points at the bytes in the mmap-ed file —
 * nothing is copied.  Problems are collected rather than stopping at the
 * first, so that one message reports every missing, mismatched and
 * unexpected tensor (the first few by name, then counts).
 *
 * In collect mode (random-model) no file is read: requests are recorded
 * with their kind so that random weights of the right scale can be made. */
#ifndef SDC_WEIGHTS_H
#define SDC_WEIGHTS_H

#include "ir.h"
#include "safetensors.h"

#define WS_MAX_FILES 16
#define WS_REPORT 4 /* names listed per kind of problem */

/* What a parameter is, for random initialisation and reports. */
typedef enum WeightKind {
    WK_MATRIX,     /* conv or linear weight: N(0, 1/fan_in) */
    WK_BIAS,       /* N(0, 0.05^2) */
    WK_NORM_SCALE, /* 1 + N(0, 0.1^2) */
    WK_NORM_SHIFT, /* N(0, 0.05^2) */
    WK_EMBEDDING,  /* N(0, 0.02^2)... scaled to keep activations O(1) */
} WeightKind;

typedef struct WeightReq {
    char *name;
    WeightKind kind;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
} WeightReq;

/* Maps a diffusers parameter name to the name in the file; returns 0, or -1
 * if the parameter has no counterpart.  *view_ok is set when the file may
 * hold the same numbers with extra unit dims (LDM 1x1 convs for linears). */
typedef int (*WeightTranslate)(void *ctx, const char *name, char *out, size_t len, int *view_ok);

typedef struct WeightSet {
    char *label; /* "unet", for messages */
    int nfiles;
    StFile files[WS_MAX_FILES];
    char *shown[WS_MAX_FILES]; /* file names as shown in messages */
    char *used[WS_MAX_FILES];  /* per tensor of each file */
    const char *prefix;        /* single-file: only tensors under it belong here */
    WeightTranslate translate;
    void *translate_ctx;
    const char *const *ignore; /* names (after prefix) that may be unused, NULL-terminated */
    DType compute;             /* dtype of the constant nodes (f32) */
    /* collect mode */
    int collect;
    int nreq;
    WeightReq *req;
    /* problems */
    int nmissing, nmismatch;
    char *missing[WS_REPORT], *mismatch[WS_REPORT];
} WeightSet;

/* Opens the given safetensors files (shown as `shown[i]`). */
int ws_open(WeightSet *ws, const char *label, int nfiles, const char *const *paths, const char *const *shown,
            SdcErr *err);
/* A WeightSet that records requests instead of binding. */
void ws_collect(WeightSet *ws, const char *label);
void ws_close(WeightSet *ws);

/* Returns a const node for `name` with the given shape (never -1: a
 * placeholder stands in for a missing tensor and the problem is recorded). */
int ws_bind(WeightSet *ws, Graph *g, const char *name, WeightKind kind, int ndim, const int64_t *shape);
/* After building: -1 with a one-line report if any tensor was missing, had
 * the wrong shape or dtype, or was in the file but not used. */
int ws_check(WeightSet *ws, SdcErr *err);

#endif
