/*
 * Store interface. A backend (in-process map, TCP client) implements the
 * ops below; a store handle (tide_store_t, the public type) is a view of a
 * backend with a key prefix, so every communicator gets its own namespace
 * over one shared connection. Barriers are built once, here, from add and
 * wait, and work on every backend.
 *
 * Contract of every op: keys arrive prefixed, NUL-terminated and at most
 * BOOT_KEY_MAX bytes; ops are thread-safe and may block, never longer than
 * their timeout (ops without one are bounded by the backend's I/O
 * timeout); outputs are written only on success; errors are logged by the
 * backend where they happen.
 */
#ifndef TIDE_BOOT_STORE_H
#define TIDE_BOOT_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include "tide.h"
#include "boot_proto.h"

typedef struct boot_backend boot_backend_t;

typedef struct boot_backend_ops {
    const char *name;
    tide_status_t (*set)(boot_backend_t *be, const char *key, const void *val, size_t len);
    /* Waits up to timeout_ms (0: no wait, absent is TIDE_ERR_NOT_FOUND).
     * *val is malloc'd and the caller's. */
    tide_status_t (*get)(boot_backend_t *be, const char *key, int timeout_ms, void **val,
                         size_t *len);
    tide_status_t (*wait)(boot_backend_t *be, const char *const *keys, size_t nkeys,
                          int timeout_ms);
    tide_status_t (*add)(boot_backend_t *be, const char *key, int64_t delta, int64_t *result);
    tide_status_t (*cas)(boot_backend_t *be, const char *key, const void *expected, size_t exp_len,
                         const void *desired, size_t des_len, bool *swapped);
    tide_status_t (*del)(boot_backend_t *be, const char *key, bool *existed);
    /* Called when the last reference goes; frees the backend. */
    void (*destroy)(boot_backend_t *be);
} boot_backend_ops_t;

struct boot_backend {
    const boot_backend_ops_t *ops;
    int refs; /* atomic */
};

void boot_backend_init(boot_backend_t *be, const boot_backend_ops_t *ops);
void boot_backend_ref(boot_backend_t *be);
void boot_backend_unref(boot_backend_t *be);

#define BOOT_PREFIX_MAX 256

struct tide_store {
    boot_backend_t *be;
    char prefix[BOOT_PREFIX_MAX];
    size_t prefix_len;
    int default_timeout_ms;
    size_t max_value; /* TIDE_STORE_MAX_VALUE, checked before any backend */
    bool borrowed;    /* belongs to a communicator: tide_store_destroy refuses */
    pthread_mutex_t lock;
    uint64_t barrier_seq;
    uint32_t next_index; /* boot_store_next_index */
};

/* A view of be (takes a reference) under prefix. default_timeout_ms < 0:
 * TIDE_BOOTSTRAP_TIMEOUT. */
tide_status_t boot_store_create(boot_backend_t *be, const char *prefix, int default_timeout_ms,
                                tide_store_t **out);

/* A view nested under parent's prefix + suffix. */
tide_status_t boot_store_sub(const tide_store_t *parent, const char *suffix, tide_store_t **out);

void boot_store_free(tide_store_t *store);

/* 0, 1, 2, ... per view: names the k-th object (an engine) that ranks
 * create on the same namespace in the same order. */
uint32_t boot_store_next_index(tide_store_t *store);

/* Backends */
tide_status_t boot_store_mem_create(boot_backend_t **out);
tide_status_t boot_tcp_client_create(const char *addr, const char *secret, int timeout_ms,
                                     boot_backend_t **out);

/* Reads TIDE_BOOTSTRAP_TIMEOUT (refusing bad values). */
tide_status_t boot_default_timeout(int *timeout_ms);

#endif
