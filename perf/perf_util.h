/*
 * What the benchmark programs of perf/ share (header only: mpi_coll_bench
 * and bound_allreduce link nothing of Tide).
 */
#ifndef TIDE_PERF_UTIL_H
#define TIDE_PERF_UTIL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double perf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A size in bytes: a number, optionally followed by K, M or G (powers of
 * 1024). Garbage reads as 0, which the callers' range checks refuse. */
static inline size_t perf_parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (v < 0)
        return 0;
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        break;
    default:
        break;
    }
    return (size_t)v;
}

#endif
