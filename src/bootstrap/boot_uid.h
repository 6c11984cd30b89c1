/*
 * Unique ids (tide_get_unique_id): the creating process hosts a store
 * server; the id carries its address, secret and a nonce that names the
 * job's key namespace. Servers are kept in a process-wide registry: a
 * communicator of this process that uses the id holds a reference, and
 * when the last one goes the server stops once its clients have left.
 */
#ifndef TIDE_BOOT_UID_H
#define TIDE_BOOT_UID_H

#include <stdint.h>
#include "tide.h"
#include "util_random.h"
#include "util_sock.h"

typedef struct boot_uid {
    char addr[TIDE_ADDR_STR_MAX];
    char secret[33];
    uint64_t nonce;
} boot_uid_t;

tide_status_t boot_uid_create(tide_unique_id_t *id);
tide_status_t boot_uid_decode(const tide_unique_id_t *id, boot_uid_t *uid);

/* Reference the server of nonce if this process hosts it (no-op if not). */
void boot_uid_acquire(uint64_t nonce);

/* Drop a reference; the last one keeps the server up until its clients
 * have left (at most drain_ms; 0: stop now), then stops it. */
void boot_uid_release(uint64_t nonce, int drain_ms);

#endif
