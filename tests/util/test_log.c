/* Logging: prefix, level and subsystem filters, callback, file sink with
 * %h/%p, errno preserved, bad settings reported. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "util_log.h"

static void reset_env(void)
{
    unsetenv("TIDE_LOG_LEVEL");
    unsetenv("TIDE_LOG_SUBSYS");
    unsetenv("TIDE_LOG_FILE");
    tide_log_reinit();
}

static int setup(void **state)
{
    (void)state;
    reset_env();
    test_log_capture_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_log_capture_stop();
    tide_log_set_rank(-1);
    reset_env();
    return 0;
}

static void test_prefix(void **state)
{
    (void)state;
    char host[64] = "", expect[160];
    gethostname(host, sizeof(host) - 1);
    tide_log_set_rank(7);
    tide_warn("hello %d", 42);
    snprintf(expect, sizeof(expect), "%s:%d rank 7 [boot] warn: hello 42", host, (int)getpid());
    assert_true(test_log_contains(expect));
    tide_log_set_rank(-1);
    test_log_clear();
    tide_error("no rank yet");
    assert_true(test_log_contains("rank - [boot] error: no rank yet"));
}

static void test_thread_rank_wins(void **state)
{
    (void)state;
    tide_log_set_rank(1);
    tide_log_set_thread_rank(5);
    tide_warn("mine");
    assert_true(test_log_contains("rank 5 [boot] warn: mine"));
    tide_log_set_thread_rank(-1);
    tide_log_set_rank(-1);
}

static void test_level_filter(void **state)
{
    (void)state;
    tide_info("hidden at warn");
    tide_debug("hidden at warn");
    assert_false(test_log_contains("hidden at warn"));
    setenv("TIDE_LOG_LEVEL", "debug", 1);
    tide_log_reinit();
    tide_debug("shown at debug");
    tide_trace("trace hidden at debug");
    assert_true(test_log_contains("debug: shown at debug"));
    assert_false(test_log_contains("trace hidden"));
    setenv("TIDE_LOG_LEVEL", "error", 1);
    tide_log_reinit();
    tide_warn("warn hidden at error");
    tide_error("error shown");
    assert_false(test_log_contains("warn hidden"));
    assert_true(test_log_contains("error shown"));
}

static void test_subsys_filter(void **state)
{
    (void)state;
    setenv("TIDE_LOG_LEVEL", "info", 1);
    setenv("TIDE_LOG_SUBSYS", "p2p,coll", 1);
    tide_log_reinit();
    tide_info("boot info filtered");
    tide_error("boot error always");
    assert_false(test_log_contains("boot info filtered"));
    assert_true(test_log_contains("boot error always"));
    assert_true(tide_log_enabled(TIDE_LOG_INFO, TIDE_SUBSYS_P2P));
    setenv("TIDE_LOG_SUBSYS", "^boot", 1);
    tide_log_reinit();
    assert_false(tide_log_enabled(TIDE_LOG_INFO, TIDE_SUBSYS_BOOT));
    assert_true(tide_log_enabled(TIDE_LOG_INFO, TIDE_SUBSYS_COLL));
    setenv("TIDE_LOG_SUBSYS", "all", 1);
    tide_log_reinit();
    assert_true(tide_log_enabled(TIDE_LOG_INFO, TIDE_SUBSYS_BOOT));
}

static void test_errno_preserved(void **state)
{
    (void)state;
    errno = ECONNREFUSED;
    tide_error("connect: %m");
    assert_int_equal(errno, ECONNREFUSED);
    assert_true(test_log_contains("connect: Connection refused"));
}

static void test_bad_level_reported(void **state)
{
    (void)state;
    setenv("TIDE_LOG_LEVEL", "chatty", 1);
    tide_log_reinit();
    assert_true(test_log_contains("TIDE_LOG_LEVEL='chatty'"));
    tide_info("info still hidden");
    tide_warn("warn still shown");
    assert_false(test_log_contains("info still hidden"));
    assert_true(test_log_contains("warn still shown"));
}

static void test_file_sink(void **state)
{
    (void)state;
    char path[256], line[512], expect[64];
    test_log_capture_stop(); /* the callback would take precedence */
    setenv("TIDE_LOG_FILE", "/tmp/tide_test_log.%p.txt", 1);
    tide_log_reinit();
    tide_error("to the file");
    snprintf(path, sizeof(path), "/tmp/tide_test_log.%d.txt", (int)getpid());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
    snprintf(expect, sizeof(expect), ":%d rank - [boot] error: to the file", (int)getpid());
    assert_non_null(strstr(line, expect));
    unsetenv("TIDE_LOG_FILE");
    tide_log_reinit();
    test_log_capture_start();
}

static void test_long_message_truncated(void **state)
{
    (void)state;
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tide_error("%s", big);
    assert_true(test_log_contains("error: xxxx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_rank_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subsys_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_level_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
