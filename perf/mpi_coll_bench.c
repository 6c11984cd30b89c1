/*
 * The peer users would otherwise pick, measured the way tide_perf measures
 * Tide: MPI_Allreduce / MPI_Allgather / MPI_Bcast (float, sum) / MPI_Barrier
 * (one row, size 0), same sizes,
 * same columns (out-of-place only), the slowest rank's average time.
 * -W 1 rewrites the input before every iteration and times only the
 * collective calls, as tide_perf -W 1 does.
 *
 *   mpirun -np N mpi_coll_bench allreduce|allgather|broadcast|barrier [-b MIN] [-e MAX] [-f F]
 *          [-n I] [-w W] [-W 0|1]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "perf_util.h"

static int usage(int rank, const char *why)
{
    if (rank == 0)
        fprintf(stderr,
                "mpi_coll_bench: %s\nusage: mpi_coll_bench allreduce|allgather|broadcast|barrier "
                "[-b MIN] [-e MAX] [-f FACTOR>=2] [-n ITERS>=1] [-w WARMUP>=0] [-W 0|1]\n",
                why);
    MPI_Finalize();
    return 2;
}

int main(int argc, char **argv)
{
    int rank, n, c;
    perf_sweep_t sw = PERF_SWEEP_DEFAULTS;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc < 2)
        return usage(rank, "which collective?");
    const char *kind = argv[1];
    int ag = strcmp(kind, "allgather") == 0, bc = strcmp(kind, "broadcast") == 0;
    int bar = strcmp(kind, "barrier") == 0;
    if (!ag && !bc && !bar && strcmp(kind, "allreduce") != 0)
        return usage(rank, "unknown collective");
    optind = 2;
    while ((c = getopt(argc, argv, PERF_SWEEP_OPTS)) != -1)
        if (!perf_sweep_opt(&sw, c, optarg))
            return usage(rank, "unknown option");
    if (!perf_sweep_ok(&sw, 1, (size_t)2 << 30))
        return usage(rank, "bad option value");
    if (bar)
        sw.min = sw.max = 1;
    size_t min = sw.min, max = sw.max, factor = sw.factor;
    int iters = sw.iters, warmup = sw.warmup, rewrite = sw.rewrite;
    double f = ag ? (double)(n - 1) / n : bc ? 1.0 : 2.0 * (n - 1) / n;
    /* Written once, as tide_perf writes its buffers: memory calloc'd and
     * never written maps the kernel's one shared zero page, which a
     * collective whose input is left unchanged (no -W) would read from
     * cache, where a program's real data would come from memory. */
    float *s = malloc(max + 64), *r = malloc(max + 64);
    if (!s || !r) {
        fprintf(stderr, "mpi_coll_bench: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(s, 0, max + 64);
    memset(r, 0, max + 64);
    if (rank == 0)
        printf("# mpi_coll_bench %s: %d ranks, float, %d iterations (%d warmup)\n", kind, n, iters,
               warmup);
    for (size_t size = min; size <= max; size *= factor) {
        size_t count = bar ? 0 : size / 4 / (ag ? (size_t)n : 1);
        size_t bytes = count * 4 * (ag ? (size_t)n : 1);
        double t0 = 0, busy = 0, t1 = 0;
        for (int it = 0; it < warmup + iters; it++) {
            if (it == warmup) {
                MPI_Barrier(MPI_COMM_WORLD);
                t0 = MPI_Wtime();
            }
            if (rewrite) {
                memset(bc ? (void *)r : (void *)s, it & 0x3f, bc ? bytes : ag ? count * 4 : bytes);
                t1 = MPI_Wtime();
            }
            if (bar)
                MPI_Barrier(MPI_COMM_WORLD);
            else if (ag)
                MPI_Allgather(s, (int)count, MPI_FLOAT, r, (int)count, MPI_FLOAT, MPI_COMM_WORLD);
            else if (bc)
                MPI_Bcast(r, (int)count, MPI_FLOAT, 0, MPI_COMM_WORLD);
            else
                MPI_Allreduce(s, r, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (rewrite && it >= warmup)
                busy += MPI_Wtime() - t1;
        }
        double t = (rewrite ? busy : MPI_Wtime() - t0) / iters, tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double alg = bytes / tmax / 1e9;
        if (rank == 0)
            printf("  %10zu %12zu %8s %6s %5d   %9.2f %7.3f %7.3f %6d\n", bytes, count, "float",
                   bc || ag || bar ? "none" : "sum", bc ? 0 : -1, tmax * 1e6, alg, alg * f, 0);
    }
    free(s);
    free(r);
    MPI_Finalize();
    return 0;
}
