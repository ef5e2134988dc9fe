/* kernels_vec.c — the vectorised inner loops of the runtime kernels.
 *
 * Plain C loops under `omp simd`, each function compiled three times
 * (target_clones: AVX-512, AVX2, baseline SSE2) and picked at load time, so
 * the build needs no -march flag and the binary still runs anywhere.
 * Multiply-adds are fused where the clone has FMA (fp-contract below; ISO C
 * mode would turn it off): 6% on attention.  Thread-count determinism does
 * not depend on it: callers cut their work the same way whatever the
 * threads, so an element always goes through the same instructions.
 *
 * exp is Cephes' expf (range reduction by ln2 in two parts, degree-5
 * polynomial, ~1 ulp); erfc for GELU is Numerical Recipes' erfcc (Chebyshev
 * fit, relative error < 1.2e-7 everywhere, tails included). */
#if defined(__clang__) /* fuzz builds: correctness only, a loop left scalar is no error */
#pragma clang fp contract(fast)
#pragma clang diagnostic ignored "-Wpass-failed"
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "kernels_internal.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RT_VEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else /* clang 14's target_clones does not link; other targets build for their baseline */
#define RT_VEC_CLONES
#endif

#define EXP_LO (-87.0f) /* below: 0 (exp(-87) = 1.6e-38, the last normal floats) */
#define EXP_HI 88.0f    /* above: inf (keeps 2^n below 2^128) */

static inline float exp_inline(float x)
{
    float xc = x < EXP_LO ? EXP_LO : x;
    xc = xc > EXP_HI ? EXP_HI : xc;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (vectorises without SSE4.1). */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* 2^n; n is in [-126, 127] */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float y = e * two_n;
    y = x < EXP_LO ? 0.0f : y;
    return x > EXP_HI ? INFINITY : y;
}

static inline float silu_inline(float x) { return x / (1.0f + exp_inline(-x)); }

/* 0.5 x (1 + erf(x/sqrt2)) = 0.5 x erfc(-x/sqrt2): written with erfc so that
 * the negative tail keeps its relative accuracy. */
static inline float gelu_inline(float x)
{
    float u = x * -0.70710678118654752f;
    float z = u < 0 ? -u : u;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float ans = t * exp_inline(p - z * z);
    float erfc_u = u >= 0 ? ans : 2.0f - ans;
    return 0.5f * x * erfc_u;
}

RT_VEC_CLONES float rt_vec_max(const float *x, int64_t n)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

RT_VEC_CLONES double rt_vec_exp_sum_d(float *y, const float *x, int64_t n, float shift)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        float e = exp_inline(x[i] - shift);
        y[i] = e;
        s += e;
    }
    return s;
}

RT_VEC_CLONES void rt_vec_softmax_step(float *st, int64_t nk, int64_t nq, float *mx, float *sum, float *factor,
                                       float *col)
{
    for (int64_t r = 0; r < nq; r++) col[r] = mx[r];
    for (int64_t j = 0; j < nk; j++) {
        const float *sj = st + j * nq;
#pragma omp simd
        for (int64_t r = 0; r < nq; r++) col[r] = sj[r] > col[r] ? sj[r] : col[r];
    }
#pragma omp simd
    for (int64_t r = 0; r < nq; r++) {
        /* exp(-inf - -inf) would be NaN: a row with nothing visible yet keeps factor 1 */
        factor[r] = col[r] == -INFINITY ? 1.0f : exp_inline(mx[r] - col[r]);
        mx[r] = col[r];
        col[r] = 0.0f;
    }
    for (int64_t j = 0; j < nk; j++) {
        float *sj = st + j * nq;
#pragma omp simd
        for (int64_t r = 0; r < nq; r++) {
            float e = exp_inline(sj[r] - mx[r]);
            sj[r] = e;
            col[r] += e;
        }
    }
#pragma omp simd
    for (int64_t r = 0; r < nq; r++) sum[r] = sum[r] * factor[r] + col[r];
}

/* The same on one 16-query sub-panel st[nk][16]: the inner loops have a
 * constant trip count, so each key row is one vector (two on AVX2) with no
 * loop overhead (rt_attention calls this once per sub-panel and key block). */
RT_VEC_CLONES void rt_vec_softmax_panel(float *st, int64_t nk, float *mx, float *sum, float *factor)
{
    float col[16];
#pragma omp simd
    for (int r = 0; r < 16; r++) col[r] = mx[r];
    for (int64_t j = 0; j < nk; j++) {
        const float *sj = st + j * 16;
#pragma omp simd
        for (int r = 0; r < 16; r++) col[r] = sj[r] > col[r] ? sj[r] : col[r];
    }
#pragma omp simd
    for (int r = 0; r < 16; r++) {
        factor[r] = col[r] == -INFINITY ? 1.0f : exp_inline(mx[r] - col[r]);
        mx[r] = col[r];
        col[r] = 0.0f;
    }
    for (int64_t j = 0; j < nk; j++) {
        float *sj = st + j * 16;
#pragma omp simd
        for (int r = 0; r < 16; r++) {
            float e = exp_inline(sj[r] - mx[r]);
            sj[r] = e;
            col[r] += e;
        }
    }
#pragma omp simd
    for (int r = 0; r < 16; r++) sum[r] = sum[r] * factor[r] + col[r];
}

RT_VEC_CLONES void rt_vec_scale_rows(float *y, int64_t rows, int64_t cols, const float *factor)
{
    for (int64_t r = 0; r < rows; r++) {
        float f = factor[r];
        float *yr = y + r * cols;
#pragma omp simd
        for (int64_t i = 0; i < cols; i++) yr[i] *= f;
    }
}

RT_VEC_CLONES void rt_vec_scale(float *y, const float *x, int64_t n, float s)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

RT_VEC_CLONES void rt_vec_fill(float *y, int64_t n, float v)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = v;
}

RT_VEC_CLONES double rt_vec_sum_d(const float *x, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

RT_VEC_CLONES double rt_vec_sq_dev_d(const float *x, int64_t n, double mean)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        s += d * d;
    }
    return s;
}

RT_VEC_CLONES void rt_vec_norm_channel(float *y, const float *x, int64_t n, float mean, float a, float b, int silu)
{
    if (silu) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = silu_inline((x[i] - mean) * a + b);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * a + b;
    }
}

RT_VEC_CLONES void rt_vec_norm_row(float *y, const float *x, int64_t n, float mean, float inv, const float *gamma,
                                   const float *beta)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

RT_VEC_CLONES void rt_vec_silu(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = silu_inline(x[i]);
}

RT_VEC_CLONES void rt_vec_gelu(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gelu_inline(x[i]);
}

RT_VEC_CLONES void rt_vec_quick_gelu(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + exp_inline(-1.702f * x[i]));
}

/* One loop per op and stride pattern: the op switch stays outside the loop
 * and the contiguous/broadcast cases vectorise.  y may equal a or b (same
 * element read before it is written), never overlap them partially. */
#define BINARY_LOOP(EXPR)                                                          \
    do {                                                                           \
        if (sa == 1 && sb == 1) {                                                  \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                  \
                float av = a[i], bv = b[i];                                        \
                y[i] = EXPR;                                                       \
            }                                                                      \
        } else if (sa == 1 && sb == 0) {                                           \
            float bv = b[0];                                                       \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                  \
                float av = a[i];                                                   \
                y[i] = EXPR;                                                       \
            }                                                                      \
        } else if (sa == 0 && sb == 1) {                                           \
            float av = a[0];                                                       \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                  \
                float bv = b[i];                                                   \
                y[i] = EXPR;                                                       \
            }                                                                      \
        } else {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                      \
                float av = a[i * sa], bv = b[i * sb];                              \
                y[i] = EXPR;                                                       \
            }                                                                      \
        }                                                                          \
    } while (0)

RT_VEC_CLONES void rt_vec_binary(RtBinaryOp op, int64_t n, const float *a, int64_t sa, const float *b, int64_t sb,
                                 float *y)
{
    switch (op) {
    case RT_ADD: BINARY_LOOP(av + bv); break;
    case RT_SUB: BINARY_LOOP(av - bv); break;
    case RT_MUL: BINARY_LOOP(av * bv); break;
    case RT_DIV: BINARY_LOOP(av / bv); break;
    }
}

/* IEEE half to float without branches on the common path: the 15 bits of
 * exponent and mantissa shifted into a float's place are the value times
 * 2^-112 (subnormal halves become subnormal floats, which the multiply
 * scales exactly); only inf/nan need their exponent set to all ones.
 * (Unions, not memcpy: GCC's simd clones warn about memcpy here.) */
typedef union F32Bits {
    float f;
    uint32_t u;
} F32Bits;

static inline float f16_widen(uint16_t h)
{
    uint32_t em = (uint32_t)(h & 0x7fffu) << 13, sign = (uint32_t)(h & 0x8000u) << 16;
    F32Bits v = {.u = em};
    v.f *= 0x1p112f;
    v.u = em >= (0x7c00u << 13) ? em | 0x7f800000u : v.u;
    v.u |= sign;
    return v.f;
}

RT_VEC_CLONES void rt_widen(int bf16, const uint16_t *src, float *dst, int64_t n)
{
    if (bf16) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            F32Bits v = {.u = (uint32_t)src[i] << 16};
            dst[i] = v.f;
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dst[i] = f16_widen(src[i]);
    }
}
