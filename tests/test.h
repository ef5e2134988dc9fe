/* test.h — the few helpers every unit test uses.
 *
 * A test file defines test functions and a main() that runs them with RUN().
 * CHECK records a failure and goes on; the process exits 1 if any failed.
 * Random inputs come from test_rand*(), seeded from SDC_TEST_SEED or the
 * clock (the seed is printed on failure so a run can be repeated). */
#ifndef SDC_TEST_H
#define SDC_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

extern int test_failures;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                       \
        }                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            test_failures++;                                                       \
        }                                                                          \
    } while (0)

/* Relative error ||out-ref|| / ||ref|| (computed in double) must be below tol. */
#define CHECK_REL(out, ref, n, tol)                                                \
    do {                                                                           \
        double rel_ = test_rel_err((out), (ref), (n));                             \
        if (!(rel_ < (tol))) {                                                     \
            fprintf(stderr, "%s:%d: relative error %.3g >= %.3g (%s vs %s)\n",     \
                    __FILE__, __LINE__, rel_, (double)(tol), #out, #ref);          \
            test_failures++;                                                       \
        }                                                                          \
    } while (0)

#define RUN(fn)                                                                    \
    do {                                                                           \
        int before_ = test_failures;                                               \
        fn();                                                                      \
        fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

/* Exit status of main: 0 if all passed, 1 otherwise (prints the seed). */
int test_finish(void);

double test_rel_err(const float *out, const float *ref, size_t n);
double test_max_abs(const float *out, const float *ref, size_t n);

/* Deterministic per-run random numbers (xoshiro-style), never all zero. */
void test_seed(uint64_t seed);
uint64_t test_seed_used(void);
float test_randn(void);           /* standard normal */
float test_uniform(float lo, float hi);
void test_fill_randn(float *x, size_t n, float scale);

/* The fixtures folder from SDC_FIXTURES, or NULL.  test_need_fixtures()
 * prints why the test is skipped and exits 77 when it is not set. */
const char *test_fixtures(void);
const char *test_need_fixtures(void);

/* A fresh temporary directory (removed by the caller's test harness only if
 * it wants; tests keep them small).  Returned path is static per call. */
const char *test_tmpdir(void);

#endif
