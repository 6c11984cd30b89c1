/* Fixed-size object pool. */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_pool.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include "util_log.h"

tide_status_t tide_pool_init(tide_pool_t *pool, const char *name, size_t elem_size, size_t align,
                             size_t grow, size_t max)
{
    if (!pool || elem_size == 0 || grow == 0) {
        tide_error("pool init: invalid argument (pool %p, elem_size %zu, grow %zu)", (void *)pool,
                   elem_size, grow);
        return TIDE_ERR_INVALID;
    }
    if (align == 0)
        align = alignof(max_align_t);
    if ((align & (align - 1)) != 0 || align > 4096) {
        tide_error("pool %s: alignment %zu is not a power of two <= 4096", name, align);
        return TIDE_ERR_INVALID;
    }
    if (elem_size < sizeof(void *))
        elem_size = sizeof(void *);
    memset(pool, 0, sizeof(*pool));
    pool->name = name ? name : "pool";
    pool->align = align < sizeof(void *) ? sizeof(void *) : align;
    pool->stride = (elem_size + pool->align - 1) & ~(pool->align - 1);
    pool->grow = grow;
    pool->max = max;
    return TIDE_SUCCESS;
}

static int pool_grow(tide_pool_t *pool)
{
    size_t n = pool->grow;
    void *chunk;

    if (pool->max) {
        if (pool->allocated >= pool->max)
            return -1;
        if (n > pool->max - pool->allocated)
            n = pool->max - pool->allocated;
    }
    if (pool->nchunks == pool->chunks_cap) {
        size_t cap = pool->chunks_cap ? pool->chunks_cap * 2 : 8;
        void **chunks = realloc(pool->chunks, cap * sizeof(*chunks));
        if (!chunks)
            goto err_nomem;
        pool->chunks = chunks;
        pool->chunks_cap = cap;
    }
    if (posix_memalign(&chunk, pool->align, n * pool->stride) != 0)
        goto err_nomem;
    pool->chunks[pool->nchunks++] = chunk;
    for (size_t i = n; i-- > 0;) {
        void **obj = (void **)((char *)chunk + i * pool->stride);
        *obj = pool->free_list;
        pool->free_list = obj;
    }
    pool->allocated += n;
    return 0;

err_nomem:
    tide_error("pool %s: cannot grow by %zu elements of %zu bytes", pool->name, n, pool->stride);
    return -1;
}

void *tide_pool_get(tide_pool_t *pool)
{
    if (TIDE_UNLIKELY(!pool->free_list) && pool_grow(pool) != 0)
        return NULL;
    void **obj = pool->free_list;
    pool->free_list = *obj;
    pool->in_use++;
    return obj;
}

void tide_pool_put(tide_pool_t *pool, void *obj)
{
    *(void **)obj = pool->free_list;
    pool->free_list = obj;
    pool->in_use--;
}

void tide_pool_cleanup(tide_pool_t *pool)
{
    if (!pool)
        return;
    if (pool->in_use)
        tide_warn("pool %s: %zu objects still in use at cleanup", pool->name, pool->in_use);
    for (size_t i = 0; i < pool->nchunks; i++)
        free(pool->chunks[i]);
    free(pool->chunks);
    memset(pool, 0, sizeof(*pool));
}
