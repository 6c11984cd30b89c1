/*
 * Logging. A file sets TIDE_LOG_THIS to its subsystem before including
 * this header; messages then read
 *     host:pid rank N [subsys] level: message
 * Errors are logged where they are first known; callers propagate the
 * status. Logging preserves errno, so "%m" works after the failing call.
 * Data-path tracing (tide_trace_data) compiles out unless
 * TIDE_ENABLE_DATA_TRACE is defined.
 */
#ifndef TIDE_UTIL_LOG_H
#define TIDE_UTIL_LOG_H

#include <stdbool.h>
#include "tide.h"
#include "util_compiler.h"

#define TIDE_SUBSYS_LIST(X)                                                                        \
    X(UTIL, "util")                                                                                \
    X(BOOT, "boot")                                                                                \
    X(P2P, "p2p")                                                                                  \
    X(COLL, "coll")                                                                                \
    X(TOOL, "tool")

typedef enum tide_subsys {
#define TIDE_SUBSYS_ENUM_(id, name) TIDE_SUBSYS_##id,
    TIDE_SUBSYS_LIST(TIDE_SUBSYS_ENUM_)
#undef TIDE_SUBSYS_ENUM_
        TIDE_SUBSYS_COUNT
} tide_subsys_t;

#ifndef TIDE_LOG_THIS
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#endif

/* Current filter, filled from TIDE_LOG_* on first use. */
extern int tide_log_level_;
extern unsigned tide_log_mask_;
extern int tide_log_ready_;
void tide_log_init(void);

static inline bool tide_log_enabled(tide_log_level_t level, tide_subsys_t subsys)
{
    if (TIDE_UNLIKELY(!__atomic_load_n(&tide_log_ready_, __ATOMIC_ACQUIRE)))
        tide_log_init();
    return (int)level <= tide_log_level_ &&
           (level == TIDE_LOG_ERROR || (tide_log_mask_ & (1u << subsys)));
}

void tide_log_emit(tide_log_level_t level, tide_subsys_t subsys, const char *fmt, ...)
    TIDE_PRINTF(3, 4);

#define tide_log(level, ...)                                                                       \
    do {                                                                                           \
        if (tide_log_enabled((level), TIDE_LOG_THIS))                                              \
            tide_log_emit((level), TIDE_LOG_THIS, __VA_ARGS__);                                    \
    } while (0)

#define tide_error(...) tide_log(TIDE_LOG_ERROR, __VA_ARGS__)
#define tide_warn(...)  tide_log(TIDE_LOG_WARN, __VA_ARGS__)
#define tide_info(...)  tide_log(TIDE_LOG_INFO, __VA_ARGS__)
#define tide_debug(...) tide_log(TIDE_LOG_DEBUG, __VA_ARGS__)
#define tide_trace(...) tide_log(TIDE_LOG_TRACE, __VA_ARGS__)

#ifdef TIDE_ENABLE_DATA_TRACE
#define tide_trace_data(...) tide_trace(__VA_ARGS__)
#else
#define tide_trace_data(...) ((void)0)
#endif

/* The rank shown in the prefix: the calling thread's if set, else the
 * process's. -1 clears. */
void tide_log_set_rank(int rank);
void tide_log_set_thread_rank(int rank);

/* Re-read TIDE_LOG_* (tests change them at run time). */
void tide_log_reinit(void);

#endif
