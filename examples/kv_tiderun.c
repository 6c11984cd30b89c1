/*
 * A program run by tiderun that moves a block of memory to the next rank
 * with the transfer engine (the way a KV-cache mover would), then checks
 * it with a collective.
 *
 *   build/tiderun -n 4 build/examples/kv_tiderun
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tide.h"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        tide_status_t st_ = (call);                                                                \
        if (st_ != TIDE_SUCCESS) {                                                                 \
            fprintf(stderr, "%s: %s\n", #call, tide_status_str(st_));                              \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    enum { LEN = 4 << 20 };
    tide_comm_t *comm;
    tide_engine_t *e;
    int rank, n;
    CHECK(tide_comm_init(&comm, NULL)); /* TIDE_RANK/SIZE/STORE from tiderun */
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &n));
    CHECK(tide_engine_create(comm, NULL, &e));

    char *mine = malloc(LEN), *inbox;
    uint32_t mine_id, inbox_id;
    memset(mine, 'a' + rank % 26, LEN);
    CHECK(tide_segment_register(e, mine, LEN, &mine_id));
    CHECK(tide_segment_alloc(e, LEN, (void **)&inbox, &inbox_id)); /* shared memory */
    int next = (rank + 1) % n, prev = (rank + n - 1) % n;
    CHECK(tide_segment_open(e, next, inbox_id, -1)); /* every rank's inbox has the same id */

    tide_request_t r = {TIDE_OP_WRITE, mine_id, 0, next, inbox_id, 0, LEN};
    tide_batch_t *b;
    CHECK(tide_batch_submit(e, &r, 1, TIDE_BATCH_NOTIFY, &b));
    CHECK(tide_notify_wait(e, prev, 1, -1)); /* prev's block has landed here */
    CHECK(tide_batch_wait(b, -1));
    CHECK(tide_batch_free(b));

    int64_t bad = 0;
    for (size_t i = 0; i < LEN; i++)
        bad += inbox[i] != 'a' + prev % 26;
    CHECK(tide_allreduce(&bad, &bad, 1, TIDE_INT64, TIDE_SUM, comm));
    if (rank == 0)
        printf("%d ranks passed %d MiB blocks around the ring: %s\n", n, LEN >> 20,
               bad ? "WRONG" : "ok");
    CHECK(tide_barrier(comm)); /* nobody frees memory a peer may still write */
    CHECK(tide_engine_destroy(e));
    free(mine);
    CHECK(tide_comm_destroy(comm));
    return bad ? 1 : 0;
}
