/* rng.c — PyTorch CPU generator: MT19937, uniform and normal draws.
 *
 * Follows ATen 1.13: core/MT19937RNGEngine.h (engine), CPUGeneratorImpl.cpp
 * (random64 = two draws, first one high; seeding resets the normal cache),
 * core/TransformationHelper.h (uniform_real: mask to the mantissa width and
 * scale by 2^-digits), core/DistributionsHelper.h (normal_distribution<double>)
 * and native/cpu/DistributionTemplates.h (normal_kernel, normal_fill,
 * normal_fill_16 and its AVX2 twin, which uses native/cpu/avx_mathfun.h).
 *
 * Every float operation below is written out one at a time, in ATen's order,
 * because the point of this file is identical bits, not accuracy. */
#include "rng.h"

#include <math.h>
#include <string.h>

#define TORCH_MT_M 397
#define TORCH_MT_MATRIX_A 0x9908b0dfu
#define TORCH_MT_UMASK 0x80000000u
#define TORCH_MT_LMASK 0x7fffffffu

/* c10::pi<double> (M_PI, which strict C17 does not declare). */
#define C10_PI 3.14159265358979323846

void torch_gen_seed(TorchGen *g, uint64_t seed)
{
    /* ATen keeps the 64-bit seed but initialises from its low 32 bits. */
    g->seed = seed;
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < TORCH_MT_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->index = TORCH_MT_N;
    g->has_next_double_normal = 0;
    g->next_double_normal = 0.0;
}

static uint32_t mt_twist(uint32_t u, uint32_t v)
{
    uint32_t mixed = (u & TORCH_MT_UMASK) | (v & TORCH_MT_LMASK);
    return (mixed >> 1) ^ ((v & 1u) ? TORCH_MT_MATRIX_A : 0u);
}

static void mt_next_state(TorchGen *g)
{
    uint32_t *s = g->state;
    int k = 0;
    for (; k < TORCH_MT_N - TORCH_MT_M; k++) s[k] = s[k + TORCH_MT_M] ^ mt_twist(s[k], s[k + 1]);
    for (; k < TORCH_MT_N - 1; k++)
        s[k] = s[k + TORCH_MT_M - TORCH_MT_N] ^ mt_twist(s[k], s[k + 1]);
    s[k] = s[k + TORCH_MT_M - TORCH_MT_N] ^ mt_twist(s[k], s[0]);
    g->index = 0;
}

uint32_t torch_gen_u32(TorchGen *g)
{
    if (g->index >= TORCH_MT_N) mt_next_state(g);
    uint32_t y = g->state[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t torch_gen_u64(TorchGen *g)
{
    uint64_t hi = torch_gen_u32(g);
    uint64_t lo = torch_gen_u32(g);
    return (hi << 32) | lo;
}

/* uniform_real_distribution<float>(0, 1): 24 bits of one draw. */
static float uniform_f32(TorchGen *g)
{
    return (float)(torch_gen_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>(0, 1): 53 bits of a 64-bit draw. */
static double uniform_f64(TorchGen *g)
{
    return (double)(torch_gen_u64(g) & 0x1fffffffffffffull) * (1.0 / 9007199254740992.0);
}

/* at::normal_distribution<double>(0, 1): Box-Muller in double, the sine
 * half cached in the generator for the next call. */
static double normal_f64(TorchGen *g)
{
    if (g->has_next_double_normal) {
        g->has_next_double_normal = 0;
        return g->next_double_normal;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * C10_PI * u1;
    g->next_double_normal = r * sin(theta);
    g->has_next_double_normal = 1;
    return r * cos(theta);
}

/* normal_fill_16<float> with mean 0, std 1: cos half into [0,8), sin half
 * into [8,16).  theta is computed in double (ATen multiplies by
 * c10::pi<double>) and then rounded to float.  "* 1.0f + 0.0f" is kept
 * because it turns -0 into +0 exactly as ATen's "* std + mean" does. */
static void normal_fill_16_f32(float *d)
{
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * C10_PI * (double)u2);
        d[j] = radius * cosf(theta) * 1.0f + 0.0f;
        d[j + 8] = radius * sinf(theta) * 1.0f + 0.0f;
    }
}

static void normal_fill_16_f64(double *d)
{
    for (int j = 0; j < 8; j++) {
        double u1 = 1.0 - d[j];
        double u2 = d[j + 8];
        double radius = sqrt(-2.0 * log(u1));
        double theta = 2.0 * C10_PI * u2;
        d[j] = radius * cos(theta) * 1.0 + 0.0;
        d[j + 8] = radius * sin(theta) * 1.0 + 0.0;
    }
}

/* ---- the AVX2 kernel, one lane at a time --------------------------------
 *
 * log256_ps and sincos256_ps from avx_mathfun.h (Cephes polynomials).  torch
 * compiles its AVX2 kernels with -mfma and GCC's default -ffp-contract=fast
 * for C++, so every multiply whose only use is an add became one fused
 * multiply-add; fmaf() marks exactly those places (GCC's rule: a product
 * used only by one add; of two products added, the first one fuses).  The
 * AVX2 goldens match bit for bit and fail with any fmaf undone.  Plain
 * "a * b" below was not fused; every fused place is an explicit fmaf, so
 * our own compiler's contraction setting cannot change the result. */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* log256_ps for x > 0 (u1 = 1 - u is in [2^-24, 1], never 0 or denormal). */
static float avx_logf(float x)
{
    const float sqrthf = 0.707106781186547524f;
    uint32_t bits = f32_to_bits(x);
    int32_t exponent = (int32_t)(bits >> 23) - 0x7f;
    float m = bits_to_f32((bits & ~0x7f800000u) | f32_to_bits(0.5f)); /* in [0.5, 1) */
    float e = (float)exponent + 1.0f;
    float tmp = 0.0f;
    if (m < sqrthf) { /* x = 2m - 1, e -= 1, as (m - 1) + m */
        tmp = m;
        e = e - 1.0f;
    }
    m = m - 1.0f;
    m = m + tmp;

    float z = m * m;
    float y = fmaf(7.0376836292E-2f, m, -1.1514610310E-1f);
    y = fmaf(y, m, 1.1676998740E-1f);
    y = fmaf(y, m, -1.2420140846E-1f);
    y = fmaf(y, m, 1.4249322787E-1f);
    y = fmaf(y, m, -1.6668057665E-1f);
    y = fmaf(y, m, 2.0000714765E-1f);
    y = fmaf(y, m, -2.4999993993E-1f);
    y = fmaf(y, m, 3.3333331174E-1f);
    y = y * m;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    return fmaf(e, 0.693359375f, m + y);
}

/* sincos256_ps for 0 <= x < 2*pi (theta = 2*pi*u2). */
static void avx_sincosf(float x, float *s, float *c)
{
    uint32_t sign_sin = f32_to_bits(x) & 0x80000000u;
    x = bits_to_f32(f32_to_bits(x) & 0x7fffffffu);
    float y = x * 1.27323954473516f; /* 4/pi */
    int32_t j = (int32_t)y;          /* truncation, like cvttps */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sign_sin = (uint32_t)(j & 4) << 29;
    int poly_sin = (j & 2) == 0; /* sine from the sine polynomial */
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sign_sin;

    /* x - y*pi/4 in three pieces ("extended precision modular arithmetic") */
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);

    float z = x * x;
    float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;

    float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    /* The masked selects of the original, written with the same adds of +0. */
    float ysin2 = poly_sin ? ys : 0.0f;
    float ysin1 = poly_sin ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = bits_to_f32(f32_to_bits(ysin1 + ysin2) ^ sign_sin);
    *c = bits_to_f32(f32_to_bits(yc + ys) ^ sign_cos);
}

static void normal_fill_16_avx2(float *d)
{
    const float two_pi = (float)(2.0 * C10_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * avx_logf(u1));
        float theta = two_pi * u2;
        float s, c;
        avx_sincosf(theta, &s, &c);
        d[j] = fmaf(radius * c, 1.0f, 0.0f);
        d[j + 8] = fmaf(radius * s, 1.0f, 0.0f);
    }
}

/* ---- tensors ---------------------------------------------------------- */

/* normal_fill: all n uniforms first, then blocks of 16; a ragged tail is
 * redone with 16 fresh uniforms over the last 16 elements. */
static void randn_fill_f32(TorchGen *g, float *out, int64_t n, void (*fill16)(float *))
{
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
    for (int64_t i = 0; i + 16 <= n; i += 16) fill16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        fill16(tail);
    }
}

static void randn_f32(TorchGen *g, float *out, int64_t n, void (*fill16)(float *))
{
    if (n >= 16) {
        randn_fill_f32(g, out, n, fill16);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = (float)normal_f64(g);
}

void torch_randn(TorchGen *g, float *out, int64_t n) { randn_f32(g, out, n, normal_fill_16_f32); }

void torch_randn_avx2(TorchGen *g, float *out, int64_t n) { randn_f32(g, out, n, normal_fill_16_avx2); }

void torch_rand(TorchGen *g, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}

void torch_randn_f64(TorchGen *g, double *out, int64_t n)
{
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) out[i] = normal_f64(g);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f64(g);
    for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16_f64(out + i);
    if (n % 16 != 0) {
        double *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f64(g);
        normal_fill_16_f64(tail);
    }
}
