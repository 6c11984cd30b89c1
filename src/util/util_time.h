/* Monotonic time and deadlines. Every wait in Tide is bounded by one. */
#ifndef TIDE_UTIL_TIME_H
#define TIDE_UTIL_TIME_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

#define TIDE_NS_PER_MS      1000000LL
#define TIDE_DEADLINE_NEVER INT64_MAX

static inline int64_t tide_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Deadline timeout_ms from now; timeout_ms < 0 never expires (internal use
 * only: public calls turn a negative timeout into the default first). */
static inline int64_t tide_deadline_ms(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return TIDE_DEADLINE_NEVER;
    return tide_time_ns() + timeout_ms * TIDE_NS_PER_MS;
}

/* Milliseconds left until deadline, rounded up, clamped to [0, INT_MAX]. */
static inline int tide_ms_left(int64_t deadline)
{
    if (deadline == TIDE_DEADLINE_NEVER)
        return INT_MAX;
    int64_t left = deadline - tide_time_ns();
    if (left <= 0)
        return 0;
    left = (left + TIDE_NS_PER_MS - 1) / TIDE_NS_PER_MS;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static inline void tide_deadline_timespec(int64_t deadline, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline / 1000000000LL);
    ts->tv_nsec = (long)(deadline % 1000000000LL);
}

#endif
