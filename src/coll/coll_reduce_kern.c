/*
 * The reduction kernels, every dtype x op, in three forms: in place
 * (acc[i] = acc[i] op in[i]), in place with the operands swapped
 * (acc[i] = in[i] op acc[i]: min and max of a NaN or of zeros of both
 * signs depend on the order) and three-operand (dst[i] = a[i] op b[i],
 * one pass where a copy and an in-place pass would take two).
 *
 * Plain loops over restrict pointers that the compiler vectorises. This
 * file is built once per instruction set (COLL_KERN_ISA: baseline, avx2,
 * avx512; CMakeLists.txt gives each its -m flags) and coll_reduce.c picks
 * the widest set the CPU runs, so one library binary uses 16-, 32- or
 * 64-byte vectors as the machine allows. Everything here is static but the
 * one table, so no code built for a wider set can leak into another.
 */
#include <stddef.h>
#include <stdint.h>
#include "coll_half.h"
#include "coll_reduce.h"

#ifndef COLL_KERN_ISA
#define COLL_KERN_ISA baseline
#endif
#define KERN_CAT_(a, b) a##b
#define KERN_CAT(a, b)  KERN_CAT_(a, b)
#define KERN_STR_(a)    #a
#define KERN_STR(a)     KERN_STR_(a)

#define OP_SUM(a, b)  ((a) + (b))
#define OP_PROD(a, b) ((a) * (b))
#define OP_MIN(a, b)  ((b) < (a) ? (b) : (a))
#define OP_MAX(a, b)  ((b) > (a) ? (b) : (a))

/* Integer SUM/PROD wrap modulo 2^n: they are done in the unsigned type U,
 * where overflow is defined. CV converts an element to the type OP works
 * in, BACK converts the result to the element type. */
#define KERNEL(name, T, CV, BACK, OP)                                                              \
    static void name##_2(void *restrict accv, const void *restrict inv, size_t n)                  \
    {                                                                                              \
        T *restrict acc = accv;                                                                    \
        const T *restrict in = inv;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            acc[i] = BACK(OP(CV(acc[i]), CV(in[i])));                                              \
    }                                                                                              \
    static void name##_2r(void *restrict accv, const void *restrict inv, size_t n)                 \
    {                                                                                              \
        T *restrict acc = accv;                                                                    \
        const T *restrict in = inv;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            acc[i] = BACK(OP(CV(in[i]), CV(acc[i])));                                              \
    }                                                                                              \
    static void name##_3(void *restrict dstv, const void *restrict av, const void *restrict bv,    \
                         size_t n)                                                                 \
    {                                                                                              \
        T *restrict dst = dstv;                                                                    \
        const T *restrict a = av, *restrict b = bv;                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            dst[i] = BACK(OP(CV(a[i]), CV(b[i])));                                                 \
    }

#define AS_SELF(x) (x)

#define INT_KERNELS(tag, T, U)                                                                     \
    KERNEL(sum_##tag, T, (U), (T), OP_SUM)                                                         \
    KERNEL(prod_##tag, T, (U), (T), OP_PROD)                                                       \
    KERNEL(min_##tag, T, AS_SELF, AS_SELF, OP_MIN)                                                 \
    KERNEL(max_##tag, T, AS_SELF, AS_SELF, OP_MAX)

INT_KERNELS(i8, int8_t, uint8_t)
INT_KERNELS(u8, uint8_t, uint8_t)
INT_KERNELS(i32, int32_t, uint32_t)
INT_KERNELS(u32, uint32_t, uint32_t)
INT_KERNELS(i64, int64_t, uint64_t)
INT_KERNELS(u64, uint64_t, uint64_t)

#define FLOAT_KERNELS(tag, T)                                                                      \
    KERNEL(sum_##tag, T, AS_SELF, AS_SELF, OP_SUM)                                                 \
    KERNEL(prod_##tag, T, AS_SELF, AS_SELF, OP_PROD)                                               \
    KERNEL(min_##tag, T, AS_SELF, AS_SELF, OP_MIN)                                                 \
    KERNEL(max_##tag, T, AS_SELF, AS_SELF, OP_MAX)

FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)

/* Half types: widen, combine in float, round back. */
#define HALF_KERNELS(tag, TO_F, FROM_F)                                                            \
    KERNEL(sum_##tag, uint16_t, TO_F, FROM_F, OP_SUM)                                              \
    KERNEL(prod_##tag, uint16_t, TO_F, FROM_F, OP_PROD)                                            \
    KERNEL(min_##tag, uint16_t, TO_F, FROM_F, OP_MIN)                                              \
    KERNEL(max_##tag, uint16_t, TO_F, FROM_F, OP_MAX)

HALF_KERNELS(bf16, bf16_to_float, float_to_bf16)

#if defined(__F16C__) && defined(__AVX__)
/* fp16 through the CPU's conversions (F16C): one instruction converts 8
 * (AVX-512: 16) elements each way, where the portable conversion takes
 * dozens of instructions. Both round to nearest even: the results are
 * the same. The vector min and max return their second operand where the
 * two are unordered, so they are called (in, acc) to match OP_MIN/OP_MAX. */
#include <immintrin.h>
#define CVT_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#ifdef __AVX512F__
#define F16_STEP        16
#define F16_LOAD(p)     _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define F16_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), _mm512_cvtps_ph(v, CVT_NEAREST))
#define VSUM(x, y)      _mm512_add_ps(x, y)
#define VPROD(x, y)     _mm512_mul_ps(x, y)
#define VMIN(x, y)      _mm512_min_ps(y, x)
#define VMAX(x, y)      _mm512_max_ps(y, x)
#else
#define F16_STEP        8
#define F16_LOAD(p)     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define F16_STORE(p, v) _mm_storeu_si128((__m128i *)(p), _mm256_cvtps_ph(v, CVT_NEAREST))
#define VSUM(x, y)      _mm256_add_ps(x, y)
#define VPROD(x, y)     _mm256_mul_ps(x, y)
#define VMIN(x, y)      _mm256_min_ps(y, x)
#define VMAX(x, y)      _mm256_max_ps(y, x)
#endif
#define F16C_LOOP(VOP, OP, dst, a, b)                                                              \
    size_t i = 0;                                                                                  \
    for (; i + F16_STEP <= n; i += F16_STEP)                                                       \
        F16_STORE(dst + i, VOP(F16_LOAD(a + i), F16_LOAD(b + i)));                                 \
    for (; i < n; i++)                                                                             \
        dst[i] = float_to_half(OP(half_to_float(a[i]), half_to_float(b[i])));
#define F16C_KERNEL(name, VOP, OP)                                                                 \
    static void name##_2(void *restrict accv, const void *restrict inv, size_t n)                  \
    {                                                                                              \
        uint16_t *acc = accv;                                                                      \
        const uint16_t *in = inv;                                                                  \
        F16C_LOOP(VOP, OP, acc, acc, in)                                                           \
    }                                                                                              \
    static void name##_2r(void *restrict accv, const void *restrict inv, size_t n)                 \
    {                                                                                              \
        uint16_t *acc = accv;                                                                      \
        const uint16_t *in = inv;                                                                  \
        F16C_LOOP(VOP, OP, acc, in, acc)                                                           \
    }                                                                                              \
    static void name##_3(void *restrict dstv, const void *restrict av, const void *restrict bv,    \
                         size_t n)                                                                 \
    {                                                                                              \
        uint16_t *dst = dstv;                                                                      \
        const uint16_t *a = av, *b = bv;                                                           \
        F16C_LOOP(VOP, OP, dst, a, b)                                                              \
    }
F16C_KERNEL(sum_f16, VSUM, OP_SUM)
F16C_KERNEL(prod_f16, VPROD, OP_PROD)
F16C_KERNEL(min_f16, VMIN, OP_MIN)
F16C_KERNEL(max_f16, VMAX, OP_MAX)
#else
HALF_KERNELS(f16, half_to_float, float_to_half)
#endif

/* AVG reduces as SUM; coll_reduce_finish_avg divides at the end. */
#define ROW(tag, form)                                                                             \
    {                                                                                              \
        sum_##tag##form, prod_##tag##form, min_##tag##form, max_##tag##form, sum_##tag##form       \
    }
#define TABLE(form)                                                                                \
    {                                                                                              \
        [TIDE_INT8] = ROW(i8, form), [TIDE_UINT8] = ROW(u8, form), [TIDE_INT32] = ROW(i32, form),  \
        [TIDE_UINT32] = ROW(u32, form), [TIDE_INT64] = ROW(i64, form),                             \
        [TIDE_UINT64] = ROW(u64, form), [TIDE_FLOAT16] = ROW(f16, form),                           \
        [TIDE_BFLOAT16] = ROW(bf16, form), [TIDE_FLOAT32] = ROW(f32, form),                        \
        [TIDE_FLOAT64] = ROW(f64, form),                                                           \
    }

const coll_kernels_t KERN_CAT(coll_kernels_, COLL_KERN_ISA) = {
    .isa = KERN_STR(COLL_KERN_ISA),
    .fn2 = TABLE(_2),
    .fn2r = TABLE(_2r),
    .fn3 = TABLE(_3),
};
