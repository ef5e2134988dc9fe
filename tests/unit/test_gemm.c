/* test_gemm.c — the runtime's GEMM engine (runtime/gemm.h) and the kernels
 * that read weights packed at compile time, on every micro-kernel this CPU
 * can run (portable C, AVX2, AVX-512), on fresh random inputs.
 *
 * - rt_gemm against a double-precision product: ragged m, n, k (none a
 *   multiple of the 6 x 64 tile; several depth blocks, several row and
 *   column blocks), every transpose, alpha and beta (beta 0 must not read C:
 *   C starts as NaN), padded leading dimensions;
 * - rt_conv2d with the weight packed (f32, f16, bf16) against the reference
 *   conv on the weight rounded to that precision, on ragged shapes that hit
 *   every im2col case (padding on each side, stride, dilation, groups,
 *   8-wide rows whose 16-column chunks span two output rows, a depth block
 *   that starts inside a channel, several output-channel blocks), with 1, 2
 *   and 3 threads giving the same bits;
 * - rt_matmul with a packed linear weight, the same way;
 * - the fused conv and linear kernels with packed weights (GroupNorm + SiLU
 *   and LayerNorm prologues, GEGLU, every epilogue term);
 * - bf16 weights with AVX512-BF16 (where the CPU has it) against references
 *   whose GEMM input is rounded to bf16 as that path rounds it, and on every
 *   other micro-kernel (the pair panels widened to f32);
 * - the pair-panel conversions against a scalar rounding, odd depths included;
 * - rt_attention on each micro-kernel;
 * - rt_widen against dtype.c's conversions for every 16-bit pattern. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "err.h"
#include "gemm.h"
#include "kernels.h"
#include "kernels_internal.h"
#include "ref_kernels.h"
#include "test.h"

#define TOL 1e-5

static const char *const isa_names[RT_GEMM_ISA_COUNT] = {"generic", "avx2", "avx512", "avx512bf16"};

static float *randn_buf(size_t n, float scale)
{
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    test_fill_randn(x, n, scale);
    return x;
}

/* ---- rt_gemm ------------------------------------------------------------------- */

static void gemm_case(int m, int n, int k, int ta, int tb, float alpha, float beta)
{
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 5;
    int64_t rows_a = ta ? k : m, rows_b = tb ? n : k;
    float *a = randn_buf((size_t)(rows_a * lda), 1.0f), *b = randn_buf((size_t)(rows_b * ldb), 1.0f);
    float *c = randn_buf((size_t)(m * ldc), 1.0f), *c0 = xmalloc(sizeof(float) * (size_t)(m * ldc));
    if (beta == 0.0f)
        for (int64_t i = 0; i < m * ldc; i++) c[i] = NAN; /* must not be read */
    memcpy(c0, c, sizeof(float) * (size_t)(m * ldc));
    rt_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    double num = 0, den = 0;
    int pad_ok = 1;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            double want = alpha * s + (beta == 0.0f ? 0.0 : beta * (double)c0[i * ldc + j]);
            double d = c[i * ldc + j] - want;
            num += d * d, den += want * want;
        }
        for (int64_t j = n; j < ldc; j++) /* the padding columns are not C's */
            pad_ok &= memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float)) == 0;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECK_MSG(rel < TOL, "%s gemm m=%d n=%d k=%d ta=%d tb=%d alpha=%g beta=%g: rel %.3g", rt_gemm_arch()->name, m, n,
              k, ta, tb, alpha, beta, rel);
    CHECK_MSG(pad_ok, "gemm m=%d n=%d: wrote outside C", m, n);
    free(a), free(b), free(c), free(c0);
}

static void test_gemm_plain(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 70, 19}, {6, 64, 384}, {13, 65, 385},
                                    {150, 1030, 20}, {5, 3, 800}, {12, 130, 1}};
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) {
            fprintf(stderr, "  (this CPU has no %s: skipped)\n", isa_names[isa]);
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++)
                gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, t == 3 ? 0.5f : 1.0f,
                          t == 0 ? 0.0f : t == 1 ? 1.0f : -0.75f);
        gemm_case(9, 17, 0, 0, 0, 1.0f, 0.5f); /* k = 0: C = beta C */
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

/* ---- packed weights ------------------------------------------------------------ */

static DType pack_dtype(RtWeightPack pack)
{
    return pack == RT_WPACK_CONV_F16 || pack == RT_WPACK_LINEAR_F16     ? DT_F16
           : pack == RT_WPACK_CONV_BF16 || pack == RT_WPACK_LINEAR_BF16 ? DT_BF16
                                                                         : DT_F32;
}

/* With a bf16 dot product, bf16 weights meet activations rounded to bf16
 * too (gemm.h): the references then round the GEMM's input the same way. */
static int rounds_input(RtWeightPack pack)
{
    return rt_gemm_arch()->kernel_bf16 && (pack == RT_WPACK_CONV_BF16 || pack == RT_WPACK_LINEAR_BF16);
}

static void round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

/* w rounded to the precision the pack stores (what the kernel computes with). */
static float *rounded(const float *w, size_t n, RtWeightPack pack)
{
    float *r = xmalloc(n * sizeof(float));
    DType dt = pack_dtype(pack);
    for (size_t i = 0; i < n; i++)
        r[i] = dt == DT_F16 ? f16_to_f32(f32_to_f16(w[i])) : dt == DT_BF16 ? bf16_to_f32(f32_to_bf16(w[i])) : w[i];
    return r;
}

static void *packed(RtWeightPack pack, int groups, int64_t rows, int64_t k, const float *w)
{
    int64_t bytes = rt_packed_weight_size(pack, groups, rows, k);
    void *p = xmalloc((size_t)bytes);
    memset(p, 0xff, (size_t)bytes); /* every byte must be written */
    rt_pack_weight(pack, groups, rows, k, w, p);
    return p;
}

/* Runs call with 3, 2 and 1 threads into out (n floats): the same bits. */
#define RUN_THREADS(out, n, call)                                                                     \
    do {                                                                                              \
        float *other_ = xmalloc((n) * sizeof(float));                                                 \
        for (int th_ = 3; th_ >= 1; th_--) {                                                          \
            rt_set_threads(th_);                                                                      \
            call;                                                                                     \
            if (th_ < 3)                                                                              \
                CHECK_MSG(memcmp(out, other_, (n) * sizeof(float)) == 0, "threads %d, %d differ", th_, th_ + 1); \
            memcpy(other_, out, (n) * sizeof(float));                                                 \
        }                                                                                             \
        free(other_);                                                                                 \
        rt_set_threads(0);                                                                            \
    } while (0)

static void conv_case(Conv2dParams p, RtWeightPack pack, int with_bias)
{
    CHECK(conv2d_params_finish(&p) == 0);
    int64_t cg = p.c / p.groups, k = cg * p.kh * p.kw;
    size_t nx = (size_t)p.n * p.c * p.h * p.w, nw = (size_t)(p.oc * k), ny = (size_t)p.n * p.oc * p.oh * p.ow;
    float *x = randn_buf(nx, 1.0f), *w = randn_buf(nw, 0.2f), *b = with_bias ? randn_buf((size_t)p.oc, 1.0f) : NULL;
    float *wr = rounded(w, nw, pack), *y = xmalloc(ny * sizeof(float)), *ref = xmalloc(ny * sizeof(float));
    void *wp = packed(pack, p.groups, p.oc, k, w);
    Conv2dParams pp = p;
    pp.wpack = pack;
    RUN_THREADS(y, ny, rt_conv2d(&pp, x, wp, b, y));
    if (rounds_input(pack)) round_bf16(x, nx);
    ref_conv2d(&p, x, wr, b, ref);
    double rel = test_rel_err(y, ref, ny);
    CHECK_MSG(rel < TOL, "%s conv pack %d c=%d oc=%d %dx%d k=%dx%d s=%d,%d d=%d,%d g=%d: rel %.3g",
              rt_gemm_arch()->name, pack, p.c, p.oc, p.h, p.w, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.groups, rel);
    free(x), free(w), free(b), free(wr), free(y), free(ref), free(wp);
}

static void conv_shapes(RtWeightPack pack)
{
    /* 3x3 stride 2 with diffusers' asymmetric downsample padding */
    conv_case((Conv2dParams){.n = 2, .c = 5, .h = 9, .w = 11, .oc = 7, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pb = 1,
                             .pr = 1, .dh = 1, .dw = 1, .groups = 1}, pack, 1);
    /* 3x3 same padding, 8-wide rows (a 16-column chunk spans two output rows), no bias */
    conv_case((Conv2dParams){.n = 1, .c = 6, .h = 8, .w = 8, .oc = 13, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pt = 1,
                             .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, pack, 0);
    /* rows of 19 (chunks start mid-row), a depth of 450 (two blocks, the second starting inside a channel) */
    conv_case((Conv2dParams){.n = 1, .c = 50, .h = 7, .w = 19, .oc = 11, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pt = 1,
                             .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, pack, 1);
    /* 1x1 (the input is the GEMM operand) and 1x1 stride 2 */
    conv_case((Conv2dParams){.n = 2, .c = 6, .h = 7, .w = 5, .oc = 10, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1,
                             .dw = 1, .groups = 1}, pack, 1);
    conv_case((Conv2dParams){.n = 1, .c = 6, .h = 7, .w = 5, .oc = 10, .kh = 1, .kw = 1, .sh = 2, .sw = 2, .dh = 1,
                             .dw = 1, .groups = 1}, pack, 1);
    /* grouped, dilated, non-square kernel, padding wider than the kernel's reach on one side */
    conv_case((Conv2dParams){.n = 2, .c = 6, .h = 8, .w = 13, .oc = 9, .kh = 3, .kw = 2, .sh = 1, .sw = 3, .pt = 2,
                             .pl = 3, .pr = 1, .dh = 2, .dw = 1, .groups = 3}, pack, 1);
    conv_case((Conv2dParams){.n = 1, .c = 4, .h = 9, .w = 21, .oc = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pt = 1,
                             .pl = 2, .pb = 1, .pr = 2, .dh = 1, .dw = 2, .groups = 4}, pack, 0);
    /* few positions, many output channels: several output-channel blocks; and a row wider than 16 */
    conv_case((Conv2dParams){.n = 1, .c = 33, .h = 8, .w = 8, .oc = 200, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pt = 1,
                             .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, pack, 1);
    conv_case((Conv2dParams){.n = 2, .c = 7, .h = 45, .w = 37, .oc = 5, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pt = 1,
                             .pl = 1, .pb = 1, .pr = 1, .dh = 1, .dw = 1, .groups = 1}, pack, 1);
}

static void test_conv_packed(void)
{
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) continue;
        for (int pack = RT_WPACK_CONV_F32; pack <= RT_WPACK_CONV_BF16; pack++) conv_shapes((RtWeightPack)pack);
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

static void linear_case(int m, int k, int n, RtWeightPack pack, int with_bias)
{
    float *x = randn_buf((size_t)m * k, 1.0f), *w = randn_buf((size_t)n * k, 0.3f);
    float *b = with_bias ? randn_buf((size_t)n, 1.0f) : NULL, *wr = rounded(w, (size_t)n * k, pack);
    float *y = xmalloc(sizeof(float) * (size_t)m * n), *ref = xmalloc(sizeof(float) * (size_t)m * n);
    void *wp = packed(pack, 1, n, k, w);
    MatmulParams p = {.batch = 1, .m = m, .n = n, .k = k, .trans_b = 1, .lda = k, .ldb = k, .ldc = n};
    MatmulParams pp = p;
    pp.bpack = pack;
    RUN_THREADS(y, (size_t)m * n, rt_matmul(&pp, x, wp, b, y));
    if (rounds_input(pack)) round_bf16(x, (size_t)m * k);
    ref_matmul(&p, x, wr, b, ref);
    double rel = test_rel_err(y, ref, (size_t)m * n);
    CHECK_MSG(rel < TOL, "%s linear pack %d m=%d k=%d n=%d: rel %.3g", rt_gemm_arch()->name, pack, m, k, n, rel);
    free(x), free(w), free(b), free(wr), free(y), free(ref), free(wp);
}

static void test_linear_packed(void)
{
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) continue;
        for (int pack = RT_WPACK_LINEAR_F32; pack <= RT_WPACK_LINEAR_BF16; pack++) {
            linear_case(37, 19, 29, (RtWeightPack)pack, 1);
            linear_case(300, 400, 70, (RtWeightPack)pack, 0); /* two depth blocks, two row tiles */
            linear_case(2, 320, 1283, (RtWeightPack)pack, 1); /* column strips */
            linear_case(45, 401, 33, (RtWeightPack)pack, 1);  /* an odd last depth block (bf16: a half pair) */
        }
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

/* The fused kernels with packed weights: every prologue and epilogue term at once. */
static void fused_conv_case(FusedConv2dParams p, RtWeightPack pack)
{
    Conv2dParams *c = &p.conv;
    CHECK(conv2d_params_finish(c) == 0);
    int64_t k = (int64_t)c->c * c->kh * c->kw;
    size_t nx = (size_t)c->n * c->c * c->h * c->w, nw = (size_t)(c->oc * k), ny = (size_t)c->n * c->oc * c->oh * c->ow;
    float *x = randn_buf(nx, 2.0f), *gamma = randn_buf((size_t)c->c, 1.0f), *beta = randn_buf((size_t)c->c, 1.0f);
    for (size_t i = 0; i < nx; i++) x[i] += 0.5f;
    float *w = randn_buf(nw, 0.2f), *b = randn_buf((size_t)c->oc, 1.0f), *wr = rounded(w, nw, pack);
    float *chan = randn_buf((size_t)p.chan_add_n * c->oc, 1.0f), *res = randn_buf(ny, 1.0f);
    float *y = xmalloc(ny * sizeof(float)), *ref = xmalloc(ny * sizeof(float));
    void *wp = packed(pack, 1, c->oc, k, w);
    const float *g = p.norm_groups ? gamma : NULL, *bt = p.norm_groups ? beta : NULL;
    FusedConv2dParams pp = p;
    pp.conv.wpack = pack;
    RUN_THREADS(y, ny, rt_fused_conv2d(&pp, x, g, bt, wp, b, chan, res, y));
    if (rounds_input(pack)) {
        /* the prologue's output is rounded to bf16: the reference step by step, the normalisation by
         * rt_group_norm (the prologue's bits, tested against ref_group_norm in test_kernels) so that
         * both round the same values */
        float *xn = xmalloc(nx * sizeof(float));
        GroupNormParams gp = {.n = c->n, .c = c->c, .hw = c->h * c->w, .groups = p.norm_groups, .eps = p.eps,
                              .silu = p.silu};
        if (p.norm_groups) rt_group_norm(&gp, x, gamma, beta, xn);
        else memcpy(xn, x, nx * sizeof(float));
        round_bf16(xn, nx);
        ref_conv2d(c, xn, wr, b, ref);
        size_t plane = (size_t)c->oh * c->ow;
        for (size_t i = 0; i < ny; i++) {
            size_t o = i / plane % (size_t)c->oc, img = p.chan_add_n == 1 ? 0 : i / plane / (size_t)c->oc;
            ref[i] = (ref[i] + chan[img * (size_t)c->oc + o] + res[i]) * p.out_scale;
        }
        free(xn);
    } else {
        ref_fused_conv2d(&p, x, g, bt, wr, b, chan, res, ref);
    }
    double rel = test_rel_err(y, ref, ny);
    CHECK_MSG(rel < TOL, "%s fused conv pack %d c=%d oc=%d %dx%d k=%d norm=%d: rel %.3g", rt_gemm_arch()->name, pack,
              c->c, c->oc, c->h, c->w, c->kh, p.norm_groups, rel);
    free(x), free(gamma), free(beta), free(w), free(b), free(wr), free(chan), free(res), free(y), free(ref), free(wp);
}

static void fused_linear_case(FusedLinearParams p, RtWeightPack pack)
{
    int ny = p.geglu ? p.n / 2 : p.n;
    float *x = randn_buf((size_t)p.m * p.k, 2.0f), *gamma = randn_buf((size_t)p.k, 1.0f);
    float *beta = randn_buf((size_t)p.k, 1.0f), *w = randn_buf((size_t)p.n * p.k, 0.3f);
    float *b = randn_buf((size_t)p.n, 1.0f), *res = randn_buf((size_t)p.m * ny, 1.0f);
    float *wr = rounded(w, (size_t)p.n * p.k, pack);
    float *y = xmalloc(sizeof(float) * (size_t)p.m * ny), *ref = xmalloc(sizeof(float) * (size_t)p.m * ny);
    void *wp = packed(pack, 1, p.n, p.k, w);
    const float *g = p.norm || p.norm_groups ? gamma : NULL, *bt = p.norm || p.norm_groups ? beta : NULL;
    FusedLinearParams pp = p;
    pp.wpack = pack;
    RUN_THREADS(y, (size_t)p.m * ny, rt_fused_linear(&pp, x, g, bt, wp, b, res, y));
    if (rounds_input(pack)) { /* the GEMM input is rounded: the reference step by step (see fused_conv_case) */
        float *xn = xmalloc(sizeof(float) * (size_t)p.m * p.k), *z = xmalloc(sizeof(float) * (size_t)p.m * p.n);
        LayerNormParams lp = {.rows = p.m, .cols = p.k, .eps = p.eps};
        if (p.norm) rt_layer_norm(&lp, x, gamma, beta, xn);
        else if (p.norm_groups) { /* rt_group_norm's bits, then the tokens transpose */
            float *gn = xmalloc(sizeof(float) * (size_t)p.m * p.k);
            GroupNormParams gp = {.n = p.m / p.hw, .c = p.k, .hw = p.hw, .groups = p.norm_groups, .eps = p.eps};
            rt_group_norm(&gp, x, gamma, beta, gn);
            for (int i = 0; i < p.m; i++)
                for (int c = 0; c < p.k; c++)
                    xn[(size_t)i * p.k + c] = gn[((size_t)(i / p.hw) * p.k + c) * p.hw + i % p.hw];
            free(gn);
        } else memcpy(xn, x, sizeof(float) * (size_t)p.m * p.k);
        round_bf16(xn, (size_t)p.m * p.k);
        MatmulParams mp = {.batch = 1, .m = p.m, .n = p.n, .k = p.k, .trans_b = 1, .lda = p.k, .ldb = p.k, .ldc = p.n};
        ref_matmul(&mp, xn, wr, b, z);
        for (int i = 0; i < p.m; i++)
            for (int j = 0; j < ny; j++) {
                float v = z[(size_t)i * p.n + j], gate;
                if (p.geglu) ref_gelu(&z[(size_t)i * p.n + ny + j], &gate, 1), v *= gate;
                ref[(size_t)i * ny + j] = (v + res[(size_t)i * ny + j]) * p.out_scale;
            }
        free(xn), free(z);
    } else {
        ref_fused_linear(&p, x, g, bt, wr, b, res, ref);
    }
    double rel = test_rel_err(y, ref, (size_t)p.m * ny);
    CHECK_MSG(rel < TOL, "%s fused linear pack %d m=%d k=%d n=%d norm=%d geglu=%d: rel %.3g", rt_gemm_arch()->name,
              pack, p.m, p.k, p.n, p.norm, p.geglu, rel);
    free(x), free(gamma), free(beta), free(w), free(b), free(res), free(wr), free(y), free(ref), free(wp);
}

static void test_fused_packed(void)
{
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) continue;
        for (int q = 0; q < 3; q++) {
            RtWeightPack cp = (RtWeightPack)(RT_WPACK_CONV_F32 + q), lp = (RtWeightPack)(RT_WPACK_LINEAR_F32 + q);
            /* GroupNorm + SiLU, 3x3 on 8-wide rows, a depth of 3 blocks; and a 1x1 with the prologue */
            fused_conv_case((FusedConv2dParams){.conv = {.n = 2, .c = 96, .h = 5, .w = 8, .oc = 13, .kh = 3, .kw = 3,
                                                         .sh = 1, .sw = 1, .pt = 1, .pl = 1, .pb = 1, .pr = 1, .dh = 1,
                                                         .dw = 1, .groups = 1},
                                                .norm_groups = 8, .eps = 1e-5f, .silu = 1, .chan_add_n = 2,
                                                .out_scale = 0.5f}, cp);
            fused_conv_case((FusedConv2dParams){.conv = {.n = 1, .c = 12, .h = 7, .w = 9, .oc = 20, .kh = 1, .kw = 1,
                                                         .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1},
                                                .norm_groups = 4, .eps = 1e-6f, .chan_add_n = 1, .out_scale = 1.0f},
                            cp);
            /* LayerNorm + GEGLU (hidden and gate 32 wide), and a plain projection with a residual */
            fused_linear_case((FusedLinearParams){.m = 37, .k = 24, .n = 64, .norm = 1, .eps = 1e-5f, .geglu = 1,
                                                  .out_scale = 1.0f}, lp);
            fused_linear_case((FusedLinearParams){.m = 300, .k = 400, .n = 29, .out_scale = 0.25f}, lp);
            /* GroupNorm over channel-major images (SD 2.x proj_in): 3 images of 100 positions, so row
             * tiles of 256 start and end inside an image */
            fused_linear_case((FusedLinearParams){.m = 300, .k = 24, .n = 40, .norm_groups = 6, .hw = 100,
                                                  .eps = 1e-6f, .out_scale = 1.0f}, lp);
        }
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

/* Attention runs on the micro-kernels too: every ISA, ragged sizes, both
 * masks.  With bf16 (where the CPU has a bf16 dot product) the reference
 * takes Q, K (unless upcast) and V rounded to bf16 as the kernel rounds
 * them; P is rounded inside the kernel against its running maximum, which
 * no reference can mimic, so that case gets a bf16-sized bound. */
static void attention_case(AttentionParams p)
{
    size_t nq = (size_t)p.b * p.lq * p.ldq, nk = (size_t)p.b * p.lk * p.ldk, nv = (size_t)p.b * p.lk * p.ldv;
    size_t ny = (size_t)p.b * p.lq * p.ldy;
    float *q = randn_buf(nq, 1.0f), *k = randn_buf(nk, 1.0f), *v = randn_buf(nv, 1.0f);
    float *y = xcalloc(ny, sizeof(float)), *ref = xcalloc(ny, sizeof(float));
    RUN_THREADS(y, ny, rt_attention(&p, q, k, v, y));
    int bf16 = p.bf16 && rt_gemm_arch()->kernel_bf16;
    if (bf16) {
        if (!p.upcast) round_bf16(q, nq), round_bf16(k, nk);
        round_bf16(v, nv);
    }
    ref_attention(&p, q, k, v, ref);
    double rel = test_rel_err(y, ref, ny), tol = bf16 ? 5e-3 : TOL;
    CHECK_MSG(rel < tol, "%s attention lq=%d lk=%d h=%d dk=%d dv=%d causal=%d bf16=%d upcast=%d: rel %.3g",
              rt_gemm_arch()->name, p.lq, p.lk, p.heads, p.dk, p.dv, p.causal, p.bf16, p.upcast, rel);
    free(q), free(k), free(v), free(y), free(ref);
}

static void test_attention_isas(void)
{
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) continue;
        for (int mode = 0; mode < 6; mode++) { /* causal x {fp32, bf16, bf16 with upcast} */
            int causal = mode & 1, bf16 = mode >= 2, upcast = mode >= 4;
            /* several query and key blocks, dv != dk, odd depths, strided rows */
            attention_case((AttentionParams){.b = 2, .lq = 300, .lk = 487, .heads = 2, .dk = 7, .dv = 13, .ldq = 17,
                                             .ldk = 15, .ldv = 29, .ldy = 27, .scale = 0.4f, .causal = causal,
                                             .bf16 = bf16, .upcast = upcast});
            /* one key block shorter than a 6-key panel; a deep head */
            attention_case((AttentionParams){.b = 1, .lq = 33, .lk = 5, .heads = 1, .dk = 400, .dv = 70, .ldq = 400,
                                             .ldk = 400, .ldv = 70, .ldy = 70, .scale = 0.05f, .causal = causal,
                                             .bf16 = bf16, .upcast = upcast});
        }
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

static void test_pack_sizes(void)
{
    /* conv: per group ceil(og/6)*6 rows; linear: ceil(n/16)*16 columns */
    CHECK(rt_packed_weight_size(RT_WPACK_CONV_F32, 1, 320, 2880) == 4 * 324 * 2880);
    /* bf16: depth pairs, an odd depth padded to even */
    CHECK(rt_packed_weight_size(RT_WPACK_CONV_BF16, 3, 9, 8) == 2 * 3 * 6 * 8);
    CHECK(rt_packed_weight_size(RT_WPACK_CONV_BF16, 1, 4, 27) == 2 * 6 * 28);
    CHECK(rt_packed_weight_size(RT_WPACK_LINEAR_BF16, 1, 29, 41) == 2 * 32 * 42);
    CHECK(rt_packed_weight_size(RT_WPACK_LINEAR_F16, 1, 29, 19) == 2 * 32 * 19);
    /* the depth blocks: at most RT_GEMM_KC_MAX, equal but the last, multiples of 16 */
    CHECK(rt_gemm_kc(2880) == 368 && rt_gemm_kc(320) == 320 && rt_gemm_kc(5) == 5 && rt_gemm_kc(11520) == 384);
}

/* The driver's rounding of fp32 panels into bf16 pair panels (gemm.h), and
 * the widening back, against scalar code, for odd and even depths. */
static void test_pairs(void)
{
    const RtGemmArch *ar = rt_gemm_arch();
    static const int depths[] = {1, 2, 3, 5, 6, 7, 16, 33, 384};
    for (size_t t = 0; t < sizeof depths / sizeof depths[0]; t++) {
        int kc = depths[t], kp = (kc + 1) / 2;
        for (int side = 0; side < 2; side++) { /* A panels (6 wide), B sub-panels (16 wide) */
            int width = side ? RT_GEMM_SUB : RT_GEMM_MR, panels = 3;
            int64_t stride = (int64_t)kc * width + 5, dstride = (int64_t)kp * width + 3;
            float *src = randn_buf((size_t)(panels * stride), 1.0f);
            uint32_t *dst = xmalloc(sizeof(uint32_t) * (size_t)(panels * dstride));
            float *back = xmalloc(sizeof(float) * (size_t)(panels * kc * width));
            for (int64_t i = 0; i < panels * dstride; i++) dst[i] = 0xdeadbeefu; /* gaps must stay */
            if (ar->kernel_bf16) {
                if (side) rt_pairs_from_b(src, stride, panels, kc, (float *)dst, dstride);
                else rt_pairs_from_a(src, stride, panels, kc, (float *)dst, dstride);
                int bad = 0, gaps = 0;
                for (int q = 0; q < panels; q++) {
                    for (int p = 0; p < kp; p++)
                        for (int i = 0; i < width; i++) {
                            int k0 = 2 * p, k1 = 2 * p + 1;
                            uint16_t lo = f32_to_bf16(src[q * stride + k0 * width + i]);
                            uint16_t hi = k1 < kc ? f32_to_bf16(src[q * stride + k1 * width + i]) : 0;
                            bad += dst[q * dstride + p * width + i] != ((uint32_t)hi << 16 | lo);
                        }
                    for (int64_t i = (int64_t)kp * width; i < dstride && q + 1 < panels; i++)
                        gaps += dst[q * dstride + i] != 0xdeadbeefu;
                }
                CHECK_MSG(bad == 0, "pairs from %s kc=%d: %d words differ", side ? "B" : "A", kc, bad);
                CHECK_MSG(gaps == 0, "pairs from %s kc=%d: wrote between panels", side ? "B" : "A", kc);
            } else { /* no bf16 instructions: pack the pairs in scalar code for the widening check */
                for (int q = 0; q < panels; q++)
                    for (int p = 0; p < kp; p++)
                        for (int i = 0; i < width; i++) {
                            uint16_t lo = f32_to_bf16(src[q * stride + 2 * p * width + i]);
                            uint16_t hi = 2 * p + 1 < kc ? f32_to_bf16(src[q * stride + (2 * p + 1) * width + i]) : 0;
                            dst[q * dstride + p * width + i] = (uint32_t)hi << 16 | lo;
                        }
            }
            rt_pairs_widen((const float *)dst, dstride, width, panels, kc, back, (int64_t)kc * width);
            int bad = 0;
            for (int q = 0; q < panels; q++)
                for (int k = 0; k < kc * width; k++)
                    bad += back[q * kc * width + k] != bf16_to_f32(f32_to_bf16(src[q * stride + k]));
            CHECK_MSG(bad == 0, "pairs widened (%s) kc=%d: %d values differ", side ? "B" : "A", kc, bad);
            free(src), free(dst), free(back);
        }
    }
}

/* rt_pack_a_pairs (row-major fp32 straight into pair panels) against
 * scalar rounding: ragged rows and depths, several 32-deep chunks. */
static void test_pack_a_pairs(void)
{
    if (!rt_gemm_arch()->kernel_bf16) {
        fprintf(stderr, "  (this CPU has no bf16 dot product: skipped)\n");
        return;
    }
    static const int sizes[][2] = {{1, 1}, {6, 2}, {7, 33}, {13, 64}, {5, 95}, {12, 31}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int mc = sizes[t][0], kc = sizes[t][1], kp = (kc + 1) / 2, panels = (mc + 5) / 6;
        int64_t lda = kc + 7;
        float *a = randn_buf((size_t)(mc * lda), 1.0f);
        size_t words = (size_t)panels * 6 * kp;
        uint32_t *d = xmalloc(sizeof(uint32_t) * (words + 16));
        for (size_t i = 0; i < words + 16; i++) d[i] = 0xdeadbeefu;
        rt_pack_a_pairs(a, lda, mc, kc, (float *)d);
        int bad = 0;
        for (int q = 0; q < panels; q++)
            for (int p = 0; p < kp; p++)
                for (int i = 0; i < 6; i++) {
                    int row = q * 6 + i, k0 = 2 * p, k1 = 2 * p + 1;
                    uint16_t lo = row < mc ? f32_to_bf16(a[row * lda + k0]) : 0;
                    uint16_t hi = row < mc && k1 < kc ? f32_to_bf16(a[row * lda + k1]) : 0;
                    bad += d[((size_t)q * kp + p) * 6 + i] != ((uint32_t)hi << 16 | lo);
                }
        for (size_t i = words; i < words + 16; i++) bad += d[i] != 0xdeadbeefu;
        CHECK_MSG(bad == 0, "rt_pack_a_pairs mc=%d kc=%d: %d words differ", mc, kc, bad);
        free(a), free(d);
    }
}

static void test_widen(void)
{
    uint16_t *h = xmalloc(65536 * sizeof(uint16_t));
    float *f = xmalloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    for (int bf = 0; bf < 2; bf++) {
        rt_widen(bf, h, f, 65536);
        int bad = 0;
        for (int i = 0; i < 65536; i++) {
            float want = bf ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
            if (isnan(want) ? !isnan(f[i]) : memcmp(&want, &f[i], sizeof want) != 0) bad++;
        }
        CHECK_MSG(bad == 0, "rt_widen(%s): %d of 65536 values differ from dtype.c", bf ? "bf16" : "f16", bad);
    }
    free(h), free(f);
}

int main(void)
{
    RUN(test_gemm_plain);
    RUN(test_conv_packed);
    RUN(test_linear_packed);
    RUN(test_fused_packed);
    RUN(test_attention_isas);
    RUN(test_pack_sizes);
    RUN(test_pairs);
    RUN(test_pack_a_pairs);
    RUN(test_widen);
    return test_finish();
}
