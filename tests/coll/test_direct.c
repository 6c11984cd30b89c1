/*
 * The direct allreduce between ranks as threads (CMA within one process)
 * when a push fails: rank 1's writes into rank 2's output are refused
 * (coll_direct_write_hook), so rank 2 must read rank 1's finished slice
 * from rank 1's output after the "slices done" tokens, and rank 1 must not
 * return before that read. Each rank overwrites its output as soon as its
 * call returns: a rank that returned early would hand rank 2 those bytes.
 * Every element is checked on every rank, out of place and in place, for
 * a run of calls; then with every push arriving (the round after the
 * tokens skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "coll_ctx.h"
#include "tide.h"

enum { N = 3, COUNT = 300007, CALLS = 20 };

static int writes;  /* writes the hook was asked about */
static int refused; /* ... and refused */
static bool refuse; /* refuse rank 1's writes to rank 2 */

static bool write_hook(coll_ctx_t *c, int peer)
{
    __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&refuse, __ATOMIC_ACQUIRE) && c->rank == 1 && peer == 2) {
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        return false;
    }
    return true;
}

typedef struct rank_arg {
    const tide_unique_id_t *id;
    int rank;
    tide_status_t st;
    size_t wrong;
} rank_arg_t;

static int32_t input(int rank, int call, size_t i)
{
    return (int32_t)((i * 7 + (size_t)rank * 1000003 + (size_t)call * 31) % 100000);
}

static void *rank_main(void *p)
{
    rank_arg_t *a = p;
    tide_comm_t *comm;
    if ((a->st = tide_comm_init_rank(&comm, N, a->id, a->rank, NULL)) != TIDE_SUCCESS)
        return NULL;
    int32_t *in = malloc(COUNT * sizeof(int32_t)), *out = malloc(COUNT * sizeof(int32_t));
    if (!in || !out)
        a->st = TIDE_ERR_NOMEM;
    for (int call = 0; call < CALLS && a->st == TIDE_SUCCESS; call++) {
        bool inplace = call % 2;
        for (size_t i = 0; i < COUNT; i++)
            in[i] = input(a->rank, call, i);
        if (inplace)
            memcpy(out, in, COUNT * sizeof(int32_t));
        a->st = tide_allreduce(inplace ? out : in, out, COUNT, TIDE_INT32, TIDE_SUM, comm);
        int32_t *got = malloc(COUNT * sizeof(int32_t));
        if (!got) {
            a->st = TIDE_ERR_NOMEM;
            break;
        }
        memcpy(got, out, COUNT * sizeof(int32_t));
        memset(out, 0xff, COUNT * sizeof(int32_t)); /* the caller's buffer again */
        for (size_t i = 0; i < COUNT; i++) {
            int64_t want = 0;
            for (int r = 0; r < N; r++)
                want += input(r, call, i);
            a->wrong += got[i] != (int32_t)want;
        }
        free(got);
    }
    free(in);
    free(out);
    tide_comm_destroy(comm);
    return NULL;
}

static void run_ranks(rank_arg_t *a)
{
    tide_unique_id_t id;
    pthread_t t[N];
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    for (int r = 0; r < N; r++) {
        a[r] = (rank_arg_t){.id = &id, .rank = r};
        pthread_create(&t[r], NULL, rank_main, &a[r]);
    }
    for (int r = 0; r < N; r++)
        pthread_join(t[r], NULL);
}

static void test_refused_push_read_instead(void **state)
{
    (void)state;
    rank_arg_t a[N];
    __atomic_store_n(&refused, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&refuse, true, __ATOMIC_RELEASE);
    run_ranks(a);
    __atomic_store_n(&refuse, false, __ATOMIC_RELEASE);
    assert_true(__atomic_load_n(&refused, __ATOMIC_RELAXED) >= CALLS);
    for (int r = 0; r < N; r++) {
        assert_int_equal(a[r].st, TIDE_SUCCESS);
        assert_int_equal(a[r].wrong, 0);
    }
}

static void test_every_push_arrives(void **state)
{
    (void)state;
    rank_arg_t a[N];
    __atomic_store_n(&writes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&refused, 0, __ATOMIC_RELAXED);
    run_ranks(a);
    assert_true(__atomic_load_n(&writes, __ATOMIC_RELAXED) >= CALLS * N * (N - 1));
    assert_int_equal(__atomic_load_n(&refused, __ATOMIC_RELAXED), 0);
    for (int r = 0; r < N; r++) {
        assert_int_equal(a[r].st, TIDE_SUCCESS);
        assert_int_equal(a[r].wrong, 0);
    }
}

static int setup(void **state)
{
    (void)state;
    setenv("TIDE_ALGO", "allreduce=direct", 1);
    coll_direct_write_hook = write_hook;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    coll_direct_write_hook = NULL;
    unsetenv("TIDE_ALGO");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_push_read_instead),
        cmocka_unit_test(test_every_push_arrives),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
