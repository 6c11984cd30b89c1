/*
 * Tide inside jobs launched by mpirun.openmpi, found through PMIx: the
 * collective matrix (quick) and split at np = 1, 2, 4, 7; a rank that
 * leaves before or after the rendezvous makes the others fail within the
 * timeout, naming it; a launcher without PMIx is refused with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "test_util.h"

static char out[1 << 17];

static int mpirun(const char *np, bool recovery, char *const prog[], char *env0, double *t)
{
    char *argv[16] = {
        "/usr/bin/timeout", "-k", "10", "200", "mpirun.openmpi", "--allow-run-as-root",
        "--oversubscribe"};
    int k = 7;
    if (recovery)
        argv[k++] = "--enable-recovery";
    argv[k++] = "-np";
    argv[k++] = (char *)np;
    for (int i = 0; prog[i]; i++)
        argv[k++] = prog[i];
    argv[k] = NULL;
    char *envp[] = {"TIDE_BOOTSTRAP_ADDR=127.0.0.1", env0, NULL};
    return test_run(argv, envp, 230000, out, sizeof(out), t);
}

static int count(const char *needle)
{
    int n = 0;
    for (char *p = out; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_matrix_and_split(void **state)
{
    (void)state;
    static const char *nps[] = {"1", "2", "4", "7"};
    for (int i = 0; i < 4; i++) {
        double t;
        char *coll[] = {MP_COLL_PATH, "quick", NULL};
        int st = mpirun(nps[i], false, coll, NULL, &t);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(count(", 0 wrong\n"), atoi(nps[i]));
        char *job[] = {MPI_JOB_PATH, "ok", NULL};
        st = mpirun(nps[i], false, job, NULL, &t);
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(count(": ok\n"), atoi(nps[i]));
    }
}

static void test_rank_leaves_before_rendezvous(void **state)
{
    (void)state;
    double t;
    char *job[] = {MPI_JOB_PATH, "exit-early", NULL};
    mpirun("3", true, job, "TIDE_BOOTSTRAP_TIMEOUT=5000", &t);
    assert_int_equal(count("tide_comm_init failed"), 2);
    assert_true(count("never reached the exchange: 1\n") >= 1);
    /* The ranks report within TIDE_BOOTSTRAP_TIMEOUT; mpirun itself may
     * then take up to ~30 s more to tear the job down (seen under load). */
    assert_true(t < 90);
}

static void test_rank_leaves_after_rendezvous(void **state)
{
    (void)state;
    double t;
    char *job[] = {MPI_JOB_PATH, "exit-later", NULL};
    mpirun("3", true, job, "TIDE_BOOTSTRAP_TIMEOUT=3000", &t);
    /* Both survivors fail. The one that hosts the store (rank 0) times
     * out; the other one either times out too, or loses the store first
     * when rank 0 gives up (an I/O error): both are reported, not hangs. */
    assert_int_equal(count("allreduce without rank 1: "), 2);
    assert_true(count("allreduce without rank 1: timed out") >= 1);
    assert_true(count("rank 1 did not set up its side") >= 1);
    assert_true(t < 90); /* see above: mpirun's teardown */
}

static void test_launcher_without_pmix_refused(void **state)
{
    (void)state;
    double t;
    char *job[] = {
        "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "OMPI_COMM_WORLD_SIZE=2", MPI_JOB_PATH,
        "ok",           NULL};
    mpirun("2", false, job, NULL, &t);
    assert_int_equal(count("tide_comm_init failed: operation not supported"), 2);
    assert_true(count("refusing to run as 2 unrelated 1-rank jobs") >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_and_split),
        cmocka_unit_test(test_rank_leaves_before_rendezvous),
        cmocka_unit_test(test_rank_leaves_after_rendezvous),
        cmocka_unit_test(test_launcher_without_pmix_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
