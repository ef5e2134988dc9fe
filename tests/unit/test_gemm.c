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

static const char *const isa_names[RT_GEMM_ISA_COUNT] = {"generic", "avx2", "avx512"};

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
            if (th_ < 3) CHECK_MSG(memcmp(out, other_, (n) * sizeof(float)) == 0, "threads %d and %d differ", th_, th_ + 1); \
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
    ref_fused_conv2d(&p, x, g, bt, wr, b, chan, res, ref);
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
    const float *g = p.norm ? gamma : NULL, *bt = p.norm ? beta : NULL;
    FusedLinearParams pp = p;
    pp.wpack = pack;
    RUN_THREADS(y, (size_t)p.m * ny, rt_fused_linear(&pp, x, g, bt, wp, b, res, y));
    ref_fused_linear(&p, x, g, bt, wr, b, res, ref);
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
                                                .norm_groups = 4, .eps = 1e-6f, .chan_add_n = 1, .out_scale = 1.0f}, cp);
            /* LayerNorm + GEGLU (hidden and gate 32 wide), and a plain projection with a residual */
            fused_linear_case((FusedLinearParams){.m = 37, .k = 24, .n = 64, .norm = 1, .eps = 1e-5f, .geglu = 1,
                                                  .out_scale = 1.0f}, lp);
            fused_linear_case((FusedLinearParams){.m = 300, .k = 400, .n = 29, .out_scale = 0.25f}, lp);
        }
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

/* Attention runs on the micro-kernels too: every ISA, ragged sizes, both masks. */
static void attention_case(AttentionParams p)
{
    size_t nq = (size_t)p.b * p.lq * p.ldq, nk = (size_t)p.b * p.lk * p.ldk, nv = (size_t)p.b * p.lk * p.ldv;
    size_t ny = (size_t)p.b * p.lq * p.ldy;
    float *q = randn_buf(nq, 1.0f), *k = randn_buf(nk, 1.0f), *v = randn_buf(nv, 1.0f);
    float *y = xcalloc(ny, sizeof(float)), *ref = xcalloc(ny, sizeof(float));
    RUN_THREADS(y, ny, rt_attention(&p, q, k, v, y));
    ref_attention(&p, q, k, v, ref);
    double rel = test_rel_err(y, ref, ny);
    CHECK_MSG(rel < TOL, "%s attention lq=%d lk=%d h=%d dk=%d dv=%d causal=%d: rel %.3g", rt_gemm_arch()->name, p.lq,
              p.lk, p.heads, p.dk, p.dv, p.causal, rel);
    free(q), free(k), free(v), free(y), free(ref);
}

static void test_attention_isas(void)
{
    for (int isa = 0; isa < RT_GEMM_ISA_COUNT; isa++) {
        if (rt_gemm_force_isa((RtGemmIsa)isa) < 0) continue;
        for (int causal = 0; causal < 2; causal++) {
            /* several query and key blocks, dv != dk, strided rows */
            attention_case((AttentionParams){.b = 2, .lq = 300, .lk = 487, .heads = 2, .dk = 7, .dv = 13, .ldq = 17,
                                             .ldk = 15, .ldv = 29, .ldy = 27, .scale = 0.4f, .causal = causal});
            /* one key block shorter than a 6-key panel; a deep head */
            attention_case((AttentionParams){.b = 1, .lq = 33, .lk = 5, .heads = 1, .dk = 400, .dv = 70, .ldq = 400,
                                             .ldk = 400, .ldv = 70, .ldy = 70, .scale = 0.05f, .causal = causal});
        }
    }
    rt_gemm_force_isa(RT_GEMM_AUTO);
}

static void test_pack_sizes(void)
{
    /* conv: per group ceil(og/6)*6 rows; linear: ceil(n/16)*16 columns */
    CHECK(rt_packed_weight_size(RT_WPACK_CONV_F32, 1, 320, 2880) == 4 * 324 * 2880);
    CHECK(rt_packed_weight_size(RT_WPACK_CONV_BF16, 3, 9, 8) == 2 * 3 * 6 * 8);
    CHECK(rt_packed_weight_size(RT_WPACK_LINEAR_F16, 1, 29, 19) == 2 * 32 * 19);
    /* the depth blocks: at most RT_GEMM_KC_MAX, equal but the last, multiples of 16 */
    CHECK(rt_gemm_kc(2880) == 368 && rt_gemm_kc(320) == 320 && rt_gemm_kc(5) == 5 && rt_gemm_kc(11520) == 384);
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
    RUN(test_widen);
    return test_finish();
}
