/* kernels_bench.c — GFLOP/s of the runtime kernels on SD 1.5 shapes at 512x512
 * (batch 2: classifier-free guidance), with 1 and 2 threads, next to the
 * same operations on OpenBLAS (bench/blas_ref.c: the runtime's kernels as
 * they were before its own GEMM engine: im2col tiles + cblas_sgemm).  The
 * runtime's conv and linear weights are packed first (rt_pack_weight), as
 * in a compiled executable.  Not a test.
 *
 * Build and run from the repository root (bench/run.sh does this and runs
 * it under both OPENBLAS_CORETYPE settings):
 *   gcc -std=c17 -O2 -fopenmp -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iruntime \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread bench/kernels_bench.c bench/blas_ref.c \
 *       runtime/kernels*.c runtime/gemm*.c runtime/err.c runtime/dtype.c -o /tmp/kernels_bench -lopenblas -lm
 *   /tmp/kernels_bench [SUBSTRING] [--isa generic|avx2|avx512|avx512bf16] [--weights f32|f16|bf16] [--no-blas]
 * SUBSTRING: only the shapes whose name contains it run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "kernels.h"
#include "kernels_internal.h"
#include "gemm.h"
#include <cblas.h>

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

void blas_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y);
void blas_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c);
void blas_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y);

typedef struct Case {
    const char *name;
    double flops; /* per call; 0: report milliseconds only */
    void (*run)(const struct Case *c);
    void (*run_blas)(const struct Case *c); /* NULL: no OpenBLAS twin */
    Conv2dParams conv;
    MatmulParams mm;
    AttentionParams attn;
    GroupNormParams gn;
    FusedLinearParams fl;
    float *in[4], *out;
    void *packed; /* the weight packed for the runtime (conv, linear) */
} Case;

static void run_conv(const Case *c) { rt_conv2d(&c->conv, c->in[0], c->packed, c->in[2], c->out); }
static void run_matmul(const Case *c) { rt_matmul(&c->mm, c->in[0], c->packed, c->in[2], c->out); }
static void run_attention(const Case *c) { rt_attention(&c->attn, c->in[0], c->in[1], c->in[2], c->out); }
static void run_fused_linear(const Case *c)
{
    rt_fused_linear(&c->fl, c->in[0], c->fl.norm ? c->in[2] : NULL, c->fl.norm ? c->in[2] : NULL, c->packed, c->in[2],
                    c->in[3], c->out);
}
static void run_group_norm(const Case *c) { rt_group_norm(&c->gn, c->in[0], c->in[1], c->in[2], c->out); }
static void blas_conv(const Case *c)
{
    Conv2dParams p = c->conv;
    p.wpack = RT_WPACK_NONE;
    blas_conv2d(&p, c->in[0], c->in[1], c->in[2], c->out);
}
static void blas_mm(const Case *c)
{
    MatmulParams p = c->mm;
    p.bpack = RT_WPACK_NONE;
    blas_matmul(&p, c->in[0], c->in[1], c->in[2], c->out);
}
static void blas_attn(const Case *c) { blas_attention(&c->attn, c->in[0], c->in[1], c->in[2], c->out); }

static int weights_q; /* 0 f32, 1 f16, 2 bf16: the offset from RT_WPACK_*_F32 */

static void *packed_weight(RtWeightPack pack, int groups, int64_t rows, int64_t k, const float *w)
{
    void *dst = xmalloc((size_t)rt_packed_weight_size(pack, groups, rows, k));
    rt_pack_weight(pack, groups, rows, k, w, dst);
    return dst;
}

static Case conv_case(const char *name, int n, int c, int hw, int oc, int k, int stride)
{
    Case cs = {.name = name, .run = run_conv, .run_blas = blas_conv};
    Conv2dParams *p = &cs.conv;
    *p = (Conv2dParams){.n = n, .c = c, .h = hw, .w = hw, .oc = oc, .kh = k, .kw = k, .sh = stride, .sw = stride,
                        .pt = k / 2, .pl = k / 2, .pb = k / 2, .pr = k / 2, .dh = 1, .dw = 1, .groups = 1,
                        .wpack = RT_WPACK_CONV_F32 + weights_q};
    if (conv2d_params_finish(p)) abort();
    cs.flops = 2.0 * n * oc * p->oh * p->ow * (double)c * k * k;
    cs.in[0] = filled((size_t)n * c * hw * hw);
    cs.in[1] = filled((size_t)oc * c * k * k);
    cs.in[2] = filled((size_t)oc);
    cs.out = filled((size_t)n * oc * p->oh * p->ow);
    cs.packed = packed_weight(p->wpack, 1, oc, (int64_t)c * k * k, cs.in[1]);
    return cs;
}

static Case attention_case(const char *name, int b, int lq, int lk, int heads, int d, int causal)
{
    Case cs = {.name = name, .run = run_attention, .run_blas = blas_attn};
    cs.attn = (AttentionParams){.b = b, .lq = lq, .lk = lk, .heads = heads, .dk = d, .dv = d, .ldq = heads * d,
                                .ldk = heads * d, .ldv = heads * d, .ldy = heads * d, .scale = 1.0f / sqrtf((float)d),
                                .causal = causal, .bf16 = weights_q == 2};
    cs.flops = 2.0 * b * heads * (double)lq * lk * (2 * d) * (causal ? 0.5 : 1.0);
    cs.in[0] = filled((size_t)b * lq * heads * d);
    cs.in[1] = filled((size_t)b * lk * heads * d);
    cs.in[2] = filled((size_t)b * lk * heads * d);
    cs.out = filled((size_t)b * lq * heads * d);
    return cs;
}

static Case matmul_case(const char *name, int m, int k, int n)
{
    Case cs = {.name = name, .run = run_matmul, .run_blas = blas_mm};
    cs.mm = (MatmulParams){.batch = 1, .m = m, .n = n, .k = k, .trans_b = 1, .lda = k, .ldb = k, .ldc = n,
                           .bpack = RT_WPACK_LINEAR_F32 + weights_q};
    cs.flops = 2.0 * m * n * (double)k;
    cs.in[0] = filled((size_t)m * k);
    cs.in[1] = filled((size_t)n * k);
    cs.in[2] = filled((size_t)n);
    cs.out = filled((size_t)m * n);
    cs.packed = packed_weight(cs.mm.bpack, 1, n, k, cs.in[1]);
    return cs;
}

/* The transformer's projections as the fusion passes leave them: LayerNorm
 * prologue, GEGLU (n = hidden and gate), residual epilogue. */
static Case fused_linear_case(const char *name, int m, int k, int n, int norm, int geglu, int residual)
{
    Case cs = {.name = name, .run = run_fused_linear};
    cs.fl = (FusedLinearParams){.m = m, .k = k, .n = n, .norm = norm, .eps = 1e-5f, .geglu = geglu,
                                .out_scale = 1.0f, .wpack = RT_WPACK_LINEAR_F32 + weights_q};
    int ny = geglu ? n / 2 : n;
    cs.flops = 2.0 * m * n * (double)k;
    cs.in[0] = filled((size_t)m * k);
    cs.in[1] = filled((size_t)n * k);
    cs.in[2] = filled((size_t)(n > k ? n : k)); /* bias, gamma and beta */
    cs.in[3] = residual ? filled((size_t)m * ny) : NULL;
    cs.out = filled((size_t)m * ny);
    cs.packed = packed_weight(cs.fl.wpack, 1, n, k, cs.in[1]);
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
static double time_case(const Case *c, void (*run)(const Case *))
{
    run(c);
    double best = 1e30, start = now_s();
    for (int it = 0; it < 3 || now_s() - start < 0.5; it++) {
        double t = now_s();
        run(c);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    return best;
}

static void print_rate(const Case *c, double t)
{
    if (c->flops > 0) printf(" %8.1f", c->flops / t * 1e-9);
    else printf(" %6.2f ms", t * 1e3);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int blas = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-blas")) blas = 0;
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            const char *w = argv[++i];
            weights_q = !strcmp(w, "bf16") ? 2 : !strcmp(w, "f16") ? 1 : 0;
        }
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *isa = argv[++i];
            RtGemmIsa want = !strcmp(isa, "avx512bf16") ? RT_GEMM_AVX512_BF16
                             : !strcmp(isa, "avx512") ? RT_GEMM_AVX512
                             : !strcmp(isa, "avx2")   ? RT_GEMM_AVX2
                                                      : RT_GEMM_GENERIC;
            if (rt_gemm_force_isa(want) < 0) {
                fprintf(stderr, "kernels_bench: this CPU cannot run %s\n", isa);
                return 1;
            }
        } else only = argv[i];
    }
    Case cases[] = {
        conv_case("conv3x3 c320 64x64 oc320 n2", 2, 320, 64, 320, 3, 1),
        conv_case("conv3x3 c640 32x32 oc640 n2", 2, 640, 32, 640, 3, 1),
        conv_case("conv3x3 c1280 16x16 oc1280 n2", 2, 1280, 16, 1280, 3, 1),
        conv_case("conv3x3 c1280 8x8 oc1280 n2", 2, 1280, 8, 1280, 3, 1),
        conv_case("conv3x3 s2 c320 64x64 oc320 n2", 2, 320, 64, 320, 3, 2),
        conv_case("conv1x1 c320 64x64 oc320 n2", 2, 320, 64, 320, 1, 1),
        conv_case("conv3x3 vae c512 64x64 oc512 n1", 1, 512, 64, 512, 3, 1),
        conv_case("conv3x3 vae c256 256x256 oc256 n1", 1, 256, 256, 256, 3, 1),
        conv_case("conv3x3 vae c128 512x512 oc128 n1", 1, 128, 512, 128, 3, 1),
        attention_case("attention self b2 4096x4096 h8 d40", 2, 4096, 4096, 8, 40, 0),
        attention_case("attention cross b2 4096x77 h8 d40", 2, 4096, 77, 8, 40, 0),
        attention_case("attention self b2 256x256 h8 d160", 2, 256, 256, 8, 160, 0),
        attention_case("attention vae b1 4096x4096 h1 d512", 1, 4096, 4096, 1, 512, 0),
        attention_case("attention clip b1 77x77 h12 d64 causal", 1, 77, 77, 12, 64, 1),
        matmul_case("linear m8192 k320 n2560", 8192, 320, 2560),
        matmul_case("linear m8192 k1280 n320", 8192, 1280, 320),
        matmul_case("linear m8192 k320 n960", 8192, 320, 960),
        matmul_case("linear m512 k1280 n3840", 512, 1280, 3840),
        fused_linear_case("ln+linear m8192 k320 n960 (qkv)", 8192, 320, 960, 1, 0, 0),
        fused_linear_case("ln+geglu m8192 k320 n2560", 8192, 320, 2560, 1, 1, 0),
        fused_linear_case("linear+res m8192 k1280 n320 (ff out)", 8192, 1280, 320, 0, 0, 1),
        fused_linear_case("linear+res m8192 k320 n320 (attn out)", 8192, 320, 320, 0, 0, 1),
        fused_linear_case("ln+geglu m2048 k640 n5120", 2048, 640, 5120, 1, 1, 0),
        fused_linear_case("linear+res m2048 k2560 n640 (ff out)", 2048, 2560, 640, 0, 0, 1),
        group_norm_case("group_norm+silu c320 64x64 n2", 2, 320, 4096),
    };
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    printf("GEMM micro-kernel: %s; weights: %s; OpenBLAS core: %s; GFLOP/s (or ms)\n", rt_gemm_arch()->name,
           weights_q == 2 ? "bf16" : weights_q == 1 ? "f16" : "f32", openblas_get_corename());
    printf("%-40s %8s %8s %8s %8s %8s\n", "shape", "ours 1T", "ours 2T", "blas 1T", "blas 2T", "2T ratio");
    for (int i = 0; i < ncases; i++) {
        const Case *c = &cases[i];
        if (only && !strstr(c->name, only)) continue;
        double t[4] = {0, 0, 0, 0};
        for (int th = 1; th <= 2; th++) {
            rt_set_threads(th);
            t[th - 1] = time_case(c, c->run);
            if (blas && c->run_blas) t[th + 1] = time_case(c, c->run_blas);
        }
        printf("%-40s", c->name);
        for (int k = 0; k < 4; k++) {
            if (t[k] > 0) print_rate(c, t[k]);
            else printf(" %8s", "-");
        }
        if (t[3] > 0) printf(" %7.2fx", t[3] / t[1]);
        printf("\n");
        fflush(stdout);
    }
    printf("peak scratch per thread: %.2f MiB\n", rt_scratch_peak_bytes() / 1048576.0);
    for (int i = 0; i < ncases; i++) {
        for (int j = 0; j < 4; j++) free(cases[i].in[j]);
        free(cases[i].out);
        free(cases[i].packed);
    }
    return 0;
}
