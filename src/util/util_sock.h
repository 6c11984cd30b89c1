/*
 * Socket helpers shared by the bootstrap store and the TCP transport.
 * All blocking helpers take an absolute deadline (util_time.h) and name
 * what they were doing (`what`) in the error they log.
 */
#ifndef TIDE_UTIL_SOCK_H
#define TIDE_UTIL_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "tide.h"

typedef struct tide_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
} tide_sockaddr_t;

#define TIDE_HOST_MAX     256
#define TIDE_ADDR_STR_MAX (TIDE_HOST_MAX + 16)

/* Split "host:port", "[v6]:port" into host and port (1..65535). */
tide_status_t tide_sock_split(const char *hostport, char *host, size_t host_cap, uint16_t *port);

/* Resolve host (name or numeric) and port; prefers IPv4. */
tide_status_t tide_sock_resolve(const char *host, uint16_t port, tide_sockaddr_t *addr);

/* "ip:port" (IPv6 in brackets) into buf. */
const char *tide_sock_str(const tide_sockaddr_t *addr, char *buf, size_t cap);

uint16_t tide_sock_port(const tide_sockaddr_t *addr);

/* A listening, close-on-exec socket bound to addr (port 0: any); the bound
 * address (with the real port) is written back into *addr. */
tide_status_t tide_sock_listen(tide_sockaddr_t *addr, int backlog, int *fd);

/* Connect, retrying while nothing listens yet (ECONNREFUSED and friends)
 * until deadline. The socket is blocking, close-on-exec, TCP_NODELAY.
 * A failure is logged as an error. tide_sock_try_connect leaves that to
 * its caller (errno tells why), and with wait_listen false takes a
 * refusal as final: for a peer that listened before, nothing listening
 * means it has gone. */
tide_status_t tide_sock_connect(const tide_sockaddr_t *addr, int64_t deadline, int *fd);
tide_status_t tide_sock_try_connect(const tide_sockaddr_t *addr, int64_t deadline, bool wait_listen,
                                    int *fd);

/* Send or receive exactly len bytes before deadline. A peer that closes
 * is TIDE_ERR_IO; an expired deadline is TIDE_ERR_TIMEOUT. */
tide_status_t tide_sock_send_all(int fd, const void *buf, size_t len, int64_t deadline,
                                 const char *what);
tide_status_t tide_sock_recv_all(int fd, void *buf, size_t len, int64_t deadline, const char *what);

tide_status_t tide_sock_set_nonblock(int fd);

/* Whether a connected socket's two ends are addresses of this host: the
 * peer's is a loopback address or the same as ours. */
bool tide_sock_same_host(int fd);

/* An eventfd (EFD_NONBLOCK) that wakes a thread blocked in epoll: post
 * one wake-up; consume all pending ones. */
void tide_wake_post(int efd);
void tide_wake_drain(int efd);

/* The first non-loopback IPv4 address of an interface that is up, or
 * 127.0.0.1 when there is none. */
tide_status_t tide_sock_default_host(char *buf, size_t cap);

#endif
