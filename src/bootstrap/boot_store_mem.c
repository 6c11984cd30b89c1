/*
 * In-process store backend: the key-value core under a mutex, with a
 * condition variable that every change broadcasts. Used by 1-rank
 * communicators and by tests (N ranks as threads of one process).
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "boot_kv.h"
#include "util_log.h"
#include "util_param.h"
#include "util_time.h"

typedef struct mem_store {
    boot_backend_t be;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    boot_kv_t *kv;
} mem_store_t;

static mem_store_t *to_mem(boot_backend_t *be)
{
    return tide_container_of(be, mem_store_t, be);
}

/* Wait on the condition until pred holds or the deadline passes; called and
 * returns with the lock held. */
static tide_status_t mem_wait_until(mem_store_t *m, bool (*pred)(mem_store_t *, const void *),
                                    const void *arg, int timeout_ms)
{
    int64_t deadline = tide_deadline_ms(timeout_ms);
    struct timespec ts;
    tide_deadline_timespec(deadline, &ts);
    while (!pred(m, arg)) {
        if (timeout_ms == 0)
            return TIDE_ERR_NOT_FOUND;
        if (pthread_cond_timedwait(&m->changed, &m->lock, &ts) == ETIMEDOUT && !pred(m, arg))
            return TIDE_ERR_TIMEOUT;
    }
    return TIDE_SUCCESS;
}

static bool has_key(mem_store_t *m, const void *arg)
{
    const void *v;
    size_t len;
    return boot_kv_get(m->kv, arg, &v, &len);
}

struct key_list {
    const char *const *keys;
    size_t n;
};

static bool has_keys(mem_store_t *m, const void *arg)
{
    const struct key_list *kl = arg;
    for (size_t i = 0; i < kl->n; i++)
        if (!has_key(m, kl->keys[i]))
            return false;
    return true;
}

static tide_status_t mem_set(boot_backend_t *be, const char *key, const void *val, size_t len)
{
    mem_store_t *m = to_mem(be);
    pthread_mutex_lock(&m->lock);
    tide_status_t st = boot_kv_set(m->kv, key, val, len);
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static tide_status_t mem_get(boot_backend_t *be, const char *key, int timeout_ms, void **val,
                             size_t *len)
{
    mem_store_t *m = to_mem(be);
    const void *v;
    size_t n;
    pthread_mutex_lock(&m->lock);
    tide_status_t st = mem_wait_until(m, has_key, key, timeout_ms);
    if (st == TIDE_SUCCESS) {
        boot_kv_get(m->kv, key, &v, &n);
        void *copy = malloc(n ? n : 1);
        if (copy) {
            memcpy(copy, v, n);
            *val = copy;
            *len = n;
        } else {
            st = TIDE_ERR_NOMEM;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (st == TIDE_ERR_TIMEOUT)
        tide_error("store get '%s': not set within %d ms", key, timeout_ms);
    return st;
}

static tide_status_t mem_wait(boot_backend_t *be, const char *const *keys, size_t nkeys,
                              int timeout_ms)
{
    mem_store_t *m = to_mem(be);
    struct key_list kl = {keys, nkeys};
    pthread_mutex_lock(&m->lock);
    tide_status_t st = mem_wait_until(m, has_keys, &kl, timeout_ms);
    pthread_mutex_unlock(&m->lock);
    if (st == TIDE_ERR_TIMEOUT)
        tide_error("store wait for %zu keys ('%s'...): not all set within %d ms", nkeys, keys[0],
                   timeout_ms);
    return st;
}

static tide_status_t mem_add(boot_backend_t *be, const char *key, int64_t delta, int64_t *result)
{
    mem_store_t *m = to_mem(be);
    pthread_mutex_lock(&m->lock);
    tide_status_t st = boot_kv_add(m->kv, key, delta, result);
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static tide_status_t mem_cas(boot_backend_t *be, const char *key, const void *expected,
                             size_t exp_len, const void *desired, size_t des_len, bool *swapped)
{
    mem_store_t *m = to_mem(be);
    pthread_mutex_lock(&m->lock);
    tide_status_t st = boot_kv_cas(m->kv, key, expected, exp_len, desired, des_len, swapped);
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static tide_status_t mem_del(boot_backend_t *be, const char *key, bool *existed)
{
    mem_store_t *m = to_mem(be);
    pthread_mutex_lock(&m->lock);
    *existed = boot_kv_del(m->kv, key);
    pthread_mutex_unlock(&m->lock);
    return TIDE_SUCCESS;
}

static void mem_destroy(boot_backend_t *be)
{
    mem_store_t *m = to_mem(be);
    boot_kv_destroy(m->kv);
    pthread_cond_destroy(&m->changed);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static const boot_backend_ops_t mem_ops = {
    .name = "mem",
    .set = mem_set,
    .get = mem_get,
    .wait = mem_wait,
    .add = mem_add,
    .cas = mem_cas,
    .del = mem_del,
    .destroy = mem_destroy,
};

tide_status_t boot_store_mem_create(boot_backend_t **out)
{
    pthread_condattr_t attr;
    int64_t max_bytes;
    tide_status_t st = tide_param_int(TIDE_PARAM_STORE_MAX_BYTES, &max_bytes);
    if (st != TIDE_SUCCESS)
        return st;
    mem_store_t *m = calloc(1, sizeof(*m));
    if (!m) {
        tide_error("in-process store: out of memory");
        return TIDE_ERR_NOMEM;
    }
    st = boot_kv_create((size_t)max_bytes, &m->kv);
    if (st != TIDE_SUCCESS) {
        free(m);
        return st;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->changed, &attr);
    pthread_condattr_destroy(&attr);
    boot_backend_init(&m->be, &mem_ops);
    *out = &m->be;
    return TIDE_SUCCESS;
}
