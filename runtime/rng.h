/* rng.h — PyTorch's CPU random generator, reproduced bit for bit.
 *
 * diffusers draws its initial latents and the ancestral samplers' noise with
 * torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)).
 * So that one seed gives the same image in sdc as in diffusers, TorchGen is
 * ATen's CPUGeneratorImpl: an MT19937 engine (seeded with the low 32 bits of
 * the seed, as ATen does) plus the cached second Box-Muller sample of
 * at::normal_distribution<double>.
 *
 * torch.randn on CPU (torch 1.13, float32) takes one of two paths:
 *  - fewer than 16 elements: per element, a double-precision Box-Muller pair
 *    from two 53-bit uniforms; the sine half is cached in the generator and
 *    returned by the next such draw.
 *  - 16 or more: normal_fill — n 24-bit float uniforms, then Box-Muller in
 *    float on blocks of 16 (cos half to [0,8), sin half to [8,16)); a tail
 *    that is not a multiple of 16 is redone by drawing 16 fresh uniforms for
 *    the last 16 elements.
 * torch_randn gives the bits of ATen's scalar kernel (ATEN_CPU_CAPABILITY=
 * default, glibc's logf/cosf/sinf).  torch_randn_avx2 emulates the AVX2
 * kernel (avx_mathfun.h polynomials with the FMAs GCC forms), which torch
 * picks on AVX2 machines (and AVX-512 ones, says the goldens' README): it is
 * what diffusers produces there.  The two differ by a few ulp (up to
 * 2.03e-6 absolute in the goldens); both leave the generator in the same
 * state. */
#ifndef SDC_RNG_H
#define SDC_RNG_H

#include <stdint.h>

#define TORCH_MT_N 624

typedef struct TorchGen {
    uint32_t state[TORCH_MT_N]; /* MT19937 state words */
    int index;                  /* next word to temper; TORCH_MT_N: twist first */
    uint64_t seed;              /* as given to torch_gen_seed (only low 32 bits used) */
    int has_next_double_normal; /* a cached sine half is waiting */
    double next_double_normal;  /* that sample (standard normal) */
} TorchGen;

/* torch.Generator("cpu").manual_seed(seed): resets the engine and the cache. */
void torch_gen_seed(TorchGen *g, uint64_t seed);

/* Raw engine output: generator->random() and generator->random64()
 * (two draws, the first in the high half). */
uint32_t torch_gen_u32(TorchGen *g);
uint64_t torch_gen_u64(TorchGen *g);

/* torch.randn(n) float32, scalar-kernel bits. */
void torch_randn(TorchGen *g, float *out, int64_t n);
/* torch.randn(n) float32 as the AVX2 kernel computes it (same draws, same
 * generator state afterwards; only the float maths of n >= 16 differs). */
void torch_randn_avx2(TorchGen *g, float *out, int64_t n);
/* torch.rand(n) float32: uniform in [0, 1), 24 bits from one draw each. */
void torch_rand(TorchGen *g, float *out, int64_t n);
/* torch.randn(n, dtype=torch.float64) (same for every CPU capability). */
void torch_randn_f64(TorchGen *g, double *out, int64_t n);

#endif
