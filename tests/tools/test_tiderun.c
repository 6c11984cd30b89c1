/*
 * tiderun end to end: N ranks rendezvous and check each other's data; a
 * failing rank stops the job quickly with its status; --timeout ends a
 * hung job naming the ranks still running; --keep-going, --label, -x,
 * signal forwarding, SIGKILL after the grace period; binding ranks to
 * CPUs; usage errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>
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

/* Each rank's allowed CPUs as /proc says (the text after the tab), from
 * output labelled by --label. */
static void allowed_lists(int n, char lists[][64])
{
    for (int r = 0; r < n; r++) {
        char key[48];
        snprintf(key, sizeof(key), "[%d] Cpus_allowed_list:\t", r);
        const char *p = strstr(out, key);
        assert_non_null(p);
        p += strlen(key);
        size_t len = strcspn(p, "\n");
        assert_true(len < 64);
        memcpy(lists[r], p, len);
        lists[r][len] = '\0';
    }
}

static void test_bind(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    int ncpu = CPU_COUNT(&set);
    if (ncpu < 2)
        skip();
    char ours[64], lists[3][64];
    snprintf(out, sizeof(out), "%s", "");
    double t;
    char *self[] = {"/bin/sh", "-c", "sed -n 's/^Cpus_allowed_list:\t//p' /proc/self/status", NULL};
    assert_int_equal(WEXITSTATUS(run(&t, self)), 0);
    snprintf(ours, sizeof(ours), "%.*s", (int)strcspn(out, "\n"), out);
    const char *show = "grep Cpus_allowed_list /proc/self/status";

    /* two ranks fit: one CPU each, different ones */
    char *fit[] = {TIDERUN, "-n", "2", "-l", "/bin/sh", "-c", (char *)show, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, fit)), 0);
    allowed_lists(2, lists);
    for (int r = 0; r < 2; r++) {
        char *end;
        long cpu = strtol(lists[r], &end, 10);
        assert_true(*end == '\0' && cpu >= 0 && CPU_ISSET((int)cpu, &set));
    }
    assert_string_not_equal(lists[0], lists[1]);

    /* --bind none, and ranks the CPUs cannot share evenly: what tiderun had */
    char *none[] = {TIDERUN, "-n",      "2",  "-l",         "--bind",
                    "none",  "/bin/sh", "-c", (char *)show, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, none)), 0);
    allowed_lists(2, lists);
    assert_string_equal(lists[0], ours);
    assert_string_equal(lists[1], ours);
    char np[16];
    snprintf(np, sizeof(np), "%d", ncpu + 1);
    char *over[] = {TIDERUN, "-n", np, "-l", "/bin/sh", "-c", (char *)show, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, over)), 0);
    allowed_lists(2, lists);
    assert_string_equal(lists[0], ours);
    assert_string_equal(lists[1], ours);

    /* --bind core with more ranks than CPUs: round robin; and by default
     * where every CPU gets the same number of ranks */
    char *core[] = {TIDERUN, "-n", np, "-l", "--bind", "core", "/bin/sh", "-c", (char *)show, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, core)), 0);
    char(*all)[64] = calloc((size_t)ncpu * 2, 64);
    assert_non_null(all);
    allowed_lists(ncpu + 1, all);
    assert_string_equal(all[0], all[ncpu]);
    assert_string_not_equal(all[0], all[1]);
    snprintf(np, sizeof(np), "%d", ncpu * 2);
    char *even[] = {TIDERUN, "-n", np, "-l", "/bin/sh", "-c", (char *)show, NULL};
    assert_int_equal(WEXITSTATUS(run(&t, even)), 0);
    allowed_lists(ncpu * 2, all);
    for (int r = 0; r < ncpu; r++) {
        assert_string_equal(all[r], all[r + ncpu]);
        assert_true(strchr(all[r], '-') == NULL && strchr(all[r], ',') == NULL);
    }
    free(all);

    char *bad[] = {TIDERUN, "-n", "2", "--bind", "socket", "/bin/true", NULL};
    assert_int_equal(WEXITSTATUS(run(&t, bad)), 2);
    assert_non_null(strstr(out, "--bind wants core, none or auto"));
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
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
