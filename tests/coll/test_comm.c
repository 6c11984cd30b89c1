/*
 * Communicator creation on every bootstrap path: unique id (ranks as
 * threads), explicit config (including a config from an older, smaller
 * header), torchrun variables (ranks as processes, rank 0 hosting the
 * store), singleton; and the failures: launcher without rendezvous, bad
 * environment, a rank claimed twice, ranks that never arrive.
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
#include "boot_server.h"
#include "test_util.h"
#include "tide.h"

static const char *const rendezvous_vars[] = {
    "TIDE_RANK",    "TIDE_SIZE",   "TIDE_STORE",  "TIDE_SECRET", "RANK",
    "WORLD_SIZE",   "MASTER_ADDR", "MASTER_PORT", "PMI_SIZE",    "OMPI_COMM_WORLD_SIZE",
    "SLURM_NTASKS", NULL};

static int clean_env(void **state)
{
    (void)state;
    for (int i = 0; rendezvous_vars[i]; i++)
        unsetenv(rendezvous_vars[i]);
    test_log_capture_start();
    return 0;
}

static int restore(void **state)
{
    test_log_capture_stop();
    return clean_env(state);
}

/* Each rank publishes a block derived from its rank; everyone checks all. */
#define BLOCK 64
static int exchange_and_check(tide_comm_t *comm)
{
    tide_store_t *store;
    int rank, n, errors = 0;
    char key[32];
    uint32_t mine[BLOCK];
    if (tide_comm_store(comm, &store) != TIDE_SUCCESS || tide_comm_rank(comm, &rank) != 0 ||
        tide_comm_size(comm, &n) != 0)
        return 1;
    for (int i = 0; i < BLOCK; i++)
        mine[i] = (uint32_t)(rank * 1000003 + i);
    snprintf(key, sizeof(key), "block/%d", rank);
    if (tide_store_set(store, key, mine, sizeof(mine)) != TIDE_SUCCESS)
        return 1;
    for (int r = 0; r < n; r++) {
        void *v;
        size_t len;
        snprintf(key, sizeof(key), "block/%d", r);
        if (tide_store_get(store, key, 10000, &v, &len) != TIDE_SUCCESS)
            return 1;
        if (len != sizeof(mine))
            errors++;
        for (int i = 0; i < BLOCK && len == sizeof(mine); i++)
            errors += ((uint32_t *)v)[i] != (uint32_t)(r * 1000003 + i);
        free(v);
    }
    if (tide_store_barrier(store, n, 10000) != TIDE_SUCCESS)
        errors++;
    return errors;
}

/* ------------------------------------------------------------- torchrun */

static void test_torchrun_env(void **state)
{
    (void)state;
    enum { N = 3 };
    char port[8];
    pid_t pids[N];
    snprintf(port, sizeof(port), "%u", test_free_port());
    for (int r = 0; r < N; r++) {
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            char rank[16];
            tide_comm_t *comm;
            int got_rank = -1, got_n = -1;
            snprintf(rank, sizeof(rank), "%d", r);
            setenv("RANK", rank, 1);
            setenv("WORLD_SIZE", "3", 1);
            setenv("MASTER_ADDR", "127.0.0.1", 1);
            setenv("MASTER_PORT", port, 1);
            if (tide_comm_init(&comm, NULL) != TIDE_SUCCESS)
                _exit(10);
            tide_comm_rank(comm, &got_rank);
            tide_comm_size(comm, &got_n);
            if (got_rank != r || got_n != N)
                _exit(11);
            int errors = exchange_and_check(comm);
            tide_comm_destroy(comm);
            _exit(errors ? 12 : 0);
        }
    }
    for (int r = 0; r < N; r++) {
        int status;
        assert_int_equal(waitpid(pids[r], &status, 0), pids[r]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

/* ------------------------------------------------------------ unique id */

typedef struct rank_thread {
    const tide_unique_id_t *id;
    int rank, nranks;
    tide_config_t cfg;
    tide_status_t st;
    int errors;
    bool keep;
    tide_comm_t *comm;
} rank_thread_t;

static void *uid_rank(void *arg)
{
    rank_thread_t *t = arg;
    tide_comm_t *comm;
    t->st = tide_comm_init_rank(&comm, t->nranks, t->id, t->rank, &t->cfg);
    if (t->st != TIDE_SUCCESS)
        return NULL;
    int rank, n, lr, ls;
    uint64_t epoch = 99;
    uint32_t id;
    tide_comm_rank(comm, &rank);
    tide_comm_size(comm, &n);
    tide_comm_local(comm, &lr, &ls);
    tide_comm_epoch(comm, &epoch);
    t->errors += rank != t->rank || n != t->nranks;
    t->errors += lr != t->rank || ls != t->nranks; /* all on this host */
    t->errors += epoch != 0;
    for (int r = 0; r < n; r++)
        t->errors += tide_comm_member_id(comm, r, &id) != TIDE_SUCCESS || id != (uint32_t)r;
    t->errors += exchange_and_check(comm);
    tide_comm_destroy(comm);
    return NULL;
}

static void run_threads(rank_thread_t *t, int n)
{
    pthread_t th[16];
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, uid_rank, &t[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static void test_unique_id_threads(void **state)
{
    (void)state;
    enum { N = 4 };
    tide_unique_id_t id;
    rank_thread_t t[N];
    tide_config_t cfg = TIDE_CONFIG_INIT;
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    for (int i = 0; i < N; i++)
        t[i] = (rank_thread_t){.id = &id, .rank = i, .nranks = N, .cfg = cfg};
    run_threads(t, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].st, TIDE_SUCCESS);
        assert_int_equal(t[i].errors, 0);
    }
}

static void test_two_groups_concurrently(void **state)
{
    (void)state;
    tide_unique_id_t a, b;
    rank_thread_t t[6];
    tide_config_t cfg = TIDE_CONFIG_INIT;
    assert_int_equal(tide_get_unique_id(&a), TIDE_SUCCESS);
    assert_int_equal(tide_get_unique_id(&b), TIDE_SUCCESS);
    assert_memory_not_equal(&a, &b, sizeof(a));
    for (int i = 0; i < 3; i++) {
        t[i] = (rank_thread_t){.id = &a, .rank = i, .nranks = 3, .cfg = cfg};
        t[3 + i] = (rank_thread_t){.id = &b, .rank = i, .nranks = 3, .cfg = cfg};
    }
    run_threads(t, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(t[i].st, TIDE_SUCCESS);
        assert_int_equal(t[i].errors, 0);
    }
}

static void test_init_rank_invalid(void **state)
{
    (void)state;
    tide_unique_id_t id, zero;
    tide_comm_t *comm = (tide_comm_t *)0x1;
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(tide_get_unique_id(NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    assert_int_equal(tide_comm_init_rank(NULL, 2, &id, 0, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_init_rank(&comm, 2, NULL, 0, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_init_rank(&comm, 0, &id, 0, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_init_rank(&comm, 2, &id, -1, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_init_rank(&comm, 2, &id, 2, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_init_rank(&comm, 2, &zero, 0, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("unique id is not one made by tide_get_unique_id"));
    assert_ptr_equal(comm, (tide_comm_t *)0x1);
}

static void test_duplicate_rank(void **state)
{
    (void)state;
    tide_unique_id_t id;
    rank_thread_t t[2];
    tide_config_t cfg = TIDE_CONFIG_INIT;
    cfg.timeout_ms = 1000;
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    for (int i = 0; i < 2; i++)
        t[i] = (rank_thread_t){.id = &id, .rank = 0, .nranks = 2, .cfg = cfg};
    run_threads(t, 2);
    /* one claims rank 0 and waits in vain for rank 1; the other is refused */
    assert_true((t[0].st == TIDE_ERR_INVALID && t[1].st == TIDE_ERR_TIMEOUT) ||
                (t[1].st == TIDE_ERR_INVALID && t[0].st == TIDE_ERR_TIMEOUT));
    assert_true(test_log_contains("rank 0 is claimed twice"));
}

static void test_missing_rank_named(void **state)
{
    (void)state;
    tide_unique_id_t id;
    rank_thread_t t[2];
    tide_config_t cfg = TIDE_CONFIG_INIT;
    cfg.timeout_ms = 500;
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    t[0] = (rank_thread_t){.id = &id, .rank = 0, .nranks = 4, .cfg = cfg};
    t[1] = (rank_thread_t){.id = &id, .rank = 2, .nranks = 4, .cfg = cfg};
    double t0 = test_now();
    run_threads(t, 2);
    assert_true(test_now() - t0 < 5.0);
    assert_int_equal(t[0].st, TIDE_ERR_TIMEOUT);
    assert_int_equal(t[1].st, TIDE_ERR_TIMEOUT);
    assert_true(test_log_contains("2 rank(s) did not arrive within 500 ms: 1,3"));
}

/* --------------------------------------------------------------- config */

typedef struct cfg_thread {
    tide_config_t cfg;
    tide_status_t st;
    int errors;
} cfg_thread_t;

static void *cfg_rank(void *arg)
{
    cfg_thread_t *t = arg;
    tide_comm_t *comm;
    t->st = tide_comm_init(&comm, &t->cfg);
    if (t->st == TIDE_SUCCESS) {
        t->errors = exchange_and_check(comm);
        tide_comm_destroy(comm);
    }
    return NULL;
}

static void test_config_path(void **state)
{
    (void)state;
    enum { N = 3 };
    boot_server_t *server;
    char addr[TIDE_ADDR_STR_MAX];
    cfg_thread_t t[N];
    pthread_t th[N];
    assert_int_equal(boot_server_start("127.0.0.1", 0, "cfg-secret", &server), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(server), addr, sizeof(addr));
    for (int i = 0; i < N; i++) {
        tide_config_t cfg = TIDE_CONFIG_INIT;
        cfg.rank = i;
        cfg.nranks = N;
        cfg.store_addr = addr;
        cfg.secret = "cfg-secret";
        if (i == 1) /* built against an older header without timeout_ms */
            cfg.size = offsetof(tide_config_t, timeout_ms);
        t[i] = (cfg_thread_t){.cfg = cfg};
        pthread_create(&th[i], NULL, cfg_rank, &t[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].st, TIDE_SUCCESS);
        assert_int_equal(t[i].errors, 0);
    }
    boot_server_stop(server);
}

static void test_config_invalid(void **state)
{
    (void)state;
    tide_comm_t *comm;
    tide_config_t cfg = TIDE_CONFIG_INIT;
    cfg.rank = 3;
    cfg.nranks = 2;
    assert_int_equal(tide_comm_init(&comm, &cfg), TIDE_ERR_INVALID);
    cfg.rank = 0;
    assert_int_equal(tide_comm_init(&comm, &cfg), TIDE_ERR_INVALID); /* no store_addr */
    assert_true(test_log_contains("2 ranks need store_addr"));
    assert_int_equal(tide_comm_init(NULL, NULL), TIDE_ERR_INVALID);
}

/* ------------------------------------------------------ singleton, env */

static void test_singleton(void **state)
{
    (void)state;
    tide_comm_t *comm;
    tide_store_t *store;
    int rank = -1, n = -1, lr = -1, ls = -1;
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_SUCCESS);
    assert_int_equal(tide_comm_rank(comm, &rank), TIDE_SUCCESS);
    assert_int_equal(tide_comm_size(comm, &n), TIDE_SUCCESS);
    assert_int_equal(tide_comm_local(comm, &lr, &ls), TIDE_SUCCESS);
    assert_int_equal(rank, 0);
    assert_int_equal(n, 1);
    assert_int_equal(lr, 0);
    assert_int_equal(ls, 1);
    assert_int_equal(exchange_and_check(comm), 0);
    assert_int_equal(tide_comm_store(comm, &store), TIDE_SUCCESS);
    assert_int_equal(tide_store_destroy(store), TIDE_ERR_INVALID); /* borrowed */
    assert_int_equal(tide_comm_abort(comm), TIDE_SUCCESS);
}

static void test_launcher_refused(void **state)
{
    (void)state;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    tide_comm_t *comm;
    for (int i = 0; i < 3; i++) {
        char expect[64];
        test_log_clear();
        setenv(vars[i], "4", 1);
        assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_UNSUPPORTED);
        snprintf(expect, sizeof(expect), "(%s=4)", vars[i]);
        assert_true(test_log_contains(expect));
        assert_true(test_log_contains("refusing to run as 4 unrelated 1-rank jobs"));
        setenv(vars[i], "1", 1); /* a 1-process launch is a fine singleton */
        assert_int_equal(tide_comm_init(&comm, NULL), TIDE_SUCCESS);
        tide_comm_destroy(comm);
        unsetenv(vars[i]);
    }
}

static void test_env_invalid(void **state)
{
    (void)state;
    tide_comm_t *comm;
    setenv("TIDE_RANK", "0", 1);
    setenv("TIDE_SIZE", "2", 1);
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("TIDE_STORE (host:port of the store) is not set"));
    setenv("TIDE_STORE", "127.0.0.1:1", 1);
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("no store secret (TIDE_SECRET) is set"));
    setenv("TIDE_RANK", "5", 1);
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("rank 5 of 2 is not a valid rank"));
    setenv("TIDE_RANK", "one", 1);
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("TIDE_RANK='one' is not a valid int"));
    setenv("TIDE_RANK", "0", 1);
    setenv("TIDE_STORE", "no-port-here", 1);
    setenv("TIDE_SECRET", "s", 1);
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("'no-port-here' is not host:port"));
}

static void test_store_unreachable(void **state)
{
    (void)state;
    tide_comm_t *comm;
    tide_config_t cfg = TIDE_CONFIG_INIT;
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", test_free_port());
    cfg.rank = 0;
    cfg.nranks = 2;
    cfg.store_addr = addr;
    cfg.secret = "s";
    cfg.timeout_ms = 300;
    double t0 = test_now();
    assert_int_equal(tide_comm_init(&comm, &cfg), TIDE_ERR_TIMEOUT);
    assert_true(test_now() - t0 < 3.0);
    assert_true(test_log_contains("connect to 127.0.0.1:"));
}

static void test_queries_invalid(void **state)
{
    (void)state;
    tide_comm_t *comm;
    uint32_t id;
    int x;
    assert_int_equal(tide_comm_init(&comm, NULL), TIDE_SUCCESS);
    assert_int_equal(tide_comm_rank(NULL, &x), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_rank(comm, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_size(comm, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_local(comm, NULL, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_epoch(NULL, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_member_id(comm, 1, &id), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_member_id(comm, -1, &id), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_store(comm, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_destroy(NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_abort(NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_comm_destroy(comm), TIDE_SUCCESS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, clean_env, restore)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_torchrun_env), /* first: it forks, before any helper thread exists */
        T(test_unique_id_threads),  T(test_two_groups_concurrently),
        T(test_init_rank_invalid),  T(test_duplicate_rank),
        T(test_missing_rank_named), T(test_config_path),
        T(test_config_invalid),     T(test_singleton),
        T(test_launcher_refused),   T(test_env_invalid),
        T(test_store_unreachable),  T(test_queries_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
