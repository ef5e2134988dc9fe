/* dtype.c — element type tables and half/bfloat16 conversion. */
#include "dtype.h"

#include <string.h>

static const struct {
    const char *ir, *st;
    size_t size;
    int is_float;
} dtype_table[DT_COUNT] = {
    [DT_F32] = {"f32", "F32", 4, 1},
    [DT_F16] = {"f16", "F16", 2, 1},
    [DT_BF16] = {"bf16", "BF16", 2, 1},
    [DT_I32] = {"i32", "I32", 4, 0},
    [DT_I64] = {"i64", "I64", 8, 0},
    [DT_OTHER] = {"other", "OTHER", 0, 0},
};

size_t dtype_size(DType t) { return t < DT_COUNT ? dtype_table[t].size : 0; }
const char *dtype_name(DType t) { return t < DT_COUNT ? dtype_table[t].ir : "?"; }
const char *dtype_st_name(DType t) { return t < DT_COUNT ? dtype_table[t].st : "?"; }
int dtype_is_float(DType t) { return t < DT_COUNT && dtype_table[t].is_float; }

int dtype_from_name(const char *s, DType *out)
{
    for (int t = 0; t < DT_OTHER; t++)
        if (strcmp(s, dtype_table[t].ir) == 0) return *out = (DType)t, 0;
    return -1;
}

int dtype_from_st_name(const char *s, DType *out)
{
    for (int t = 0; t < DT_OTHER; t++)
        if (strcmp(s, dtype_table[t].st) == 0) return *out = (DType)t, 0;
    return -1;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                      /* below the smallest normal half */
        /* subnormal half: round a * 2^24 to an integer, nearest even */
        float v = bits_f32(a) * 16777216.0f;
        uint32_t q = (uint32_t)v;
        float r = v - (float)q;
        if (r > 0.5f || (r == 0.5f && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t man = a & 0x7fffff, exp = (a >> 23) - 112;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* may carry into exp: fine */
    return sign | (uint16_t)h;
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void dtype_to_f32(DType from, const void *src, float *dst, size_t n)
{
    switch (from) {
    case DT_F32: memcpy(dst, src, n * 4); break;
    case DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(((const uint16_t *)src)[i]);
        break;
    case DT_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i];
        break;
    case DT_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i];
        break;
    default: break;
    }
}

void dtype_from_f32(DType to, const float *src, void *dst, size_t n)
{
    switch (to) {
    case DT_F32: memcpy(dst, src, n * 4); break;
    case DT_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_f16(src[i]);
        break;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_bf16(src[i]);
        break;
    case DT_I32:
        for (size_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)src[i];
        break;
    case DT_I64:
        for (size_t i = 0; i < n; i++) ((int64_t *)dst)[i] = (int64_t)src[i];
        break;
    default: break;
    }
}
