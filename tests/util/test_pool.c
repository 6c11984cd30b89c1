/* Object pools: reuse, growth, alignment, limits, leak report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "test_util.h"
#include "util_pool.h"

static void test_get_put_reuse(void **state)
{
    (void)state;
    tide_pool_t pool;
    assert_int_equal(tide_pool_init(&pool, "t", 24, 0, 4, 0), TIDE_SUCCESS);
    void *a = tide_pool_get(&pool);
    assert_non_null(a);
    memset(a, 0xab, 24);
    tide_pool_put(&pool, a);
    assert_ptr_equal(tide_pool_get(&pool), a); /* LIFO reuse: no new allocation */
    assert_int_equal(pool.allocated, 4);
    assert_int_equal(pool.in_use, 1);
    tide_pool_put(&pool, a);
    tide_pool_cleanup(&pool);
}

static void test_growth_distinct(void **state)
{
    (void)state;
    tide_pool_t pool;
    void *objs[100];
    assert_int_equal(tide_pool_init(&pool, "grow", 40, 0, 7, 0), TIDE_SUCCESS);
    for (int i = 0; i < 100; i++) {
        objs[i] = tide_pool_get(&pool);
        assert_non_null(objs[i]);
        memset(objs[i], i, 40); /* objects must not overlap */
    }
    for (int i = 0; i < 100; i++) {
        unsigned char *p = objs[i];
        for (int b = 0; b < 40; b++)
            assert_int_equal(p[b], (unsigned char)i);
    }
    assert_int_equal(pool.in_use, 100);
    assert_true(pool.allocated >= 100 && pool.allocated < 107);
    for (int i = 0; i < 100; i++)
        tide_pool_put(&pool, objs[i]);
    assert_int_equal(pool.in_use, 0);
    tide_pool_cleanup(&pool);
}

static void test_alignment(void **state)
{
    (void)state;
    tide_pool_t pool;
    assert_int_equal(tide_pool_init(&pool, "aligned", 10, 64, 5, 0), TIDE_SUCCESS);
    for (int i = 0; i < 12; i++) {
        void *p = tide_pool_get(&pool);
        assert_int_equal((uintptr_t)p % 64, 0);
    }
    tide_pool_cleanup(&pool); /* warns about the 12 not returned */
}

static void test_max(void **state)
{
    (void)state;
    tide_pool_t pool;
    void *objs[5];
    assert_int_equal(tide_pool_init(&pool, "capped", 8, 0, 2, 5), TIDE_SUCCESS);
    for (int i = 0; i < 5; i++)
        assert_non_null(objs[i] = tide_pool_get(&pool));
    assert_null(tide_pool_get(&pool));
    tide_pool_put(&pool, objs[3]);
    assert_ptr_equal(tide_pool_get(&pool), objs[3]);
    for (int i = 0; i < 5; i++)
        tide_pool_put(&pool, objs[i]);
    tide_pool_cleanup(&pool);
}

static void test_invalid_and_leak_report(void **state)
{
    (void)state;
    tide_pool_t pool;
    test_log_capture_start();
    assert_int_equal(tide_pool_init(NULL, "x", 8, 0, 1, 0), TIDE_ERR_INVALID);
    assert_int_equal(tide_pool_init(&pool, "x", 0, 0, 1, 0), TIDE_ERR_INVALID);
    assert_int_equal(tide_pool_init(&pool, "x", 8, 0, 0, 0), TIDE_ERR_INVALID);
    assert_int_equal(tide_pool_init(&pool, "x", 8, 48, 1, 0), TIDE_ERR_INVALID);
    assert_int_equal(tide_pool_init(&pool, "leaky", 8, 0, 4, 0), TIDE_SUCCESS);
    assert_non_null(tide_pool_get(&pool));
    tide_pool_cleanup(&pool);
    assert_true(test_log_contains("pool leaky: 1 objects still in use"));
    test_log_capture_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put_reuse),
        cmocka_unit_test(test_growth_distinct),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_invalid_and_leak_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
