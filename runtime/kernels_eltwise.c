/* kernels_eltwise.c — activations, rt_binary, nearest upsampling, timestep
 * embedding: memory-bound loops cut into fixed chunks of ELT_CHUNK elements
 * (or whole rows) and spread over the threads.  Every element is computed
 * alone, so any split gives the same bits.
 *
 * rt_binary first folds the output dims: dims of size 1 are dropped and
 * neighbours merged when both operands step through them contiguously, so
 * NCHW + bias[C,1,1] becomes rows of HW with a scalar b per row, a same-shape
 * add one flat row, and a time embedding [B,C,1,1] rows over B*C.  The inner
 * row then runs one of the vectorised (1,1), (1,0), (0,1) stride loops, or a
 * strided one for what is left. */
#include "kernels_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define ELT_CHUNK 16384 /* elements per task: 64 KiB, well past the scheduling cost */

typedef void (*UnaryFn)(float *y, const float *x, int64_t n);

static void unary_parallel(UnaryFn fn, const float *x, float *y, int64_t n)
{
    rt_kernels_prepare();
    int64_t tasks = rt_div_up(n, ELT_CHUNK);
#pragma omp parallel for schedule(static) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i0 = t * ELT_CHUNK;
        fn(y + i0, x + i0, rt_min64(ELT_CHUNK, n - i0));
    }
}

void rt_silu(const float *x, float *y, int64_t n) { unary_parallel(rt_vec_silu, x, y, n); }
void rt_gelu(const float *x, float *y, int64_t n) { unary_parallel(rt_vec_gelu, x, y, n); }
void rt_quick_gelu(const float *x, float *y, int64_t n) { unary_parallel(rt_vec_quick_gelu, x, y, n); }

#define BINARY_MAX_DIMS 5

void rt_binary(RtBinaryOp op, int ndim, const int64_t *shape, const float *a, const int64_t *sa,
               const float *b, const int64_t *sb, float *y)
{
    rt_kernels_prepare();
    SDC_ASSERT(ndim >= 0 && ndim <= BINARY_MAX_DIMS);
    /* Fold the dims (outermost first). */
    int nd = 0;
    int64_t shp[BINARY_MAX_DIMS], fa[BINARY_MAX_DIMS], fb[BINARY_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) return;
        if (shape[d] == 1) continue;
        if (nd > 0 && fa[nd - 1] == sa[d] * shape[d] && fb[nd - 1] == sb[d] * shape[d]) {
            shp[nd - 1] *= shape[d];
            fa[nd - 1] = sa[d];
            fb[nd - 1] = sb[d];
            continue;
        }
        shp[nd] = shape[d];
        fa[nd] = sa[d];
        fb[nd] = sb[d];
        nd++;
    }
    if (nd == 0) { /* one element */
        shp[0] = 1;
        fa[0] = fb[0] = 0;
        nd = 1;
    }
    int64_t inner = shp[nd - 1], ia = fa[nd - 1], ib = fb[nd - 1];
    int64_t rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shp[d];
    int64_t chunks = rt_div_up(inner, ELT_CHUNK); /* per row; short rows are grouped below */
    int64_t rows_per_task = inner >= ELT_CHUNK ? 1 : rt_max64(1, ELT_CHUNK / inner);
    int64_t tasks = rt_div_up(rows, rows_per_task) * chunks;

#pragma omp parallel for schedule(static) num_threads(rt_threads())
    for (int64_t t = 0; t < tasks; t++) {
        int64_t r0 = t / chunks * rows_per_task, j0 = t % chunks * ELT_CHUNK;
        int64_t r1 = rt_min64(rows, r0 + rows_per_task), len = rt_min64(ELT_CHUNK, inner - j0);
        for (int64_t r = r0; r < r1; r++) {
            int64_t oa = 0, ob = 0, rem = r;
            for (int d = nd - 2; d >= 0; d--) {
                int64_t i = rem % shp[d];
                rem /= shp[d];
                oa += i * fa[d];
                ob += i * fb[d];
            }
            rt_vec_binary(op, len, a + oa + j0 * ia, ia, b + ob + j0 * ib, ib, y + r * inner + j0);
        }
    }
}

/* PyTorch's nearest source index (see UpsampleParams). */
static int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    int s = (int)floorf((float)dst * ((float)in / (float)out));
    return s < in - 1 ? s : in - 1;
}

void rt_upsample_nearest2d(const UpsampleParams *p, const float *x, float *y)
{
    rt_kernels_prepare();
    if (p->oh <= 0 || p->ow <= 0) return;
    int *src_x = xmalloc(sizeof(int) * (size_t)p->ow);
    for (int ox = 0; ox < p->ow; ox++) src_x[ox] = nearest_src(ox, p->w, p->ow);
    int64_t rows = (int64_t)p->n * p->c * p->oh;
    int twice = p->ow == 2 * p->w;

#pragma omp parallel for schedule(static) num_threads(rt_threads())
    for (int64_t r = 0; r < rows; r++) {
        int64_t nc = r / p->oh;
        int oy = (int)(r % p->oh);
        const float *xr = x + (nc * p->h + nearest_src(oy, p->h, p->oh)) * p->w;
        float *yr = y + r * p->ow;
        if (twice) {
            for (int ix = 0; ix < p->w; ix++) yr[2 * ix] = yr[2 * ix + 1] = xr[ix];
        } else {
            for (int ox = 0; ox < p->ow; ox++) yr[ox] = xr[src_x[ox]];
        }
    }
    free(src_x);
}

/* Small ([b, dim]); follows the reference's float32 operations one by one so
 * that the bits match. */
void rt_timestep_embedding(const TimestepEmbParams *p, const float *t, float *y)
{
    int half = p->dim / 2;
    float log_period = (float)-log((double)p->max_period);
    for (int b = 0; b < p->b; b++) {
        float *yb = y + (int64_t)b * p->dim;
        for (int i = 0; i < half; i++) {
            float exponent = log_period * (float)i;
            exponent = exponent / ((float)half - p->shift);
            float arg = t[b] * expf(exponent) * p->scale;
            float s = (float)sin((double)arg), c = (float)cos((double)arg);
            yb[i] = p->flip_sin_to_cos ? c : s;
            yb[half + i] = p->flip_sin_to_cos ? s : c;
        }
        if (p->dim % 2) yb[p->dim - 1] = 0.0f;
    }
}
