/*
 * A plain C program that uses Tide inside a job started by Open MPI's
 * mpirun (no MPI calls: Tide finds the job through PMIx).
 *
 *   mpirun.openmpi -np 4 build/examples/allreduce_mpirun
 */
#include <stdio.h>
#include <stdlib.h>
#include "tide.h"

int main(void)
{
    tide_comm_t *comm;
    int rank, n;
    tide_status_t st = tide_comm_init(&comm, NULL); /* PMIx under mpirun */
    if (st != TIDE_SUCCESS) {
        fprintf(stderr, "tide_comm_init: %s\n", tide_status_str(st));
        return 1;
    }
    tide_comm_rank(comm, &rank);
    tide_comm_size(comm, &n);

    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = (float)(rank + 1);
    st = tide_allreduce(x, x, N, TIDE_FLOAT32, TIDE_SUM, comm); /* in place */
    int ok = st == TIDE_SUCCESS && x[0] == n * (n + 1) / 2.0f && x[N - 1] == x[0];
    printf("rank %d of %d: allreduce of %d floats: %s (x[0] = %g)\n", rank, n, N,
           ok ? "ok" : "WRONG", (double)x[0]);
    free(x);
    tide_comm_destroy(comm);
    return ok ? 0 : 1;
}
