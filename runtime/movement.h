/* movement.h — data-movement and small elementwise kernels of the runtime:
 * the ops that move or select values rather than compute them.  Generated
 * code calls these for permute, concat, slice, embedding, the causal mask,
 * scale and clamp.  Plain loops: they are a small share of SD's time. */
#ifndef SDC_MOVEMENT_H
#define SDC_MOVEMENT_H

#include <stdint.h>

/* y = x transposed by perm (ndim <= 5); shape is x's shape. */
void rt_permute(const float *x, int ndim, const int64_t *shape, const int64_t *perm, float *y);
/* Copies `len` elements from x + x_off to y + y_off for each of `outer`
 * rows, x rows `x_stride` apart and y rows `y_stride` apart (concat and slice). */
void rt_copy_rows(const float *x, int64_t x_stride, int64_t x_off, float *y, int64_t y_stride, int64_t y_off,
                  int64_t outer, int64_t len);
/* y[i, :] = table[ids[i], :]; returns -1 (and writes nothing more) on an id
 * outside [0, rows). */
int rt_embedding(const int64_t *ids, int64_t n, const float *table, int64_t rows, int64_t dim, float *y);
/* y = x with -inf where j > i in each [lq, lk] matrix. */
void rt_causal_mask(const float *x, int64_t mats, int64_t lq, int64_t lk, float *y);
/* Called by generated code when a token id is outside the embedding table
 * (the compiler checks the tokenizer against the table, so this is a bug):
 * prints the reason and exits with status 2. */
_Noreturn void sdc_bad_token(void);
/* Zeroed, 64-byte aligned memory that generated code keeps for the life of
 * the process (values computed once per prompt); exits with status 2 when
 * memory runs out. */
void *sdc_alloc(uint64_t bytes);
void rt_scale(const float *x, float value, float *y, int64_t n);
void rt_clamp(const float *x, float lo, float hi, float *y, int64_t n);

#endif
