/* fma_probe.c — measures this machine's fp32 FMA peak, so that benchmark
 * figures can be given as a fraction of it (measured in the same run).
 *
 * Each thread runs 12 independent chains of vfmadd on 16-float (AVX-512)
 * or 8-float (AVX2) registers for a fixed time; FLOPs = 2 * lanes * FMAs.
 * Where the CPU has AVX512-BF16 it also measures VDPBF16PS the same way
 * (32 bf16 products summed into 16 fp32 lanes: 64 FLOPs an instruction),
 * the peak of the runtime's bf16 kernels (--weights-dtype bf16).
 * Prints JSON: {"isa": ..., "gflops_1t": ..., "gflops_all": ..., "threads": N,
 * "bf16_gflops_1t": ..., "bf16_gflops_all": ...} (bf16 fields 0 without it).
 * Built by bench/run.sh:  cc -O2 -fopenmp bench/fma_probe.c -o fma_probe */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 12 named accumulators so that every chain stays in a register: enough
 * independent FMAs to cover the 4-cycle latency on two FMA pipes. */
#define CHAINS 12
#define FMA12(F, A, B)                                                                              \
    x0 = F(x0, A, B), x1 = F(x1, A, B), x2 = F(x2, A, B), x3 = F(x3, A, B), x4 = F(x4, A, B),        \
    x5 = F(x5, A, B), x6 = F(x6, A, B), x7 = F(x7, A, B), x8 = F(x8, A, B), x9 = F(x9, A, B),        \
    x10 = F(x10, A, B), x11 = F(x11, A, B)

__attribute__((target("avx512f"))) static double run512(long iters)
{
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 x0 = _mm512_set1_ps(0), x1 = _mm512_set1_ps(1), x2 = _mm512_set1_ps(2), x3 = _mm512_set1_ps(3),
           x4 = _mm512_set1_ps(4), x5 = _mm512_set1_ps(5), x6 = _mm512_set1_ps(6), x7 = _mm512_set1_ps(7),
           x8 = _mm512_set1_ps(8), x9 = _mm512_set1_ps(9), x10 = _mm512_set1_ps(10), x11 = _mm512_set1_ps(11);
    for (long i = 0; i < iters; i++) FMA12(_mm512_fmadd_ps, a, b);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3)),
                             _mm512_add_ps(_mm512_add_ps(x4, x5), _mm512_add_ps(x6, x7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(x8, x9), _mm512_add_ps(x10, x11)));
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double run256(long iters)
{
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 x0 = _mm256_set1_ps(0), x1 = _mm256_set1_ps(1), x2 = _mm256_set1_ps(2), x3 = _mm256_set1_ps(3),
           x4 = _mm256_set1_ps(4), x5 = _mm256_set1_ps(5), x6 = _mm256_set1_ps(6), x7 = _mm256_set1_ps(7),
           x8 = _mm256_set1_ps(8), x9 = _mm256_set1_ps(9), x10 = _mm256_set1_ps(10), x11 = _mm256_set1_ps(11);
    for (long i = 0; i < iters; i++) FMA12(_mm256_fmadd_ps, a, b);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)),
                             _mm256_add_ps(_mm256_add_ps(x4, x5), _mm256_add_ps(x6, x7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(x8, x9), _mm256_add_ps(x10, x11)));
    float out[8], sink = 0;
    _mm256_storeu_ps(out, s);
    for (int k = 0; k < 8; k++) sink += out[k];
    return (double)sink;
}

__attribute__((target("avx512f,avx512bf16"))) static double run_bf16(long iters)
{
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
    __m512 x0 = _mm512_set1_ps(0), x1 = _mm512_set1_ps(1), x2 = _mm512_set1_ps(2), x3 = _mm512_set1_ps(3),
           x4 = _mm512_set1_ps(4), x5 = _mm512_set1_ps(5), x6 = _mm512_set1_ps(6), x7 = _mm512_set1_ps(7),
           x8 = _mm512_set1_ps(8), x9 = _mm512_set1_ps(9), x10 = _mm512_set1_ps(10), x11 = _mm512_set1_ps(11);
    for (long i = 0; i < iters; i++) FMA12(_mm512_dpbf16_ps, a, b);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3)),
                             _mm512_add_ps(_mm512_add_ps(x4, x5), _mm512_add_ps(x6, x7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(x8, x9), _mm512_add_ps(x10, x11)));
    return (double)_mm512_reduce_add_ps(s);
}

static double measure_bf16(int threads, long iters)
{
    volatile double sink = 0;
    double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += run_bf16(iters);
    double dt = now() - t0;
    (void)sink;
    return 64.0 * CHAINS * (double)iters * threads / dt / 1e9;
}

static double measure(int threads, int wide, long iters)
{
    volatile double sink = 0;
    double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += wide ? run512(iters) : run256(iters);
    double dt = now() - t0;
    (void)sink;
    return 2.0 * (wide ? 16 : 8) * CHAINS * (double)iters * threads / dt / 1e9;
}

int main(void)
{
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    int bf16 = wide && __builtin_cpu_supports("avx512bf16");
    if (!wide && !__builtin_cpu_supports("fma")) {
        printf("{\"isa\": \"none\", \"gflops_1t\": 0, \"gflops_all\": 0, \"threads\": 0, \"bf16_gflops_1t\": 0, "
               "\"bf16_gflops_all\": 0}\n");
        return 0;
    }
    int threads = omp_get_num_procs();
    long iters = 20000000;
    measure(1, wide, iters / 10); /* warm up clocks */
    double one = 0, all = 0, b_one = 0, b_all = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of three: the peak, not the noise */
        double a = measure(1, wide, iters), b = measure(threads, wide, iters);
        one = a > one ? a : one;
        all = b > all ? b : all;
        if (bf16) {
            a = measure_bf16(1, iters), b = measure_bf16(threads, iters);
            b_one = a > b_one ? a : b_one;
            b_all = b > b_all ? b : b_all;
        }
    }
    printf("{\"isa\": \"%s\", \"gflops_1t\": %.1f, \"gflops_all\": %.1f, \"threads\": %d, \"bf16_gflops_1t\": %.1f, "
           "\"bf16_gflops_all\": %.1f}\n",
           wide ? "avx512" : "avx2", one, all, threads, b_one, b_all);
    return 0;
}
