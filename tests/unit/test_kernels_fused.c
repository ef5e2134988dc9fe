/* test_kernels_fused.c — the fused runtime kernels (kernels_fused.c)
 * against their reference twins (ref_fused_*), on fresh random inputs.
 *
 * Every case runs the runtime kernel with 1, 2 and 3 threads and requires
 * bit-identical outputs, then a relative error below 1e-5 against the
 * reference.  The cases cover each prologue (none, GroupNorm, GroupNorm +
 * SiLU, LayerNorm) and each epilogue term (bias, per-(image, channel) add
 * with one row per image or one for all, residual, output scale, GEGLU) on
 * ragged sizes, and shapes large enough that the conv cuts positions into
 * tiles, output channels into blocks and input channels into chunks, and
 * the linear cuts rows into tiles and GEGLU columns into strips. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kernels.h"
#include "ref_kernels.h"
#include "test.h"

#define TOL 1e-5

static float *randn_buf(size_t n, float scale)
{
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    test_fill_randn(x, n, scale);
    return x;
}

/* Runs `call` with 3, 2 and 1 threads into out (n floats); the results
 * must be the same bits.  The 1-thread result is left in out. */
#define RUN_THREADS(out, n, call)                                                                 \
    do {                                                                                          \
        float *other_ = xmalloc(((n) ? (n) : 1) * sizeof(float));                                 \
        for (int th_ = 3; th_ >= 1; th_--) {                                                      \
            rt_set_threads(th_);                                                                  \
            call;                                                                                 \
            if (th_ < 3)                                                                          \
                CHECK_MSG(memcmp(out, other_, (n) * sizeof(float)) == 0, "threads %d and %d differ", th_, \
                          th_ + 1);                                                               \
            memcpy(other_, out, (n) * sizeof(float));                                             \
        }                                                                                         \
        free(other_);                                                                             \
        rt_set_threads(0);                                                                        \
    } while (0)

/* ---- fused conv2d ---------------------------------------------------------------------- */

enum { F_BIAS = 1, F_CHAN = 2, F_CHAN1 = 4, F_RES = 8 };

static void conv_case(FusedConv2dParams p, int flags)
{
    Conv2dParams *c = &p.conv;
    CHECK(conv2d_params_finish(c) == 0);
    size_t nx = (size_t)c->n * c->c * c->h * c->w, nw = (size_t)c->oc * c->c * c->kh * c->kw;
    size_t ny = (size_t)c->n * c->oc * c->oh * c->ow;
    /* an offset mean, as activations have, so the normalisation matters */
    float *x = randn_buf(nx, 2.0f);
    for (size_t i = 0; i < nx; i++) x[i] += 0.5f;
    float *gamma = randn_buf((size_t)c->c, 1.0f), *beta = randn_buf((size_t)c->c, 1.0f);
    float *w = randn_buf(nw, 0.2f), *b = flags & F_BIAS ? randn_buf((size_t)c->oc, 1.0f) : NULL;
    p.chan_add_n = flags & F_CHAN1 ? 1 : c->n;
    float *chan = flags & (F_CHAN | F_CHAN1) ? randn_buf((size_t)p.chan_add_n * c->oc, 1.0f) : NULL;
    float *res = flags & F_RES ? randn_buf(ny, 1.0f) : NULL;
    const float *g = p.norm_groups ? gamma : NULL, *bt = p.norm_groups ? beta : NULL;
    float *y = xmalloc(ny * sizeof(float)), *ref = xmalloc(ny * sizeof(float));
    RUN_THREADS(y, ny, rt_fused_conv2d(&p, x, g, bt, w, b, chan, res, y));
    ref_fused_conv2d(&p, x, g, bt, w, b, chan, res, ref);
    double rel = test_rel_err(y, ref, ny);
    CHECK_MSG(rel < TOL, "fused conv c=%d oc=%d %dx%d k=%dx%d s=%d pad=%d,%d,%d,%d norm=%d silu=%d flags=%d: rel %.3g",
              c->c, c->oc, c->h, c->w, c->kh, c->kw, c->sh, c->pt, c->pl, c->pb, c->pr, p.norm_groups, p.silu, flags,
              rel);
    free(x), free(gamma), free(beta), free(w), free(b), free(chan), free(res), free(y), free(ref);
}

static Conv2dParams geometry(int n, int c, int h, int w, int oc, int k, int s, int pad)
{
    return (Conv2dParams){.n = n, .c = c, .h = h, .w = w, .oc = oc, .kh = k, .kw = k, .sh = s, .sw = s, .pt = pad,
                          .pl = pad, .pb = pad, .pr = pad, .dh = 1, .dw = 1, .groups = 1};
}

static void test_conv_prologues(void)
{
    /* GroupNorm + SiLU -> 3x3 conv (a ResNet block), ragged */
    conv_case((FusedConv2dParams){.conv = geometry(2, 6, 9, 11, 7, 3, 1, 1), .norm_groups = 3, .eps = 1e-5f, .silu = 1,
                                  .out_scale = 1}, F_BIAS);
    /* GroupNorm -> 1x1 conv (proj_in): the direct path with a prologue */
    conv_case((FusedConv2dParams){.conv = geometry(2, 8, 5, 7, 5, 1, 1, 0), .norm_groups = 4, .eps = 1e-6f,
                                  .out_scale = 1}, F_BIAS);
    /* one channel per group, no bias */
    conv_case((FusedConv2dParams){.conv = geometry(1, 5, 6, 6, 3, 3, 1, 1), .norm_groups = 5, .eps = 1e-5f, .silu = 1,
                                  .out_scale = 1}, 0);
    /* stride 2 with diffusers' asymmetric downsample padding */
    FusedConv2dParams d = {.conv = geometry(2, 4, 9, 11, 6, 3, 2, 0), .norm_groups = 2, .eps = 1e-5f, .silu = 1,
                           .out_scale = 1};
    d.conv.pb = d.conv.pr = 1;
    conv_case(d, F_BIAS | F_RES);
    /* 1x1 padded (not direct) and a 5x5 kernel wider than a tile row */
    conv_case((FusedConv2dParams){.conv = geometry(1, 6, 4, 3, 4, 1, 1, 1), .norm_groups = 2, .eps = 1e-5f,
                                  .out_scale = 1}, F_BIAS);
    conv_case((FusedConv2dParams){.conv = geometry(1, 3, 7, 5, 4, 5, 1, 2), .norm_groups = 1, .eps = 1e-5f, .silu = 1,
                                  .out_scale = 1}, F_BIAS);
}

static void test_conv_epilogues(void)
{
    /* no prologue: time embedding add, residual, scale; 3x3 and plain 1x1 */
    conv_case((FusedConv2dParams){.conv = geometry(2, 5, 7, 9, 6, 3, 1, 1), .out_scale = 1}, F_BIAS | F_CHAN);
    conv_case((FusedConv2dParams){.conv = geometry(3, 5, 7, 9, 6, 3, 1, 1), .out_scale = 1}, F_BIAS | F_CHAN1);
    conv_case((FusedConv2dParams){.conv = geometry(2, 7, 6, 5, 9, 1, 1, 0), .out_scale = 0.5f}, F_BIAS | F_RES);
    conv_case((FusedConv2dParams){.conv = geometry(2, 7, 6, 5, 9, 1, 1, 0), .out_scale = 1}, F_RES);
    /* everything at once */
    conv_case((FusedConv2dParams){.conv = geometry(2, 6, 8, 7, 5, 3, 1, 1), .norm_groups = 3, .eps = 1e-5f, .silu = 1,
                                  .out_scale = 0.70710678f}, F_BIAS | F_CHAN | F_RES);
}

static void test_conv_tiling(void)
{
    /* 1600 positions (two position tiles, one mid-row), 150 output channels
     * (blocks of 80 when tasks are few), 70 input channels (chunks of 28 for
     * a 3x3 im2col tile) */
    conv_case((FusedConv2dParams){.conv = geometry(1, 70, 40, 40, 150, 3, 1, 1), .norm_groups = 7, .eps = 1e-5f,
                                  .silu = 1, .out_scale = 1}, F_BIAS | F_CHAN | F_RES);
    /* 1x1 with a prologue over more channels than one slab holds (2^19 floats: 2048 x 256 positions) */
    conv_case((FusedConv2dParams){.conv = geometry(1, 2100, 31, 33, 20, 1, 1, 0), .norm_groups = 30, .eps = 1e-6f,
                                  .out_scale = 1}, F_BIAS | F_RES);
}

/* ---- fused linear ------------------------------------------------------------------------ */

static void linear_case(FusedLinearParams p, int flags)
{
    int ny = p.geglu ? p.n / 2 : p.n;
    size_t nx = (size_t)p.m * p.k, nw = (size_t)p.n * p.k, nout = (size_t)p.m * ny;
    float *x = randn_buf(nx, 2.0f);
    for (size_t i = 0; i < nx; i++) x[i] -= 0.3f;
    float *gamma = randn_buf((size_t)p.k, 1.0f), *beta = randn_buf((size_t)p.k, 1.0f);
    float *w = randn_buf(nw, 0.2f), *b = flags & F_BIAS ? randn_buf((size_t)p.n, 1.0f) : NULL;
    float *res = flags & F_RES ? randn_buf(nout, 1.0f) : NULL;
    const float *g = p.norm ? gamma : NULL, *bt = p.norm ? beta : NULL;
    float *y = xmalloc((nout ? nout : 1) * sizeof(float)), *ref = xmalloc((nout ? nout : 1) * sizeof(float));
    RUN_THREADS(y, nout, rt_fused_linear(&p, x, g, bt, w, b, res, y));
    ref_fused_linear(&p, x, g, bt, w, b, res, ref);
    double rel = test_rel_err(y, ref, nout);
    CHECK_MSG(rel < TOL, "fused linear m=%d k=%d n=%d norm=%d geglu=%d flags=%d: rel %.3g", p.m, p.k, p.n, p.norm,
              p.geglu, flags, rel);
    free(x), free(gamma), free(beta), free(w), free(b), free(res), free(y), free(ref);
}

static void test_linear_ragged(void)
{
    linear_case((FusedLinearParams){.m = 37, .k = 19, .n = 23, .norm = 1, .eps = 1e-5f, .out_scale = 1}, F_BIAS);
    linear_case((FusedLinearParams){.m = 37, .k = 19, .n = 23, .norm = 1, .eps = 1e-5f, .out_scale = 1}, 0);
    linear_case((FusedLinearParams){.m = 29, .k = 13, .n = 34, .geglu = 1, .out_scale = 1}, F_BIAS);
    linear_case((FusedLinearParams){.m = 29, .k = 13, .n = 34, .norm = 1, .eps = 1e-5f, .geglu = 1, .out_scale = 1},
                F_BIAS | F_RES);
    linear_case((FusedLinearParams){.m = 41, .k = 17, .n = 15, .out_scale = 0.125f}, F_BIAS | F_RES);
    linear_case((FusedLinearParams){.m = 1, .k = 5, .n = 3, .norm = 1, .eps = 1e-5f, .out_scale = 1}, F_RES);
}

static void test_linear_tiling(void)
{
    /* 600 rows: three row tiles; GEGLU 2 x 1100 columns: strips of <= 512 */
    linear_case((FusedLinearParams){.m = 600, .k = 40, .n = 2200, .norm = 1, .eps = 1e-5f, .geglu = 1, .out_scale = 1},
                F_BIAS);
    /* few rows: the columns are cut into strips, each normalising its panel again */
    linear_case((FusedLinearParams){.m = 77, .k = 96, .n = 3 * 96, .norm = 1, .eps = 1e-5f, .out_scale = 1},
                F_BIAS | F_RES);
}

int main(void)
{
    RUN(test_conv_prologues);
    RUN(test_conv_epilogues);
    RUN(test_conv_tiling);
    RUN(test_linear_ragged);
    RUN(test_linear_tiling);
    return test_finish();
}
