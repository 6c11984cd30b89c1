/*
 * A rank program for the tiderun tests (public API only).
 *   mp_rendezvous ok           rendezvous, exchange addresses and a data
 *                              block through the store, check every element
 *   mp_rendezvous fail         rank 1 exits 1; the others wait in a barrier
 *   mp_rendezvous hang         every rank sleeps
 *   mp_rendezvous ignore-term  every rank ignores SIGTERM and sleeps
 *   mp_rendezvous keep         rank 1 exits 3; the others finish after 0.5 s
 *   mp_rendezvous env          print TIDE_TEST_VAR
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tide.h"

#define WORDS 256

typedef struct record {
    int32_t rank;
    int32_t pid;
    char host[64];
    uint32_t data[WORDS];
} record_t;

static uint32_t word(int rank, int i)
{
    return (uint32_t)rank * 2654435761u + (uint32_t)i * 40503u + 1u;
}

static int die(const char *what, tide_status_t st)
{
    fprintf(stderr, "mp_rendezvous: %s: %s\n", what, tide_status_str(st));
    return 1;
}

static int exchange(tide_comm_t *comm, int rank, int n)
{
    tide_store_t *store;
    record_t me = {.rank = rank, .pid = (int32_t)getpid()};
    char key[32];
    tide_status_t st;
    int bad = 0;

    gethostname(me.host, sizeof(me.host) - 1);
    for (int i = 0; i < WORDS; i++)
        me.data[i] = word(rank, i);
    if ((st = tide_comm_store(comm, &store)) != TIDE_SUCCESS)
        return die("tide_comm_store", st);
    snprintf(key, sizeof(key), "addr/%d", rank);
    if ((st = tide_store_set(store, key, &me, sizeof(me))) != TIDE_SUCCESS)
        return die("tide_store_set", st);
    if ((st = tide_store_barrier(store, n, -1)) != TIDE_SUCCESS)
        return die("tide_store_barrier", st);
    for (int r = 0; r < n; r++) {
        void *v;
        size_t len;
        snprintf(key, sizeof(key), "addr/%d", r);
        if ((st = tide_store_get(store, key, 0, &v, &len)) != TIDE_SUCCESS)
            return die("tide_store_get", st);
        const record_t *rec = v;
        if (len != sizeof(record_t) || rec->rank != r || rec->pid <= 0 || !rec->host[0]) {
            fprintf(stderr, "rank %d: record of rank %d is wrong\n", rank, r);
            bad++;
        } else {
            for (int i = 0; i < WORDS; i++)
                bad += rec->data[i] != word(r, i);
        }
        free(v);
    }
    if (bad)
        fprintf(stderr, "rank %d: %d wrong elements\n", rank, bad);
    else
        printf("rank %d: verified %d peers\n", rank, n);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    tide_comm_t *comm;
    tide_store_t *store;
    int rank, n, rc = 0;
    tide_status_t st;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "env") == 0) {
        const char *v = getenv("TIDE_TEST_VAR");
        printf("TIDE_TEST_VAR=%s TIDE_RANK=%s\n", v ? v : "(unset)", getenv("TIDE_RANK"));
        return 0;
    }
    if ((st = tide_comm_init(&comm, NULL)) != TIDE_SUCCESS)
        return die("tide_comm_init", st);
    tide_comm_rank(comm, &rank);
    tide_comm_size(comm, &n);
    tide_comm_store(comm, &store);

    if (strcmp(mode, "ok") == 0) {
        rc = exchange(comm, rank, n);
    } else if (strcmp(mode, "fail") == 0) {
        if (rank == 1)
            _exit(1);
        tide_store_barrier(store, n, 60000); /* never completes */
        rc = 0;
    } else if (strcmp(mode, "hang") == 0 || strcmp(mode, "ignore-term") == 0) {
        if (strcmp(mode, "ignore-term") == 0)
            signal(SIGTERM, SIG_IGN);
        printf("rank %d: hanging\n", rank);
        sleep(3600);
    } else if (strcmp(mode, "keep") == 0) {
        if (rank == 1)
            _exit(3);
        usleep(500000);
        printf("rank %d: done\n", rank);
    } else {
        fprintf(stderr, "mp_rendezvous: unknown mode '%s'\n", mode);
        rc = 2;
    }
    tide_comm_destroy(comm);
    return rc;
}
