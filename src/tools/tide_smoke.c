/*
 * tide_smoke: the main job until the collectives exist. Every rank joins
 * the world communicator, publishes where it runs and a block of data
 * derived from its rank through the store, reads every other rank's block
 * and checks it element by element, then times store barriers. Uses only
 * the public API. Run it with tiderun: `tiderun -n 4 tide_smoke`.
 *
 *   tide_smoke [-n ELEMS] [-i BARRIERS]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        tide_status_t st_ = (call);                                                                \
        if (st_ != TIDE_SUCCESS) {                                                                 \
            fprintf(stderr, "tide_smoke: %s failed: %s\n", #call, tide_status_str(st_));           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t expected(int rank, size_t i)
{
    return ((uint64_t)rank << 40) ^ (i * 0x9e3779b97f4a7c15ULL);
}

int main(int argc, char **argv)
{
    size_t elems = 4096;
    int iters = 200, rank, nranks, c;
    tide_comm_t *comm;
    tide_store_t *store;
    char key[64];

    while ((c = getopt(argc, argv, "n:i:")) != -1) {
        if (c == 'n')
            elems = strtoul(optarg, NULL, 10);
        else if (c == 'i')
            iters = atoi(optarg);
        else {
            fprintf(stderr, "usage: tide_smoke [-n ELEMS] [-i BARRIERS]\n");
            return 2;
        }
    }
    double t0 = now_s();
    CHECK(tide_comm_init(&comm, NULL));
    double t_init = now_s() - t0;
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &nranks));
    CHECK(tide_comm_store(comm, &store));

    uint64_t *mine = malloc(elems * sizeof(*mine));
    for (size_t i = 0; i < elems; i++)
        mine[i] = expected(rank, i);
    snprintf(key, sizeof(key), "smoke/data/%d", rank);
    CHECK(tide_store_set(store, key, mine, elems * sizeof(*mine)));

    size_t wrong = 0;
    for (int r = 0; r < nranks; r++) {
        void *val;
        size_t len;
        snprintf(key, sizeof(key), "smoke/data/%d", r);
        CHECK(tide_store_get(store, key, -1, &val, &len));
        if (len != elems * sizeof(uint64_t)) {
            fprintf(stderr, "tide_smoke: rank %d's block is %zu bytes, expected %zu\n", r, len,
                    elems * sizeof(uint64_t));
            return 1;
        }
        const uint64_t *v = val;
        for (size_t i = 0; i < elems; i++)
            wrong += v[i] != expected(r, i);
        free(val);
    }
    int64_t total;
    CHECK(tide_store_add(store, "smoke/wrong", (int64_t)wrong, &total));
    CHECK(tide_store_barrier(store, nranks, -1));
    CHECK(tide_store_add(store, "smoke/wrong", 0, &total));

    double t1 = now_s();
    for (int i = 0; i < iters; i++)
        CHECK(tide_store_barrier(store, nranks, -1));
    double t_barrier = (now_s() - t1) / (iters > 0 ? iters : 1);

    if (rank == 0) {
        printf("tide_smoke: %d ranks, init %.1f ms, exchanged %zu bytes per rank, %" PRId64
               " wrong elements, store barrier %.1f us\n",
               nranks, t_init * 1e3, elems * sizeof(uint64_t), total, t_barrier * 1e6);
        printf("%s\n", total == 0 ? "tide_smoke: OK" : "tide_smoke: FAILED");
    }
    free(mine);
    CHECK(tide_comm_destroy(comm));
    return total == 0 ? 0 : 1;
}
