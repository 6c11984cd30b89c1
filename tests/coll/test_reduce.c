/*
 * Reductions: fp16/bf16 conversions checked against the representable
 * neighbours (round to nearest, ties to even), every dtype x op kernel
 * against a reference computed in a wider type, AVG, and in-place /
 * out-of-place combinations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "coll_reduce.h"

#define TIDE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_half_roundtrip(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = coll_half_to_float((uint16_t)h);
        uint16_t back = coll_float_to_half(f);
        if (isnan(f))
            assert_true(isnan(coll_half_to_float(back)));
        else if (back != h)
            fail_msg("half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
        f = coll_bf16_to_float((uint16_t)h);
        back = coll_float_to_bf16(f);
        if (isnan(f))
            assert_true(isnan(coll_bf16_to_float(back)));
        else if (back != h)
            fail_msg("bf16 0x%04x -> %g -> 0x%04x", h, (double)f, back);
    }
    assert_float_equal(coll_half_to_float(0x3c00), 1.0, 0);
    assert_float_equal(coll_half_to_float(0x7bff), 65504.0, 0);
    assert_float_equal(coll_half_to_float(0x0001), 5.960464477539063e-8, 1e-20);
    assert_float_equal(coll_bf16_to_float(0x3f80), 1.0, 0);
}

/* The conversion must pick the nearest representable value, the even one
 * on a tie: check against both neighbours, for many floats. */
static void check_nearest(float f, uint16_t h, float (*to_f)(uint16_t), const char *what)
{
    if (isnan(f)) {
        assert_true(isnan(to_f(h)));
        return;
    }
    float got = to_f(h);
    if (isinf(got) && !isinf(f))
        return; /* overflow to inf is checked below */
    double err = fabs((double)got - (double)f);
    for (int d = -1; d <= 1; d += 2) {
        uint16_t n = (uint16_t)(h + d);
        if ((n & 0x7fff) == 0x7fff || ((h & 0x7fff) == 0 && d < 0))
            continue;
        float other = to_f(n);
        if (isnan(other) || isinf(other) || signbit(other) != signbit(got))
            continue;
        double e2 = fabs((double)other - (double)f);
        if (e2 < err || (e2 == err && (h & 1)))
            fail_msg("%s(%.9g) = 0x%04x (%.9g), but 0x%04x (%.9g) is %s", what, (double)f, h,
                     (double)got, n, (double)other, e2 < err ? "nearer" : "as near and even");
    }
}

static void test_half_rounding(void **state)
{
    (void)state;
    for (int i = 0; i < 2000000; i++) {
        float f = bits_f((uint32_t)rnd());
        if (fabsf(f) < 65504.0f || isnan(f))
            check_nearest(f, coll_float_to_half(f), coll_half_to_float, "half");
        else if (fabsf(f) >= 65520.0f)
            assert_true(isinf(coll_half_to_float(coll_float_to_half(f))));
        float g = (float)((int64_t)(rnd() % 200000) - 100000) / 1024.0f; /* dense in range */
        check_nearest(g, coll_float_to_half(g), coll_half_to_float, "half");
        check_nearest(f, coll_float_to_bf16(f), coll_bf16_to_float, "bf16");
    }
    /* exact ties */
    assert_int_equal(coll_float_to_half(1.0f + 1.0f / 2048), 0x3c00); /* to even: down */
    assert_int_equal(coll_float_to_half(1.0f + 3.0f / 2048), 0x3c02); /* to even: up */
    assert_int_equal(coll_float_to_bf16(bits_f(0x3f808000)), 0x3f80);
    assert_int_equal(coll_float_to_bf16(bits_f(0x3f818000)), 0x3f82);
    assert_int_equal(coll_float_to_half(65519.0f), 0x7bff);
    assert_int_equal(coll_float_to_half(65520.0f), 0x7c00);
}

/* Reference for one element, in a wide type with the library's rules. */
static void ref_op(tide_dtype_t dt, tide_redop_t op, const void *a, const void *b, void *out)
{
#define INT_REF(T, U)                                                                              \
    do {                                                                                           \
        T ix = *(const T *)a, iy = *(const T *)b, ir;                                              \
        switch (op) {                                                                              \
        case TIDE_SUM:                                                                             \
        case TIDE_AVG:                                                                             \
            ir = (T)((U)ix + (U)iy);                                                               \
            break;                                                                                 \
        case TIDE_PROD:                                                                            \
            ir = (T)((U)ix * (U)iy);                                                               \
            break;                                                                                 \
        case TIDE_MIN:                                                                             \
            ir = ix < iy ? ix : iy;                                                                \
            break;                                                                                 \
        default:                                                                                   \
            ir = ix > iy ? ix : iy;                                                                \
        }                                                                                          \
        *(T *)out = ir;                                                                            \
    } while (0)
    double x = 0, y = 0, r;
    switch (dt) {
    case TIDE_INT8:
        INT_REF(int8_t, uint8_t);
        return;
    case TIDE_UINT8:
        INT_REF(uint8_t, uint8_t);
        return;
    case TIDE_INT32:
        INT_REF(int32_t, uint32_t);
        return;
    case TIDE_UINT32:
        INT_REF(uint32_t, uint32_t);
        return;
    case TIDE_INT64:
        INT_REF(int64_t, uint64_t);
        return;
    case TIDE_UINT64:
        INT_REF(uint64_t, uint64_t);
        return;
    case TIDE_FLOAT16:
        x = coll_half_to_float(*(const uint16_t *)a);
        y = coll_half_to_float(*(const uint16_t *)b);
        break;
    case TIDE_BFLOAT16:
        x = coll_bf16_to_float(*(const uint16_t *)a);
        y = coll_bf16_to_float(*(const uint16_t *)b);
        break;
    case TIDE_FLOAT32:
        x = *(const float *)a;
        y = *(const float *)b;
        break;
    default:
        x = *(const double *)a;
        y = *(const double *)b;
    }
    r = op == TIDE_PROD  ? x * y
        : op == TIDE_MIN ? (y < x ? y : x)
        : op == TIDE_MAX ? (y > x ? y : x)
                         : x + y;
    if (dt == TIDE_FLOAT16)
        *(uint16_t *)out = coll_float_to_half((float)r); /* product of halves is exact in float */
    else if (dt == TIDE_BFLOAT16)
        *(uint16_t *)out = coll_float_to_bf16((float)r);
    else if (dt == TIDE_FLOAT32)
        *(float *)out = (float)r; /* one operation: float result = rounded exact result */
    else
        *(double *)out = r;
}

static void fill_value(tide_dtype_t dt, void *p)
{
    uint64_t v = rnd();
    switch (dt) {
    case TIDE_FLOAT16:
        *(uint16_t *)p = coll_float_to_half((float)((int)(v % 2001) - 1000) / 8.0f);
        break;
    case TIDE_BFLOAT16:
        *(uint16_t *)p = coll_float_to_bf16((float)((int)(v % 2001) - 1000) / 8.0f);
        break;
    case TIDE_FLOAT32:
        *(float *)p = (float)((int64_t)(v % 2000001) - 1000000) / 1024.0f;
        break;
    case TIDE_FLOAT64:
        *(double *)p = (double)((int64_t)(v % 2000001) - 1000000) / 1024.0;
        break;
    default:
        memcpy(p, &v, tide_dtype_size(dt));
    }
}

/* Elementwise equal, any NaN matching any NaN (payloads are not part of
 * the contract). */
static bool same(tide_dtype_t dt, const void *x, const void *y)
{
    size_t es = tide_dtype_size(dt);
    if (memcmp(x, y, es) == 0)
        return true;
    switch (dt) {
    case TIDE_FLOAT16:
        return isnan(coll_half_to_float(*(const uint16_t *)x)) &&
               isnan(coll_half_to_float(*(const uint16_t *)y));
    case TIDE_BFLOAT16:
        return isnan(coll_bf16_to_float(*(const uint16_t *)x)) &&
               isnan(coll_bf16_to_float(*(const uint16_t *)y));
    case TIDE_FLOAT32:
        return isnan(*(const float *)x) && isnan(*(const float *)y);
    case TIDE_FLOAT64:
        return isnan(*(const double *)x) && isnan(*(const double *)y);
    default:
        return false;
    }
}

/* Run one kernel set's in-place (both operand orders) and three-operand
 * forms over a and b (n elements) and compare every element with the
 * reference. */
static void check_set(const coll_kernels_t *k, tide_dtype_t dt, tide_redop_t op,
                      const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t es = tide_dtype_size(dt);
    unsigned char *want = malloc(n * es), *acc = malloc(n * es), *dst = malloc(n * es),
                  *swapped = malloc(n * es);
    assert_non_null(swapped);
    assert_non_null(want);
    assert_non_null(acc);
    assert_non_null(dst);
    for (size_t i = 0; i < n; i++)
        ref_op(dt, op, a + i * es, b + i * es, want + i * es);
    memcpy(acc, a, n * es);
    k->fn2[dt][op](acc, b, n);
    memset(dst, 0xa5, n * es);
    k->fn3[dt][op](dst, a, b, n);
    memcpy(swapped, b, n * es);
    k->fn2r[dt][op](swapped, a, n); /* b = a op b */
    for (size_t i = 0; i < n; i++) {
        if (!same(dt, swapped + i * es, want + i * es))
            fail_msg("%s %s %s in place, swapped: element %zu differs", k->isa, coll_dtype_name(dt),
                     coll_redop_name(op), i);
        if (!same(dt, acc + i * es, want + i * es))
            fail_msg("%s %s %s in place: element %zu differs", k->isa, coll_dtype_name(dt),
                     coll_redop_name(op), i);
        if (!same(dt, dst + i * es, want + i * es))
            fail_msg("%s %s %s three-operand: element %zu differs", k->isa, coll_dtype_name(dt),
                     coll_redop_name(op), i);
    }
    free(want);
    free(acc);
    free(dst);
    free(swapped);
}

/* Where the order of the operands shows (min and max of a NaN, or of
 * zeros of both signs), every form keeps it: a op b in place, swapped and
 * three-operand alike. */
static void check_order(const coll_kernels_t *k, tide_dtype_t dt)
{
    enum { N = 4 };
    const double av[N] = {0.0, -0.0, NAN, 1.0}, bv[N] = {-0.0, 0.0, 1.0, NAN};
    unsigned char a[N * 8], b[N * 8];
    for (int i = 0; i < N; i++) {
        if (dt == TIDE_FLOAT16) {
            ((uint16_t *)a)[i] = coll_float_to_half((float)av[i]);
            ((uint16_t *)b)[i] = coll_float_to_half((float)bv[i]);
        } else if (dt == TIDE_BFLOAT16) {
            ((uint16_t *)a)[i] = coll_float_to_bf16((float)av[i]);
            ((uint16_t *)b)[i] = coll_float_to_bf16((float)bv[i]);
        } else if (dt == TIDE_FLOAT32) {
            ((float *)a)[i] = (float)av[i];
            ((float *)b)[i] = (float)bv[i];
        } else {
            ((double *)a)[i] = av[i];
            ((double *)b)[i] = bv[i];
        }
    }
    check_set(k, dt, TIDE_MIN, a, b, N);
    check_set(k, dt, TIDE_MAX, a, b, N);
}

/* Every kernel of every set this CPU runs, against the reference. */
static void test_kernels(void **state)
{
    (void)state;
    enum { N = 1037 }; /* odd: exercises the scalar tails */
    int sets = 0;
    for (int isa = 0; isa < COLL_ISA_COUNT; isa++) {
        const coll_kernels_t *k = coll_kernels((coll_isa_t)isa);
        if (!k)
            continue;
        sets++;
        for (int dt = 0; dt < TIDE_DTYPE_COUNT; dt++) {
            size_t es = tide_dtype_size((tide_dtype_t)dt);
            unsigned char *a = malloc(N * es), *b = malloc(N * es);
            for (int op = 0; op < TIDE_REDOP_COUNT; op++) {
                for (size_t i = 0; i < N; i++) {
                    fill_value((tide_dtype_t)dt, a + i * es);
                    fill_value((tide_dtype_t)dt, b + i * es);
                }
                check_set(k, (tide_dtype_t)dt, (tide_redop_t)op, a, b, N);
            }
            if (dt == TIDE_FLOAT16 || dt == TIDE_BFLOAT16 || dt == TIDE_FLOAT32 ||
                dt == TIDE_FLOAT64)
                check_order(k, (tide_dtype_t)dt);
            free(a);
            free(b);
        }
    }
    print_message("kernel sets checked: %d (baseline always)\n", sets);
    assert_non_null(coll_kernels(COLL_ISA_BASELINE));
    assert_null(coll_kernels(COLL_ISA_COUNT));
    assert_null(coll_reduce_fn(TIDE_DTYPE_COUNT, TIDE_SUM));
    assert_null(coll_reduce_fn(TIDE_FLOAT32, TIDE_REDOP_COUNT));
    assert_int_equal(tide_dtype_size(TIDE_DTYPE_COUNT), 0);
    assert_int_equal(tide_dtype_size(TIDE_BFLOAT16), 2);
}

/* fp16 and bf16: every one of the 65536 values (zeros, subnormals, inf,
 * NaN, the largest finite) against partners that make sums and products
 * overflow, underflow to subnormals, cancel and tie, in every kernel set:
 * the vector paths (F16C conversions in the wider sets) must give what the
 * reference gives. */
static void test_half_kernels_exhaustive(void **state)
{
    (void)state;
    enum { N = 65536 };
    static const uint16_t partners[] = {0x0000, 0x8000, 0x0001, 0x83ff, 0x3c00, 0xbc00, 0x7bff,
                                        0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x0400, 0x3555, 0x1400,
                                        0x3f80, 0x7f7f, 0x0080, 0x8001, 0x7fc0, 0x4b80};
    uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < N; i++)
        a[i] = (uint16_t)i;
    for (int isa = 0; isa < COLL_ISA_COUNT; isa++) {
        const coll_kernels_t *k = coll_kernels((coll_isa_t)isa);
        if (!k)
            continue;
        for (size_t p = 0; p <= TIDE_ARRAY_LEN(partners); p++) {
            for (size_t i = 0; i < N; i++) /* the last round: random partners */
                b[i] = p < TIDE_ARRAY_LEN(partners) ? partners[p] : (uint16_t)rnd();
            for (int op = 0; op < TIDE_REDOP_COUNT; op++) {
                check_set(k, TIDE_FLOAT16, (tide_redop_t)op, (const unsigned char *)a,
                          (const unsigned char *)b, N);
                check_set(k, TIDE_BFLOAT16, (tide_redop_t)op, (const unsigned char *)a,
                          (const unsigned char *)b, N);
            }
        }
    }
    free(a);
    free(b);
}

static void test_reduce3_and_avg(void **state)
{
    (void)state;
    int32_t a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, -50}, d[5];
    coll_reduce3(d, a, b, 5, TIDE_INT32, TIDE_SUM);
    assert_int_equal(d[4], -45);
    coll_reduce3(b, a, b, 5, TIDE_INT32, TIDE_MAX); /* dst == b */
    assert_int_equal(b[0], 10);
    assert_int_equal(b[4], 5);
    coll_reduce3(a, a, b, 5, TIDE_INT32, TIDE_MIN); /* dst == a */
    assert_int_equal(a[4], 5);
    int32_t s[3] = {7, -7, 9};
    coll_reduce_finish_avg(s, 3, TIDE_INT32, 2);
    assert_int_equal(s[0], 3);
    assert_int_equal(s[1], -3);
    float f[2] = {3.0f, -1.0f};
    coll_reduce_finish_avg(f, 2, TIDE_FLOAT32, 4);
    assert_float_equal(f[0], 0.75, 0);
    uint16_t h[1] = {coll_float_to_half(3.0f)};
    coll_reduce_finish_avg(h, 1, TIDE_FLOAT16, 2);
    assert_float_equal(coll_half_to_float(h[0]), 1.5, 0);
}

/* TIDE_SIMD picks the set coll_reduce_fn and coll_reduce3 use. */
static void test_setup(void **state)
{
    (void)state;
    setenv("TIDE_SIMD", "baseline", 1);
    assert_int_equal(coll_reduce_setup(), TIDE_SUCCESS);
    assert_string_equal(coll_reduce_isa(), "baseline");
    assert_ptr_equal(coll_reduce_fn(TIDE_FLOAT16, TIDE_SUM),
                     coll_kernels(COLL_ISA_BASELINE)->fn2[TIDE_FLOAT16][TIDE_SUM]);
    setenv("TIDE_SIMD", "sse9", 1);
    assert_int_equal(coll_reduce_setup(), TIDE_ERR_INVALID);
    assert_string_equal(coll_reduce_isa(), "baseline"); /* unchanged */
    unsetenv("TIDE_SIMD");
    assert_int_equal(coll_reduce_setup(), TIDE_SUCCESS); /* auto */
    const coll_kernels_t *wide = NULL;
    for (int isa = COLL_ISA_COUNT - 1; isa > COLL_ISA_BASELINE && !wide; isa--)
        wide = coll_kernels((coll_isa_t)isa);
    const coll_kernels_t *base = coll_kernels(COLL_ISA_BASELINE);
    /* the native types from the baseline set, the half types from the widest */
    assert_ptr_equal(coll_reduce_fn(TIDE_FLOAT32, TIDE_SUM), base->fn2[TIDE_FLOAT32][TIDE_SUM]);
    assert_ptr_equal(coll_reduce_fn(TIDE_BFLOAT16, TIDE_MAX),
                     (wide ? wide : base)->fn2[TIDE_BFLOAT16][TIDE_MAX]);
    print_message("auto: %s\n", coll_reduce_isa());
    /* coll_reduce3 through the chosen set, three-operand and in place */
    enum { N = 999 };
    uint16_t a[N], b[N], d[N], want[N];
    for (size_t i = 0; i < N; i++) {
        fill_value(TIDE_FLOAT16, &a[i]);
        fill_value(TIDE_FLOAT16, &b[i]);
        ref_op(TIDE_FLOAT16, TIDE_SUM, &a[i], &b[i], &want[i]);
    }
    coll_reduce3(d, a, b, N, TIDE_FLOAT16, TIDE_SUM);
    coll_reduce3(a, a, b, N, TIDE_FLOAT16, TIDE_SUM);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(d[i], want[i]);
        assert_int_equal(a[i], want[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_roundtrip),  cmocka_unit_test(test_half_rounding),
        cmocka_unit_test(test_kernels),         cmocka_unit_test(test_half_kernels_exhaustive),
        cmocka_unit_test(test_reduce3_and_avg), cmocka_unit_test(test_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
