/* test_rng.c — TorchGen against PyTorch's own draws.
 *
 * Without fixtures: MT19937 reference outputs, seeding rules and the
 * structure of normal_fill (tail redo, cache of the double path).
 * With fixtures: every tensor of tiny-sd-golden/rng.safetensors — the
 * rng_scalar_* ones bit for bit, the rng_* (AVX2 kernel) ones within 2.5e-6
 * with torch_randn and bit for bit with torch_randn_avx2. */
#include "rng.h"
#include "err.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny safetensors reader (F32 only), private to this test -------- */

typedef struct StTensor {
    char name[128];
    int64_t shape[8];
    int ndim;
    int64_t numel;
    float *data;
} StTensor;

typedef struct StFile {
    StTensor *t;
    int n;
} StFile;

static int st_load(const char *path, StFile *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = xmalloc((size_t)size);
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (got != (size_t)size || size < 8 || hlen > (uint64_t)size - 8) {
        fprintf(stderr, "%s: bad header\n", path);
        free(buf);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root) {
        fprintf(stderr, "%s: bad JSON header\n", path);
        free(buf);
        return -1;
    }
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_size = (uint64_t)size - 8 - hlen;
    out->t = xcalloc((size_t)cJSON_GetArraySize(root), sizeof *out->t);
    int rc = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        cJSON *dt = cJSON_GetObjectItem(e, "dtype"), *sh = cJSON_GetObjectItem(e, "shape");
        cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0 || !cJSON_IsArray(sh) ||
            cJSON_GetArraySize(sh) > 8 || cJSON_GetArraySize(off) != 2 || strlen(e->string) >= 128) {
            fprintf(stderr, "%s: %s: unexpected entry\n", path, e->string);
            rc = -1;
            break;
        }
        StTensor *t = &out->t[out->n++];
        snprintf(t->name, sizeof t->name, "%s", e->string);
        t->numel = 1;
        for (cJSON *d = sh->child; d; d = d->next) t->numel *= t->shape[t->ndim++] = (int64_t)d->valuedouble;
        uint64_t b = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        uint64_t end = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        if (end > data_size || b > end || end - b != (uint64_t)t->numel * 4) {
            fprintf(stderr, "%s: %s: bad data_offsets\n", path, e->string);
            rc = -1;
            break;
        }
        t->data = xmalloc((size_t)(end - b) + 1);
        memcpy(t->data, data + b, (size_t)(end - b)); /* little-endian host */
    }
    cJSON_Delete(root);
    free(buf);
    return rc;
}

static void st_free(StFile *f)
{
    for (int i = 0; i < f->n; i++) free(f->t[i].data);
    free(f->t);
}

static const StTensor *st_get(const StFile *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

/* ---- checks without fixtures ------------------------------------------ */

/* The first outputs of std::mt19937 with its default seed 5489, and the
 * 10000th (the C++ standard's check value 4123659995). */
static void test_mt19937_reference(void)
{
    static const uint32_t first[] = {3499211612u, 581869302u, 3890346734u, 3586334585u, 545404204u,
                                     4161255391u, 3922919429u, 949333985u, 2715962298u, 1323567403u};
    TorchGen g;
    torch_gen_seed(&g, 5489);
    for (int i = 0; i < 10; i++) CHECK_MSG(torch_gen_u32(&g) == first[i], "output %d", i);
    uint32_t v = 0;
    for (int i = 10; i < 10000; i++) v = torch_gen_u32(&g);
    CHECK(v == 4123659995u);
}

/* ATen seeds from the low 32 bits; random64 puts the first draw high. */
static void test_seed_rules(void)
{
    TorchGen a, b;
    torch_gen_seed(&a, 4294967301ull);
    torch_gen_seed(&b, 5);
    for (int i = 0; i < 700; i++) CHECK(torch_gen_u32(&a) == torch_gen_u32(&b));
    torch_gen_seed(&a, 7);
    torch_gen_seed(&b, 7);
    uint64_t hi = torch_gen_u32(&b), lo = torch_gen_u32(&b);
    CHECK(torch_gen_u64(&a) == ((hi << 32) | lo));
}

/* rand: 24-bit uniforms in [0,1), exactly k/2^24 of the draw's low bits. */
static void test_rand_values(void)
{
    TorchGen a, b;
    torch_gen_seed(&a, 123);
    torch_gen_seed(&b, 123);
    float u[1000];
    torch_rand(&a, u, 1000);
    double mean = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t r = torch_gen_u32(&b) & 0xffffff;
        CHECK(u[i] == (float)r / 16777216.0f);
        CHECK(u[i] >= 0.0f && u[i] < 1.0f);
        mean += u[i] / 1000.0;
    }
    CHECK(fabs(mean - 0.5) < 0.05);
}

/* normal_fill: n >= 16 consumes n draws (+16 if n % 16 != 0); n < 16 uses
 * pairs of 64-bit draws and caches the second sample. */
static void test_draw_counts_and_cache(void)
{
    static const int64_t sizes[] = {16, 17, 31, 32, 100};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        TorchGen a, b;
        torch_gen_seed(&a, 99);
        torch_gen_seed(&b, 99);
        float *x = xmalloc((size_t)n * sizeof *x);
        torch_randn(&a, x, n);
        int64_t draws = n + (n % 16 ? 16 : 0);
        for (int64_t i = 0; i < draws; i++) torch_gen_u32(&b);
        CHECK_MSG(torch_gen_u32(&a) == torch_gen_u32(&b), "n=%" PRId64, n);
        /* The elements before the redone tail are the first blocks'. */
        TorchGen c;
        torch_gen_seed(&c, 99);
        float *y = xmalloc((size_t)(n / 16 * 16) * sizeof *y);
        torch_randn(&c, y, n / 16 * 16);
        int64_t keep = n % 16 ? n - 16 : n;
        CHECK_MSG(memcmp(x, y, (size_t)keep * sizeof *x) == 0, "n=%" PRId64, n);
        double m = 0, v = 0;
        for (int64_t i = 0; i < n; i++) m += x[i] / (double)n, v += (double)x[i] * x[i] / (double)n;
        CHECK(isfinite(m) && fabs(m) < 1.0 && v > 0.2 && v < 3.0);
        free(x);
        free(y);
    }

    /* 3 samples: two Box-Muller pairs, the fourth sample stays cached. */
    TorchGen a, b;
    torch_gen_seed(&a, 5);
    torch_gen_seed(&b, 5);
    float x3[3], x1[1];
    torch_randn(&a, x3, 3);
    CHECK(a.has_next_double_normal);
    for (int i = 0; i < 8; i++) torch_gen_u32(&b);
    CHECK(torch_gen_u32(&a) == torch_gen_u32(&b));
    /* Reseeding clears the cache; the cached value is the next draw. */
    torch_gen_seed(&a, 5);
    torch_randn(&a, x3, 3);
    double cached = a.next_double_normal;
    torch_randn(&a, x1, 1);
    CHECK(x1[0] == (float)cached && !a.has_next_double_normal);
    torch_gen_seed(&a, 5);
    CHECK(!a.has_next_double_normal);

    /* The double path gives the float path's small-n values before rounding. */
    double d[4];
    torch_gen_seed(&a, 11);
    torch_gen_seed(&b, 11);
    torch_randn_f64(&a, d, 4);
    float f[4];
    torch_randn(&b, f, 4);
    for (int i = 0; i < 4; i++) CHECK(f[i] == (float)d[i]);
}

/* The AVX2 emulation stays within a few ulp of the scalar kernel. */
static void test_avx2_close(void)
{
    enum { N = 4 * 64 * 64 };
    static float x[N], y[N];
    TorchGen a, b;
    torch_gen_seed(&a, 3);
    torch_gen_seed(&b, 3);
    torch_randn(&a, x, N);
    torch_randn_avx2(&b, y, N);
    CHECK(test_max_abs(x, y, N) < 5e-6);
    CHECK(torch_gen_u32(&a) == torch_gen_u32(&b));
}

/* ---- the fixture file -------------------------------------------------- */

typedef enum { KIND_RAND, KIND_RANDN, KIND_RANDN_F64 } DrawKind;

/* Draws like the tensor's name says ("rng_[scalar_]{rand,randn,randn_f64}_
 * <shape>_seed<S>"), with avx2 selecting torch_randn_avx2 for randn. */
static void draw(DrawKind kind, uint64_t seed, int avx2, float *out, int64_t n)
{
    TorchGen g;
    torch_gen_seed(&g, seed);
    if (kind == KIND_RAND) {
        torch_rand(&g, out, n);
    } else if (kind == KIND_RANDN) {
        (avx2 ? torch_randn_avx2 : torch_randn)(&g, out, n);
    } else {
        double *d = xmalloc((size_t)n * sizeof *d);
        torch_randn_f64(&g, d, n);
        for (int64_t i = 0; i < n; i++) out[i] = (float)d[i];
        free(d);
    }
}

static int count_bit_diffs(const float *a, const float *b, int64_t n)
{
    int diffs = 0;
    for (int64_t i = 0; i < n; i++) diffs += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return diffs;
}

static void check_single_draw(const StTensor *t)
{
    const char *name = t->name + strlen("rng_");
    int scalar = strncmp(name, "scalar_", 7) == 0;
    if (scalar) name += 7;
    DrawKind kind;
    if (strncmp(name, "randn_f64_", 10) == 0) {
        kind = KIND_RANDN_F64;
    } else if (strncmp(name, "randn_", 6) == 0) {
        kind = KIND_RANDN;
    } else if (strncmp(name, "rand_", 5) == 0) {
        kind = KIND_RAND;
    } else {
        CHECK_MSG(0, "%s: unknown tensor kind", t->name);
        return;
    }
    const char *s = strstr(name, "_seed");
    CHECK_MSG(s != NULL, "%s: no seed in name", t->name);
    if (!s) return;
    uint64_t seed = strtoull(s + 5, NULL, 10);
    int64_t n = t->numel;
    float *mine = xmalloc((size_t)n * sizeof *mine);

    /* The scalar kernel, rand, the double path and randn with < 16
     * elements are the same in both files: bit for bit. */
    int exact = scalar || kind != KIND_RANDN || n < 16;
    draw(kind, seed, 0, mine, n);
    if (exact) {
        int diffs = count_bit_diffs(mine, t->data, n);
        CHECK_MSG(diffs == 0, "%s: %d of %" PRId64 " elements differ (max abs %.3g)", t->name, diffs, n,
                  test_max_abs(mine, t->data, (size_t)n));
    } else {
        /* PyTorch's own scalar and AVX2 goldens differ by up to 2.03e-6
         * (rng_randn_1x4x64x64_seed1), so the scalar path cannot do better. */
        double err = test_max_abs(mine, t->data, (size_t)n);
        CHECK_MSG(err <= 2.5e-6, "%s: scalar path max abs %.3g vs the AVX2 kernel", t->name, err);
        draw(kind, seed, 1, mine, n);
        int diffs = count_bit_diffs(mine, t->data, n);
        CHECK_MSG(diffs == 0, "%s: AVX2 emulation: %d of %" PRId64 " elements differ (max abs %.3g)", t->name,
                  diffs, n, test_max_abs(mine, t->data, (size_t)n));
    }
    free(mine);
}

/* rng_[scalar_]seq_seed0_{a,b,c,d}: randn 1x4x8x8, 1x4x8x8, 5, 1x4x8x8 from
 * one generator seeded 0. */
static void check_sequence(const StFile *f, int scalar)
{
    static const int64_t sizes[4] = {256, 256, 5, 256};
    TorchGen g;
    torch_gen_seed(&g, 0);
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "rng_%sseq_seed0_%c", scalar ? "scalar_" : "", 'a' + k);
        const StTensor *t = st_get(f, name);
        CHECK_MSG(t && t->numel == sizes[k], "%s: missing or wrong size", name);
        if (!t || t->numel != sizes[k]) return;
        float mine[256];
        (scalar ? torch_randn : torch_randn_avx2)(&g, mine, sizes[k]);
        int diffs = count_bit_diffs(mine, t->data, sizes[k]);
        CHECK_MSG(diffs == 0, "%s: %d elements differ (max abs %.3g)", name, diffs,
                  test_max_abs(mine, t->data, (size_t)sizes[k]));
    }
}

static void test_fixture_tensors(void)
{
    const char *fx = test_need_fixtures();
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny-sd-golden/rng.safetensors", fx);
    StFile f;
    CHECK(st_load(path, &f) == 0);
    int checked = 0;
    for (int i = 0; i < f.n; i++) {
        if (strstr(f.t[i].name, "seq_")) continue;
        check_single_draw(&f.t[i]);
        checked++;
    }
    check_sequence(&f, 1);
    check_sequence(&f, 0);
    CHECK_MSG(f.n == 50 && checked == 42, "%d tensors, %d single draws", f.n, checked);
    st_free(&f);
}

int main(void)
{
    RUN(test_mt19937_reference);
    RUN(test_seed_rules);
    RUN(test_rand_values);
    RUN(test_draw_counts_and_cache);
    RUN(test_avx2_close);
    /* Without fixtures the checks above still count: fail if they failed,
     * else report the test as skipped (exit 77). */
    if (test_failures || !test_fixtures()) {
        if (test_failures) return test_finish();
        test_need_fixtures();
    }
    RUN(test_fixture_tensors);
    return test_finish();
}
