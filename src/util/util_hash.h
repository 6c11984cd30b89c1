/* Hashing helpers. */
#ifndef TIDE_UTIL_HASH_H
#define TIDE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a: fast, good enough for in-memory tables of short keys. */
static inline uint64_t tide_hash_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
