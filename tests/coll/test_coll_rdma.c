/*
 * Collectives over RDMA, inside shared/rdma-vm: the correctness matrix
 * (mp_coll) through tiderun with RDMA as the only data transport, even
 * local ranks on side A's devices and odd ones on side B's; then
 * allreduces that keep running while rail 0 is cut and restored, and while
 * every rail is cut (TCP carries them), every element checked. Skipped
 * (exit 77) outside the VM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static char out[1 << 17];
static char devices[300];

static void run_job(const char *np, char *const mode[], char *extra_env)
{
    char *argv[] = {TIDERUN_PATH, "-n",    (char *)np, "-t", "500",
                    MP_COLL_PATH, mode[0], mode[1],    NULL};
    char *envp[] = {"TIDE_BOOTSTRAP_TIMEOUT=120000",
                    "TIDE_BOOTSTRAP_ADDR=127.0.0.1",
                    "TIDE_TRANSPORTS=rdma",
                    devices,
                    extra_env,
                    NULL};
    double t;
    int st = test_run(argv, envp, 550000, out, sizeof(out), &t);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("job (np %s, %s) failed after %.1f s:\n%s", np, mode[0], t, out);
    int bad, ranks = test_count_rank_reports(out, &bad);
    assert_int_equal(bad, 0);
    assert_int_equal(ranks, atoi(np));
    printf("np %s %s: %d ranks, every element right, %.1f s\n", np, mode[0], ranks, t);
}

static void test_matrix(void **state)
{
    (void)state;
    char *quick[] = {"quick", NULL};
    run_job("2", quick, NULL);
    run_job("4", quick, "TIDE_ALGO=ring");
    run_job("3", quick, "TIDE_CHUNK_SIZE=4096");
}

typedef struct fault {
    double at[2];
    const char *cmd[2];
} fault_t;

#define MARKER "/tmp/tide_soak_marker"

static void *fault_main(void *arg)
{
    fault_t *f = arg;
    /* cut once the job is connected and moving (its first allreduce) */
    for (int i = 0; i < 2400 && access(MARKER, F_OK) != 0; i++)
        usleep(50 * 1000);
    double t0 = test_now();
    for (int i = 0; i < 2; i++) {
        double wait = f->at[i] - (test_now() - t0);
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        int rc = system(f->cmd[i]);
        printf("t=%.1f s: %s (exit %d)\n", test_now() - t0, f->cmd[i], rc);
    }
    return NULL;
}

static void soak_with_fault(const char *np, const char *iters, const char *down, const char *up)
{
    pthread_t t;
    fault_t f = {{0.3, 2.8}, {down, up}};
    char *soak[] = {"soak", (char *)iters};
    unlink(MARKER);
    pthread_create(&t, NULL, fault_main, &f);
    run_job(np, soak, "MP_COLL_SOAK_MARKER=" MARKER);
    pthread_join(t, NULL);
    if (access(MARKER, F_OK) != 0)
        fail_msg("the job never reached its first allreduce");
}

static void test_allreduce_rail_cut(void **state)
{
    (void)state;
    const char *links = getenv("RDMA_VM_LINKS");
    if (!links || atoi(links) < 2)
        skip();
    soak_with_fault("4", "60", "ip link set veth_a0 down", "ip link set veth_a0 up");
}

static void test_allreduce_all_rails_cut(void **state)
{
    (void)state;
    const char *links = getenv("RDMA_VM_LINKS");
    bool two = links && atoi(links) >= 2;
    soak_with_fault(
        "2", "60",
        two ? "ip link set veth_a0 down; ip link set veth_a1 down" : "ip link set veth_a0 down",
        two ? "ip link set veth_a0 up; ip link set veth_a1 up" : "ip link set veth_a0 up");
}

int main(void)
{
    const char *a = getenv("RDMA_VM_DEVS_A"), *b = getenv("RDMA_VM_DEVS_B");
    if (!a || !b) {
        printf("no rdma-vm devices (RDMA_VM_DEVS_A/B unset): skipped\n");
        return 77;
    }
    snprintf(devices, sizeof(devices), "TIDE_IB_DEVICES=%s;%s", a, b);
    for (char *c = devices; *c; c++)
        if (*c == ' ')
            *c = ',';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_allreduce_rail_cut),
        cmocka_unit_test(test_allreduce_all_rails_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
