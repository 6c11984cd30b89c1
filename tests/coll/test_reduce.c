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
#include <stdlib.h>
#include <string.h>
#include "coll_reduce.h"

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

static void test_kernels(void **state)
{
    (void)state;
    enum { N = 1037 }; /* odd: exercises the scalar tails */
    for (int dt = 0; dt < TIDE_DTYPE_COUNT; dt++) {
        size_t es = tide_dtype_size((tide_dtype_t)dt);
        unsigned char *a = malloc(N * es), *b = malloc(N * es), *want = malloc(N * es);
        unsigned char *acc = a; /* elements are aligned to their size, as C requires */
        for (int op = 0; op < TIDE_REDOP_COUNT; op++) {
            coll_reduce_fn_t fn = coll_reduce_fn((tide_dtype_t)dt, (tide_redop_t)op);
            assert_non_null(fn);
            for (size_t i = 0; i < N; i++) {
                fill_value((tide_dtype_t)dt, acc + i * es);
                fill_value((tide_dtype_t)dt, b + i * es);
                ref_op((tide_dtype_t)dt, (tide_redop_t)op, acc + i * es, b + i * es, want + i * es);
            }
            fn(acc, b, N);
            for (size_t i = 0; i < N; i++)
                if (memcmp(acc + i * es, want + i * es, es) != 0)
                    fail_msg("%s %s: element %zu differs", coll_dtype_name((tide_dtype_t)dt),
                             coll_redop_name((tide_redop_t)op), i);
        }
        free(a);
        free(b);
        free(want);
    }
    assert_null(coll_reduce_fn(TIDE_DTYPE_COUNT, TIDE_SUM));
    assert_null(coll_reduce_fn(TIDE_FLOAT32, TIDE_REDOP_COUNT));
    assert_int_equal(tide_dtype_size(TIDE_DTYPE_COUNT), 0);
    assert_int_equal(tide_dtype_size(TIDE_BFLOAT16), 2);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_roundtrip),
        cmocka_unit_test(test_half_rounding),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_reduce3_and_avg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
