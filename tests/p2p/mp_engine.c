/*
 * Rank program for the multi-process engine tests (public API only).
 *   mp_engine data   every rank writes its block into every peer's shared
 *                    and user segments with a notification, waits for all
 *                    peers' notifications, checks its memory element by
 *                    element, then READs every peer's blocks back and
 *                    checks them.
 *   mp_engine kill   rank 1 dies while rank 0 streams batches to it; rank 0
 *                    must see the batch fail (not hang) within 10 s.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"

#define BLOCK (256 * 1024 + 13)

#define CHECK(call)                                                                                \
    do {                                                                                           \
        tide_status_t st_ = (call);                                                                \
        if (st_ != TIDE_SUCCESS) {                                                                 \
            fprintf(stderr, "rank %d: %s: %s\n", rank, #call, tide_status_str(st_));               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned char pattern(int writer, int seg, size_t i)
{
    return (unsigned char)(writer * 37 + seg * 101 + i * 7 + (i >> 9));
}

static int run_data(tide_comm_t *comm, tide_engine_t *e, int rank, int n)
{
    tide_store_t *store;
    void *shm;
    uint32_t ids[2], src_id;
    size_t seglen = (size_t)n * BLOCK;
    unsigned char *user = calloc(1, seglen), *src = malloc(2 * BLOCK);
    size_t wrong = 0;

    CHECK(tide_comm_store(comm, &store));
    CHECK(tide_segment_alloc(e, seglen, &shm, &ids[0]));
    CHECK(tide_segment_register(e, user, seglen, &ids[1]));
    CHECK(tide_segment_register(e, src, 2 * BLOCK, &src_id));
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < BLOCK; i++)
            src[s * BLOCK + i] = pattern(rank, s, i);
    for (int p = 0; p < n; p++)
        for (int s = 0; s < 2; s++)
            CHECK(tide_segment_open(e, p, ids[s], -1)); /* same ids on every rank */
    tide_request_t *req = calloc((size_t)n * 2, sizeof(*req));
    for (int p = 0; p < n; p++)
        for (int s = 0; s < 2; s++)
            req[p * 2 + s] =
                (tide_request_t){TIDE_OP_WRITE,          src_id, (uint64_t)s * BLOCK, p, ids[s],
                                 (uint64_t)rank * BLOCK, BLOCK};
    tide_batch_t *b;
    CHECK(tide_batch_submit(e, req, (size_t)n * 2, TIDE_BATCH_NOTIFY, &b));
    CHECK(tide_batch_wait(b, -1));
    CHECK(tide_batch_free(b));
    for (int p = 0; p < n; p++)
        CHECK(tide_notify_wait(e, p, 1, -1));
    unsigned char *mem[2] = {shm, user};
    for (int w = 0; w < n; w++)
        for (int s = 0; s < 2; s++) {
            size_t bad = 0;
            for (size_t i = 0; i < BLOCK; i++)
                bad += mem[s][(size_t)w * BLOCK + i] != pattern(w, s, i);
            if (bad)
                fprintf(stderr,
                        "rank %d: block written by rank %d into segment %d: %zu wrong bytes\n",
                        rank, w, s, bad);
            wrong += bad;
        }

    /* READ each peer's copy of our own block back into src and check. */
    CHECK(tide_store_barrier(store, n, -1));
    for (int p = 0; p < n; p++) {
        memset(src, 0, 2 * BLOCK);
        for (int s = 0; s < 2; s++)
            req[s] =
                (tide_request_t){TIDE_OP_READ,           src_id, (uint64_t)s * BLOCK, p, ids[s],
                                 (uint64_t)rank * BLOCK, BLOCK};
        CHECK(tide_batch_submit(e, req, 2, 0, &b));
        CHECK(tide_batch_wait(b, -1));
        CHECK(tide_batch_free(b));
        for (int s = 0; s < 2; s++) {
            size_t bad = 0;
            for (size_t i = 0; i < BLOCK; i++)
                bad += src[s * BLOCK + i] != pattern(rank, s, i);
            if (bad)
                fprintf(stderr,
                        "rank %d: block read back from rank %d segment %d: %zu wrong bytes\n", rank,
                        p, s, bad);
            wrong += bad;
        }
    }
    CHECK(tide_store_barrier(store, n, -1)); /* nobody frees while others read */
    printf("rank %d: %zu wrong bytes\n", rank, wrong);
    CHECK(tide_segment_free(e, ids[1]));
    CHECK(tide_segment_free(e, src_id));
    free(req);
    free(user);
    free(src);
    return wrong ? 1 : 0;
}

static int run_kill(tide_comm_t *comm, tide_engine_t *e, int rank)
{
    tide_store_t *store;
    size_t len = 64u << 20;
    unsigned char *buf = calloc(1, len);
    uint32_t id, lid;
    CHECK(tide_comm_store(comm, &store));
    CHECK(tide_segment_register(e, buf, len, &id));
    if (rank == 1) {
        CHECK(tide_store_set(store, "ready", "", 0));
        void *v;
        size_t vlen;
        CHECK(tide_store_get(store, "go", -1, &v, &vlen));
        usleep(20000);
        _exit(0); /* gone in the middle of rank 0's batches */
    }
    if (rank != 0) {
        CHECK(tide_segment_free(e, id));
        free(buf);
        return 0;
    }
    lid = id;
    void *v;
    size_t vlen;
    CHECK(tide_store_get(store, "ready", -1, &v, &vlen));
    free(v);
    CHECK(tide_segment_open(e, 1, id, -1));
    CHECK(tide_store_set(store, "go", "", 0));
    double t0 = now_s();
    for (int round = 0; now_s() - t0 < 10; round++) {
        tide_request_t r = {TIDE_OP_WRITE, lid, 0, 1, id, 0, len};
        tide_batch_t *b;
        CHECK(tide_batch_submit(e, &r, 1, 0, &b));
        tide_status_t st = tide_batch_wait(b, 10000);
        if (st == TIDE_ERR_TIMEOUT) {
            fprintf(stderr, "rank 0: batch still running after 10 s: a hang\n");
            return 1;
        }
        tide_batch_free(b);
        if (st != TIDE_SUCCESS) {
            printf("rank 0: peer failure reported after %.0f ms (%d batches): %s\n",
                   (now_s() - t0) * 1e3, round, tide_status_str(st));
            CHECK(tide_segment_free(e, lid));
            free(buf);
            return st == TIDE_ERR_PEER || st == TIDE_ERR_LINK ? 0 : 1;
        }
    }
    fprintf(stderr, "rank 0: every batch succeeded although rank 1 died\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "data";
    tide_comm_t *comm;
    tide_engine_t *e;
    int rank = -1, n, rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK(tide_comm_init(&comm, NULL));
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &n));
    CHECK(tide_engine_create(comm, NULL, &e));
    if (strcmp(mode, "kill") == 0)
        rc = run_kill(comm, e, rank);
    else
        rc = run_data(comm, e, rank, n);
    tide_engine_destroy(e);
    tide_comm_destroy(comm);
    return rc;
}
