/* safetensors.c — a validating safetensors reader and a streaming writer.
 *
 * Reading: the file is mmap-ed; the JSON header is copied out, parsed with
 * cJSON and checked field by field into a flat StTensor array plus a
 * sorted index of names (files hold thousands of tensors and importers look
 * each one up).  Every number from the file goes through checked arithmetic
 * before it becomes a size or an offset; nothing is dereferenced until the
 * whole header has been validated.  Nothing is quadratic in the number of
 * entries, so a hostile header of millions of names costs O(n log n).
 *
 * JSON numbers reach us as doubles (cJSON), so shape dims and offsets must
 * be whole numbers in [0, 2^53]: above that a double is no longer exact, and
 * no real file comes near it.
 *
 * Writing: header first (padded with spaces so the data section starts at a
 * multiple of 8 bytes, as the Python library does), then the tensors packed
 * contiguously in the given order, into "<path>.tmp.<pid>"; finish fsyncs,
 * renames over the final name and fsyncs the directory. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

#define JSON_EXACT_MAX 9007199254740992.0 /* 2^53: largest range where doubles hold every integer */

/* Every dtype the safetensors format defines that we accept, with its size. */
static const struct {
    const char *name;
    DType dtype;
    unsigned size;
} st_dtypes[] = {
    {"F32", DT_F32, 4},      {"F16", DT_F16, 2},         {"BF16", DT_BF16, 2},
    {"I32", DT_I32, 4},      {"I64", DT_I64, 8},         {"F64", DT_OTHER, 8},
    {"I8", DT_OTHER, 1},     {"U8", DT_OTHER, 1},        {"I16", DT_OTHER, 2},
    {"U16", DT_OTHER, 2},    {"U32", DT_OTHER, 4},       {"U64", DT_OTHER, 8},
    {"BOOL", DT_OTHER, 1},   {"F8_E4M3", DT_OTHER, 1},   {"F8_E5M2", DT_OTHER, 1},
};

/* ---------------------------------------------------------------- messages */

/* A name from the file as it may appear in a one-line message: at most 80
 * bytes, quotes, backslashes and control bytes escaped. */
#define SHOWN_MAX 400
static const char *shown(char out[SHOWN_MAX], const char *s)
{
    size_t o = 0, i = 0;
    for (; s[i] && i < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, SHOWN_MAX - o, c == '"' ? "\\\"" : c == '\\' ? "\\\\" : "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (s[i]) o += (size_t)snprintf(out + o, SHOWN_MAX - o, "...");
    out[o] = 0;
    return out;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

/* "path: tensor "name": <what>" */
__attribute__((format(printf, 4, 5))) static int tensor_err(SdcErr *err, const char *path, const char *name,
                                                            const char *fmt, ...)
{
    char what[600], nb[SHOWN_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sdc_err(err, "%s: tensor \"%s\": %s", path, shown(nb, name), what);
}

/* ---------------------------------------------------------------- names */

/* Names are looked up by binary search in a sorted index rather than a
 * hash: sorting is O(n log n) whatever names a hostile file picks, and
 * finds duplicates on the way. */
typedef struct NameRef {
    const char *name;
    int i; /* position in the caller's list */
} NameRef;

static int nameref_cmp(const void *a, const void *b)
{
    const NameRef *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Sorts refs by name (ties in list order); returns the list position of the
 * later of two equal names, or -1 when all differ. */
static int sort_find_duplicate(NameRef *refs, int n)
{
    qsort(refs, (size_t)n, sizeof(NameRef), nameref_cmp);
    for (int k = 1; k < n; k++)
        if (strcmp(refs[k - 1].name, refs[k].name) == 0) return refs[k].i;
    return -1;
}

const StTensor *st_find(const StFile *f, const char *name)
{
    int lo = 0, hi = f->n; /* by_name[lo, hi) may hold it */
    while (f->by_name && lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const StTensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- parsing */

/* A JSON value that must be a whole number in [0, 2^53].  Returns 0, or -1
 * with `why` set to the problem ("is not a number", ...). */
static int json_count(const cJSON *v, uint64_t *out, char *why, size_t cap)
{
    if (!cJSON_IsNumber(v)) return snprintf(why, cap, "is not a number"), -1;
    double d = v->valuedouble;
    if (d < 0) return snprintf(why, cap, "= %.17g is negative", d), -1;
    if (d > JSON_EXACT_MAX) return snprintf(why, cap, "= %.17g is too large", d), -1;
    if (d != floor(d)) return snprintf(why, cap, "= %.17g is not an integer", d), -1;
    *out = (uint64_t)d;
    return 0;
}

typedef struct Span {
    uint64_t begin, end;
    int tensor;
} Span;

static int span_cmp(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->tensor - y->tensor;
}

/* Fills t from one header entry e (its key is the tensor name). */
static int parse_tensor(StFile *f, const cJSON *e, uint64_t data_start, uint64_t data_size, StTensor *t,
                        SdcErr *err)
{
    const char *path = f->path, *name = e->string;
    char why[128];
    t->name = xstrdup(name);
    if (!cJSON_IsObject(e)) return tensor_err(err, path, name, "entry is not a JSON object");

    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dtype
                             : strcmp(c->string, "shape") == 0        ? &shape
                             : strcmp(c->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot) continue; /* unknown fields are ignored, for files from newer writers */
        if (*slot) return tensor_err(err, path, name, "field \"%s\" appears twice", c->string);
        *slot = c;
    }

    /* dtype */
    if (!dtype) return tensor_err(err, path, name, "missing \"dtype\"");
    if (!cJSON_IsString(dtype)) return tensor_err(err, path, name, "dtype is not a string");
    unsigned esize = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dtype->valuestring, st_dtypes[i].name) == 0) {
            t->dtype = st_dtypes[i].dtype;
            esize = st_dtypes[i].size;
            snprintf(t->dtype_str, sizeof t->dtype_str, "%s", st_dtypes[i].name);
        }
    if (!esize) {
        char db[SHOWN_MAX];
        return tensor_err(err, path, name, "unknown dtype \"%s\"", shown(db, dtype->valuestring));
    }

    /* shape, and the byte size it implies */
    if (!shape) return tensor_err(err, path, name, "missing \"shape\"");
    if (!cJSON_IsArray(shape)) return tensor_err(err, path, name, "shape is not an array");
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return tensor_err(err, path, name, "shape has %d dims (at most %d)", ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t nbytes = esize;
    int overflow = 0;
    int d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        uint64_t dim;
        if (json_count(c, &dim, why, sizeof why)) return tensor_err(err, path, name, "shape[%d] %s", d, why);
        t->shape[d] = (int64_t)dim;
        overflow |= __builtin_mul_overflow(nbytes, dim, &nbytes);
    }
    char sb[200];
    shape_str(sb, sizeof sb, t->ndim, t->shape);
    if (overflow || nbytes > (uint64_t)INT64_MAX)
        return tensor_err(err, path, name, "dtype %s x shape %s overflows 64 bits", t->dtype_str, sb);

    /* data_offsets */
    if (!offsets) return tensor_err(err, path, name, "missing \"data_offsets\"");
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return tensor_err(err, path, name, "data_offsets is not an array of two integers");
    uint64_t begin, end;
    if (json_count(offsets->child, &begin, why, sizeof why))
        return tensor_err(err, path, name, "data_offsets[0] %s", why);
    if (json_count(offsets->child->next, &end, why, sizeof why))
        return tensor_err(err, path, name, "data_offsets[1] %s", why);
    if (begin > end)
        return tensor_err(err, path, name, "data_offsets [%" PRIu64 ", %" PRIu64 "]: begin is after end", begin,
                          end);
    if (end > data_size)
        return tensor_err(err, path, name,
                          "data_offsets [%" PRIu64 ", %" PRIu64 "] end beyond the data section (%" PRIu64
                          " bytes)",
                          begin, end, data_size);
    if (end - begin != nbytes)
        return tensor_err(err, path, name,
                          "data_offsets [%" PRIu64 ", %" PRIu64 "] do not match dtype %s x shape %s (%" PRIu64
                          " bytes)",
                          begin, end, t->dtype_str, sb, nbytes);
    t->offset = data_start + begin;
    t->nbytes = nbytes;
    return 0;
}

static int parse_metadata(StFile *f, const cJSON *m, SdcErr *err)
{
    char kb[SHOWN_MAX];
    if (f->meta_keys) return sdc_err(err, "%s: __metadata__: appears twice", f->path);
    if (!cJSON_IsObject(m)) return sdc_err(err, "%s: __metadata__: not a JSON object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = xcalloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = xcalloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return sdc_err(err, "%s: __metadata__: \"%s\" is not a string", f->path, shown(kb, c->string));
        f->meta_keys[f->n_meta] = xstrdup(c->string);
        f->meta_vals[f->n_meta] = xstrdup(c->valuestring);
        f->n_meta++;
    }
    NameRef *refs = xmalloc(sizeof(NameRef) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) refs[i] = (NameRef){f->meta_keys[i], i};
    int dup = sort_find_duplicate(refs, n);
    free(refs);
    if (dup >= 0)
        return sdc_err(err, "%s: __metadata__: duplicate key \"%s\"", f->path, shown(kb, f->meta_keys[dup]));
    return 0;
}

/* Rejects tensors whose byte ranges overlap (empty tensors overlap nothing).
 * Gaps between tensors are allowed: nothing we read depends on packing. */
static int check_overlaps(const StFile *f, uint64_t data_start, SdcErr *err)
{
    Span *spans = xmalloc(sizeof(Span) * (size_t)(f->n ? f->n : 1));
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const StTensor *t = &f->tensors[i];
        if (t->nbytes) spans[n++] = (Span){t->offset - data_start, t->offset - data_start + t->nbytes, i};
    }
    qsort(spans, (size_t)n, sizeof(Span), span_cmp);
    int rc = 0;
    /* sorted by begin, with no overlap so far, the previous span ends last */
    for (int i = 1; i < n && rc == 0; i++)
        if (spans[i].begin < spans[i - 1].end) {
            const Span *a = &spans[i - 1], *b = &spans[i];
            char nb[SHOWN_MAX];
            rc = tensor_err(err, f->path, f->tensors[b->tensor].name,
                            "data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor \"%s\" [%" PRIu64 ", %" PRIu64 "]",
                            b->begin, b->end, shown(nb, f->tensors[a->tensor].name), a->begin, a->end);
        }
    free(spans);
    return rc;
}

/* Validates f->base[0, f->size) and fills the tensor table. */
static int st_parse(StFile *f, SdcErr *err)
{
    if (f->size < 8)
        return sdc_err(err, "%s: file is %zu bytes, shorter than the 8-byte header length", f->path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->base[i];
    if (hlen > ST_MAX_HEADER)
        return sdc_err(err, "%s: header length %" PRIu64 " is over the limit of %u MiB", f->path, hlen,
                       ST_MAX_HEADER >> 20);
    if (hlen > f->size - 8)
        return sdc_err(err, "%s: header length %" PRIu64 " is beyond the end of the file (%zu bytes)", f->path,
                       hlen, f->size);

    /* cJSON gets its own NUL-terminated copy: the mapped file has no NUL. */
    char *text = xmalloc(hlen + 1);
    memcpy(text, f->base + 8, hlen);
    text[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, hlen, &end, 0);
    int rc = 0;
    if (!root) {
        rc = sdc_err(err, "%s: header: not valid JSON (near byte %td)", f->path, end ? end - text : (ptrdiff_t)0);
        goto out;
    }
    for (const char *p = end; p < text + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = sdc_err(err, "%s: header: unexpected bytes after the JSON object (at byte %td)", f->path,
                         p - text);
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        rc = sdc_err(err, "%s: header: not a JSON object", f->path);
        goto out;
    }

    int entries = cJSON_GetArraySize(root);
    f->tensors = xcalloc((size_t)entries + 1, sizeof(StTensor));
    uint64_t data_start = 8 + hlen, data_size = f->size - data_start;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, e, err))) goto out;
            continue;
        }
        StTensor *t = &f->tensors[f->n++]; /* counted before parsing, so st_close frees its name */
        if ((rc = parse_tensor(f, e, data_start, data_size, t, err))) goto out;
    }

    NameRef *refs = xmalloc(sizeof(NameRef) * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) refs[i] = (NameRef){f->tensors[i].name, i};
    int dup = sort_find_duplicate(refs, f->n);
    f->by_name = xmalloc(sizeof(int) * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) f->by_name[i] = refs[i].i;
    free(refs);
    if (dup >= 0) {
        rc = tensor_err(err, f->path, f->tensors[dup].name, "duplicate tensor name");
        goto out;
    }
    rc = check_overlaps(f, data_start, err);
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int st_open_memory(StFile *f, const void *buf, size_t len, const char *display_name, SdcErr *err)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(display_name ? display_name : "<memory>");
    f->base = buf;
    f->size = len;
    if (st_parse(f, err)) {
        st_close(f);
        return -1;
    }
    return 0;
}

int st_open(StFile *f, const char *path, SdcErr *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sdc_err(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sdc_err(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sdc_err(err, "%s: cannot open: %s", path, strerror(EISDIR));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sdc_err(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) { /* mmap cannot map an empty file; the parser gives the message */
        close(fd);
        static const uint8_t none[8];
        return st_open_memory(f, none, size, path, err);
    }
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return sdc_err(err, "%s: cannot map: %s", path, strerror(e));
    f->path = xstrdup(path);
    f->base = m;
    f->size = size;
    f->mapped = 1;
    if (st_parse(f, err)) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(StFile *f)
{
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->by_name);
    free(f->path);
    if (f->mapped) munmap((void *)f->base, f->size);
    memset(f, 0, sizeof *f);
}

const void *st_data(const StFile *f, const StTensor *t) { return f->base + t->offset; }

int64_t st_numel(const StTensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

int st_read_f32(const StFile *f, const StTensor *t, float *out, SdcErr *err)
{
    if (t->dtype == DT_OTHER)
        return tensor_err(err, f->path, t->name,
                          "dtype %s cannot be read as float32 (sdc reads F32, F16, BF16, I32, I64)", t->dtype_str);
    size_t es = dtype_size(t->dtype);
    size_t n = (size_t)st_numel(t);
    SDC_ASSERT(n * es == t->nbytes);
    const uint8_t *src = st_data(f, t);
    if ((uintptr_t)src % es == 0) {
        dtype_to_f32(t->dtype, src, out, n);
        return 0;
    }
    /* Data at an odd offset (another writer's unpadded header, or a caller's
     * buffer): dtype_to_f32 reads through typed pointers, so go through an
     * aligned bounce buffer. */
    uint64_t chunk[512];
    size_t per = sizeof chunk / es;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        memcpy(chunk, src + i * es, k * es);
        dtype_to_f32(t->dtype, chunk, out + i, k);
    }
    return 0;
}

/* ---------------------------------------------------------------- writing */

struct StWriter {
    char *path, *tmp_path;
    int fd;
    int n, next;      /* tensors described, tensors written so far */
    char **names;     /* copies, for messages */
    uint64_t *nbytes; /* per tensor */
    int failed;       /* an earlier call failed: finish only cleans up */
};

typedef struct Buf {
    char *p;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 256;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* A JSON string literal; bytes >= 0x80 pass through (names are UTF-8). */
static void buf_json_string(Buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            buf_add(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_add(b, esc, 6);
        } else {
            buf_add(b, (const char *)&c, 1);
        }
    }
    buf_add(b, "\"", 1);
}

static int write_all(int fd, const void *p, uint64_t n)
{
    const char *s = p;
    while (n > 0) {
        size_t want = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(fd, s, want);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        s += k;
        n -= (uint64_t)k;
    }
    return 0;
}

/* Checks the descriptions and builds the padded header (without the length). */
static int writer_header(const char *path, int n, const StDesc *descs, int n_meta, const char *const *meta_keys,
                         const char *const *meta_vals, unsigned align, Buf *b, uint64_t *nbytes, SdcErr *err)
{
    char nb[SHOWN_MAX];
    int most = n > n_meta ? n : n_meta;
    NameRef *refs = xmalloc(sizeof(NameRef) * (size_t)(most ? most : 1));
    for (int i = 0; i < n_meta; i++) {
        SDC_ASSERT(meta_keys[i] && meta_vals[i]);
        refs[i] = (NameRef){meta_keys[i], i};
    }
    int dup = sort_find_duplicate(refs, n_meta);
    if (dup >= 0) {
        free(refs);
        return sdc_err(err, "%s: __metadata__: duplicate key \"%s\"", path, shown(nb, meta_keys[dup]));
    }
    for (int i = 0; i < n; i++) {
        SDC_ASSERT(descs[i].name);
        refs[i] = (NameRef){descs[i].name, i};
    }
    dup = sort_find_duplicate(refs, n);
    free(refs);
    if (dup >= 0) return tensor_err(err, path, descs[dup].name, "duplicate tensor name");

    buf_str(b, "{");
    if (n_meta > 0) {
        buf_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) buf_str(b, ",");
            buf_json_string(b, meta_keys[i]);
            buf_str(b, ":");
            buf_json_string(b, meta_vals[i]);
        }
        buf_str(b, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StDesc *d = &descs[i];
        if (strcmp(d->name, "__metadata__") == 0)
            return tensor_err(err, path, d->name, "the name is reserved for metadata");
        if (d->dtype >= DT_OTHER)
            return tensor_err(err, path, d->name, "cannot write dtype %s", dtype_st_name(d->dtype));
        if (d->ndim < 0 || d->ndim > ST_MAX_DIMS)
            return tensor_err(err, path, d->name, "%d dims (at most %d)", d->ndim, ST_MAX_DIMS);
        uint64_t size = dtype_size(d->dtype);
        int overflow = 0;
        for (int k = 0; k < d->ndim; k++) {
            if (d->shape[k] < 0)
                return tensor_err(err, path, d->name, "shape[%d] = %" PRId64 " is negative", k, d->shape[k]);
            overflow |= __builtin_mul_overflow(size, (uint64_t)d->shape[k], &size);
        }
        overflow |= __builtin_add_overflow(offset, size, &offset);
        if (overflow || offset > (uint64_t)INT64_MAX)
            return tensor_err(err, path, d->name, "size overflows 64 bits");
        nbytes[i] = size;

        char num[64];
        buf_str(b, i || n_meta > 0 ? "," : "");
        buf_json_string(b, d->name);
        buf_str(b, ":{\"dtype\":\"");
        buf_str(b, dtype_st_name(d->dtype));
        buf_str(b, "\",\"shape\":[");
        for (int k = 0; k < d->ndim; k++) {
            snprintf(num, sizeof num, "%s%" PRId64, k ? "," : "", d->shape[k]);
            buf_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset - size, offset);
        buf_str(b, num);
    }
    buf_str(b, "}");
    while ((8 + b->n) % align) buf_str(b, " "); /* 8-byte length + padded header: data starts aligned */
    return 0;
}

int st_writer_open(StWriter **wp, const char *path, int n, const StDesc *descs, int n_meta,
                   const char *const *meta_keys, const char *const *meta_vals, SdcErr *err)
{
    return st_writer_open_aligned(wp, path, n, descs, n_meta, meta_keys, meta_vals, 8, err);
}

int st_writer_open_aligned(StWriter **wp, const char *path, int n, const StDesc *descs, int n_meta,
                           const char *const *meta_keys, const char *const *meta_vals, unsigned align, SdcErr *err)
{
    *wp = NULL;
    SDC_ASSERT(n >= 0 && n_meta >= 0 && align >= 8 && align % 8 == 0);
    Buf b = {0};
    uint64_t *nbytes = xmalloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    if (writer_header(path, n, descs, n_meta, meta_keys, meta_vals, align, &b, nbytes, err)) {
        free(b.p);
        free(nbytes);
        return -1;
    }

    StWriter *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    size_t tl = strlen(path) + 32;
    w->tmp_path = xmalloc(tl);
    snprintf(w->tmp_path, tl, "%s.tmp.%ld", path, (long)getpid());
    w->n = n;
    w->nbytes = nbytes;
    w->names = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) w->names[i] = xstrdup(descs[i].name);

    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        sdc_err(err, "%s: cannot create: %s", w->tmp_path, strerror(errno));
        free(b.p);
        st_writer_abort(w); /* unlinking a file that does not exist is harmless */
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    if (write_all(w->fd, len, 8) || write_all(w->fd, b.p, b.n)) {
        sdc_err(err, "%s: cannot write: %s", w->tmp_path, strerror(errno));
        free(b.p);
        st_writer_abort(w);
        return -1;
    }
    free(b.p);
    *wp = w;
    return 0;
}

int st_writer_put_n(StWriter *w, const void *data, uint64_t nbytes, SdcErr *err)
{
    if (w->failed) return sdc_err(err, "%s: an earlier write to this file failed", w->path);
    if (w->next >= w->n) {
        w->failed = 1;
        return sdc_err(err, "%s: all %d tensors were already written", w->path, w->n);
    }
    const char *name = w->names[w->next];
    if (nbytes != w->nbytes[w->next]) {
        w->failed = 1;
        return tensor_err(err, w->path, name, "given %" PRIu64 " bytes, its dtype and shape need %" PRIu64, nbytes,
                          w->nbytes[w->next]);
    }
    SDC_ASSERT(data || nbytes == 0);
    if (write_all(w->fd, data, nbytes)) {
        w->failed = 1;
        return tensor_err(err, w->tmp_path, name, "cannot write: %s", strerror(errno));
    }
    w->next++;
    return 0;
}

int st_writer_put(StWriter *w, const void *data, SdcErr *err)
{
    if (w->failed || w->next >= w->n) return st_writer_put_n(w, data, 0, err); /* for the message */
    return st_writer_put_n(w, data, w->nbytes[w->next], err);
}

static void writer_free(StWriter *w)
{
    for (int i = 0; i < w->n; i++) free(w->names[i]);
    free(w->names);
    free(w->nbytes);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

/* Makes the rename itself durable; a failure here loses nothing already
 * renamed, so it is not reported. */
static void fsync_parent_dir(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *d = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
    int fd = open(d, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_writer_finish(StWriter *w, SdcErr *err)
{
    int rc = 0;
    if (w->failed)
        rc = sdc_err(err, "%s: an earlier write to this file failed; nothing was written", w->path);
    else if (w->next < w->n)
        rc = tensor_err(err, w->path, w->names[w->next], "not written (only %d of %d tensors were given)", w->next,
                        w->n);
    else if (fsync(w->fd) != 0)
        rc = sdc_err(err, "%s: cannot sync: %s", w->tmp_path, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0 && rc == 0) rc = sdc_err(err, "%s: cannot close: %s", w->tmp_path, strerror(errno));
    if (rc == 0 && rename(w->tmp_path, w->path) != 0)
        rc = sdc_err(err, "%s: cannot rename %s into place: %s", w->path, w->tmp_path, strerror(errno));
    if (rc == 0)
        fsync_parent_dir(w->path);
    else
        unlink(w->tmp_path);
    writer_free(w);
    return rc;
}

void st_writer_abort(StWriter *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    unlink(w->tmp_path);
    writer_free(w);
}

int st_write(const char *path, int n, const StEntry *entries, SdcErr *err)
{
    StDesc *descs = xcalloc((size_t)(n ? n : 1), sizeof(StDesc));
    for (int i = 0; i < n; i++) {
        descs[i].name = entries[i].name;
        descs[i].dtype = entries[i].dtype;
        descs[i].ndim = entries[i].ndim;
        memcpy(descs[i].shape, entries[i].shape, sizeof descs[i].shape);
    }
    StWriter *w;
    int rc = st_writer_open(&w, path, n, descs, 0, NULL, NULL, err);
    free(descs);
    if (rc) return -1;
    for (int i = 0; i < n; i++)
        if (st_writer_put(w, entries[i].data, err)) {
            st_writer_abort(w);
            return -1;
        }
    return st_writer_finish(w, err);
}
