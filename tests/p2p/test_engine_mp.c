/*
 * The engine across processes, through tiderun: shared memory (memfd
 * mapped from another process, CMA) and TCP, 2 and 4 ranks, data checked
 * element by element; and a peer killed mid-batch gives an error, not a
 * hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "test_util.h"

static char out[1 << 16];

static void run_data(const char *np, const char *transports)
{
    char env[64];
    snprintf(env, sizeof(env), "TIDE_TRANSPORTS=%s", transports);
    char *argv[] = {TIDERUN_PATH, "-n", (char *)np, "-t", "60", MP_ENGINE_PATH, "data", NULL};
    char *envp[] = {env, NULL};
    double t;
    int st = test_run(argv, envp, 90000, out, sizeof(out), &t);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    int n = atoi(np), ok = 0;
    for (char *p = out; (p = strstr(p, ": 0 wrong bytes")); p++)
        ok++;
    assert_int_equal(ok, n);
}

static void test_shm_2(void **state)
{
    (void)state;
    run_data("2", "shm");
}

static void test_tcp_2(void **state)
{
    (void)state;
    run_data("2", "tcp");
}

static void test_shm_4(void **state)
{
    (void)state;
    run_data("4", "shm");
}

static void test_tcp_4(void **state)
{
    (void)state;
    run_data("4", "tcp");
}

static void test_both_3(void **state)
{
    (void)state;
    run_data("3", "shm,tcp");
}

static void test_peer_killed(void **state)
{
    (void)state;
    char *argv[] = {TIDERUN_PATH, "-n", "2", "-k", "-t", "60", MP_ENGINE_PATH, "kill", NULL};
    char *envp[] = {"TIDE_TRANSPORTS=tcp", NULL};
    double t;
    int st = test_run(argv, envp, 90000, out, sizeof(out), &t);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "rank 0: peer failure reported after"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shm_2),  cmocka_unit_test(test_tcp_2),
        cmocka_unit_test(test_shm_4),  cmocka_unit_test(test_tcp_4),
        cmocka_unit_test(test_both_3), cmocka_unit_test(test_peer_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
