/* Small compiler helpers shared by every layer. */
#ifndef TIDE_UTIL_COMPILER_H
#define TIDE_UTIL_COMPILER_H

#include <stddef.h>

#define TIDE_LIKELY(x)                __builtin_expect(!!(x), 1)
#define TIDE_UNLIKELY(x)              __builtin_expect(!!(x), 0)
#define TIDE_UNUSED                   __attribute__((unused))
#define TIDE_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define TIDE_ARRAY_SIZE(a)            (sizeof(a) / sizeof((a)[0]))
#define TIDE_MIN(a, b)                ((a) < (b) ? (a) : (b))
#define TIDE_MAX(a, b)                ((a) > (b) ? (a) : (b))
#define tide_container_of(ptr, type, member)                                                       \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
