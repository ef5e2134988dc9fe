/* safetensors.h — reading and writing .safetensors tensor files.
 *
 * The format: an 8-byte little-endian u64 header length N, N bytes of JSON
 * (an object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}
 * with offsets relative to the data section, plus an optional "__metadata__"
 * object of string -> string), then the data section.
 *
 * One reader serves the model importer, the interpreter's --inputs files, the
 * LoRA/merge tools and the generated executables, so it treats every file as
 * hostile: st_open checks every field (types, sizes with checked arithmetic,
 * offsets inside the file, no overlaps, no duplicate names) before handing out
 * a single pointer.  After a successful open, every tensor's bytes
 * [offset, offset + nbytes) lie inside [base, base + size).
 *
 * The writer streams: the header goes out first from the descriptions, then
 * each tensor's bytes in order, so merging a large model holds one tensor at a
 * time.  It writes "<path>.tmp.<pid>", fsyncs and renames, so no half-written
 * file is ever left under the final name. */
#ifndef SDC_SAFETENSORS_H
#define SDC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20) /* bytes of JSON header we agree to parse */

typedef struct StTensor {
    char *name;
    DType dtype;        /* DT_OTHER for valid dtypes sdc does not compute in (F64, U8, BOOL, ...) */
    char dtype_str[16]; /* as written in the file */
    int ndim;           /* 0..ST_MAX_DIMS; 0 is a scalar */
    int64_t shape[ST_MAX_DIMS];
    uint64_t offset; /* absolute byte offset in the file */
    uint64_t nbytes; /* numel x element size, checked at open */
} StTensor;

typedef struct StFile {
    char *path;          /* as given (or the display name for st_open_memory) */
    const uint8_t *base; /* the whole file, mmap-ed read-only, or the caller's buffer */
    size_t size;
    int n;               /* tensors, in header order */
    StTensor *tensors;
    int n_meta;          /* "__metadata__" entries, in header order */
    char **meta_keys, **meta_vals;
    /* private */
    int *by_name;        /* tensor indices sorted by name, for st_find */
    int mapped;          /* base came from mmap: st_close unmaps it */
} StFile;

/* mmap + validate.  On failure f is left empty (st_close on it is harmless). */
int st_open(StFile *f, const char *path, SdcErr *err);
/* Validates a file image held by the caller, without copying it; buf must
 * outlive f.  display_name is used in error messages. */
int st_open_memory(StFile *f, const void *buf, size_t len, const char *display_name, SdcErr *err);
void st_close(StFile *f);

const StTensor *st_find(const StFile *f, const char *name); /* NULL if absent */
const void *st_data(const StFile *f, const StTensor *t);    /* may be unaligned */
int64_t st_numel(const StTensor *t);
/* Reads a tensor converted to float32 (from F32/F16/BF16/I32/I64) into
 * out[st_numel(t)].  DT_OTHER tensors are an error naming the dtype. */
int st_read_f32(const StFile *f, const StTensor *t, float *out, SdcErr *err);
const char *st_meta(const StFile *f, const char *key); /* NULL if absent */

/* ---- writing ---- */

typedef struct StDesc {
    const char *name;
    DType dtype; /* not DT_OTHER */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} StDesc;

typedef struct StWriter StWriter;

/* Creates the temp file and writes the header (data section starts at a
 * multiple of 8 bytes; tensors are packed contiguously in desc order). */
int st_writer_open(StWriter **w, const char *path, int n, const StDesc *descs, int n_meta,
                   const char *const *meta_keys, const char *const *meta_vals, SdcErr *err);
/* The same with the data section starting at a multiple of `align` bytes
 * (a multiple of 8): sdc compile aligns its weights file to cache lines. */
int st_writer_open_aligned(StWriter **w, const char *path, int n, const StDesc *descs, int n_meta,
                           const char *const *meta_keys, const char *const *meta_vals, unsigned align, SdcErr *err);
/* The next tensor's bytes, in desc order, exactly its nbytes. */
int st_writer_put(StWriter *w, const void *data, SdcErr *err);
/* The same with the caller's byte count, which must equal the tensor's size. */
int st_writer_put_n(StWriter *w, const void *data, uint64_t nbytes, SdcErr *err);
/* Checks every tensor was given, fsyncs and renames into place; frees w.
 * On any error (now or an earlier put) the temp file is removed. */
int st_writer_finish(StWriter *w, SdcErr *err);
/* Removes the temp file; frees w.  NULL is allowed. */
void st_writer_abort(StWriter *w);

/* Convenience: write n tensors from memory in one call. */
typedef struct StEntry {
    const char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StEntry;
int st_write(const char *path, int n, const StEntry *entries, SdcErr *err);

#endif
