/* ref_kernels.c — reference kernels (see ref_kernels.h).
 *
 * Written to be read: the loops follow the formula in kernel_params.h
 * directly, sums are accumulated in double, nothing is tiled or threaded. */
#include "ref_kernels.h"

#include <math.h>
#include <stdlib.h>

#include "err.h"

void ref_conv2d(const Conv2dParams *p, const float *x, const float *w, const float *b, float *y)
{
    int cg = p->c / p->groups, og = p->oc / p->groups;
    for (int n = 0; n < p->n; n++)
        for (int oc = 0; oc < p->oc; oc++) {
            int g = oc / og;
            for (int oy = 0; oy < p->oh; oy++)
                for (int ox = 0; ox < p->ow; ox++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int ic = 0; ic < cg; ic++)
                        for (int ky = 0; ky < p->kh; ky++) {
                            int iy = oy * p->sh - p->pt + ky * p->dh;
                            if (iy < 0 || iy >= p->h) continue;
                            for (int kx = 0; kx < p->kw; kx++) {
                                int ix = ox * p->sw - p->pl + kx * p->dw;
                                if (ix < 0 || ix >= p->w) continue;
                                double xv = x[(((int64_t)n * p->c + g * cg + ic) * p->h + iy) * p->w + ix];
                                double wv = w[(((int64_t)oc * cg + ic) * p->kh + ky) * p->kw + kx];
                                acc += xv * wv;
                            }
                        }
                    y[(((int64_t)n * p->oc + oc) * p->oh + oy) * p->ow + ox] = (float)acc;
                }
        }
}

void ref_matmul(const MatmulParams *p, const float *a, const float *b, const float *bias, float *c)
{
    for (int bt = 0; bt < p->batch; bt++) {
        const float *A = a + bt * p->stride_a, *B = b + bt * p->stride_b;
        float *C = c + bt * p->stride_c;
        for (int i = 0; i < p->m; i++)
            for (int j = 0; j < p->n; j++) {
                double acc = bias ? bias[j] : 0.0;
                for (int l = 0; l < p->k; l++) {
                    double av = p->trans_a ? A[l * p->lda + i] : A[i * p->lda + l];
                    double bv = p->trans_b ? B[j * p->ldb + l] : B[l * p->ldb + j];
                    acc += av * bv;
                }
                C[i * p->ldc + j] = (float)acc;
            }
    }
}

void ref_group_norm(const GroupNormParams *p, const float *x, const float *gamma, const float *beta, float *y)
{
    int cg = p->c / p->groups;
    int64_t count = (int64_t)cg * p->hw;
    for (int n = 0; n < p->n; n++)
        for (int g = 0; g < p->groups; g++) {
            const float *xg = x + ((int64_t)n * p->c + (int64_t)g * cg) * p->hw;
            float *yg = y + ((int64_t)n * p->c + (int64_t)g * cg) * p->hw;
            double sum = 0, sq = 0;
            for (int64_t i = 0; i < count; i++) sum += xg[i];
            double mean = sum / count;
            for (int64_t i = 0; i < count; i++) sq += (xg[i] - mean) * (xg[i] - mean);
            double inv = 1.0 / sqrt(sq / count + p->eps);
            for (int ci = 0; ci < cg; ci++) {
                int ch = g * cg + ci;
                for (int i = 0; i < p->hw; i++) {
                    int64_t at = (int64_t)ci * p->hw + i;
                    double v = (xg[at] - mean) * inv * gamma[ch] + beta[ch];
                    if (p->silu) v = v / (1.0 + exp(-v));
                    yg[at] = (float)v;
                }
            }
        }
}

void ref_layer_norm(const LayerNormParams *p, const float *x, const float *gamma, const float *beta, float *y)
{
    for (int r = 0; r < p->rows; r++) {
        const float *xr = x + (int64_t)r * p->cols;
        float *yr = y + (int64_t)r * p->cols;
        double sum = 0, sq = 0;
        for (int i = 0; i < p->cols; i++) sum += xr[i];
        double mean = sum / p->cols;
        for (int i = 0; i < p->cols; i++) sq += (xr[i] - mean) * (xr[i] - mean);
        double inv = 1.0 / sqrt(sq / p->cols + p->eps);
        for (int i = 0; i < p->cols; i++) yr[i] = (float)((xr[i] - mean) * inv * gamma[i] + beta[i]);
    }
}

void ref_softmax(int64_t rows, int64_t cols, const float *x, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < cols; i++) mx = xr[i] > mx ? xr[i] : mx;
        for (int64_t i = 0; i < cols; i++) sum += exp(xr[i] - mx);
        for (int64_t i = 0; i < cols; i++) yr[i] = (float)(exp(xr[i] - mx) / sum);
    }
}

void ref_attention(const AttentionParams *p, const float *q, const float *k, const float *v, float *y)
{
    double *s = malloc(sizeof(double) * (size_t)(p->lk > 0 ? p->lk : 1));
    for (int b = 0; b < p->b; b++)
        for (int h = 0; h < p->heads; h++)
            for (int i = 0; i < p->lq; i++) {
                const float *qi = q + ((int64_t)b * p->lq + i) * p->ldq + (int64_t)h * p->dk;
                int nk = p->causal ? (i + 1 < p->lk ? i + 1 : p->lk) : p->lk;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < nk; j++) {
                    const float *kj = k + ((int64_t)b * p->lk + j) * p->ldk + (int64_t)h * p->dk;
                    double dot = 0;
                    for (int d = 0; d < p->dk; d++) dot += (double)qi[d] * kj[d];
                    s[j] = dot * p->scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < nk; j++) sum += (s[j] = exp(s[j] - mx));
                float *yi = y + ((int64_t)b * p->lq + i) * p->ldy + (int64_t)h * p->dv;
                for (int d = 0; d < p->dv; d++) {
                    double acc = 0;
                    for (int j = 0; j < nk; j++)
                        acc += s[j] * v[((int64_t)b * p->lk + j) * p->ldv + (int64_t)h * p->dv + d];
                    yi[d] = (float)(acc / sum);
                }
            }
    free(s);
}

/* float32 throughout, in PyTorch's order of operations, so that timesteps
 * near 1000 give the same arguments to sin/cos as diffusers. */
void ref_timestep_embedding(const TimestepEmbParams *p, const float *t, float *y)
{
    int half = p->dim / 2;
    for (int b = 0; b < p->b; b++) {
        float *yb = y + (int64_t)b * p->dim;
        for (int i = 0; i < half; i++) {
            float exponent = (float)-log((double)p->max_period) * (float)i;
            exponent = exponent / ((float)half - p->shift);
            float arg = t[b] * expf(exponent) * p->scale;
            float s = (float)sin((double)arg), c = (float)cos((double)arg);
            yb[i] = p->flip_sin_to_cos ? c : s;
            yb[half + i] = p->flip_sin_to_cos ? s : c;
        }
        if (p->dim % 2) yb[p->dim - 1] = 0.0f;
    }
}

static int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    int s = (int)floorf((float)dst * ((float)in / (float)out));
    return s < in - 1 ? s : in - 1;
}

void ref_upsample_nearest2d(const UpsampleParams *p, const float *x, float *y)
{
    for (int64_t nc = 0; nc < (int64_t)p->n * p->c; nc++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                int iy = nearest_src(oy, p->h, p->oh), ix = nearest_src(ox, p->w, p->ow);
                y[(nc * p->oh + oy) * p->ow + ox] = x[(nc * p->h + iy) * p->w + ix];
            }
}

void ref_silu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
}

void ref_gelu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void ref_quick_gelu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)(x[i] / (1.0 + exp(-1.702 * (double)x[i])));
}

void ref_binary(RtBinaryOp op, int ndim, const int64_t *shape, const float *a, const int64_t *sa,
                const float *b, const int64_t *sb, float *y)
{
    int64_t total = 1, idx[8] = {0};
    for (int d = 0; d < ndim; d++) total *= shape[d];
    for (int64_t i = 0; i < total; i++) {
        int64_t ia = 0, ib = 0;
        for (int d = 0; d < ndim; d++) ia += idx[d] * sa[d], ib += idx[d] * sb[d];
        double av = a[ia], bv = b[ib], r = 0;
        switch (op) {
        case RT_ADD: r = av + bv; break;
        case RT_SUB: r = av - bv; break;
        case RT_MUL: r = av * bv; break;
        case RT_DIV: r = av / bv; break;
        }
        y[i] = (float)r;
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

void ref_fused_conv2d(const FusedConv2dParams *p, const float *x, const float *gamma, const float *beta,
                      const float *w, const float *b, const float *chan_add, const float *residual, float *y)
{
    const Conv2dParams *c = &p->conv;
    float *xn = NULL;
    SDC_ASSERT(p->norm_groups > 0 || !p->silu);
    if (p->norm_groups > 0) {
        GroupNormParams gp = {.n = c->n, .c = c->c, .hw = c->h * c->w, .groups = p->norm_groups, .eps = p->eps,
                              .silu = p->silu};
        xn = malloc(sizeof(float) * (size_t)((int64_t)c->n * c->c * c->h * c->w + 1));
        ref_group_norm(&gp, x, gamma, beta, xn);
        x = xn;
    }
    ref_conv2d(c, x, w, b, y);
    int64_t plane = (int64_t)c->oh * c->ow;
    for (int n = 0; n < c->n; n++)
        for (int o = 0; o < c->oc; o++) {
            int64_t at = ((int64_t)n * c->oc + o) * plane;
            double add = chan_add ? chan_add[(int64_t)(p->chan_add_n == 1 ? 0 : n) * c->oc + o] : 0.0;
            for (int64_t i = 0; i < plane; i++) {
                double v = (double)y[at + i] + add + (residual ? residual[at + i] : 0.0);
                y[at + i] = (float)(v * p->out_scale);
            }
        }
    free(xn);
}

void ref_fused_linear(const FusedLinearParams *p, const float *x, const float *gamma, const float *beta,
                      const float *w, const float *b, const float *residual, float *y)
{
    float *xn = NULL, *z = y;
    if (p->norm) {
        LayerNormParams lp = {.rows = p->m, .cols = p->k, .eps = p->eps};
        xn = malloc(sizeof(float) * (size_t)((int64_t)p->m * p->k + 1));
        ref_layer_norm(&lp, x, gamma, beta, xn);
        x = xn;
    } else if (p->norm_groups > 0) { /* GroupNorm on [images][k][hw], then rows = positions */
        int64_t imgs = p->hw ? p->m / p->hw : 0, count = (int64_t)p->m * p->k;
        GroupNormParams gp = {.n = (int)imgs, .c = p->k, .hw = p->hw, .groups = p->norm_groups, .eps = p->eps};
        float *g = malloc(sizeof(float) * (size_t)(count + 1));
        xn = malloc(sizeof(float) * (size_t)(count + 1));
        ref_group_norm(&gp, x, gamma, beta, g);
        for (int64_t b = 0; b < imgs; b++)
            for (int64_t c = 0; c < p->k; c++)
                for (int64_t q = 0; q < p->hw; q++) xn[(b * p->hw + q) * p->k + c] = g[(b * p->k + c) * p->hw + q];
        free(g);
        x = xn;
    }
    int ny = p->geglu ? p->n / 2 : p->n;
    if (p->geglu) z = malloc(sizeof(float) * (size_t)((int64_t)p->m * p->n + 1));
    MatmulParams mp = {.batch = 1, .m = p->m, .n = p->n, .k = p->k, .trans_b = 1, .lda = p->k, .ldb = p->k,
                       .ldc = p->n};
    ref_matmul(&mp, x, w, b, z);
    for (int64_t i = 0; i < p->m; i++)
        for (int j = 0; j < ny; j++) {
            double v = z[i * p->n + j];
            if (p->geglu) {
                double gate = z[i * p->n + ny + j];
                v *= 0.5 * gate * (1.0 + erf(gate / sqrt(2.0)));
            }
            if (residual) v += residual[i * ny + j];
            y[i * ny + j] = (float)(v * p->out_scale);
        }
    if (z != y) free(z);
    free(xn);
}
