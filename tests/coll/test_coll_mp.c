/*
 * The collective correctness matrix (mp_coll) through tiderun: rank counts
 * 1-8 including 3, 5 and 7; over shared memory and over TCP only; tiny
 * chunks and pipes; every algorithm forced. Each rank checks every element
 * against its own reference (see mp_coll.c).
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

static char out[1 << 17];

static void matrix(const char *np, const char *mode, char *env0, char *env1, char *env2)
{
    char *argv[] = {TIDERUN_PATH, "-n", (char *)np, "-t", "240", MP_COLL_PATH, (char *)mode, NULL};
    char *envp[] = {"TIDE_BOOTSTRAP_TIMEOUT=60000", env0, env1, env2, NULL};
    double t;
    int st = test_run(argv, envp, 280000, out, sizeof(out), &t);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    int bad, ranks = test_count_rank_reports(out, &bad);
    assert_int_equal(bad, 0);
    assert_int_equal(ranks, atoi(np));
}

static void test_shm_1_to_8(void **state)
{
    (void)state;
    static const char *np[] = {"1", "2", "3", "4", "5", "7", "8"};
    for (size_t i = 0; i < sizeof(np) / sizeof(np[0]); i++)
        matrix(np[i], i < 4 ? "full" : "quick", NULL, NULL, NULL);
}

static void test_tcp(void **state)
{
    (void)state;
    matrix("3", "full", "TIDE_TRANSPORTS=tcp", NULL, NULL); /* large: unstaged sends */
    matrix("4", "quick", "TIDE_TRANSPORTS=tcp", "TIDE_COLL_PIPE_SIZE=4K", "TIDE_ALGO=ring");
    /* receives landing in place: zones cut at a ring's end that is no
     * power of two, and more frames per message than a zone records */
    matrix("2", "full", "TIDE_TRANSPORTS=tcp", "TIDE_COLL_PIPE_SIZE=300K", "TIDE_SLICE_SIZE=4K");
}

static void test_tiny_chunks_and_pipes(void **state)
{
    (void)state;
    matrix("5", "quick", "TIDE_CHUNK_SIZE=64", "TIDE_COLL_PIPE_SIZE=4K", NULL);
    matrix("3", "quick", "TIDE_CHUNK_SIZE=1", "TIDE_TRANSPORTS=tcp", NULL);
}

static void test_forced_algorithms(void **state)
{
    (void)state;
    matrix("6", "quick", "TIDE_ALGO=allreduce=rd,barrier=dissemination", NULL, NULL);
    matrix("7", "quick", "TIDE_ALGO=allreduce=ring", NULL, NULL);
    matrix("4", "full", "TIDE_ALGO=allreduce=direct", NULL, NULL);
    matrix("5", "quick", "TIDE_ALGO=allreduce=direct", NULL, NULL);
    /* allgather and broadcast too; broadcast's 70001 elements cross its chunks */
    matrix("3", "full", "TIDE_ALGO=direct", NULL, NULL);
    matrix("4", "quick", "TIDE_ALGO=broadcast=tree,allgather=ring", NULL, NULL);
    matrix("6", "quick", "TIDE_ALGO=allreduce=ring", "TIDE_TRANSPORTS=tcp", NULL);
    /* Rabenseifner, Bruck, the chains: power of two and not, shm and TCP,
     * the pipeline's chunks tiny and shallow */
    char *fresh = "TIDE_ALGO=allreduce=rabenseifner,allgather=bruck,broadcast=chain,reduce=chain";
    matrix("8", "quick", fresh, NULL, NULL);
    matrix("5", "full", fresh, NULL, NULL);
    matrix("6", "quick", fresh, "TIDE_TRANSPORTS=tcp", NULL);
    matrix("7", "quick", fresh, "TIDE_CHUNK_SIZE=100", "TIDE_PIPELINE_DEPTH=1");
    /* recursive-doubling allgather: powers of two, and Bruck's schedule
     * at 5 ranks */
    matrix("8", "quick", "TIDE_ALGO=allgather=rd", "TIDE_TRANSPORTS=tcp", NULL);
    matrix("4", "full", "TIDE_ALGO=allgather=rd", "TIDE_CHUNK_SIZE=100", NULL);
    matrix("5", "quick", "TIDE_ALGO=allgather=rd", NULL, NULL);
    matrix("3", "quick", "TIDE_ALGO=broadcast=tree,reduce=tree", "TIDE_CHUNK_SIZE=64",
           "TIDE_TRANSPORTS=tcp");
    /* one-shot at every size: through the board (many rounds where large),
     * and through the pipes over TCP */
    matrix("5", "full", "TIDE_ALGO=allreduce=oneshot", NULL, NULL);
    matrix("4", "quick", "TIDE_ALGO=allreduce=oneshot,barrier=board", "TIDE_TRANSPORTS=tcp", NULL);
}

/* Allreduce, allgather and broadcast buffers in Tide memory, used in
 * place by the direct algorithms: every rank's, then even ranks' only (the
 * others are read and written with CMA); counts to 70001 in full mode;
 * 3 ranks map 2 peers' allocations each, more than the mapping cache
 * holds over the run; 10 ranks need more than it holds in one operation. */
static void test_tide_memory(void **state)
{
    (void)state;
    matrix("3", "full", "TIDE_ALGO=direct", "MP_COLL_MEM=all", "TIDE_LOG_LEVEL=info");
    assert_non_null(strstr(out, "rank 0 maps "));
    assert_non_null(strstr(out, "of rank 2's Tide memory"));
    matrix("4", "quick", "TIDE_ALGO=direct", "MP_COLL_MEM=mixed", "TIDE_LOG_LEVEL=info");
    assert_non_null(strstr(out, "of rank 2's Tide memory"));
    assert_null(strstr(out, "of rank 1's Tide memory")); /* odd ranks malloc */
    /* 10 ranks: 18 peers' allocations per allreduce, more than the mapping
     * cache holds; none this operation uses may be evicted */
    matrix("10", "quick", "TIDE_ALGO=direct", "MP_COLL_MEM=all", NULL);
    /* not forced: from 64 KiB the selection goes direct for Tide memory */
    matrix("2", "full", "MP_COLL_MEM=all", "TIDE_LOG_LEVEL=info", NULL);
    assert_non_null(strstr(out, "of rank 1's Tide memory"));
}

static void test_unknown_algorithm_refused(void **state)
{
    (void)state;
    char *argv[] = {TIDERUN_PATH, "-n", "2", "-t", "60", MP_COLL_PATH, "quick", NULL};
    char *envp[] = {"TIDE_ALGO=allreduce=nonsense", NULL};
    double t;
    int st = test_run(argv, envp, 90000, out, sizeof(out), &t);
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "TIDE_ALGO='allreduce=nonsense' names no allreduce algorithm"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shm_1_to_8),        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_tide_memory),       cmocka_unit_test(test_tiny_chunks_and_pipes),
        cmocka_unit_test(test_forced_algorithms), cmocka_unit_test(test_unknown_algorithm_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
