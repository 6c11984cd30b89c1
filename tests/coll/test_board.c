/*
 * The board (coll_board_exchange) between ranks as threads: a rank whose
 * peers' counts differ must not post its next value over the slot of its
 * last one before every peer has shown this one. Rank 2 is held right
 * after posting a value (coll_board_posted_hook); its peers meanwhile
 * finish that exchange, fail the next one (counts differ) and start a
 * third. Rank 2 must still find their first value where it left it, and
 * the third exchange must work everywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>
#include "coll_ctx.h"
#include "test_util.h"
#include "tide.h"

enum { N = 3, SLOW = 2 };

static int armed; /* rank SLOW sleeps after its next post */

static void hold_slow_rank(coll_ctx_t *c, uint64_t seq)
{
    (void)seq;
    if (c->rank == SLOW && __atomic_exchange_n(&armed, 0, __ATOMIC_ACQ_REL))
        usleep(300 * 1000);
}

typedef struct rank_arg {
    const tide_unique_id_t *id;
    int rank;
    tide_status_t first, mismatched, after;
    int32_t sum_first, sum_after;
} rank_arg_t;

static void *rank_main(void *p)
{
    rank_arg_t *a = p;
    tide_comm_t *comm;
    if (tide_comm_init_rank(&comm, N, a->id, a->rank, NULL) != TIDE_SUCCESS) {
        a->first = TIDE_ERR_INTERNAL;
        return NULL;
    }
    int32_t x[4] = {a->rank + 1, 1, 1, 1};
    tide_barrier(comm);
    if (a->rank == SLOW)
        __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
    a->first = tide_allreduce(x, &a->sum_first, 1, TIDE_INT32, TIDE_SUM, comm);
    /* rank 0 shows 4 elements, the others 2: refused everywhere */
    int32_t y[4];
    a->mismatched = tide_allreduce(x, y, a->rank == 0 ? 4 : 2, TIDE_INT32, TIDE_SUM, comm);
    a->after = tide_allreduce(x, &a->sum_after, 1, TIDE_INT32, TIDE_SUM, comm);
    tide_comm_destroy(comm);
    return NULL;
}

static void test_counts_differ_behind_a_slow_rank(void **state)
{
    (void)state;
    tide_unique_id_t id;
    pthread_t t[N];
    rank_arg_t a[N];
    assert_int_equal(tide_get_unique_id(&id), TIDE_SUCCESS);
    coll_board_posted_hook = hold_slow_rank;
    test_log_capture_start();
    for (int r = 0; r < N; r++) {
        a[r] = (rank_arg_t){.id = &id, .rank = r};
        pthread_create(&t[r], NULL, rank_main, &a[r]);
    }
    for (int r = 0; r < N; r++)
        pthread_join(t[r], NULL);
    coll_board_posted_hook = NULL;
    assert_true(test_log_contains("counts differ"));
    test_log_capture_stop();
    for (int r = 0; r < N; r++) {
        assert_int_equal(a[r].first, TIDE_SUCCESS);
        assert_int_equal(a[r].sum_first, 1 + 2 + 3);
        assert_int_equal(a[r].mismatched, TIDE_ERR_INVALID);
        assert_int_equal(a[r].after, TIDE_SUCCESS);
        assert_int_equal(a[r].sum_after, 1 + 2 + 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_differ_behind_a_slow_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
