/*
 * A program run under mpirun.openmpi (no MPI in it: Tide finds the job
 * through PMIx). Modes:
 *   ok            rendezvous, check rank/size against the launcher's
 *                 variables, allreduce, split
 *   exit-early    rank 1 leaves before tide_comm_init; the others must fail
 *                 (not hang), naming it
 *   exit-later    rank 1 leaves after it; the others' allreduce must fail
 *                 within the timeout, naming it
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tide.h"

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    const char *env_rank = getenv("PMIX_RANK");
    int launcher_rank = env_rank ? atoi(env_rank) : -1;
    tide_comm_t *comm;
    int rank = -1, n = -1;
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (strcmp(mode, "exit-early") == 0 && launcher_rank == 1)
        _exit(0);
    tide_status_t st = tide_comm_init(&comm, NULL);
    if (st != TIDE_SUCCESS) {
        printf("rank %d: tide_comm_init failed: %s\n", launcher_rank, tide_status_str(st));
        return strcmp(mode, "exit-early") == 0 ? 0 : 1;
    }
    if (strcmp(mode, "exit-early") == 0) {
        printf("rank %d: tide_comm_init succeeded although rank 1 left\n", launcher_rank);
        return 1;
    }
    tide_comm_rank(comm, &rank);
    tide_comm_size(comm, &n);
    const char *env_size = getenv("OMPI_COMM_WORLD_SIZE");
    if (rank != launcher_rank || (env_size && n != atoi(env_size))) {
        printf("rank %d: launcher says rank %d of %s\n", rank, launcher_rank, env_size);
        return 1;
    }
    if (strcmp(mode, "exit-later") == 0) {
        if (rank == 1)
            _exit(0);
        int64_t x = rank;
        st = tide_allreduce(&x, &x, 1, TIDE_INT64, TIDE_SUM, comm);
        printf("rank %d: allreduce without rank 1: %s\n", rank, tide_status_str(st));
        tide_comm_abort(comm); /* a peer is gone: do not wait for anything */
        return st == TIDE_ERR_TIMEOUT || st == TIDE_ERR_PEER ? 0 : 1;
    }
    int64_t x = rank + 1;
    st = tide_allreduce(&x, &x, 1, TIDE_INT64, TIDE_SUM, comm);
    tide_comm_t *half;
    tide_status_t st2 = tide_comm_split(comm, rank % 2, rank, &half);
    int hn = 0;
    if (st2 == TIDE_SUCCESS) {
        int64_t one = 1;
        st2 = tide_allreduce(&one, &one, 1, TIDE_INT64, TIDE_SUM, half);
        tide_comm_size(half, &hn);
        if (st2 == TIDE_SUCCESS && one != hn)
            st2 = TIDE_ERR_INTERNAL;
        tide_comm_destroy(half);
    }
    int ok = st == TIDE_SUCCESS && x == (int64_t)n * (n + 1) / 2 && st2 == TIDE_SUCCESS;
    printf("rank %d of %d: %s\n", rank, n, ok ? "ok" : "WRONG");
    tide_comm_destroy(comm);
    return ok ? 0 : 1;
}
