/* test_interp_ops.c — the reference interpreter, op by op.
 *
 * Each op is checked against a small case computed by hand and, where an
 * independent formulation exists, against it on fresh random inputs:
 * conv as im2col + matrix product, grouped conv as separate convs, group
 * norm as layer norm over regrouped data, attention as the explicit
 * matmul/softmax chain, linear as matmul + bias. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "test.h"

/* Parses `text`, verifies it and runs it on `in`; returns output 0. */
static Tensor *run(const char *text, Tensor *const *in)
{
    SdcErr err = {{0}};
    Graph *g = ir_parse(text, "case.ir", &err);
    if (!g || ir_verify(g, &err) < 0) {
        fprintf(stderr, "bad test graph: %s\n", err.msg);
        test_failures++;
        graph_free(g);
        return NULL;
    }
    Tensor *out[4] = {0};
    if (interp_run(g, in, out, 0, &err) < 0) {
        fprintf(stderr, "interp: %s\n", err.msg);
        test_failures++;
        graph_free(g);
        return NULL;
    }
    for (int o = 1; o < g->nout; o++) tensor_free(out[o]);
    graph_free(g);
    return out[0];
}

static Tensor *tensor_of(int ndim, const int64_t *shape, const float *vals)
{
    Tensor *t = tensor_new(DT_F32, ndim, shape);
    memcpy(t->f, vals, sizeof(float) * (size_t)tensor_numel(t));
    return t;
}

static Tensor *random_tensor(int ndim, const int64_t *shape)
{
    Tensor *t = tensor_new(DT_F32, ndim, shape);
    test_fill_randn(t->f, (size_t)tensor_numel(t), 1.0f);
    return t;
}

static void check_values(const Tensor *t, const float *want, int n, double tol)
{
    if (!t) return;
    CHECK(tensor_numel(t) == n);
    for (int i = 0; i < n; i++)
        CHECK_MSG(fabs(t->f[i] - want[i]) <= tol, "element %d: %.9g, want %.9g", i, t->f[i], want[i]);
}

static void test_conv2d_by_hand(void)
{
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    Tensor *in = tensor_of(4, (int64_t[]){1, 1, 3, 3}, x);
    Tensor *y = run("graph @g {\n %x = input : f32[1,1,3,3]\n %w = const dense(1.0) : f32[1,1,2,2]\n"
                    " %b = const dense(0.5) : f32[1]\n %y = conv2d(%x, %w, %b) : f32[1,1,2,2]\n return %y\n}",
                    &in);
    check_values(y, (float[]){12.5f, 16.5f, 24.5f, 28.5f}, 4, 0);
    tensor_free(y);
    tensor_free(in);
    /* stride 2 with diffusers' asymmetric (0,0,1,1) padding on 4x4 values
     * 4r+c: windows start at rows/cols 0 and 2, the second one half padding */
    float x4[16];
    for (int i = 0; i < 16; i++) x4[i] = (float)i;
    in = tensor_of(4, (int64_t[]){1, 1, 4, 4}, x4);
    y = run("graph @g {\n %x = input : f32[1,1,4,4]\n %w = const dense(1.0) : f32[1,1,3,3]\n"
            " %y = conv2d(%x, %w) {stride=[2,2], pad=[0,0,1,1]} : f32[1,1,2,2]\n return %y\n}",
            &in);
    check_values(y, (float[]){45, 39, 66, 50}, 4, 0);
    tensor_free(y);
    tensor_free(in);
}

/* conv2d == im2col + matrix product, computed here independently. */
static void test_conv2d_vs_im2col(void)
{
    const int n = 2, c = 3, h = 7, w = 6, oc = 5, k = 3, s = 2, pt = 1, pl = 0, pb = 2, pr = 1;
    const int oh = (h + pt + pb - k) / s + 1, ow = (w + pl + pr - k) / s + 1;
    Tensor *in[3] = {random_tensor(4, (int64_t[]){n, c, h, w}), random_tensor(4, (int64_t[]){oc, c, k, k}),
                     random_tensor(1, (int64_t[]){oc})};
    char text[512];
    snprintf(text, sizeof text,
             "graph @g {\n %%x = input : f32[%d,%d,%d,%d]\n %%w = input : f32[%d,%d,%d,%d]\n %%b = input : f32[%d]\n"
             " %%y = conv2d(%%x, %%w, %%b) {stride=[%d,%d], pad=[%d,%d,%d,%d]} : f32[%d,%d,%d,%d]\n return %%y\n}",
             n, c, h, w, oc, c, k, k, oc, s, s, pt, pl, pb, pr, n, oc, oh, ow);
    Tensor *y = run(text, in);
    int rows = c * k * k, cols = oh * ow;
    float *col = calloc((size_t)rows * cols, sizeof(float)), *ref = calloc((size_t)n * oc * cols, sizeof(float));
    for (int b = 0; b < n; b++) {
        for (int ci = 0; ci < c; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < ow; ox++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            float v = iy >= 0 && iy < h && ix >= 0 && ix < w ? in[0]->f[((b * c + ci) * h + iy) * w + ix] : 0;
                            col[((ci * k + ky) * k + kx) * cols + oy * ow + ox] = v;
                        }
        for (int o = 0; o < oc; o++)
            for (int j = 0; j < cols; j++) {
                double acc = in[2]->f[o];
                for (int r = 0; r < rows; r++) acc += (double)in[1]->f[o * rows + r] * col[r * cols + j];
                ref[(b * oc + o) * cols + j] = (float)acc;
            }
    }
    if (y) CHECK_REL(y->f, ref, (size_t)n * oc * cols, 1e-6);
    free(col), free(ref);
    tensor_free(y);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}

/* A grouped conv equals one conv per group on the sliced channels. */
static void test_grouped_conv_vs_slices(void)
{
    Tensor *in[2] = {random_tensor(4, (int64_t[]){1, 4, 5, 5}), random_tensor(4, (int64_t[]){6, 2, 3, 3})};
    Tensor *y = run("graph @g {\n %x = input : f32[1,4,5,5]\n %w = input : f32[6,2,3,3]\n"
                    " %y = conv2d(%x, %w) {pad=[1,1,1,1], groups=2} : f32[1,6,5,5]\n return %y\n}",
                    in);
    Tensor *z = run("graph @g {\n %x = input : f32[1,4,5,5]\n %w = input : f32[6,2,3,3]\n"
                    " %x0 = slice(%x) {axis=1, start=0, end=2} : f32[1,2,5,5]\n"
                    " %x1 = slice(%x) {axis=1, start=2, end=4} : f32[1,2,5,5]\n"
                    " %w0 = slice(%w) {axis=0, start=0, end=3} : f32[3,2,3,3]\n"
                    " %w1 = slice(%w) {axis=0, start=3, end=6} : f32[3,2,3,3]\n"
                    " %y0 = conv2d(%x0, %w0) {pad=[1,1,1,1]} : f32[1,3,5,5]\n"
                    " %y1 = conv2d(%x1, %w1) {pad=[1,1,1,1]} : f32[1,3,5,5]\n"
                    " %y = concat(%y0, %y1) {axis=1} : f32[1,6,5,5]\n return %y\n}",
                    in);
    if (y && z) CHECK_REL(y->f, z->f, 150, 1e-7);
    tensor_free(y), tensor_free(z), tensor_free(in[0]), tensor_free(in[1]);
}

static void test_matmul_and_linear(void)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    Tensor *in[2] = {tensor_of(2, (int64_t[]){2, 3}, a), tensor_of(2, (int64_t[]){3, 2}, b)};
    Tensor *y = run("graph @g {\n %a = input : f32[2,3]\n %b = input : f32[3,2]\n %y = matmul(%a, %b) : f32[2,2]\n"
                    " return %y\n}", in);
    check_values(y, (float[]){58, 64, 139, 154}, 4, 0);
    tensor_free(y);
    /* a^T b^T: [3,2] x [2,3] */
    y = run("graph @g {\n %a = input : f32[2,3]\n %b = input : f32[3,2]\n"
            " %y = matmul(%a, %b) {transpose_a=1, transpose_b=1} : f32[3,3]\n return %y\n}", in);
    check_values(y, (float[]){1 * 7 + 4 * 8, 1 * 9 + 4 * 10, 1 * 11 + 4 * 12, 2 * 7 + 5 * 8, 2 * 9 + 5 * 10,
                              2 * 11 + 5 * 12, 3 * 7 + 6 * 8, 3 * 9 + 6 * 10, 3 * 11 + 6 * 12},
                 9, 0);
    tensor_free(y), tensor_free(in[0]), tensor_free(in[1]);
    /* linear(x, w, b) == matmul(x, w^T) + b, batched */
    Tensor *r[3] = {random_tensor(3, (int64_t[]){2, 5, 7}), random_tensor(2, (int64_t[]){4, 7}),
                    random_tensor(1, (int64_t[]){4})};
    y = run("graph @g {\n %x = input : f32[2,5,7]\n %w = input : f32[4,7]\n %b = input : f32[4]\n"
            " %y = linear(%x, %w, %b) : f32[2,5,4]\n return %y\n}", r);
    Tensor *z = run("graph @g {\n %x = input : f32[2,5,7]\n %w = input : f32[4,7]\n %b = input : f32[4]\n"
                    " %m = matmul(%x, %w) {transpose_b=1} : f32[2,5,4]\n %y = add(%m, %b) : f32[2,5,4]\n return %y\n}", r);
    if (y && z) CHECK_REL(y->f, z->f, 40, 1e-7);
    tensor_free(y), tensor_free(z);
    for (int i = 0; i < 3; i++) tensor_free(r[i]);
}

static void test_elementwise(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, v[3] = {10, 20, 30};
    Tensor *in[2] = {tensor_of(2, (int64_t[]){2, 3}, x), tensor_of(1, (int64_t[]){3}, v)};
    Tensor *y = run("graph @g {\n %x = input : f32[2,3]\n %v = input : f32[3]\n %y = sub(%x, %v) : f32[2,3]\n"
                    " return %y\n}", in);
    check_values(y, (float[]){-9, -18, -27, -6, -15, -24}, 6, 0);
    tensor_free(y);
    y = run("graph @g {\n %x = input : f32[2,3]\n %v = input : f32[3]\n %c = reshape(%x) {shape=[2,3,1]} : f32[2,3,1]\n"
            " %y = div(%v, %c) : f32[2,3,3]\n return %y\n}", in);
    check_values(y, (float[]){10, 20, 30, 5, 10, 15, 10 / 3.f, 20 / 3.f, 10, 2.5f, 5, 7.5f, 2, 4, 6, 10 / 6.f,
                              20 / 6.f, 5},
                 18, 1e-6);
    tensor_free(y), tensor_free(in[0]), tensor_free(in[1]);
    float u[4] = {1, -1, 0, 2.5f};
    Tensor *one = tensor_of(1, (int64_t[]){4}, u);
    const char *fmt = "graph @g {\n %%x = input : f32[4]\n %%y = %s(%%x)%s : f32[4]\n return %%y\n}";
    struct {
        const char *op, *attrs;
        float want[4];
    } cases[] = {
        {"silu", "", {0.7310585786f, -0.2689414214f, 0, 2.3103545499f}},
        {"gelu", "", {0.8413447461f, -0.1586552539f, 0, 2.4844758f}},
        {"quick_gelu", "", {0.8457957659f, -0.1542042341f, 0, 2.4650138350f}},
        {"scale", " {value=-2.0}", {-2, 2, 0, -5}},
        {"clamp", " {min=-0.5, max=2.0}", {1, -0.5f, 0, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, fmt, cases[i].op, cases[i].attrs);
        y = run(text, &one);
        check_values(y, cases[i].want, 4, 2e-6);
        tensor_free(y);
    }
    tensor_free(one);
}

static void test_norms_and_softmax(void)
{
    float x[4] = {1, 2, 3, 4};
    Tensor *in = tensor_of(4, (int64_t[]){1, 4, 1, 1}, x);
    /* one group: mean 2.5, var 1.25; gamma 2, beta 1 */
    Tensor *y = run("graph @g {\n %x = input : f32[1,4,1,1]\n %g = const dense(2.0) : f32[4]\n %b = const dense(1.0) : f32[4]\n"
                    " %y = group_norm(%x, %g, %b) {groups=1, eps=0.0} : f32[1,4,1,1]\n return %y\n}", &in);
    float s = 1 / sqrtf(1.25f);
    check_values(y, (float[]){1 - 3 * s, 1 - s, 1 + s, 1 + 3 * s}, 4, 1e-6);
    tensor_free(y), tensor_free(in);
    /* group_norm with unit affine == layer_norm over [N, G, C/G*HW] */
    Tensor *r = random_tensor(4, (int64_t[]){2, 6, 3, 5});
    y = run("graph @g {\n %x = input : f32[2,6,3,5]\n %g = const dense(1.0) : f32[6]\n %b = const dense(0.0) : f32[6]\n"
            " %y = group_norm(%x, %g, %b) {groups=3, eps=1e-05} : f32[2,6,3,5]\n return %y\n}", &r);
    Tensor *z = run("graph @g {\n %x = input : f32[2,6,3,5]\n %g = const dense(1.0) : f32[30]\n %b = const dense(0.0) : f32[30]\n"
                    " %r = reshape(%x) {shape=[2,3,30]} : f32[2,3,30]\n"
                    " %y = layer_norm(%r, %g, %b) {eps=1e-05} : f32[2,3,30]\n return %y\n}", &r);
    if (y && z) CHECK_REL(y->f, z->f, 180, 1e-6);
    tensor_free(y), tensor_free(z), tensor_free(r);
    float l[3] = {0, logf(2), logf(3)};
    in = tensor_of(2, (int64_t[]){1, 3}, l);
    y = run("graph @g {\n %x = input : f32[1,3]\n %y = softmax(%x) : f32[1,3]\n return %y\n}", &in);
    check_values(y, (float[]){1 / 6.f, 2 / 6.f, 3 / 6.f}, 3, 1e-7);
    tensor_free(y), tensor_free(in);
}

/* attention == the explicit chain with heads split by reshape/permute; the
 * causal mask as an added constant of -inf above the diagonal. */
static void test_attention_vs_chain(void)
{
    const int b = 2, l = 5, heads = 2, d = 3, c = heads * d;
    Tensor *in[3] = {random_tensor(3, (int64_t[]){b, l, c}), random_tensor(3, (int64_t[]){b, l, c}),
                     random_tensor(3, (int64_t[]){b, l, c})};
    for (int causal = 0; causal < 2; causal++) {
        char text[4096], mask[1024] = "";
        snprintf(text, sizeof text,
                 "graph @g {\n %%q = input : f32[2,5,6]\n %%k = input : f32[2,5,6]\n %%v = input : f32[2,5,6]\n"
                 " %%y = attention(%%q, %%k, %%v) {heads=2, scale=0.57735, causal=%d} : f32[2,5,6]\n return %%y\n}",
                 causal);
        Tensor *y = run(text, in);
        size_t at = 0;
        for (int i = 0; i < l; i++)
            for (int j = 0; j < l; j++)
                at += (size_t)snprintf(mask + at, sizeof mask - at, "%s%s", i || j ? ", " : "",
                                       causal && j > i ? "-inf" : "0.0");
        snprintf(text, sizeof text,
                 "graph @g {\n %%q = input : f32[2,5,6]\n %%k = input : f32[2,5,6]\n %%v = input : f32[2,5,6]\n"
                 " %%mask = const dense(%s) : f32[5,5]\n"
                 " %%q4 = reshape(%%q) {shape=[2,5,2,3]} : f32[2,5,2,3]\n %%qh = permute(%%q4) {perm=[0,2,1,3]} : f32[2,2,5,3]\n"
                 " %%k4 = reshape(%%k) {shape=[2,5,2,3]} : f32[2,5,2,3]\n %%kh = permute(%%k4) {perm=[0,2,1,3]} : f32[2,2,5,3]\n"
                 " %%v4 = reshape(%%v) {shape=[2,5,2,3]} : f32[2,5,2,3]\n %%vh = permute(%%v4) {perm=[0,2,1,3]} : f32[2,2,5,3]\n"
                 " %%s = matmul(%%qh, %%kh) {transpose_b=1} : f32[2,2,5,5]\n %%ss = scale(%%s) {value=0.57735} : f32[2,2,5,5]\n"
                 " %%sm = add(%%ss, %%mask) : f32[2,2,5,5]\n %%p = softmax(%%sm) : f32[2,2,5,5]\n"
                 " %%o = matmul(%%p, %%vh) : f32[2,2,5,3]\n %%op = permute(%%o) {perm=[0,2,1,3]} : f32[2,5,2,3]\n"
                 " %%y = reshape(%%op) {shape=[2,5,6]} : f32[2,5,6]\n return %%y\n}",
                 mask);
        Tensor *z = run(text, in);
        if (y && z) CHECK_REL(y->f, z->f, (size_t)b * l * c, 1e-6);
        /* causal: the first query sees only the first key, so its output is v[0] */
        if (y && causal)
            for (int ch = 0; ch < c; ch++) CHECK(fabsf(y->f[ch] - in[2]->f[ch]) < 1e-6f);
        tensor_free(y), tensor_free(z);
    }
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}

static void test_timestep_embedding(void)
{
    float t[3] = {0, 1, 999};
    Tensor *in = tensor_of(1, (int64_t[]){3}, t);
    Tensor *y = run("graph @g {\n %t = input : f32[3]\n"
                    " %y = timestep_embedding(%t) {dim=8, flip_sin_to_cos=1, shift=1.0} : f32[3,8]\n return %y\n}", &in);
    if (y) {
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 4; i++) {
                double freq = exp(-log(10000.0) * i / (4 - 1.0)), arg = t[b] * freq;
                CHECK_MSG(fabs(y->f[b * 8 + i] - cos(arg)) < 2e-4, "cos b=%d i=%d", b, i);
                CHECK_MSG(fabs(y->f[b * 8 + 4 + i] - sin(arg)) < 2e-4, "sin b=%d i=%d", b, i);
            }
        CHECK(y->f[0] == 1.0f && y->f[4] == 0.0f);
    }
    tensor_free(y), tensor_free(in);
}

static void test_data_movement(void)
{
    float x[6] = {0, 1, 2, 3, 4, 5};
    Tensor *in = tensor_of(4, (int64_t[]){1, 1, 2, 3}, x);
    Tensor *y = run("graph @g {\n %x = input : f32[1,1,2,3]\n %y = upsample_nearest2d(%x) {size=[4,6]} : f32[1,1,4,6]\n"
                    " return %y\n}", &in);
    check_values(y, (float[]){0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5}, 24, 0);
    tensor_free(y);
    /* 3 -> 5 columns: PyTorch's floor(dst * 3/5) gives sources 0,0,1,1,2 */
    y = run("graph @g {\n %x = input : f32[1,1,2,3]\n %y = upsample_nearest2d(%x) {size=[2,5]} : f32[1,1,2,5]\n"
            " return %y\n}", &in);
    check_values(y, (float[]){0, 0, 1, 1, 2, 3, 3, 4, 4, 5}, 10, 0);
    tensor_free(y);
    y = run("graph @g {\n %x = input : f32[1,1,2,3]\n %p = permute(%x) {perm=[3,1,0,2]} : f32[3,1,1,2]\n return %p\n}", &in);
    check_values(y, (float[]){0, 3, 1, 4, 2, 5}, 6, 0);
    tensor_free(y);
    y = run("graph @g {\n %x = input : f32[1,1,2,3]\n %a = slice(%x) {axis=3, start=1, end=3} : f32[1,1,2,2]\n"
            " %y = concat(%a, %x, %a) {axis=3} : f32[1,1,2,7]\n return %y\n}", &in);
    check_values(y, (float[]){1, 2, 0, 1, 2, 1, 2, 4, 5, 3, 4, 5, 4, 5}, 14, 0);
    tensor_free(y), tensor_free(in);
}

static void test_embedding_and_cast(void)
{
    Tensor *ids = tensor_new(DT_I64, 2, (int64_t[]){1, 3});
    ids->i[0] = 2, ids->i[1] = 0, ids->i[2] = 2;
    Tensor *y = run("graph @g {\n %i = input : i64[1,3]\n %t = const dense(0.0, 0.5, 1.0, 1.5, 2.0, 2.5) : f32[3,2]\n"
                    " %y = embedding(%i, %t) : f32[1,3,2]\n return %y\n}", &ids);
    check_values(y, (float[]){2, 2.5f, 0, 0.5f, 2, 2.5f}, 6, 0);
    tensor_free(y);
    ids->i[1] = 3; /* out of range: a clear error, not a read past the table */
    SdcErr err = {{0}};
    Graph *g = ir_parse("graph @g {\n %i = input : i64[1,3]\n %t = const dense(1.0) : f32[3,2]\n"
                        " %y = embedding(%i, %t) : f32[1,3,2]\n return %y\n}", "e.ir", &err);
    Tensor *out[1] = {0};
    CHECK(g && interp_run(g, &ids, out, 0, &err) < 0);
    CHECK_MSG(strstr(err.msg, "id 3 at position 1 is outside the table of 3 rows") != NULL, "%s", err.msg);
    graph_free(g), tensor_free(ids);
    /* f16 rounding: 1 + 2^-11 is halfway between two halves and rounds to even (1.0) */
    float v[3] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, -2.75f};
    Tensor *in = tensor_of(1, (int64_t[]){3}, v);
    y = run("graph @g {\n %x = input : f32[3]\n %h = cast(%x) {to=\"f16\"} : f16[3]\n %i = cast(%h) {to=\"i32\"} : i32[3]\n"
            " %y = cast(%h) {to=\"f32\"} : f32[3]\n return %y, %i\n}", &in);
    check_values(y, (float[]){1.0f, 1.0f + 4.0f / 2048, -2.75f}, 3, 0);
    tensor_free(y), tensor_free(in);
}

int main(void)
{
    RUN(test_conv2d_by_hand);
    RUN(test_conv2d_vs_im2col);
    RUN(test_grouped_conv_vs_slices);
    RUN(test_matmul_and_linear);
    RUN(test_elementwise);
    RUN(test_norms_and_softmax);
    RUN(test_attention_vs_chain);
    RUN(test_timestep_embedding);
    RUN(test_data_movement);
    RUN(test_embedding_and_cast);
    return test_finish();
}
