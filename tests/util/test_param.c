/* Parameters: defaults, environment overrides, bad values refused with a
 * message, the generated docs/params.md kept in step with the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "util_param.h"

static int setup(void **state)
{
    (void)state;
    unsetenv("TIDE_BOOTSTRAP_TIMEOUT");
    unsetenv("TIDE_STORE_MAX_VALUE");
    unsetenv("TIDE_LOG_LEVEL");
    unsetenv("TIDE_STORE");
    test_log_capture_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_log_capture_stop();
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    int64_t v = -1;
    char buf[64];
    assert_int_equal(tide_param_int(TIDE_PARAM_BOOTSTRAP_TIMEOUT, &v), TIDE_SUCCESS);
    assert_int_equal(v, 60000);
    assert_int_equal(tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &v), TIDE_SUCCESS);
    assert_int_equal(v, 1 << 20);
    assert_int_equal(tide_param_int(TIDE_PARAM_LOG_LEVEL, &v), TIDE_SUCCESS);
    assert_int_equal(v, 1); /* warn */
    assert_int_equal(tide_param_str(TIDE_PARAM_STORE, buf, sizeof(buf)), TIDE_SUCCESS);
    assert_string_equal(buf, "");
    assert_false(tide_param_is_set(TIDE_PARAM_STORE));
}

static void test_env_override(void **state)
{
    (void)state;
    int64_t v;
    char buf[64];
    setenv("TIDE_BOOTSTRAP_TIMEOUT", "1234", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_BOOTSTRAP_TIMEOUT, &v), TIDE_SUCCESS);
    assert_int_equal(v, 1234);
    setenv("TIDE_STORE_MAX_VALUE", "4K", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &v), TIDE_SUCCESS);
    assert_int_equal(v, 4096);
    setenv("TIDE_STORE_MAX_VALUE", "2MiB", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &v), TIDE_SUCCESS);
    assert_int_equal(v, 2 << 20);
    setenv("TIDE_LOG_LEVEL", "DEBUG", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_LOG_LEVEL, &v), TIDE_SUCCESS);
    assert_int_equal(v, 3);
    setenv("TIDE_STORE", "10.0.0.1:29500", 1);
    assert_true(tide_param_is_set(TIDE_PARAM_STORE));
    assert_int_equal(tide_param_str(TIDE_PARAM_STORE, buf, sizeof(buf)), TIDE_SUCCESS);
    assert_string_equal(buf, "10.0.0.1:29500");
    unsetenv("TIDE_BOOTSTRAP_TIMEOUT");
    unsetenv("TIDE_STORE_MAX_VALUE");
    unsetenv("TIDE_LOG_LEVEL");
    unsetenv("TIDE_STORE");
}

static void expect_refused(const char *var, const char *value, tide_param_id_t id,
                           const char *message)
{
    int64_t v = 777;
    test_log_clear();
    setenv(var, value, 1);
    assert_int_equal(tide_param_int(id, &v), TIDE_ERR_INVALID);
    assert_int_equal(v, 777); /* output untouched on error */
    assert_true(test_log_contains(var));
    assert_true(test_log_contains(message));
    unsetenv(var);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_refused("TIDE_BOOTSTRAP_TIMEOUT", "soon", TIDE_PARAM_BOOTSTRAP_TIMEOUT,
                   "not a valid int");
    expect_refused("TIDE_BOOTSTRAP_TIMEOUT", "12x", TIDE_PARAM_BOOTSTRAP_TIMEOUT,
                   "not a valid int");
    expect_refused("TIDE_BOOTSTRAP_TIMEOUT", "0", TIDE_PARAM_BOOTSTRAP_TIMEOUT, "out of range");
    expect_refused("TIDE_BOOTSTRAP_TIMEOUT", "99999999999999999999", TIDE_PARAM_BOOTSTRAP_TIMEOUT,
                   "not a valid int");
    expect_refused("TIDE_STORE_MAX_VALUE", "12Q", TIDE_PARAM_STORE_MAX_VALUE, "not a valid size");
    expect_refused("TIDE_STORE_MAX_VALUE", "-4K", TIDE_PARAM_STORE_MAX_VALUE, "not a valid size");
    expect_refused("TIDE_STORE_MAX_VALUE", "1G", TIDE_PARAM_STORE_MAX_VALUE, "out of range");
    expect_refused("TIDE_LOG_LEVEL", "loud", TIDE_PARAM_LOG_LEVEL, "one of error|warn");
    expect_refused("TIDE_RANK", "-5", TIDE_PARAM_RANK, "out of range");
}

static void test_parse_types(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(tide_param_parse(TIDE_PARAM_STORE_MAX_BYTES, "3G", &v), TIDE_SUCCESS);
    assert_int_equal(v, 3LL << 30);
    assert_int_equal(tide_param_parse(TIDE_PARAM_STORE_MAX_BYTES, "1048576", &v), TIDE_SUCCESS);
    assert_int_equal(v, 1 << 20);
    assert_int_equal(tide_param_parse(TIDE_PARAM_LOG_LEVEL, "trace", &v), TIDE_SUCCESS);
    assert_int_equal(v, 4);
    assert_int_equal(tide_param_parse(TIDE_PARAM_LOG_LEVEL, "", &v), TIDE_ERR_INVALID);
    assert_int_equal(tide_param_parse(TIDE_PARAM_STORE, "x", &v), TIDE_ERR_INVALID);
    assert_int_equal(tide_param_parse((tide_param_id_t)TIDE_PARAM_COUNT, "1", &v),
                     TIDE_ERR_INVALID);
    assert_int_equal(tide_param_int(TIDE_PARAM_STORE, &v), TIDE_ERR_INVALID);
}

static void test_string_too_long(void **state)
{
    (void)state;
    char small[8];
    setenv("TIDE_STORE", "a-very-long-host-name:1234", 1);
    assert_int_equal(tide_param_str(TIDE_PARAM_STORE, small, sizeof(small)), TIDE_ERR_INVALID);
    assert_true(test_log_contains("TIDE_STORE is too long"));
    unsetenv("TIDE_STORE");
}

static void test_table_complete(void **state)
{
    (void)state;
    for (int i = 0; i < TIDE_PARAM_COUNT; i++) {
        const tide_param_desc_t *d = tide_param_desc((tide_param_id_t)i);
        int64_t v;
        assert_non_null(d);
        assert_non_null(d->name);
        assert_true(strlen(d->help) > 10);
        if (d->type != TIDE_PARAM_TYPE_STR) /* every default parses */
            assert_int_equal(tide_param_parse((tide_param_id_t)i, d->def, &v), TIDE_SUCCESS);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(d->name, tide_param_desc((tide_param_id_t)j)->name);
    }
    assert_null(tide_param_desc((tide_param_id_t)-1));
}

/* docs/params.md is generated from the table; it must not drift. */
static void test_docs_in_step(void **state)
{
    (void)state;
    char *gen = NULL, *doc;
    size_t gen_len = 0;
    FILE *m = open_memstream(&gen, &gen_len);
    tide_param_print(m, true);
    fclose(m);
    FILE *f = fopen(TIDE_SOURCE_DIR "/docs/params.md", "r");
    assert_non_null(f);
    doc = calloc(1, gen_len + 2);
    size_t n = fread(doc, 1, gen_len + 1, f);
    fclose(f);
    if (n != gen_len || memcmp(doc, gen, gen_len) != 0)
        fail_msg("docs/params.md is out of date: run `build/tide_info --params-md > "
                 "docs/params.md`");
    free(doc);
    free(gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_env_override),
        cmocka_unit_test(test_bad_values),      cmocka_unit_test(test_parse_types),
        cmocka_unit_test(test_string_too_long), cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_docs_in_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
