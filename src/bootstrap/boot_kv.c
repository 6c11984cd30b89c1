/* The store's key-value core: chained hash map with a byte budget. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_kv.h"

#include <stdlib.h>
#include <string.h>
#include "util_hash.h"
#include "util_log.h"

typedef struct kv_entry {
    struct kv_entry *next;
    uint64_t hash;
    void *val;
    size_t val_len;
    size_t key_len;
    char key[];
} kv_entry_t;

struct boot_kv {
    kv_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t bytes;
    size_t max_bytes;
};

tide_status_t boot_kv_create(size_t max_bytes, boot_kv_t **out)
{
    boot_kv_t *kv = calloc(1, sizeof(*kv));
    if (!kv)
        goto err_nomem;
    kv->nbuckets = 64;
    kv->buckets = calloc(kv->nbuckets, sizeof(*kv->buckets));
    if (!kv->buckets)
        goto err_free_kv;
    kv->max_bytes = max_bytes;
    *out = kv;
    return TIDE_SUCCESS;

err_free_kv:
    free(kv);
err_nomem:
    tide_error("store: cannot allocate the key-value map");
    return TIDE_ERR_NOMEM;
}

void boot_kv_destroy(boot_kv_t *kv)
{
    if (!kv)
        return;
    for (size_t i = 0; i < kv->nbuckets; i++) {
        for (kv_entry_t *e = kv->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->val);
            free(e);
        }
    }
    free(kv->buckets);
    free(kv);
}

static kv_entry_t **kv_slot(const boot_kv_t *kv, const char *key, size_t key_len, uint64_t hash)
{
    kv_entry_t **slot = &kv->buckets[hash & (kv->nbuckets - 1)];
    for (; *slot; slot = &(*slot)->next)
        if ((*slot)->hash == hash && (*slot)->key_len == key_len &&
            memcmp((*slot)->key, key, key_len) == 0)
            break;
    return slot;
}

static void kv_grow(boot_kv_t *kv)
{
    size_t n = kv->nbuckets * 2;
    kv_entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* keep the old table: slower, still correct */
    for (size_t i = 0; i < kv->nbuckets; i++) {
        for (kv_entry_t *e = kv->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(kv->buckets);
    kv->buckets = b;
    kv->nbuckets = n;
}

bool boot_kv_get(const boot_kv_t *kv, const char *key, const void **val, size_t *len)
{
    size_t key_len = strlen(key);
    kv_entry_t *e = *kv_slot(kv, key, key_len, tide_hash_fnv1a(key, key_len));
    if (!e)
        return false;
    *val = e->val;
    *len = e->val_len;
    return true;
}

tide_status_t boot_kv_set(boot_kv_t *kv, const char *key, const void *val, size_t len)
{
    size_t key_len = strlen(key);
    uint64_t hash = tide_hash_fnv1a(key, key_len);
    kv_entry_t **slot = kv_slot(kv, key, key_len, hash), *e = *slot;
    size_t old = e ? e->val_len : 0, extra = e ? 0 : key_len + sizeof(*e);

    if (kv->bytes - old + len + extra > kv->max_bytes) {
        tide_warn("store: refusing '%s' (%zu bytes): the store holds %zu of at most %zu bytes", key,
                  len, kv->bytes, kv->max_bytes);
        return TIDE_ERR_NOMEM;
    }
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return TIDE_ERR_NOMEM;
    memcpy(copy, val, len);
    if (!e) {
        e = malloc(sizeof(*e) + key_len + 1);
        if (!e) {
            free(copy);
            return TIDE_ERR_NOMEM;
        }
        e->hash = hash;
        e->key_len = key_len;
        memcpy(e->key, key, key_len + 1);
        e->val = NULL;
        e->val_len = 0;
        e->next = NULL;
        *slot = e;
        kv->count++;
    }
    free(e->val);
    e->val = copy;
    e->val_len = len;
    kv->bytes = kv->bytes - old + len + extra;
    if (kv->count > kv->nbuckets)
        kv_grow(kv);
    return TIDE_SUCCESS;
}

tide_status_t boot_kv_add(boot_kv_t *kv, const char *key, int64_t delta, int64_t *result)
{
    const void *val;
    size_t len;
    uint64_t u = 0;
    unsigned char buf[8];

    if (boot_kv_get(kv, key, &val, &len)) {
        if (len != 8) {
            tide_warn("store: add on '%s', which holds %zu bytes, not a counter", key, len);
            return TIDE_ERR_INVALID;
        }
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | ((const unsigned char *)val)[i];
    }
    u += (uint64_t)delta; /* wraps like the two's-complement counter it is */
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(u >> (8 * i));
    tide_status_t st = boot_kv_set(kv, key, buf, sizeof(buf));
    if (st == TIDE_SUCCESS)
        *result = (int64_t)u;
    return st;
}

tide_status_t boot_kv_cas(boot_kv_t *kv, const char *key, const void *expected, size_t exp_len,
                          const void *desired, size_t des_len, bool *swapped)
{
    const void *val;
    size_t len;
    bool present = boot_kv_get(kv, key, &val, &len);
    bool match = expected ? present && len == exp_len && memcmp(val, expected, len) == 0 : !present;

    *swapped = false;
    if (!match)
        return TIDE_SUCCESS;
    tide_status_t st = boot_kv_set(kv, key, desired, des_len);
    *swapped = st == TIDE_SUCCESS;
    return st;
}

bool boot_kv_del(boot_kv_t *kv, const char *key)
{
    size_t key_len = strlen(key);
    kv_entry_t **slot = kv_slot(kv, key, key_len, tide_hash_fnv1a(key, key_len)), *e = *slot;
    if (!e)
        return false;
    *slot = e->next;
    kv->bytes -= e->val_len + e->key_len + sizeof(*e);
    kv->count--;
    free(e->val);
    free(e);
    return true;
}
