/* Reduction kernels for every dtype x op. See coll_reduce.h. */
#include "coll_reduce.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------ half types */

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan */
        return bits_to_float(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero / subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t float_to_half(float f)
{
    uint32_t u = float_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan (nan stays quiet nan) */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0));
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) { /* below the smallest normal: subnormal, RNE via float add */
        float m = bits_to_float(abs) + 0.5f; /* 0.5 = 2^-1: aligns 2^-24 units at the ulp */
        return (uint16_t)(sign | (float_to_bits(m) - 0x3f000000u));
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u); /* round to nearest even */
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

static inline float bf16_to_float(uint16_t h)
{
    return bits_to_float((uint32_t)h << 16);
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t u = float_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float coll_half_to_float(uint16_t h)
{
    return half_to_float(h);
}
uint16_t coll_float_to_half(float f)
{
    return float_to_half(f);
}
float coll_bf16_to_float(uint16_t h)
{
    return bf16_to_float(h);
}
uint16_t coll_float_to_bf16(float f)
{
    return float_to_bf16(f);
}

/* --------------------------------------------------------------- kernels */

#define OP_SUM(a, b)  ((a) + (b))
#define OP_PROD(a, b) ((a) * (b))
#define OP_MIN(a, b)  ((b) < (a) ? (b) : (a))
#define OP_MAX(a, b)  ((b) > (a) ? (b) : (a))

/* Native types. Integer SUM/PROD wrap modulo 2^n (done in the unsigned
 * type so that overflow is defined). */
#define NATIVE_KERNEL(name, T, U, OP)                                                              \
    static void name(void *restrict accv, const void *restrict inv, size_t n)                      \
    {                                                                                              \
        T *restrict acc = accv;                                                                    \
        const T *restrict in = inv;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            acc[i] = (T)OP((U)acc[i], (U)in[i]);                                                   \
    }

#define NATIVE_KERNEL_CMP(name, T, OP)                                                             \
    static void name(void *restrict accv, const void *restrict inv, size_t n)                      \
    {                                                                                              \
        T *restrict acc = accv;                                                                    \
        const T *restrict in = inv;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            acc[i] = OP(acc[i], in[i]);                                                            \
    }

#define INT_KERNELS(tag, T, U)                                                                     \
    NATIVE_KERNEL(sum_##tag, T, U, OP_SUM)                                                         \
    NATIVE_KERNEL(prod_##tag, T, U, OP_PROD)                                                       \
    NATIVE_KERNEL_CMP(min_##tag, T, OP_MIN)                                                        \
    NATIVE_KERNEL_CMP(max_##tag, T, OP_MAX)

INT_KERNELS(i8, int8_t, uint8_t)
INT_KERNELS(u8, uint8_t, uint8_t)
INT_KERNELS(i32, int32_t, uint32_t)
INT_KERNELS(u32, uint32_t, uint32_t)
INT_KERNELS(i64, int64_t, uint64_t)
INT_KERNELS(u64, uint64_t, uint64_t)

#define FLOAT_KERNELS(tag, T)                                                                      \
    NATIVE_KERNEL(sum_##tag, T, T, OP_SUM)                                                         \
    NATIVE_KERNEL(prod_##tag, T, T, OP_PROD)                                                       \
    NATIVE_KERNEL_CMP(min_##tag, T, OP_MIN)                                                        \
    NATIVE_KERNEL_CMP(max_##tag, T, OP_MAX)

FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)

/* Half types: widen, combine in float, round back. */
#define HALF_KERNEL(name, TO_F, FROM_F, OP)                                                        \
    static void name(void *restrict accv, const void *restrict inv, size_t n)                      \
    {                                                                                              \
        uint16_t *restrict acc = accv;                                                             \
        const uint16_t *restrict in = inv;                                                         \
        for (size_t i = 0; i < n; i++)                                                             \
            acc[i] = FROM_F(OP(TO_F(acc[i]), TO_F(in[i])));                                        \
    }

#define HALF_KERNELS(tag, TO_F, FROM_F)                                                            \
    HALF_KERNEL(sum_##tag, TO_F, FROM_F, OP_SUM)                                                   \
    HALF_KERNEL(prod_##tag, TO_F, FROM_F, OP_PROD)                                                 \
    HALF_KERNEL(min_##tag, TO_F, FROM_F, OP_MIN)                                                   \
    HALF_KERNEL(max_##tag, TO_F, FROM_F, OP_MAX)

HALF_KERNELS(f16, half_to_float, float_to_half)
HALF_KERNELS(bf16, bf16_to_float, float_to_bf16)

#define ROW(tag)                                                                                   \
    {                                                                                              \
        sum_##tag, prod_##tag, min_##tag, max_##tag, sum_##tag                                     \
    }

static const coll_reduce_fn_t table[TIDE_DTYPE_COUNT][TIDE_REDOP_COUNT] = {
    [TIDE_INT8] = ROW(i8),     [TIDE_UINT8] = ROW(u8),      [TIDE_INT32] = ROW(i32),
    [TIDE_UINT32] = ROW(u32),  [TIDE_INT64] = ROW(i64),     [TIDE_UINT64] = ROW(u64),
    [TIDE_FLOAT16] = ROW(f16), [TIDE_BFLOAT16] = ROW(bf16), [TIDE_FLOAT32] = ROW(f32),
    [TIDE_FLOAT64] = ROW(f64),
};

bool coll_dtype_valid(tide_dtype_t dtype)
{
    return (unsigned)dtype < TIDE_DTYPE_COUNT;
}

bool coll_redop_valid(tide_redop_t op)
{
    return (unsigned)op < TIDE_REDOP_COUNT;
}

coll_reduce_fn_t coll_reduce_fn(tide_dtype_t dtype, tide_redop_t op)
{
    if (!coll_dtype_valid(dtype) || !coll_redop_valid(op))
        return NULL;
    return table[dtype][op];
}

size_t tide_dtype_size(tide_dtype_t dtype)
{
    static const size_t sizes[TIDE_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return coll_dtype_valid(dtype) ? sizes[dtype] : 0;
}

const char *coll_dtype_name(tide_dtype_t dtype)
{
    static const char *const names[TIDE_DTYPE_COUNT] = {"int8",  "uint8",  "int32", "uint32",
                                                        "int64", "uint64", "half",  "bfloat16",
                                                        "float", "double"};
    return coll_dtype_valid(dtype) ? names[dtype] : "?";
}

const char *coll_redop_name(tide_redop_t op)
{
    static const char *const names[TIDE_REDOP_COUNT] = {"sum", "prod", "min", "max", "avg"};
    return coll_redop_valid(op) ? names[op] : "?";
}

void coll_reduce3(void *dst, const void *a, const void *b, size_t count, tide_dtype_t dtype,
                  tide_redop_t op)
{
    size_t bytes = count * tide_dtype_size(dtype);
    if (dst == b) { /* acc = b op a: every op here is commutative */
        table[dtype][op](dst, a, count);
        return;
    }
    if (dst != a)
        memmove(dst, a, bytes);
    table[dtype][op](dst, b, count);
}

#define AVG_INT(T)                                                                                 \
    do {                                                                                           \
        T *p = buf;                                                                                \
        for (size_t i = 0; i < count; i++)                                                         \
            p[i] = (T)(p[i] / (T)nranks);                                                          \
    } while (0)

void coll_reduce_finish_avg(void *buf, size_t count, tide_dtype_t dtype, int nranks)
{
    switch (dtype) {
    case TIDE_INT8:
        AVG_INT(int8_t);
        break;
    case TIDE_UINT8:
        AVG_INT(uint8_t);
        break;
    case TIDE_INT32:
        AVG_INT(int32_t);
        break;
    case TIDE_UINT32:
        AVG_INT(uint32_t);
        break;
    case TIDE_INT64:
        AVG_INT(int64_t);
        break;
    case TIDE_UINT64:
        AVG_INT(uint64_t);
        break;
    case TIDE_FLOAT32: {
        float *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] /= (float)nranks;
        break;
    }
    case TIDE_FLOAT64: {
        double *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] /= (double)nranks;
        break;
    }
    case TIDE_FLOAT16: {
        uint16_t *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = float_to_half(half_to_float(p[i]) / (float)nranks);
        break;
    }
    case TIDE_BFLOAT16: {
        uint16_t *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = float_to_bf16(bf16_to_float(p[i]) / (float)nranks);
        break;
    }
    default:
        break;
    }
}
