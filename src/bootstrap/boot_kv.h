/*
 * The store's key-value core: a hash map of NUL-terminated keys to byte
 * values with the store's semantics (set, add on 8-byte counters,
 * compare-and-set, delete). Never blocks and never locks: the in-process
 * store wraps it in a mutex and condition variable, the TCP server drives it
 * from its one thread. Values returned are borrowed until the next change.
 */
#ifndef TIDE_BOOT_KV_H
#define TIDE_BOOT_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tide.h"

typedef struct boot_kv boot_kv_t;

/* max_bytes bounds keys plus values held (writes beyond: TIDE_ERR_NOMEM). */
tide_status_t boot_kv_create(size_t max_bytes, boot_kv_t **out);
void boot_kv_destroy(boot_kv_t *kv);

bool boot_kv_get(const boot_kv_t *kv, const char *key, const void **val, size_t *len);
tide_status_t boot_kv_set(boot_kv_t *kv, const char *key, const void *val, size_t len);

/* Counters are 8-byte little-endian values; a key holding anything else
 * is TIDE_ERR_INVALID. A missing key counts from 0. */
tide_status_t boot_kv_add(boot_kv_t *kv, const char *key, int64_t delta, int64_t *result);

/* expected == NULL: swap only if key is absent. */
tide_status_t boot_kv_cas(boot_kv_t *kv, const char *key, const void *expected, size_t exp_len,
                          const void *desired, size_t des_len, bool *swapped);

bool boot_kv_del(boot_kv_t *kv, const char *key);

#endif
