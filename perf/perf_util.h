/*
 * What the benchmark programs of perf/ share (header only: mpi_coll_bench
 * and bound_allreduce link nothing of Tide).
 */
#ifndef TIDE_PERF_UTIL_H
#define TIDE_PERF_UTIL_H

#include <stdbool.h>
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

/* The sweep the collective benchmarks share: sizes min..max, each
 * factor times the last; iters timed operations after warmup ones;
 * rewrite (-W 1): the input written anew before each, only the
 * operations timed. */
typedef struct perf_sweep {
    size_t min, max, factor;
    int iters, warmup, rewrite;
} perf_sweep_t;

#define PERF_SWEEP_DEFAULTS                                                                        \
    {                                                                                              \
        8, (size_t)64 << 20, 2, 20, 5, 0                                                           \
    }
#define PERF_SWEEP_OPTS "b:e:f:n:w:W:"

/* Take getopt's option c where it is one of the sweep's: -b MIN -e MAX
 * -f FACTOR -n ITERS -w WARMUP -W 0|1. */
static inline bool perf_sweep_opt(perf_sweep_t *s, int c, const char *arg)
{
    switch (c) {
    case 'b':
        s->min = perf_parse_size(arg);
        return true;
    case 'e':
        s->max = perf_parse_size(arg);
        return true;
    case 'f':
        s->factor = strtoul(arg, NULL, 10);
        return true;
    case 'n':
        s->iters = atoi(arg);
        return true;
    case 'w':
        s->warmup = atoi(arg);
        return true;
    case 'W':
        s->rewrite = atoi(arg);
        return true;
    default:
        return false;
    }
}

/* Whether the sweep is one to run: sizes from min_floor to max_cap, a
 * factor of 2 or more, an iteration at least, -W 0 or 1. */
static inline bool perf_sweep_ok(const perf_sweep_t *s, size_t min_floor, size_t max_cap)
{
    return s->min >= min_floor && s->max >= s->min && s->max <= max_cap && s->factor >= 2 &&
           s->iters >= 1 && s->warmup >= 0 && (s->rewrite == 0 || s->rewrite == 1);
}

#endif
