/* movement.c — see movement.h. */
#include "movement.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rt_permute(const float *x, int ndim, const int64_t *shape, const int64_t *perm, float *y)
{
    int64_t xs[5], st[5], os[5], idx[5] = {0}, total = 1;
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) xs[d] = s, s *= shape[d];
    for (int d = 0; d < ndim; d++) st[d] = xs[perm[d]], os[d] = shape[perm[d]], total *= shape[d];
    /* innermost output axis in a tight loop; the rest through the index */
    int64_t inner = ndim ? os[ndim - 1] : 1, inner_st = ndim ? st[ndim - 1] : 1;
#pragma omp parallel for schedule(static) firstprivate(idx)
    for (int64_t row = 0; row < total / (inner ? inner : 1); row++) {
        int64_t r = row, src = 0;
        for (int d = ndim - 2; d >= 0; d--) {
            idx[d] = r % os[d];
            r /= os[d];
            src += idx[d] * st[d];
        }
        float *out = y + row * inner;
        for (int64_t k = 0; k < inner; k++) out[k] = x[src + k * inner_st];
    }
}

void rt_copy_rows(const float *x, int64_t x_stride, int64_t x_off, float *y, int64_t y_stride, int64_t y_off,
                  int64_t outer, int64_t len)
{
#pragma omp parallel for schedule(static) if (outer * len > 65536)
    for (int64_t o = 0; o < outer; o++) memcpy(y + o * y_stride + y_off, x + o * x_stride + x_off, sizeof(float) * (size_t)len);
}

int rt_embedding(const int64_t *ids, int64_t n, const float *table, int64_t rows, int64_t dim, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= rows) return -1;
        memcpy(y + i * dim, table + ids[i] * dim, sizeof(float) * (size_t)dim);
    }
    return 0;
}

void rt_causal_mask(const float *x, int64_t mats, int64_t lq, int64_t lk, float *y)
{
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < lq; i++)
            for (int64_t j = 0; j < lk; j++) {
                int64_t at = (m * lq + i) * lk + j;
                y[at] = j > i ? -INFINITY : x[at];
            }
}

void rt_scale(const float *x, float value, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * value;
}

void rt_clamp(const float *x, float lo, float hi, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

_Noreturn void sdc_bad_token(void)
{
    fprintf(stderr, "sdc: internal error: a token id is outside the text encoder's embedding table\n");
    exit(2);
}

void *sdc_alloc(uint64_t bytes)
{
    uint64_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) {
        fprintf(stderr, "sdc: out of memory (%llu bytes)\n", (unsigned long long)bytes);
        exit(2);
    }
    memset(p, 0, n ? n : 64);
    return p;
}
