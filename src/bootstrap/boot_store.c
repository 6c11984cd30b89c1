/* Store views: argument checks, key prefixes, barrier; the public API. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util_log.h"
#include "util_param.h"

void boot_backend_init(boot_backend_t *be, const boot_backend_ops_t *ops)
{
    be->ops = ops;
    be->refs = 1;
}

void boot_backend_ref(boot_backend_t *be)
{
    __atomic_add_fetch(&be->refs, 1, __ATOMIC_RELAXED);
}

void boot_backend_unref(boot_backend_t *be)
{
    if (be && __atomic_sub_fetch(&be->refs, 1, __ATOMIC_ACQ_REL) == 0)
        be->ops->destroy(be);
}

tide_status_t boot_default_timeout(int *timeout_ms)
{
    int64_t v;
    tide_status_t st = tide_param_int(TIDE_PARAM_BOOTSTRAP_TIMEOUT, &v);
    if (st == TIDE_SUCCESS)
        *timeout_ms = (int)v;
    return st;
}

tide_status_t boot_store_create(boot_backend_t *be, const char *prefix, int default_timeout_ms,
                                tide_store_t **out)
{
    size_t len = strlen(prefix);
    tide_store_t *s;

    if (len >= BOOT_PREFIX_MAX) {
        tide_error("store prefix '%s' is longer than %d bytes", prefix, BOOT_PREFIX_MAX - 1);
        return TIDE_ERR_INVALID;
    }
    int64_t max_value;
    tide_status_t st = tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &max_value);
    if (st != TIDE_SUCCESS)
        return st;
    if (default_timeout_ms < 0 && (st = boot_default_timeout(&default_timeout_ms)) != TIDE_SUCCESS)
        return st;
    s = calloc(1, sizeof(*s));
    if (!s) {
        tide_error("store: out of memory");
        return TIDE_ERR_NOMEM;
    }
    boot_backend_ref(be);
    s->be = be;
    memcpy(s->prefix, prefix, len + 1);
    s->prefix_len = len;
    s->default_timeout_ms = default_timeout_ms;
    s->max_value = (size_t)max_value;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return TIDE_SUCCESS;
}

tide_status_t boot_store_sub(const tide_store_t *parent, const char *suffix, tide_store_t **out)
{
    char prefix[BOOT_PREFIX_MAX];
    int n = snprintf(prefix, sizeof(prefix), "%s%s", parent->prefix, suffix);
    if (n < 0 || (size_t)n >= sizeof(prefix)) {
        tide_error("store prefix '%s%s' is too long", parent->prefix, suffix);
        return TIDE_ERR_INVALID;
    }
    return boot_store_create(parent->be, prefix, parent->default_timeout_ms, out);
}

void boot_store_free(tide_store_t *s)
{
    if (!s)
        return;
    boot_backend_unref(s->be);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

uint32_t boot_store_next_index(tide_store_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t k = s->next_index++;
    pthread_mutex_unlock(&s->lock);
    return k;
}

tide_status_t tide_store_destroy(tide_store_t *store)
{
    if (!store) {
        tide_error("tide_store_destroy: store must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (store->borrowed) {
        tide_error("tide_store_destroy: this store belongs to a communicator; it goes with it");
        return TIDE_ERR_INVALID;
    }
    boot_store_free(store);
    return TIDE_SUCCESS;
}

tide_status_t tide_store_connect(const char *addr, const char *secret, int timeout_ms,
                                 tide_store_t **store)
{
    boot_backend_t *be;
    tide_status_t st;

    if (!addr || !secret || !store) {
        tide_error("tide_store_connect: addr, secret and store must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (timeout_ms < 0 && (st = boot_default_timeout(&timeout_ms)) != TIDE_SUCCESS)
        return st;
    st = boot_tcp_client_create(addr, secret, timeout_ms, &be);
    if (st != TIDE_SUCCESS)
        return st;
    st = boot_store_create(be, "", -1, store);
    boot_backend_unref(be);
    return st;
}

/* The full key: prefix + key, checked against the key limit. */
static tide_status_t full_key(const tide_store_t *s, const char *key, char *buf, const char *call)
{
    size_t len;
    if (!s || !key) {
        tide_error("%s: store and key must not be NULL", call);
        return TIDE_ERR_INVALID;
    }
    len = strlen(key);
    if (len == 0 || s->prefix_len + len > BOOT_KEY_MAX) {
        tide_error("%s: key '%s%s' must be 1..%u bytes", call, s->prefix, key, BOOT_KEY_MAX);
        return TIDE_ERR_INVALID;
    }
    memcpy(buf, s->prefix, s->prefix_len);
    memcpy(buf + s->prefix_len, key, len + 1);
    return TIDE_SUCCESS;
}

static tide_status_t check_value(const tide_store_t *s, const char *key, const void *val,
                                 size_t len, const char *what)
{
    if (!val && len) {
        tide_error("%s('%s'): value is NULL with length %zu", what, key, len);
        return TIDE_ERR_INVALID;
    }
    if (len > s->max_value) {
        tide_error("%s('%s'): %zu bytes is over TIDE_STORE_MAX_VALUE (%zu)", what, key, len,
                   s->max_value);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static int pick_timeout(const tide_store_t *s, int timeout_ms)
{
    return timeout_ms < 0 ? s->default_timeout_ms : timeout_ms;
}

tide_status_t tide_store_set(tide_store_t *store, const char *key, const void *value, size_t len)
{
    char k[BOOT_KEY_MAX + 1];
    tide_status_t st = full_key(store, key, k, "tide_store_set");
    if (st != TIDE_SUCCESS)
        return st;
    if ((st = check_value(store, k, value, len, "tide_store_set")) != TIDE_SUCCESS)
        return st;
    return store->be->ops->set(store->be, k, value ? value : "", len);
}

tide_status_t tide_store_get(tide_store_t *store, const char *key, int timeout_ms, void **value,
                             size_t *len)
{
    char k[BOOT_KEY_MAX + 1];
    tide_status_t st = full_key(store, key, k, "tide_store_get");
    if (st != TIDE_SUCCESS)
        return st;
    if (!value || !len) {
        tide_error("tide_store_get('%s'): value and len must not be NULL", k);
        return TIDE_ERR_INVALID;
    }
    return store->be->ops->get(store->be, k, pick_timeout(store, timeout_ms), value, len);
}

tide_status_t tide_store_wait(tide_store_t *store, const char *const *keys, size_t nkeys,
                              int timeout_ms)
{
    tide_status_t st = TIDE_SUCCESS;
    char(*k)[BOOT_KEY_MAX + 1];
    const char **kp;

    if (!store || !keys || nkeys == 0 || nkeys > BOOT_WAIT_KEYS_MAX) {
        tide_error("tide_store_wait: need a store and 1..%u keys (got %zu)", BOOT_WAIT_KEYS_MAX,
                   nkeys);
        return TIDE_ERR_INVALID;
    }
    k = malloc(nkeys * sizeof(*k));
    kp = malloc(nkeys * sizeof(*kp));
    if (!k || !kp) {
        tide_error("tide_store_wait: out of memory for %zu keys", nkeys);
        st = TIDE_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < nkeys && st == TIDE_SUCCESS; i++) {
        st = full_key(store, keys[i], k[i], "tide_store_wait");
        kp[i] = k[i];
    }
    if (st == TIDE_SUCCESS)
        st = store->be->ops->wait(store->be, kp, nkeys, pick_timeout(store, timeout_ms));
out:
    free(kp);
    free(k);
    return st;
}

tide_status_t tide_store_add(tide_store_t *store, const char *key, int64_t delta, int64_t *result)
{
    char k[BOOT_KEY_MAX + 1];
    int64_t r;
    tide_status_t st = full_key(store, key, k, "tide_store_add");
    if (st != TIDE_SUCCESS)
        return st;
    st = store->be->ops->add(store->be, k, delta, &r);
    if (st == TIDE_SUCCESS && result)
        *result = r;
    return st;
}

tide_status_t tide_store_cas(tide_store_t *store, const char *key, const void *expected,
                             size_t expected_len, const void *desired, size_t desired_len,
                             int *swapped)
{
    char k[BOOT_KEY_MAX + 1];
    bool sw;
    tide_status_t st = full_key(store, key, k, "tide_store_cas");
    if (st != TIDE_SUCCESS)
        return st;
    if ((st = check_value(store, k, desired, desired_len, "tide_store_cas")) != TIDE_SUCCESS ||
        (st = check_value(store, k, expected, expected ? expected_len : 0, "tide_store_cas")) !=
            TIDE_SUCCESS)
        return st;
    st = store->be->ops->cas(store->be, k, expected, expected ? expected_len : 0,
                             desired ? desired : "", desired_len, &sw);
    if (st == TIDE_SUCCESS && swapped)
        *swapped = sw;
    return st;
}

tide_status_t tide_store_delete(tide_store_t *store, const char *key, int *existed)
{
    char k[BOOT_KEY_MAX + 1];
    bool ex;
    tide_status_t st = full_key(store, key, k, "tide_store_delete");
    if (st != TIDE_SUCCESS)
        return st;
    st = store->be->ops->del(store->be, k, &ex);
    if (st == TIDE_SUCCESS && existed)
        *existed = ex;
    return st;
}

/*
 * Barrier number `seq` on a namespace: every party adds 1 to
 * barrier/<seq>/n; the one that brings it to nparties sets
 * barrier/<seq>/done, which everybody waits for. When barrier seq is
 * complete, every party has left barrier seq-1, so its last arriver deletes
 * the keys of seq-1 and the store does not grow with the number of
 * barriers.
 */
tide_status_t tide_store_barrier(tide_store_t *store, int nparties, int timeout_ms)
{
    char count_key[64], done_key[64];
    int64_t arrived;
    uint64_t seq;
    tide_status_t st;

    if (!store || nparties < 1) {
        tide_error("tide_store_barrier: need a store and nparties >= 1 (got %d)", nparties);
        return TIDE_ERR_INVALID;
    }
    timeout_ms = pick_timeout(store, timeout_ms);
    pthread_mutex_lock(&store->lock);
    seq = ++store->barrier_seq;
    pthread_mutex_unlock(&store->lock);

    snprintf(count_key, sizeof(count_key), "barrier/%" PRIu64 "/n", seq);
    snprintf(done_key, sizeof(done_key), "barrier/%" PRIu64 "/done", seq);
    st = tide_store_add(store, count_key, 1, &arrived);
    if (st != TIDE_SUCCESS)
        return st;
    if (arrived > nparties) {
        tide_error("barrier %" PRIu64 " on '%s': %" PRId64 " parties arrived, expected %d", seq,
                   store->prefix, arrived, nparties);
        return TIDE_ERR_INVALID;
    }
    if (arrived == nparties) {
        st = tide_store_set(store, done_key, "", 0);
        if (st != TIDE_SUCCESS)
            return st;
        if (seq > 1) {
            char old[64];
            snprintf(old, sizeof(old), "barrier/%" PRIu64 "/n", seq - 1);
            tide_store_delete(store, old, NULL);
            snprintf(old, sizeof(old), "barrier/%" PRIu64 "/done", seq - 1);
            tide_store_delete(store, old, NULL);
        }
        return TIDE_SUCCESS;
    }
    const char *keys[1] = {done_key};
    st = tide_store_wait(store, keys, 1, timeout_ms);
    if (st == TIDE_ERR_TIMEOUT) {
        int64_t now = 0;
        tide_store_add(store, count_key, 0, &now);
        tide_error("barrier %" PRIu64 " on '%s': %" PRId64 " of %d parties arrived within %d ms",
                   seq, store->prefix, now, nparties, timeout_ms);
    }
    return st;
}
