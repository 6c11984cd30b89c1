/*
 * TCP store server: one thread serving many clients over epoll. It never
 * trusts a client: the first message must authenticate with the job
 * secret; headers, lengths and keys are checked before use; a malformed,
 * truncated or oversized message, or a client that does not authenticate
 * in time, costs that client its connection and nothing else.
 */
#ifndef TIDE_BOOT_SERVER_H
#define TIDE_BOOT_SERVER_H

#include <stdint.h>
#include "tide.h"
#include "util_sock.h"

typedef struct boot_server boot_server_t;

/* Start serving on host:port (host NULL or "": all interfaces; port 0:
 * any free port). Limits come from TIDE_STORE_*. The caller owns *out
 * and ends it with boot_server_stop or boot_server_drain. */
tide_status_t boot_server_start(const char *host, uint16_t port, const char *secret,
                                boot_server_t **out);

/* A store hosted by this process for its job: on TIDE_BOOTSTRAP_ADDR (or
 * the first non-loopback interface), any free port, a fresh secret
 * (written to secret: 32 hex characters and a NUL). */
tide_status_t boot_server_start_hosted(char secret[33], boot_server_t **out);

/* The bound address (with the real port). */
const tide_sockaddr_t *boot_server_addr(const boot_server_t *s);

/* Connections open now (any thread). */
int boot_server_nconns(const boot_server_t *s);

/* Stop now: closes every connection, joins the thread, frees s. */
void boot_server_stop(boot_server_t *s);

/* Keep serving until no client is connected or timeout_ms passed, then
 * stop and free s. Blocks. */
void boot_server_drain(boot_server_t *s, int timeout_ms);

#endif
