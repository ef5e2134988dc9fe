/* test_safetensors.c — the safetensors reader and writer.
 *
 * Round trips check bytes bit-exactly; conversions check values known
 * exactly by hand; malformed files are built byte by byte here and each must
 * fail with a one-line message naming the file and the field.  The fixture
 * part reads a file written by the Python library and is skipped (with a
 * message) when SDC_FIXTURES is unset. */
#include "safetensors.h"
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

typedef struct Blob {
    uint8_t *p;
    size_t n;
} Blob;

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A file image: length prefix, the JSON text as given, data_len data bytes
 * (a fixed pattern unless data is given). */
static Blob blob(const char *json, const void *data, size_t data_len)
{
    size_t h = strlen(json);
    Blob b = {xmalloc(8 + h + data_len), 8 + h + data_len};
    put_le64(b.p, h);
    memcpy(b.p + 8, json, h);
    for (size_t i = 0; i < data_len; i++) b.p[8 + h + i] = data ? ((const uint8_t *)data)[i] : (uint8_t)(i * 7 + 1);
    return b;
}

/* Opening must fail with a single-line message that names the file and
 * contains `want`. */
static void expect_bad_blob(Blob b, const char *want)
{
    StFile f;
    SdcErr err = {{0}};
    int rc = st_open_memory(&f, b.p, b.n, "bad.safetensors", &err);
    CHECK_MSG(rc == -1, "accepted a file that should fail with \"%s\"", want);
    if (rc == 0) {
        st_close(&f);
    } else {
        CHECK_MSG(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
        CHECK_MSG(strncmp(err.msg, "bad.safetensors: ", 17) == 0, "message \"%s\" does not name the file", err.msg);
        CHECK_MSG(strchr(err.msg, '\n') == NULL, "message \"%s\" is not one line", err.msg);
        CHECK(f.n == 0 && f.tensors == NULL && f.path == NULL); /* left empty */
    }
    free(b.p);
}

static void expect_bad(const char *json, size_t data_len, const char *want)
{
    expect_bad_blob(blob(json, NULL, data_len), want);
}

static int open_ok(StFile *f, Blob b)
{
    SdcErr err = {{0}};
    int rc = st_open_memory(f, b.p, b.n, "ok.safetensors", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static uint64_t rand_u64(void)
{
    /* bits from the shared generator: the exact values matter, not their distribution */
    uint64_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 16 ^ (uint64_t)(test_uniform(0, 65536.0f)) ^ (uint64_t)i;
    return v;
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip_every_dtype(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/all.safetensors", dir);

    /* one tensor per computable dtype, plus a scalar, an empty tensor and a
     * name that needs escaping; sizes chosen so offsets are not 8-aligned */
    enum { NT = 8 };
    StDesc d[NT] = {
        {"f32", DT_F32, 2, {3, 5}},
        {"f16", DT_F16, 1, {7}},
        {"bf16", DT_BF16, 3, {1, 3, 3}},
        {"i32", DT_I32, 1, {5}},
        {"i64", DT_I64, 2, {2, 3}},
        {"scalar", DT_F32, 0, {0}},
        {"empty", DT_F16, 2, {4, 0}},
        {"we\"ird\\name\n\x01\xc3\xa9", DT_I32, 1, {1}},
    };
    uint8_t *data[NT];
    size_t size[NT];
    for (int i = 0; i < NT; i++) {
        size_t n = dtype_size(d[i].dtype);
        for (int k = 0; k < d[i].ndim; k++) n *= (size_t)d[i].shape[k];
        size[i] = n;
        data[i] = xmalloc(n + 1);
        for (size_t k = 0; k < n; k++) data[i][k] = (uint8_t)rand_u64();
    }
    const char *mk[] = {"format", "note \"quoted\""}, *mv[] = {"pt", "line1\nline2"};

    StWriter *w;
    SdcErr err = {{0}};
    CHECK_MSG(st_writer_open(&w, path, NT, d, 2, mk, mv, &err) == 0, "%s", err.msg);
    int put_ok = 1;
    for (int i = 0; i < NT; i++) put_ok &= st_writer_put(w, data[i], &err) == 0;
    CHECK_MSG(put_ok, "%s", err.msg);
    CHECK_MSG(st_writer_finish(w, &err) == 0, "%s", err.msg);
    CHECK(count_dir_entries(dir) == 1); /* no temp file left beside it */

    StFile f;
    CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
    if (f.n != NT) {
        CHECK(f.n == NT);
        st_close(&f);
        return;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f.base[i];
    CHECK((8 + hlen) % 8 == 0);
    CHECK(f.tensors[0].offset == 8 + hlen);
    CHECK(f.base[8 + hlen - 1] == ' ' || f.base[8 + hlen - 1] == '}');
    uint64_t expect_offset = 8 + hlen;
    for (int i = 0; i < NT; i++) {
        const StTensor *t = &f.tensors[i];
        CHECK_MSG(strcmp(t->name, d[i].name) == 0, "tensor %d is \"%s\"", i, t->name);
        CHECK(t->dtype == d[i].dtype);
        CHECK(strcmp(t->dtype_str, dtype_st_name(d[i].dtype)) == 0);
        CHECK(t->ndim == d[i].ndim);
        for (int k = 0; k < d[i].ndim; k++) CHECK(t->shape[k] == d[i].shape[k]);
        CHECK(t->nbytes == size[i]);
        CHECK(t->offset == expect_offset); /* packed contiguously in order */
        expect_offset += size[i];
        CHECK_MSG(memcmp(st_data(&f, t), data[i], size[i]) == 0, "tensor %s bytes differ", d[i].name);
        CHECK(st_find(&f, d[i].name) == t);
    }
    CHECK(expect_offset == f.size);
    CHECK(st_numel(&f.tensors[5]) == 1);
    CHECK(st_numel(&f.tensors[6]) == 0);
    CHECK(st_find(&f, "f3") == NULL && st_find(&f, "") == NULL);
    CHECK(f.n_meta == 2);
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "pt") == 0);
    CHECK(st_meta(&f, "note \"quoted\"") && strcmp(st_meta(&f, "note \"quoted\""), "line1\nline2") == 0);
    CHECK(st_meta(&f, "missing") == NULL);
    st_close(&f);
    for (int i = 0; i < NT; i++) free(data[i]);
    unlink(path);
    rmdir(dir);
}

/* The writer's bytes for a simple file equal what the Python library writes
 * (compact JSON, __metadata__ first, space padding to 8). */
static void test_writer_bytes_match_reference_layout(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    float a[2] = {1.0f, -2.0f};
    StEntry e[1] = {{"a", DT_F32, 1, {2}, a}};
    SdcErr err = {{0}};
    CHECK_MSG(st_write(path, 1, e, &err) == 0, "%s", err.msg);

    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t h = strlen(json), padded = (h + 7) / 8 * 8;
    uint8_t want[256];
    put_le64(want, padded);
    memcpy(want + 8, json, h);
    memset(want + 8 + h, ' ', padded - h);
    memcpy(want + 8 + padded, a, 8);

    uint8_t got[256];
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(got, 1, sizeof got, fp) : 0;
    if (fp) fclose(fp);
    CHECK(n == 16 + padded);
    CHECK(n == 16 + padded && memcmp(got, want, n) == 0);
    unlink(path);
    rmdir(dir);
}

static void test_many_tensors_lookup(void)
{
    enum { N = 3000 };
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/many.safetensors", dir);
    StEntry *e = xcalloc(N, sizeof *e);
    char(*names)[32] = xmalloc(N * 32);
    int32_t *vals = xmalloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 32, "blocks.%d.weight", (i * 7919) % N);
        vals[i] = i;
        e[i] = (StEntry){names[i], DT_I32, 1, {1}, &vals[i]};
    }
    SdcErr err = {{0}};
    CHECK_MSG(st_write(path, N, e, &err) == 0, "%s", err.msg);
    StFile f;
    CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
    int bad = 0;
    for (int i = 0; i < N && f.n == N; i++) {
        const StTensor *t = st_find(&f, names[i]);
        int32_t v;
        if (!t || t != &f.tensors[i]) {
            bad++;
            continue;
        }
        memcpy(&v, st_data(&f, t), 4);
        bad += v != i;
    }
    CHECK(f.n == N);
    CHECK(bad == 0);
    CHECK(st_find(&f, "blocks.3000.weight") == NULL);
    st_close(&f);
    free(e);
    free(names);
    free(vals);
    unlink(path);
    rmdir(dir);
}

static void test_overwrite_is_atomic_replace(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    int32_t one = 1, two = 2;
    StEntry e1[1] = {{"v", DT_I32, 0, {0}, &one}}, e2[1] = {{"v", DT_I32, 0, {0}, &two}};
    SdcErr err = {{0}};
    CHECK(st_write(path, 1, e1, &err) == 0);
    CHECK_MSG(st_write(path, 1, e2, &err) == 0, "%s", err.msg);
    StFile f;
    if (st_open(&f, path, &err) == 0) {
        int32_t v = 0;
        memcpy(&v, st_data(&f, st_find(&f, "v")), 4);
        CHECK(v == 2);
        st_close(&f);
    } else {
        CHECK_MSG(0, "%s", err.msg);
    }
    CHECK(count_dir_entries(dir) == 1);
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------------- streaming writer errors */

static void tmp_path_of(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "%s.tmp.%ld", path, (long)getpid());
}

static void test_streaming_writer_errors(void)
{
    const char *dir = test_tmpdir();
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/s.safetensors", dir);
    tmp_path_of(tmp, sizeof tmp, path);
    StDesc d[2] = {{"a", DT_F32, 2, {2, 3}}, {"b", DT_BF16, 1, {4}}};
    float a[6] = {0};
    uint16_t b[4] = {0};
    SdcErr err = {{0}};
    StWriter *w;

    /* wrong byte count */
    CHECK(st_writer_open(&w, path, 2, d, 0, NULL, NULL, &err) == 0);
    CHECK(file_exists(tmp));
    CHECK(st_writer_put_n(w, a, 20, &err) == -1);
    CHECK_MSG(strstr(err.msg, "tensor \"a\": given 20 bytes") && strstr(err.msg, "need 24"), "%s", err.msg);
    CHECK(st_writer_put(w, b, &err) == -1); /* the writer stays failed */
    CHECK(st_writer_finish(w, &err) == -1);
    CHECK(strstr(err.msg, "earlier write") != NULL);
    CHECK(!file_exists(path) && !file_exists(tmp));

    /* finishing early */
    CHECK(st_writer_open(&w, path, 2, d, 0, NULL, NULL, &err) == 0);
    CHECK(st_writer_put(w, a, &err) == 0);
    CHECK(st_writer_finish(w, &err) == -1);
    CHECK_MSG(strstr(err.msg, "tensor \"b\": not written (only 1 of 2"), "%s", err.msg);
    CHECK(!file_exists(path) && !file_exists(tmp));

    /* one tensor too many */
    CHECK(st_writer_open(&w, path, 1, d, 0, NULL, NULL, &err) == 0);
    CHECK(st_writer_put(w, a, &err) == 0);
    CHECK(st_writer_put(w, b, &err) == -1);
    CHECK(strstr(err.msg, "already written") != NULL);
    CHECK(st_writer_finish(w, &err) == -1);
    CHECK(!file_exists(path) && !file_exists(tmp));

    /* abort */
    CHECK(st_writer_open(&w, path, 2, d, 0, NULL, NULL, &err) == 0);
    CHECK(st_writer_put(w, a, &err) == 0);
    st_writer_abort(w);
    CHECK(!file_exists(path) && !file_exists(tmp));

    /* streamed with put_n, then finish succeeds */
    CHECK(st_writer_open(&w, path, 2, d, 0, NULL, NULL, &err) == 0);
    CHECK(st_writer_put_n(w, a, sizeof a, &err) == 0);
    CHECK(st_writer_put_n(w, b, sizeof b, &err) == 0);
    CHECK_MSG(st_writer_finish(w, &err) == 0, "%s", err.msg);
    CHECK(file_exists(path) && !file_exists(tmp));
    unlink(path);

    /* bad descriptions: nothing is created */
    StDesc dup[2] = {{"x", DT_F32, 0, {0}}, {"x", DT_F32, 0, {0}}};
    CHECK(st_writer_open(&w, path, 2, dup, 0, NULL, NULL, &err) == -1 && w == NULL);
    CHECK_MSG(strstr(err.msg, "tensor \"x\": duplicate tensor name"), "%s", err.msg);
    StDesc other[1] = {{"o", DT_OTHER, 1, {3}}};
    CHECK(st_writer_open(&w, path, 1, other, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "tensor \"o\": cannot write dtype"), "%s", err.msg);
    StDesc neg[1] = {{"n", DT_F32, 2, {3, -1}}};
    CHECK(st_writer_open(&w, path, 1, neg, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "shape[1] = -1 is negative"), "%s", err.msg);
    StDesc huge[1] = {{"h", DT_I64, 2, {INT64_MAX / 4, 3}}};
    CHECK(st_writer_open(&w, path, 1, huge, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "overflows"), "%s", err.msg);
    StDesc meta_name[1] = {{"__metadata__", DT_F32, 0, {0}}};
    CHECK(st_writer_open(&w, path, 1, meta_name, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "reserved"), "%s", err.msg);
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    CHECK(st_writer_open(&w, path, 0, NULL, 2, mk, mv, &err) == -1);
    CHECK_MSG(strstr(err.msg, "__metadata__: duplicate key \"k\""), "%s", err.msg);
    CHECK(count_dir_entries(dir) == 0);

    /* a folder that does not exist */
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/x.safetensors", dir);
    CHECK(st_writer_open(&w, nowhere, 2, d, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "cannot create") && strstr(err.msg, "No such file or directory"), "%s", err.msg);
    rmdir(dir);
}

/* ---------------------------------------------------------------- conversions */

static void test_read_f32_conversions(void)
{
    /* hand-built file: offsets within the data section chosen by hand */
    uint16_t f16[7] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x8000, 0x7C00};
    float f16_want[7] = {1.0f, -2.0f, 0.333251953125f, 65504.0f, 5.9604644775390625e-08f, -0.0f, INFINITY};
    uint16_t bf16[5] = {0x3F80, 0xC040, 0x3EAB, 0x7F7F, 0x0001};
    /* largest finite bf16 = (2 - 2^-7) * 2^127; smallest subnormal = 2^-133 */
    float bf16_want[5] = {1.0f, -3.0f, 0.333984375f, 0x1.fep127f, 0x1p-133f};
    int32_t i32[3] = {-7, 123456, 16777217};
    float i32_want[3] = {-7.0f, 123456.0f, 16777216.0f};
    int64_t i64[3] = {-5, (int64_t)1 << 40, -((int64_t)1 << 62)};
    float i64_want[3] = {-5.0f, 1099511627776.0f, -4611686018427387904.0f};
    float f32[2] = {3.5f, -0.125f};

    uint8_t data[128] = {0};
    memcpy(data + 0, f16, 14);
    memcpy(data + 14, bf16, 10);
    memcpy(data + 24, i32, 12);
    memcpy(data + 36, i64, 24);
    memcpy(data + 60, f32, 8);
    const char *json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[14,24]},"
                       "\"i\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[24,36]},"
                       "\"l\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[36,60]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[60,68]}}";

    /* twice: as built and shifted by one byte; all offsets are even, so in
     * one of the two runs every tensor sits at an odd address (the reader
     * must not assume alignment) */
    for (int shift = 0; shift < 2; shift++) {
        Blob b0 = blob(json, data, 68);
        uint8_t *mem = xmalloc(b0.n + 1);
        memcpy(mem + shift, b0.p, b0.n);
        Blob b = {mem + shift, b0.n};
        StFile f;
        if (open_ok(&f, b) == 0) {
            float out[8];
            SdcErr err = {{0}};
            struct {
                const char *name;
                const float *want;
                int n;
            } cases[] = {{"h", f16_want, 7}, {"b", bf16_want, 5}, {"i", i32_want, 3},
                         {"l", i64_want, 3}, {"f", f32, 2}};
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                const StTensor *t = st_find(&f, cases[c].name);
                CHECK(t && st_numel(t) == cases[c].n);
                if (!t) continue;
                CHECK_MSG(st_read_f32(&f, t, out, &err) == 0, "%s", err.msg);
                CHECK_MSG(memcmp(out, cases[c].want, sizeof(float) * (size_t)cases[c].n) == 0,
                          "tensor %s converted wrong (shift %d)", cases[c].name, shift);
            }
            CHECK(signbit(out[0]) == 0);
            st_close(&f);
        }
        free(mem);
        free(b0.p);
    }
}

/* Valid dtypes sdc does not compute in parse as DT_OTHER, with sizes. */
static void test_other_dtypes(void)
{
    static const struct {
        const char *name;
        int size;
    } others[] = {{"F64", 8}, {"I8", 1}, {"U8", 1}, {"I16", 2}, {"U16", 2}, {"U32", 4},
                  {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%d]}}", others[i].name,
                 3 * others[i].size);
        Blob b = blob(json, NULL, (size_t)(3 * others[i].size));
        StFile f;
        if (open_ok(&f, b) == 0) {
            const StTensor *t = st_find(&f, "t");
            CHECK(t && t->dtype == DT_OTHER && strcmp(t->dtype_str, others[i].name) == 0);
            CHECK(t && t->nbytes == (uint64_t)(3 * others[i].size));
            float out[3];
            SdcErr err = {{0}};
            CHECK(t && st_read_f32(&f, t, out, &err) == -1);
            char want[64];
            snprintf(want, sizeof want, "tensor \"t\": dtype %s cannot be read", others[i].name);
            CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "ok.safetensors: "), "%s", err.msg);
            st_close(&f);
        }
        free(b.p);
    }
}

/* Files that are unusual but valid. */
static void test_valid_edge_cases(void)
{
    StFile f;
    /* no tensors at all, header padded with spaces and a newline */
    Blob b = blob("{}      \n", NULL, 0);
    if (open_ok(&f, b) == 0) {
        CHECK(f.n == 0 && f.n_meta == 0 && st_find(&f, "x") == NULL);
        st_close(&f);
    }
    free(b.p);

    /* zero-element tensors anywhere (even at the very end), a scalar, a gap
     * between tensors, unknown fields, metadata in the middle */
    b = blob("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[12,12]},"
             "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"extra\":[1,2]},"
             "\"__metadata__\":{\"k\":\"v\"},"
             "\"g\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]},"
             "\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[12,12]}}",
             NULL, 12);
    if (open_ok(&f, b) == 0) {
        CHECK(f.n == 4);
        CHECK(strcmp(f.tensors[0].name, "z") == 0 && strcmp(f.tensors[3].name, "e") == 0); /* header order */
        const StTensor *s = st_find(&f, "s");
        CHECK(s && s->ndim == 0 && st_numel(s) == 1 && s->nbytes == 4);
        CHECK(st_find(&f, "z") && st_numel(st_find(&f, "z")) == 0);
        CHECK(st_meta(&f, "k") && strcmp(st_meta(&f, "k"), "v") == 0);
        float out[1];
        SdcErr err = {{0}};
        CHECK(st_read_f32(&f, st_find(&f, "z"), out, &err) == 0);
        st_close(&f);
    }
    free(b.p);

    st_close(&f); /* closing an emptied StFile twice is harmless */
}

/* ---------------------------------------------------------------- malformed files */

static void test_malformed_files(void)
{
    uint8_t raw[64];

    /* file shorter than 8 bytes */
    memset(raw, 0, sizeof raw);
    expect_bad_blob((Blob){memcpy(xmalloc(5), raw, 5), 5}, "file is 5 bytes, shorter than the 8-byte header length");
    expect_bad_blob((Blob){xmalloc(1), 0}, "file is 0 bytes");

    /* header length beyond the file */
    Blob b = blob("{}", NULL, 0);
    put_le64(b.p, 100);
    expect_bad_blob(b, "header length 100 is beyond the end of the file (10 bytes)");

    /* header length over the sane limit (the file need not be that big) */
    b = blob("{}", NULL, 0);
    put_le64(b.p, (uint64_t)200 << 20);
    expect_bad_blob(b, "header length 209715200 is over the limit of 100 MiB");
    b = blob("{}", NULL, 0);
    put_le64(b.p, UINT64_MAX);
    expect_bad_blob(b, "is over the limit");

    /* header not valid JSON, or not an object */
    expect_bad("", 0, "header: not valid JSON");
    expect_bad("{\"a\": ", 0, "header: not valid JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",}}", 0, "header: not valid JSON");
    expect_bad("[1, 2]", 0, "header: not a JSON object");
    expect_bad("\"F32\"", 0, "header: not a JSON object");
    expect_bad("{} {}", 0, "header: unexpected bytes after the JSON object (at byte 3)");
    b = blob("{}  ", NULL, 0);
    b.p[8 + 3] = 0; /* a NUL in the padding */
    expect_bad_blob(b, "unexpected bytes after the JSON object");

    /* an entry not an object; missing fields; wrong JSON types */
    expect_bad("{\"w\": 5}", 0, "tensor \"w\": entry is not a JSON object");
    expect_bad("{\"w\": [1]}", 0, "tensor \"w\": entry is not a JSON object");
    expect_bad("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\": missing \"dtype\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor \"w\": missing \"shape\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\": missing \"data_offsets\"");
    expect_bad("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": dtype is not a string");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape is not an array");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape is not an array");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape[0] is not a number");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4,
               "tensor \"w\": data_offsets is not an array of two integers");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               "tensor \"w\": data_offsets is not an array of two integers");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,null]}}", 4,
               "tensor \"w\": data_offsets[1] is not a number");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": field \"dtype\" appears twice");

    /* unknown dtype */
    expect_bad("{\"w\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": unknown dtype \"F99\"");
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"");

    /* negative or non-integer dims; too many dims */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape[1] = -3 is negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10,
               "tensor \"w\": shape[0] = 2.5 is not an integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
               "shape[0] = 1.0000000000000001e+300 is too large");
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
               "tensor \"w\": shape has 9 dims (at most 8)");

    /* overflow of shape x element size */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": dtype F32 x shape [4294967296, 4294967296] overflows 64 bits");
    expect_bad("{\"w\":{\"dtype\":\"I64\",\"shape\":[9007199254740992,256],\"data_offsets\":[0,4]}}", 4,
               "overflows 64 bits");
    /* 2^53 bytes is no overflow, but far beyond the data */
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992],\"data_offsets\":[0,4]}}", 4,
               "do not match dtype U8 x shape [9007199254740992] (9007199254740992 bytes)");

    /* data_offsets: not non-negative integers, begin > end, end beyond data */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
               "tensor \"w\": data_offsets[0] = -4 is negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 8,
               "tensor \"w\": data_offsets[1] = 4.5 is not an integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
               "tensor \"w\": data_offsets [8, 4]: begin is after end");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
               "tensor \"w\": data_offsets [0, 16] end beyond the data section (12 bytes)");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[13,13]}}", 12, "end beyond the data section");

    /* byte length != numel x element size (the message from the brief) */
    expect_bad("{\"conv.weight\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[0,100]}}", 100,
               "bad.safetensors: tensor \"conv.weight\": data_offsets [0, 100] do not match dtype F32 x shape "
               "[3, 3] (36 bytes)");

    /* overlapping tensors, also when they are not neighbours in the header */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" [0, 8]");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,16]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"c\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[12,20]}}",
               20, "tensor \"c\": data_offsets [12, 20] overlap tensor \"a\" [8, 16]");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
               4, "tensor \"b\": data_offsets [0, 4] overlap tensor \"a\" [0, 4]");

    /* duplicate tensor names (cJSON keeps both) */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "tensor \"a\": duplicate tensor name");

    /* __metadata__ not an object of strings */
    expect_bad("{\"__metadata__\":[\"a\"]}", 0, "__metadata__: not a JSON object");
    expect_bad("{\"__metadata__\":{\"epochs\":3}}", 0, "__metadata__: \"epochs\" is not a string");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__: appears twice");
    expect_bad("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "__metadata__: duplicate key \"k\"");

    /* a hostile name stays on one line in the message */
    expect_bad("{\"evil\\nname\\\"\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
               "tensor \"evil\\x0aname\\\"\": unknown dtype \"X\"");
}

static void test_open_errors(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    StFile f;
    SdcErr err = {{0}};

    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    CHECK(st_open(&f, path, &err) == -1);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "No such file or directory"), "%s", err.msg);

    CHECK(st_open(&f, dir, &err) == -1);
    CHECK_MSG(strstr(err.msg, dir) && strstr(err.msg, "Is a directory"), "%s", err.msg);

    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    CHECK(st_open(&f, path, &err) == -1);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "file is 0 bytes"), "%s", err.msg);
    CHECK(f.path == NULL && f.base == NULL);
    unlink(path);

    /* a malformed file on disk is unmapped and reported like one in memory */
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    Blob b = blob("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", NULL, 8);
    fp = fopen(path, "wb");
    if (fp) {
        fwrite(b.p, 1, b.n, fp);
        fclose(fp);
    }
    free(b.p);
    CHECK(st_open(&f, path, &err) == -1);
    CHECK_MSG(strstr(err.msg, "bad.safetensors: tensor \"w\": data_offsets [0, 4] do not match"), "%s", err.msg);
    unlink(path);

    if (geteuid() != 0) { /* root reads anything */
        snprintf(path, sizeof path, "%s/locked.safetensors", dir);
        fp = fopen(path, "wb");
        if (fp) fclose(fp);
        chmod(path, 0);
        CHECK(st_open(&f, path, &err) == -1);
        CHECK_MSG(strstr(err.msg, "Permission denied"), "%s", err.msg);
        unlink(path);
    }
    rmdir(dir);
}

/* ---------------------------------------------------------------- fixtures */

static void test_fixture_unet(void)
{
    const char *fx = test_fixtures();
    if (!fx) {
        fprintf(stderr, "SKIP test_fixture_unet: SDC_FIXTURES is not set\n");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-sd/unet/diffusion_pytorch_model.safetensors", fx);
    StFile f;
    SdcErr err = {{0}};
    if (st_open(&f, path, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    CHECK_MSG(f.n > 100 && f.n < 2000, "%d tensors", f.n);
    const StTensor *t = st_find(&f, "conv_in.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->dtype == DT_F32 && strcmp(t->dtype_str, "F32") == 0);
        CHECK(t->ndim == 4 && t->shape[0] == 32 && t->shape[1] == 4 && t->shape[2] == 3 && t->shape[3] == 3);
        CHECK(t->nbytes == 32 * 4 * 3 * 3 * 4);
        float *w = xmalloc(t->nbytes);
        CHECK_MSG(st_read_f32(&f, t, w, &err) == 0, "%s", err.msg);
        int finite = 1, nonzero = 0;
        for (int i = 0; i < 32 * 4 * 9; i++) finite &= isfinite(w[i]) != 0, nonzero += w[i] != 0;
        CHECK(finite && nonzero > 100);
        free(w);
    }
    const StTensor *o = st_find(&f, "conv_out.weight");
    CHECK(o && o->ndim == 4 && o->shape[0] == 4 && o->shape[1] == 32);
    /* the Python writer packs tensors contiguously up to the end of the file */
    uint64_t total = 0, first = UINT64_MAX;
    int all_f32 = 1;
    for (int i = 0; i < f.n; i++) {
        total += f.tensors[i].nbytes;
        first = f.tensors[i].offset < first ? f.tensors[i].offset : first;
        all_f32 &= f.tensors[i].dtype == DT_F32;
    }
    CHECK(all_f32);
    CHECK(first % 8 == 0);
    CHECK(first + total == f.size);
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "pt") == 0);
    st_close(&f);
}

int main(void)
{
    RUN(test_round_trip_every_dtype);
    RUN(test_writer_bytes_match_reference_layout);
    RUN(test_many_tensors_lookup);
    RUN(test_overwrite_is_atomic_replace);
    RUN(test_streaming_writer_errors);
    RUN(test_read_f32_conversions);
    RUN(test_other_dtypes);
    RUN(test_valid_edge_cases);
    RUN(test_malformed_files);
    RUN(test_open_errors);
    RUN(test_fixture_unet);
    return test_finish();
}
