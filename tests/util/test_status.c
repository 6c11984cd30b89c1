/* Status codes: classes, distinct names, unknown values; version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "tide.h"

static const tide_status_t all[] = {
#define X(name, value, text) name,
    TIDE_STATUS_LIST(X)
#undef X
};

static void test_classes(void **state)
{
    (void)state;
    assert_int_equal(TIDE_SUCCESS, 0);
    assert_true(TIDE_IN_PROGRESS > 0);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i] != TIDE_SUCCESS && all[i] != TIDE_IN_PROGRESS)
            assert_true(all[i] < 0);
}

static void test_names_distinct(void **state)
{
    (void)state;
    size_t n = sizeof(all) / sizeof(all[0]);
    assert_true(n >= 11);
    for (size_t i = 0; i < n; i++) {
        const char *s = tide_status_str(all[i]);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown status");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all[i], all[j]);
            assert_string_not_equal(s, tide_status_str(all[j]));
        }
    }
    assert_string_equal(tide_status_str(TIDE_ERR_TIMEOUT), "timed out");
    assert_string_equal(tide_status_str(TIDE_ERR_INVALID), "invalid argument");
}

static void test_unknown(void **state)
{
    (void)state;
    assert_string_equal(tide_status_str((tide_status_t)12345), "unknown status");
    assert_string_equal(tide_status_str((tide_status_t)-999), "unknown status");
}

static void test_version(void **state)
{
    (void)state;
    int major = -1, minor = -1, patch = -1;
    char expect[32];
    assert_int_equal(tide_version(&major, &minor, &patch), TIDE_SUCCESS);
    assert_int_equal(major, TIDE_VERSION_MAJOR);
    assert_int_equal(minor, TIDE_VERSION_MINOR);
    assert_int_equal(patch, TIDE_VERSION_PATCH);
    snprintf(expect, sizeof(expect), "%d.%d.%d", major, minor, patch);
    assert_string_equal(tide_version_string(), expect);
    assert_int_equal(tide_version(NULL, NULL, NULL), TIDE_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_names_distinct),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
