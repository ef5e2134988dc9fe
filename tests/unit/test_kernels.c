/* test_kernels.c — every runtime kernel (runtime/kernels.h) against its
 * reference twin (ir/ref_kernels.h) on fresh random inputs.
 *
 * Each case runs the runtime kernel with 1, 2 and 3 threads and requires
 * bit-identical outputs (the determinism promise of kernels.h), then
 * compares with the reference: relative error ||out-ref||/||ref|| < 1e-5, or
 * exact equality where the kernel promises the reference's bits (binary ops,
 * upsampling, timestep embedding).  Sizes are ragged (no multiple of any
 * tile); one SD-sized shape per kernel makes the tiling cut in several
 * places, the reference then being run on a slice of the output (a few
 * channels, rows or queries) to stay fast. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kernels.h"
#include "ref_kernels.h"
#include "test.h"

#define TOL 1e-5

static float *randn_buf(size_t n, float scale)
{
    float *x = xmalloc(n * sizeof(float));
    test_fill_randn(x, n, scale);
    return x;
}

/* Runs `call` with 1, 2 and 3 threads into out (n floats) and checks that
 * the three results are the same bits.  The result of the 1-thread run is
 * left in out. */
#define RUN_THREADS(out, n, call)                                                       \
    do {                                                                                \
        float *other_ = xmalloc((n) * sizeof(float));                                   \
        for (int th_ = 3; th_ >= 1; th_--) {                                            \
            rt_set_threads(th_);                                                        \
            call;                                                                       \
            if (th_ < 3) CHECK_MSG(memcmp(out, other_, (n) * sizeof(float)) == 0,       \
                                   "threads %d and %d differ", th_, th_ + 1);           \
            memcpy(other_, out, (n) * sizeof(float));                                   \
        }                                                                               \
        free(other_);                                                                   \
        rt_set_threads(0);                                                              \
    } while (0)

/* ---- conv2d ------------------------------------------------------------ */

/* Checks output channels [0, ref_oc) against the reference (all when
 * ref_oc is 0): the reference runs on the sliced weight. */
static void conv_case(Conv2dParams p, int with_bias, int ref_oc)
{
    CHECK(conv2d_params_finish(&p) == 0);
    size_t nx = (size_t)p.n * p.c * p.h * p.w, nw = (size_t)p.oc * (p.c / p.groups) * p.kh * p.kw;
    size_t ny = (size_t)p.n * p.oc * p.oh * p.ow;
    float *x = randn_buf(nx, 1.0f), *w = randn_buf(nw, 0.2f), *b = with_bias ? randn_buf((size_t)p.oc, 1.0f) : NULL;
    float *y = xmalloc(ny * sizeof(float));
    RUN_THREADS(y, ny, rt_conv2d(&p, x, w, b, y));

    Conv2dParams rp = p;
    if (ref_oc > 0 && ref_oc < p.oc) {
        SDC_ASSERT(p.groups == 1);
        rp.oc = ref_oc;
    }
    size_t plane = (size_t)p.oh * p.ow, nref = (size_t)p.n * rp.oc * plane;
    float *ref = xmalloc(nref * sizeof(float)), *got = xmalloc(nref * sizeof(float));
    ref_conv2d(&rp, x, w, b, ref);
    for (int n = 0; n < p.n; n++)
        memcpy(got + (size_t)n * rp.oc * plane, y + (size_t)n * p.oc * plane, (size_t)rp.oc * plane * sizeof(float));
    double rel = test_rel_err(got, ref, nref);
    CHECK_MSG(rel < TOL, "conv c=%d oc=%d %dx%d k=%dx%d s=%d,%d g=%d: rel %.3g", p.c, p.oc, p.h, p.w, p.kh, p.kw,
              p.sh, p.sw, p.groups, rel);
    free(x), free(w), free(b), free(y), free(ref), free(got);
}

static void test_conv_ragged(void)
{
    /* 3x3 stride 2 with diffusers' asymmetric downsample padding */
    conv_case((Conv2dParams){.n = 2, .c = 5, .h = 9, .w = 11, .oc = 7, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                             .pt = 0, .pl = 0, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 0);
    /* 3x3 stride 1 pad 1, no bias */
    conv_case((Conv2dParams){.n = 1, .c = 5, .h = 9, .w = 11, .oc = 7, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 0, 0);
    /* 1x1 (direct GEMM), and 1x1 with stride 2 (im2col path) */
    conv_case((Conv2dParams){.n = 2, .c = 6, .h = 7, .w = 5, .oc = 10, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                             .dh = 1, .dw = 1, .groups = 1}, 1, 0);
    conv_case((Conv2dParams){.n = 1, .c = 6, .h = 7, .w = 5, .oc = 10, .kh = 1, .kw = 1, .sh = 2, .sw = 2,
                             .dh = 1, .dw = 1, .groups = 1}, 1, 0);
    /* grouped, dilated, non-square kernel, padding wider than the kernel reach on one side */
    conv_case((Conv2dParams){.n = 2, .c = 6, .h = 8, .w = 13, .oc = 9, .kh = 3, .kw = 2, .sh = 1, .sw = 3,
                             .pt = 2, .pl = 3, .pb = 0, .pr = 1, .dh = 2, .dw = 1, .groups = 3}, 1, 0);
    /* the 4x4 stride 2 VAE-like shape with a single output row */
    conv_case((Conv2dParams){.n = 1, .c = 3, .h = 4, .w = 17, .oc = 4, .kh = 4, .kw = 4, .sh = 2, .sw = 2,
                             .pt = 0, .pl = 1, .pb = 0, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 0);
}

static void test_conv_tiling(void)
{
    /* im2col chunks over input channels: 9*c*256 positions exceeds the tile budget */
    conv_case((Conv2dParams){.n = 1, .c = 480, .h = 16, .w = 16, .oc = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 0);
    /* few positions, many output channels: split into channel blocks */
    conv_case((Conv2dParams){.n = 1, .c = 33, .h = 8, .w = 8, .oc = 200, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 0);
    /* several position tiles that start mid-row */
    conv_case((Conv2dParams){.n = 2, .c = 7, .h = 45, .w = 37, .oc = 5, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 0);
}

static void test_conv_sd(void)
{
    /* SD 1.5 down block 1 resnet conv at 512x512: 320 -> 320, 64x64, 3x3 */
    conv_case((Conv2dParams){.n = 1, .c = 320, .h = 64, .w = 64, .oc = 320, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, 1, 4);
    /* proj_in 1x1 at 32x32, 640 channels */
    conv_case((Conv2dParams){.n = 2, .c = 640, .h = 32, .w = 32, .oc = 640, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                             .dh = 1, .dw = 1, .groups = 1}, 1, 8);
}

/* ---- matmul ------------------------------------------------------------ */

/* Compares rows [0, ref_m) of each batch entry (all when 0). */
static void matmul_case(MatmulParams p, int with_bias, int ref_m)
{
    int64_t rows_a = p.trans_a ? p.k : p.m, rows_b = p.trans_b ? p.n : p.k;
    size_t na = (size_t)(p.stride_a * (p.batch - 1) + rows_a * p.lda);
    size_t nb = (size_t)(p.stride_b * (p.batch - 1) + rows_b * p.ldb);
    size_t nc = (size_t)(p.stride_c * (p.batch - 1) + (int64_t)p.m * p.ldc);
    float *a = randn_buf(na, 1.0f), *b = randn_buf(nb, 1.0f), *bias = with_bias ? randn_buf((size_t)p.n, 1.0f) : NULL;
    float *c = xcalloc(nc, sizeof(float));
    RUN_THREADS(c, nc, rt_matmul(&p, a, b, bias, c));

    MatmulParams rp = p;
    if (ref_m > 0 && ref_m < p.m) {
        SDC_ASSERT(!p.trans_a);
        rp.m = ref_m;
    }
    float *ref = xcalloc(nc, sizeof(float));
    ref_matmul(&rp, a, b, bias, ref);
    /* compare the computed entries only (padding columns stay 0 in both) */
    double num = 0, den = 0;
    for (int bt = 0; bt < p.batch; bt++)
        for (int i = 0; i < rp.m; i++)
            for (int j = 0; j < p.n; j++) {
                size_t at = (size_t)(bt * p.stride_c + i * p.ldc + j);
                double d = (double)c[at] - ref[at];
                num += d * d;
                den += (double)ref[at] * ref[at];
            }
    double rel = sqrt(num / den);
    CHECK_MSG(rel < TOL, "matmul b=%d m=%d n=%d k=%d ta=%d tb=%d: rel %.3g", p.batch, p.m, p.n, p.k, p.trans_a,
              p.trans_b, rel);
    free(a), free(b), free(bias), free(c), free(ref);
}

static void test_matmul_ragged(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int m = 37, n = 29, k = 19;
            MatmulParams p = {.batch = 3, .m = m, .n = n, .k = k, .trans_a = ta, .trans_b = tb};
            p.lda = (ta ? m : k) + 3;
            p.ldb = (tb ? k : n) + 1;
            p.ldc = n + 2;
            p.stride_a = (ta ? k : m) * p.lda + 5;
            p.stride_b = (tb ? n : k) * p.ldb;
            p.stride_c = m * p.ldc + 1;
            matmul_case(p, ta ^ tb, 0);
        }
    /* broadcast operands: shared weight (stride_b = 0), shared A (stride_a = 0) */
    matmul_case((MatmulParams){.batch = 4, .m = 13, .n = 70, .k = 33, .trans_b = 1, .lda = 33, .ldb = 33, .ldc = 70,
                               .stride_a = 13 * 33, .stride_b = 0, .stride_c = 13 * 70}, 1, 0);
    matmul_case((MatmulParams){.batch = 2, .m = 5, .n = 300, .k = 7, .lda = 7, .ldb = 300, .ldc = 300,
                               .stride_a = 0, .stride_b = 7 * 300, .stride_c = 5 * 300}, 0, 0);
    /* k = 0: the bias alone (cblas would reject the leading dimensions) */
    matmul_case((MatmulParams){.batch = 2, .m = 3, .n = 5, .k = 0, .lda = 1, .ldb = 5, .ldc = 5, .stride_a = 3,
                               .stride_b = 0, .stride_c = 15}, 1, 0);
    /* a time-embedding linear: m = 2 rows, wide n split into column strips */
    matmul_case((MatmulParams){.batch = 1, .m = 2, .n = 1283, .k = 320, .trans_b = 1, .lda = 320, .ldb = 320,
                               .ldc = 1283}, 1, 0);
}

static void test_matmul_sd(void)
{
    /* GEGLU projection of one 64x64 image: [4096, 320] x [1280, 320]^T */
    matmul_case((MatmulParams){.batch = 1, .m = 4096, .n = 1280, .k = 320, .trans_b = 1, .lda = 320, .ldb = 320,
                               .ldc = 1280}, 1, 16);
}

/* ---- attention ----------------------------------------------------------- */

/* Checks queries [0, ref_lq) of each batch entry (all when 0). */
static void attention_case(AttentionParams p, int ref_lq)
{
    size_t nq = (size_t)p.b * p.lq * p.ldq, nk = (size_t)p.b * p.lk * p.ldk, nv = (size_t)p.b * p.lk * p.ldv;
    size_t ny = (size_t)p.b * p.lq * p.ldy;
    float *q = randn_buf(nq, 1.0f), *k = randn_buf(nk, 1.0f), *v = randn_buf(nv, 1.0f);
    float *y = xcalloc(ny, sizeof(float)), *ref = xcalloc(ny, sizeof(float));
    RUN_THREADS(y, ny, rt_attention(&p, q, k, v, y));

    double num = 0, den = 0;
    int rows = ref_lq > 0 && ref_lq < p.lq ? ref_lq : p.lq;
    for (int bi = 0; bi < p.b; bi++) {
        /* the reference on one batch entry and its first `rows` queries */
        AttentionParams rp = p;
        rp.b = 1;
        rp.lq = rows;
        if (p.causal) SDC_ASSERT(rows == p.lq);
        ref_attention(&rp, q + (size_t)bi * p.lq * p.ldq, k + (size_t)bi * p.lk * p.ldk,
                      v + (size_t)bi * p.lk * p.ldv, ref + (size_t)bi * p.lq * p.ldy);
        for (int i = 0; i < rows; i++)
            for (int d = 0; d < p.heads * p.dv; d++) {
                size_t at = ((size_t)bi * p.lq + i) * p.ldy + d;
                double e = (double)y[at] - ref[at];
                num += e * e;
                den += (double)ref[at] * ref[at];
            }
    }
    double rel = sqrt(num / den);
    CHECK_MSG(rel < TOL, "attention b=%d lq=%d lk=%d h=%d dk=%d causal=%d: rel %.3g", p.b, p.lq, p.lk, p.heads,
              p.dk, p.causal, rel);
    free(q), free(k), free(v), free(y), free(ref);
}

static void test_attention_ragged(void)
{
    for (int causal = 0; causal < 2; causal++) {
        /* strides wider than heads*dk: q, k, v as slices of a fused qkv tensor */
        attention_case((AttentionParams){.b = 2, .lq = 37, .lk = 77, .heads = 3, .dk = 5, .dv = 5, .ldq = 3 * 5 + 4,
                                         .ldk = 3 * 5 + 2, .ldv = 3 * 5 + 7, .ldy = 3 * 5 + 1, .scale = 0.4472136f,
                                         .causal = causal}, 0);
        /* several query and key blocks, dv != dk, lq > lk and lq < lk */
        attention_case((AttentionParams){.b = 1, .lq = 300, .lk = 601, .heads = 2, .dk = 8, .dv = 6, .ldq = 16,
                                         .ldk = 17, .ldv = 12, .ldy = 13, .scale = 0.35f, .causal = causal}, 0);
        attention_case((AttentionParams){.b = 1, .lq = 601, .lk = 300, .heads = 2, .dk = 8, .dv = 6, .ldq = 16,
                                         .ldk = 16, .ldv = 12, .ldy = 12, .scale = 0.35f, .causal = causal}, 0);
    }
    /* large scores (sharp softmax): the running max must be right */
    attention_case((AttentionParams){.b = 1, .lq = 129, .lk = 513, .heads = 1, .dk = 16, .dv = 16, .ldq = 16,
                                     .ldk = 16, .ldv = 16, .ldy = 16, .scale = 3.0f}, 0);
}

static void test_attention_sd(void)
{
    /* CLIP: 77 tokens, causal, 12 heads of 64 */
    attention_case((AttentionParams){.b = 1, .lq = 77, .lk = 77, .heads = 12, .dk = 64, .dv = 64, .ldq = 768,
                                     .ldk = 768, .ldv = 768, .ldy = 768, .scale = 0.125f, .causal = 1}, 0);
    /* UNet self-attention at 64x64 (2 of the 8 heads of 40), and cross-attention to 77 tokens */
    float s = 1.0f / sqrtf(40.0f);
    attention_case((AttentionParams){.b = 1, .lq = 4096, .lk = 4096, .heads = 2, .dk = 40, .dv = 40, .ldq = 80,
                                     .ldk = 80, .ldv = 80, .ldy = 80, .scale = s}, 24);
    attention_case((AttentionParams){.b = 2, .lq = 4096, .lk = 77, .heads = 8, .dk = 40, .dv = 40, .ldq = 320,
                                     .ldk = 320, .ldv = 320, .ldy = 320, .scale = s}, 64);
}

/* ---- normalisation and softmax ------------------------------------------ */

static void group_norm_case(GroupNormParams p, float offset)
{
    size_t n = (size_t)p.n * p.c * p.hw;
    float *x = randn_buf(n, 2.0f), *gamma = randn_buf((size_t)p.c, 1.0f), *beta = randn_buf((size_t)p.c, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += offset;
    float *y = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    RUN_THREADS(y, n, rt_group_norm(&p, x, gamma, beta, y));
    ref_group_norm(&p, x, gamma, beta, ref);
    double rel = test_rel_err(y, ref, n);
    CHECK_MSG(rel < TOL, "group_norm c=%d hw=%d groups=%d silu=%d: rel %.3g", p.c, p.hw, p.groups, p.silu, rel);
    /* in place */
    rt_group_norm(&p, x, gamma, beta, x);
    CHECK(memcmp(x, y, n * sizeof(float)) == 0);
    free(x), free(gamma), free(beta), free(y), free(ref);
}

static void test_group_norm(void)
{
    for (int silu = 0; silu < 2; silu++) {
        group_norm_case((GroupNormParams){.n = 2, .c = 12, .hw = 37, .groups = 4, .eps = 1e-5f, .silu = silu}, 0);
        group_norm_case((GroupNormParams){.n = 3, .c = 5, .hw = 1, .groups = 5, .eps = 1e-6f, .silu = silu}, 0.5f);
    }
    /* a mean far from zero: (x - mean) must be formed before scaling */
    group_norm_case((GroupNormParams){.n = 1, .c = 8, .hw = 99, .groups = 2, .eps = 1e-5f}, 100.0f);
    /* SD: 320 channels at 64x64 in 32 groups, with silu, batch 2 */
    group_norm_case((GroupNormParams){.n = 2, .c = 320, .hw = 4096, .groups = 32, .eps = 1e-5f, .silu = 1}, 0.3f);
}

static void layer_norm_case(LayerNormParams p, float offset)
{
    size_t n = (size_t)p.rows * p.cols;
    float *x = randn_buf(n, 3.0f), *gamma = randn_buf((size_t)p.cols, 1.0f), *beta = randn_buf((size_t)p.cols, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += offset;
    float *y = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    RUN_THREADS(y, n, rt_layer_norm(&p, x, gamma, beta, y));
    ref_layer_norm(&p, x, gamma, beta, ref);
    double rel = test_rel_err(y, ref, n);
    CHECK_MSG(rel < TOL, "layer_norm %dx%d: rel %.3g", p.rows, p.cols, rel);
    free(x), free(gamma), free(beta), free(y), free(ref);
}

static void test_layer_norm(void)
{
    layer_norm_case((LayerNormParams){.rows = 37, .cols = 77, .eps = 1e-5f}, 0);
    layer_norm_case((LayerNormParams){.rows = 3, .cols = 1, .eps = 1e-5f}, 1);
    layer_norm_case((LayerNormParams){.rows = 5, .cols = 123, .eps = 1e-5f}, 50);
    layer_norm_case((LayerNormParams){.rows = 4096, .cols = 320, .eps = 1e-5f}, 0);
}

static void softmax_case(int64_t rows, int64_t cols, float scale)
{
    size_t n = (size_t)(rows * cols);
    float *x = randn_buf(n, scale), *y = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    RUN_THREADS(y, n, rt_softmax(rows, cols, x, y));
    ref_softmax(rows, cols, x, ref);
    double rel = test_rel_err(y, ref, n);
    CHECK_MSG(rel < TOL, "softmax %ldx%ld scale %g: rel %.3g", (long)rows, (long)cols, scale, rel);
    free(x), free(y), free(ref);
}

static void test_softmax(void)
{
    softmax_case(37, 77, 1.0f);
    softmax_case(5, 1, 1.0f);
    softmax_case(9, 1001, 20.0f); /* exponents down to the underflow range */
    softmax_case(256, 4096, 3.0f);
}

/* ---- elementwise ----------------------------------------------------------- */

typedef void (*UnaryKernel)(const float *x, float *y, int64_t n);

static void unary_case(const char *name, UnaryKernel rt, UnaryKernel ref_fn, int64_t n, float scale)
{
    float *x = randn_buf((size_t)n, scale), *y = xmalloc((size_t)n * sizeof(float));
    float *ref = xmalloc((size_t)n * sizeof(float));
    if (n > 8) { /* the tails and the clamps of exp */
        float edge[] = {0.0f, -0.0f, 30.0f, -30.0f, 90.0f, -90.0f, 1e-20f, -120.0f};
        memcpy(x, edge, sizeof edge);
    }
    RUN_THREADS(y, (size_t)n, rt(x, y, n));
    ref_fn(x, ref, n);
    /* (the reference's gelu is 0 below x = -8.3, where 1 + erf cancels in
     * double: a one-element norm could compare against 0) */
    double rel = test_rel_err(y, ref, (size_t)n);
    CHECK_MSG(n <= 8 || rel < TOL, "%s n=%ld scale %g: rel %.3g", name, (long)n, scale, rel);
    /* element by element too: the norm would hide a bad tail value */
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = 1e-5 * fabs(ref[i]) + 1e-10; /* tails below 1e-10: float rounding of x dominates */
        if (!(fabs((double)y[i] - ref[i]) <= tol) && bad++ < 3)
            fprintf(stderr, "  %s(%.9g) = %.9g, ref %.9g\n", name, x[i], y[i], ref[i]);
    }
    CHECK_MSG(bad == 0, "%s: %d elements off by more than 1e-5 relative (+1e-10)", name, bad);
    rt(x, x, n); /* in place */
    CHECK(memcmp(x, y, (size_t)n * sizeof(float)) == 0);
    free(x), free(y), free(ref);
}

static void test_activations(void)
{
    int64_t sizes[] = {1, 7, 100003};
    for (int i = 0; i < 3; i++) {
        unary_case("silu", rt_silu, ref_silu, sizes[i], 4.0f);
        unary_case("gelu", rt_gelu, ref_gelu, sizes[i], 4.0f);
        unary_case("quick_gelu", rt_quick_gelu, ref_quick_gelu, sizes[i], 4.0f);
    }
    unary_case("gelu", rt_gelu, ref_gelu, 4096 * 1280, 1.0f); /* SD GEGLU gate of one 64x64 image */
}

/* y = a op b over `shape`; b's strides from its own shape (1 = broadcast). */
static void binary_case(int ndim, const int64_t *shape, const int64_t *bshape, int transpose_a)
{
    int64_t sa[5], sb[5], n = 1, nb = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        sa[d] = n;
        sb[d] = bshape[d] == 1 ? 0 : nb;
        n *= shape[d];
        nb *= bshape[d];
    }
    if (transpose_a && ndim >= 2) { /* a stored with its last two axes swapped */
        int64_t t = sa[ndim - 1];
        sa[ndim - 1] = shape[ndim - 2];
        sa[ndim - 2] = t;
    }
    float *a = randn_buf((size_t)n, 1.0f), *b = randn_buf((size_t)nb, 1.0f);
    float *y = xmalloc((size_t)n * sizeof(float)), *ref = xmalloc((size_t)n * sizeof(float));
    for (int op = RT_ADD; op <= RT_DIV; op++) {
        RUN_THREADS(y, (size_t)n, rt_binary((RtBinaryOp)op, ndim, shape, a, sa, b, sb, y));
        ref_binary((RtBinaryOp)op, ndim, shape, a, sa, b, sb, ref);
        CHECK_MSG(memcmp(y, ref, (size_t)n * sizeof(float)) == 0, "binary op %d ndim %d: not the reference's bits",
                  op, ndim);
    }
    if (!transpose_a) { /* in place on a */
        float *a2 = xmalloc((size_t)n * sizeof(float));
        memcpy(a2, a, (size_t)n * sizeof(float));
        rt_binary(RT_MUL, ndim, shape, a2, sa, b, sb, a2);
        ref_binary(RT_MUL, ndim, shape, a, sa, b, sb, ref);
        CHECK(memcmp(a2, ref, (size_t)n * sizeof(float)) == 0);
        free(a2);
    }
    free(a), free(b), free(y), free(ref);
}

static void test_binary(void)
{
    int64_t nchw[] = {2, 5, 7, 9};
    binary_case(4, nchw, nchw, 0);                                  /* same shape */
    binary_case(4, nchw, (int64_t[]){1, 5, 1, 1}, 0);               /* conv bias [C,1,1] */
    binary_case(4, nchw, (int64_t[]){2, 5, 1, 1}, 0);               /* time embedding [B,C,1,1] */
    binary_case(4, nchw, (int64_t[]){1, 1, 1, 1}, 0);               /* scalar */
    binary_case(4, nchw, (int64_t[]){1, 1, 1, 9}, 0);               /* row broadcast */
    binary_case(4, nchw, (int64_t[]){2, 1, 7, 1}, 0);               /* mixed */
    binary_case(3, (int64_t[]){3, 11, 13}, (int64_t[]){3, 11, 13}, 1); /* strided a */
    binary_case(5, (int64_t[]){2, 1, 3, 4, 5}, (int64_t[]){1, 1, 3, 1, 5}, 0);
    binary_case(0, NULL, NULL, 0);                                  /* 0-d */
    int64_t big[] = {1, 320, 64, 64};
    binary_case(4, big, (int64_t[]){1, 320, 1, 1}, 0);               /* SD resnet time embedding add */
    binary_case(2, (int64_t[]){1, 70001}, (int64_t[]){1, 70001}, 0); /* long single row */
}

static void upsample_case(UpsampleParams p)
{
    size_t nx = (size_t)p.n * p.c * p.h * p.w, ny = (size_t)p.n * p.c * p.oh * p.ow;
    float *x = randn_buf(nx, 1.0f), *y = xmalloc(ny * sizeof(float)), *ref = xmalloc(ny * sizeof(float));
    RUN_THREADS(y, ny, rt_upsample_nearest2d(&p, x, y));
    ref_upsample_nearest2d(&p, x, ref);
    CHECK_MSG(memcmp(y, ref, ny * sizeof(float)) == 0, "upsample %dx%d -> %dx%d", p.h, p.w, p.oh, p.ow);
    free(x), free(y), free(ref);
}

static void test_upsample(void)
{
    upsample_case((UpsampleParams){.n = 2, .c = 3, .h = 5, .w = 7, .oh = 10, .ow = 14});
    upsample_case((UpsampleParams){.n = 1, .c = 2, .h = 5, .w = 7, .oh = 13, .ow = 9});
    upsample_case((UpsampleParams){.n = 1, .c = 2, .h = 6, .w = 7, .oh = 6, .ow = 3});
    upsample_case((UpsampleParams){.n = 2, .c = 640, .h = 32, .w = 32, .oh = 64, .ow = 64});
}

static void timestep_case(TimestepEmbParams p, const float *t)
{
    size_t n = (size_t)p.b * p.dim;
    float *y = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    rt_timestep_embedding(&p, t, y);
    ref_timestep_embedding(&p, t, ref);
    CHECK_MSG(memcmp(y, ref, n * sizeof(float)) == 0, "timestep embedding dim %d flip %d", p.dim, p.flip_sin_to_cos);
    free(y), free(ref);
}

static void test_timestep_embedding(void)
{
    float t[] = {0.0f, 1.0f, 999.0f, 500.5f, test_uniform(0, 1000)};
    timestep_case((TimestepEmbParams){.b = 5, .dim = 320, .flip_sin_to_cos = 1, .shift = 0, .max_period = 10000,
                                      .scale = 1}, t);
    timestep_case((TimestepEmbParams){.b = 5, .dim = 33, .flip_sin_to_cos = 0, .shift = 1, .max_period = 10000,
                                      .scale = 2}, t);
}

int main(void)
{
    RUN(test_conv_ragged);
    RUN(test_conv_tiling);
    RUN(test_conv_sd);
    RUN(test_matmul_ragged);
    RUN(test_matmul_sd);
    RUN(test_attention_ragged);
    RUN(test_attention_sd);
    RUN(test_group_norm);
    RUN(test_layer_norm);
    RUN(test_softmax);
    RUN(test_activations);
    RUN(test_binary);
    RUN(test_upsample);
    RUN(test_timestep_embedding);
    return test_finish();
}
