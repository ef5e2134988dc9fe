/* test_util.c — shared test helpers (see test.h). */
#define _XOPEN_SOURCE 700
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>

int test_failures;

static uint64_t rng_state[2];
static uint64_t seed_used;
static int seeded;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void test_seed(uint64_t seed)
{
    seed_used = seed;
    uint64_t s = seed;
    rng_state[0] = splitmix(&s);
    rng_state[1] = splitmix(&s);
    seeded = 1;
}

static void ensure_seeded(void)
{
    if (seeded) return;
    const char *e = getenv("SDC_TEST_SEED");
    test_seed(e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
}

uint64_t test_seed_used(void)
{
    ensure_seeded();
    return seed_used;
}

static uint64_t next_u64(void)
{
    ensure_seeded();
    uint64_t s0 = rng_state[0], s1 = rng_state[1], r = s0 + s1;
    s1 ^= s0;
    rng_state[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
    rng_state[1] = (s1 << 36) | (s1 >> 28);
    return r;
}

float test_uniform(float lo, float hi)
{
    double u = (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float test_randn(void)
{
    double u1 = ((double)(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void test_fill_randn(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * test_randn();
}

double test_rel_err(const float *out, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    if (isnan(num)) return INFINITY;
    return sqrt(num / den);
}

double test_max_abs(const float *out, const float *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - (double)ref[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

int test_finish(void)
{
    if (test_failures) {
        fprintf(stderr, "%d check(s) failed (SDC_TEST_SEED=%llu)\n", test_failures,
                (unsigned long long)test_seed_used());
        return 1;
    }
    return 0;
}

const char *test_fixtures(void)
{
    const char *f = getenv("SDC_FIXTURES");
    return f && *f ? f : NULL;
}

const char *test_need_fixtures(void)
{
    const char *f = test_fixtures();
    if (!f) {
        fprintf(stderr, "SKIP: SDC_FIXTURES is not set (point it at shared/fixtures to run this test)\n");
        exit(77);
    }
    return f;
}

static char tmp_paths[8][256];
static int ntmp;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Test folders go at exit (SDC_KEEP_TMP=1 keeps them for a post-mortem). */
static void remove_tmpdirs(void)
{
    const char *keep = getenv("SDC_KEEP_TMP");
    if (keep && *keep == '1') return;
    for (int i = 0; i < ntmp; i++) nftw(tmp_paths[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_tmpdir(void)
{
    if (ntmp == 8) {
        fprintf(stderr, "test_tmpdir: too many temporary folders\n");
        exit(2);
    }
    char *path = tmp_paths[ntmp];
    const char *base = getenv("TMPDIR");
    snprintf(path, 256, "%s/sdc-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(2);
    }
    if (ntmp++ == 0) atexit(remove_tmpdirs);
    return path;
}
