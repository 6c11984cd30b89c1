/*
 * tiderun end to end: N ranks rendezvous and check each other's data; a
 * failing rank stops the job quickly with its status; --timeout ends a
 * hung job naming the ranks still running; --keep-going, --label, -x,
 * signal forwarding, SIGKILL after the grace period; usage errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static char out[1 << 16];

static int run(double *elapsed, char *const argv[])
{
    return test_run(argv, NULL, 30000, out, sizeof(out), elapsed);
}

#define TIDERUN TIDERUN_PATH
#define PROG    MP_PROG_PATH

static void test_four_ranks_ok(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "4", "--label", PROG, "ok", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (int r = 0; r < 4; r++) {
        char line[64];
        snprintf(line, sizeof(line), "[%d] rank %d: verified 4 peers\n", r, r);
        assert_non_null(strstr(out, line));
    }
}

static void test_many_ranks_ok(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "16", PROG, "ok", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    int lines = 0;
    for (char *p = out; (p = strstr(p, "verified 16 peers")); p++)
        lines++;
    assert_int_equal(lines, 16);
}

static void test_failing_rank_stops_job(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "4", PROG, "fail", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(t < 2.0);
    assert_non_null(strstr(out, "tiderun: rank 1 (pid "));
    assert_non_null(strstr(out, "exited with status 1"));
}

static void test_timeout_names_ranks(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "2", "--timeout", "1", PROG, "hang", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 124);
    assert_true(t >= 0.9 && t < 3.5);
    assert_non_null(strstr(out, "tiderun: timeout after 1 s; ranks still running: 0 1"));
}

static void test_kill_after_grace(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "2", "-t", "0.5", "-g", "0.5", PROG, "ignore-term", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 124);
    assert_true(t < 3.0);
    assert_non_null(strstr(out, "killing ranks that did not stop: 0 1"));
}

static void test_keep_going(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "3", "--keep-going", PROG, "keep", NULL};
    int st = run(&t, argv);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    assert_non_null(strstr(out, "rank 0: done"));
    assert_non_null(strstr(out, "rank 2: done"));
}

static void test_env_passed(void **state)
{
    (void)state;
    double t;
    char *argv[] = {TIDERUN, "-n", "2", "-l", "-x", "TIDE_TEST_VAR=hello", PROG, "env", NULL};
    int st = run(&t, argv);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "[0] TIDE_TEST_VAR=hello TIDE_RANK=0"));
    assert_non_null(strstr(out, "[1] TIDE_TEST_VAR=hello TIDE_RANK=1"));
}

static void test_signal_forwarded(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        execl(TIDERUN, TIDERUN, "-n", "2", PROG, "hang", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* wait until both ranks report they are hanging */
    char buf[4096];
    size_t len = 0;
    double t0 = test_now();
    while (test_now() - t0 < 10) {
        ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "rank 0: hanging") && strstr(buf, "rank 1: hanging"))
            break;
    }
    assert_non_null(strstr(buf, "rank 1: hanging"));
    t0 = test_now();
    kill(pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(fds[0]);
    assert_true(test_now() - t0 < 3.0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 128 + SIGTERM);
}

static void test_usage_errors(void **state)
{
    (void)state;
    double t;
    char *no_n[] = {TIDERUN, PROG, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, no_n)), 2);
    assert_non_null(strstr(out, "-n N is required"));
    char *zero[] = {TIDERUN, "-n", "0", PROG, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, zero)), 2);
    char *no_prog[] = {TIDERUN, "-n", "2", NULL};
    assert_int_equal(WEXITSTATUS(run(&t, no_prog)), 2);
    char *bad_x[] = {TIDERUN, "-n", "1", "-x", "NOEQUALS", PROG, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, bad_x)), 2);
    char *missing[] = {TIDERUN, "-n", "2", "/nonexistent/program", NULL};
    assert_int_equal(WEXITSTATUS(run(&t, missing)), 127);
    assert_non_null(strstr(out, "cannot start '/nonexistent/program' for rank 0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_ranks_ok),
        cmocka_unit_test(test_many_ranks_ok),
        cmocka_unit_test(test_failing_rank_stops_job),
        cmocka_unit_test(test_timeout_names_ranks),
        cmocka_unit_test(test_kill_after_grace),
        cmocka_unit_test(test_keep_going),
        cmocka_unit_test(test_env_passed),
        cmocka_unit_test(test_signal_forwarded),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
