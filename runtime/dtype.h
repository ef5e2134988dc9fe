/* dtype.h — element types shared by the IR, the tensor files and the runtime.
 *
 * The IR computes in the five types below.  Safetensors files may hold other
 * types (F64, U8, BOOL, ...); the reader reports those as DT_OTHER so that a
 * file can be listed and merged, but no graph value ever has that type. */
#ifndef SDC_DTYPE_H
#define SDC_DTYPE_H

#include <stdint.h>
#include <stddef.h>

typedef enum DType {
    DT_F32,
    DT_F16,
    DT_BF16,
    DT_I32,
    DT_I64,
    DT_OTHER, /* a safetensors dtype sdc does not compute in */
    DT_COUNT
} DType;

size_t dtype_size(DType t);              /* bytes per element; 0 for DT_OTHER */
const char *dtype_name(DType t);         /* IR spelling: "f32", "f16", ... */
const char *dtype_st_name(DType t);      /* safetensors spelling: "F32", ... */
int dtype_from_name(const char *s, DType *out);    /* IR spelling; 0 ok, -1 unknown */
int dtype_from_st_name(const char *s, DType *out); /* safetensors spelling */
int dtype_is_float(DType t);

/* IEEE half and bfloat16 <-> float, round to nearest even (as PyTorch). */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

/* Converts n elements of type `from` at src to float at dst (from must be a
 * float type or an integer type of the five above). */
void dtype_to_f32(DType from, const void *src, float *dst, size_t n);
/* Converts n floats to type `to` (integers are truncated toward zero). */
void dtype_from_f32(DType to, const float *src, void *dst, size_t n);

#endif
