/*
 * Fixed-size object pool: objects come from chunks allocated as the pool
 * grows and go back to a free list, so steady-state get/put never touch
 * the heap. Not thread-safe: the owner serialises access (pools belong to
 * one progress context). Objects still out at cleanup are reported.
 */
#ifndef TIDE_UTIL_POOL_H
#define TIDE_UTIL_POOL_H

#include <stddef.h>
#include "tide.h"

typedef struct tide_pool {
    const char *name;
    size_t stride; /* element size rounded up to the alignment */
    size_t align;
    size_t grow;      /* elements per chunk */
    size_t max;       /* most elements ever allocated (0: unlimited) */
    size_t allocated; /* elements in all chunks */
    size_t in_use;
    void *free_list;
    void **chunks;
    size_t nchunks, chunks_cap;
} tide_pool_t;

/* align: a power of two (0: alignof(max_align_t)); grow: elements per
 * chunk (> 0); max: cap on elements (0: unlimited). */
tide_status_t tide_pool_init(tide_pool_t *pool, const char *name, size_t elem_size, size_t align,
                             size_t grow, size_t max);

/* An object (contents undefined), or NULL when the pool is at max or out
 * of memory (logged). */
void *tide_pool_get(tide_pool_t *pool);

/* Return an object obtained from this pool. */
void tide_pool_put(tide_pool_t *pool, void *obj);

/* Free every chunk; warns about objects not returned. */
void tide_pool_cleanup(tide_pool_t *pool);

#endif
