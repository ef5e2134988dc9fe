/* kernels_bench.c — GFLOP/s of the runtime kernels on SD 1.5 shapes at 512x512
 * (batch 2: classifier-free guidance), with 1 and 2 threads.  Not a test.
 *
 * Build and run from the repository root:
 *   gcc -std=c17 -O2 -fopenmp -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iruntime \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread bench/kernels_bench.c runtime/kernels*.c \
 *       runtime/err.c -o /tmp/kernels_bench -lopenblas -lm && /tmp/kernels_bench
 * Optional argument: a substring; only the shapes whose name contains it run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "kernels.h"
#include "kernels_internal.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(size_t n)
{
    float *x = xmalloc(n * sizeof(float));
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

typedef struct Case {
    const char *name;
    double flops; /* per call; 0: report milliseconds only */
    void (*run)(const struct Case *c);
    Conv2dParams conv;
    MatmulParams mm;
    AttentionParams attn;
    GroupNormParams gn;
    float *in[4], *out;
} Case;

static void run_conv(const Case *c) { rt_conv2d(&c->conv, c->in[0], c->in[1], c->in[2], c->out); }
static void run_matmul(const Case *c) { rt_matmul(&c->mm, c->in[0], c->in[1], c->in[2], c->out); }
static void run_attention(const Case *c) { rt_attention(&c->attn, c->in[0], c->in[1], c->in[2], c->out); }
static void run_group_norm(const Case *c) { rt_group_norm(&c->gn, c->in[0], c->in[1], c->in[2], c->out); }

static Case conv_case(const char *name, int n, int c, int hw, int oc, int k, int stride)
{
    Case cs = {.name = name, .run = run_conv};
    Conv2dParams *p = &cs.conv;
    *p = (Conv2dParams){.n = n, .c = c, .h = hw, .w = hw, .oc = oc, .kh = k, .kw = k, .sh = stride, .sw = stride,
                        .pt = k / 2, .pl = k / 2, .pb = k / 2, .pr = k / 2, .dh = 1, .dw = 1, .groups = 1};
    if (conv2d_params_finish(p)) abort();
    cs.flops = 2.0 * n * oc * p->oh * p->ow * (double)c * k * k;
    cs.in[0] = filled((size_t)n * c * hw * hw);
    cs.in[1] = filled((size_t)oc * c * k * k);
    cs.in[2] = filled((size_t)oc);
    cs.out = filled((size_t)n * oc * p->oh * p->ow);
    return cs;
}

static Case attention_case(const char *name, int b, int lq, int lk, int heads, int d, int causal)
{
    Case cs = {.name = name, .run = run_attention};
    cs.attn = (AttentionParams){.b = b, .lq = lq, .lk = lk, .heads = heads, .dk = d, .dv = d, .ldq = heads * d,
                                .ldk = heads * d, .ldv = heads * d, .ldy = heads * d, .scale = 1.0f / sqrtf((float)d),
                                .causal = causal};
    cs.flops = 2.0 * b * heads * (double)lq * lk * (2 * d) * (causal ? 0.5 : 1.0);
    cs.in[0] = filled((size_t)b * lq * heads * d);
    cs.in[1] = filled((size_t)b * lk * heads * d);
    cs.in[2] = filled((size_t)b * lk * heads * d);
    cs.out = filled((size_t)b * lq * heads * d);
    return cs;
}

static Case matmul_case(const char *name, int m, int k, int n)
{
    Case cs = {.name = name, .run = run_matmul};
    cs.mm = (MatmulParams){.batch = 1, .m = m, .n = n, .k = k, .trans_b = 1, .lda = k, .ldb = k, .ldc = n};
    cs.flops = 2.0 * m * n * (double)k;
    cs.in[0] = filled((size_t)m * k);
    cs.in[1] = filled((size_t)n * k);
    cs.in[2] = filled((size_t)n);
    cs.out = filled((size_t)m * n);
    return cs;
}

static Case group_norm_case(const char *name, int n, int c, int hw)
{
    Case cs = {.name = name, .run = run_group_norm};
    cs.gn = (GroupNormParams){.n = n, .c = c, .hw = hw, .groups = 32, .eps = 1e-5f, .silu = 1};
    cs.in[0] = filled((size_t)n * c * hw);
    cs.in[1] = filled((size_t)c);
    cs.in[2] = filled((size_t)c);
    cs.out = filled((size_t)n * c * hw);
    return cs;
}

/* Best time of a few calls (at least 3, at least 0.5 s), after a warm-up. */
static double time_case(const Case *c)
{
    c->run(c);
    double best = 1e30, start = now_s();
    for (int it = 0; it < 3 || now_s() - start < 0.5; it++) {
        double t = now_s();
        c->run(c);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    Case cases[] = {
        conv_case("conv3x3 c320 64x64 oc320 n2", 2, 320, 64, 320, 3, 1),
        conv_case("conv3x3 c640 32x32 oc640 n2", 2, 640, 32, 640, 3, 1),
        conv_case("conv3x3 c1280 16x16 oc1280 n2", 2, 1280, 16, 1280, 3, 1),
        conv_case("conv3x3 c1280 8x8 oc1280 n2", 2, 1280, 8, 1280, 3, 1),
        conv_case("conv3x3 s2 c320 64x64 oc320 n2", 2, 320, 64, 320, 3, 2),
        conv_case("conv1x1 c320 64x64 oc320 n2", 2, 320, 64, 320, 1, 1),
        conv_case("conv3x3 vae c128 512x512 oc128 n1", 1, 128, 512, 128, 3, 1),
        attention_case("attention self b2 4096x4096 h8 d40", 2, 4096, 4096, 8, 40, 0),
        attention_case("attention cross b2 4096x77 h8 d40", 2, 4096, 77, 8, 40, 0),
        attention_case("attention clip b1 77x77 h12 d64 causal", 1, 77, 77, 12, 64, 1),
        matmul_case("matmul linear m8192 k320 n2560", 8192, 320, 2560),
        matmul_case("matmul linear m8192 k1280 n320", 8192, 1280, 320),
        group_norm_case("group_norm+silu c320 64x64 n2", 2, 320, 4096),
    };
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    printf("%-42s %12s %12s\n", "shape", "1 thread", "2 threads");
    for (int i = 0; i < ncases; i++) {
        const Case *c = &cases[i];
        if (only && !strstr(c->name, only)) continue;
        double t[2];
        for (int th = 1; th <= 2; th++) {
            rt_set_threads(th);
            t[th - 1] = time_case(c);
        }
        if (c->flops > 0)
            printf("%-42s %7.1f GF/s %7.1f GF/s  (%.1f / %.1f ms)\n", c->name, c->flops / t[0] * 1e-9,
                   c->flops / t[1] * 1e-9, t[0] * 1e3, t[1] * 1e3);
        else
            printf("%-42s %9.2f ms %9.2f ms\n", c->name, t[0] * 1e3, t[1] * 1e3);
        fflush(stdout);
    }
    printf("peak scratch per thread: %.2f MiB\n", rt_scratch_peak_bytes() / 1048576.0);
    for (int i = 0; i < ncases; i++) {
        for (int j = 0; j < 4; j++) free(cases[i].in[j]);
        free(cases[i].out);
    }
    return 0;
}
