/* Socket helpers. */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util_log.h"
#include "util_time.h"

tide_status_t tide_sock_split(const char *hostport, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon, *hs = hostport;
    size_t hlen;
    char *end;

    if (!hostport || !host || !port)
        return TIDE_ERR_INVALID;
    if (hostport[0] == '[') {
        const char *rb = strchr(hostport, ']');
        if (!rb || rb[1] != ':')
            goto err;
        hs = hostport + 1;
        hlen = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon)
            goto err;
        hlen = (size_t)(colon - hostport);
    }
    if (hlen == 0 || hlen >= host_cap)
        goto err;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || end == colon + 1 || p < 1 || p > 65535)
        goto err;
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return TIDE_SUCCESS;
err:
    tide_error("'%s' is not host:port (port 1..65535)", hostport);
    return TIDE_ERR_INVALID;
}

tide_status_t tide_sock_resolve(const char *host, uint16_t port, tide_sockaddr_t *addr)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res, *ai;
    char port_s[8];
    int rc;

    snprintf(port_s, sizeof(port_s), "%u", port);
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0) {
        tide_error("cannot resolve '%s': %s", host, gai_strerror(rc));
        return TIDE_ERR_INVALID;
    }
    ai = res;
    for (struct addrinfo *p = res; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            ai = p;
            break;
        }
    }
    memcpy(&addr->ss, ai->ai_addr, ai->ai_addrlen);
    addr->len = ai->ai_addrlen;
    freeaddrinfo(res);
    return TIDE_SUCCESS;
}

const char *tide_sock_str(const tide_sockaddr_t *addr, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)&addr->ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(in->sin_port));
    } else if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)&addr->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "(family %d)", addr->ss.ss_family);
    }
    return buf;
}

uint16_t tide_sock_port(const tide_sockaddr_t *addr)
{
    if (addr->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)&addr->ss)->sin_port);
    if (addr->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)&addr->ss)->sin6_port);
    return 0;
}

tide_status_t tide_sock_listen(tide_sockaddr_t *addr, int backlog, int *fd_out)
{
    char s[TIDE_ADDR_STR_MAX];
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tide_error("socket(): %m");
        return TIDE_ERR_IO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr->ss, addr->len) != 0) {
        tide_error("bind(%s): %m", tide_sock_str(addr, s, sizeof(s)));
        goto err_close;
    }
    if (listen(fd, backlog) != 0) {
        tide_error("listen(%s): %m", tide_sock_str(addr, s, sizeof(s)));
        goto err_close;
    }
    addr->len = sizeof(addr->ss);
    if (getsockname(fd, (struct sockaddr *)&addr->ss, &addr->len) != 0) {
        tide_error("getsockname(): %m");
        goto err_close;
    }
    *fd_out = fd;
    return TIDE_SUCCESS;

err_close:
    close(fd);
    return TIDE_ERR_IO;
}

static void sock_tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* One non-blocking connect attempt, waited for until deadline. Returns 0,
 * or the errno of the failure. */
static int connect_once(const tide_sockaddr_t *addr, int64_t deadline, int *fd_out)
{
    int err = 0;
    socklen_t elen = sizeof(err);
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto out_close;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int rc;
        do {
            rc = poll(&pfd, 1, tide_ms_left(deadline));
        } while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            err = ETIMEDOUT;
            goto out_close;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err)
            goto out_close;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    sock_tune(fd);
    *fd_out = fd;
    return 0;
out_close:
    close(fd);
    return err;
}

tide_status_t tide_sock_try_connect(const tide_sockaddr_t *addr, int64_t deadline, bool wait_listen,
                                    int *fd)
{
    int err, delay_ms = 10;

    for (;;) {
        err = connect_once(addr, deadline, fd);
        if (err == 0)
            return TIDE_SUCCESS;
        bool retry = (err == ECONNREFUSED && wait_listen) || err == ECONNRESET ||
                     err == ECONNABORTED || err == EAGAIN || err == ENETUNREACH ||
                     err == EHOSTUNREACH;
        if (!retry || tide_ms_left(deadline) == 0)
            break;
        usleep((useconds_t)TIDE_MIN(delay_ms, tide_ms_left(deadline)) * 1000);
        delay_ms = TIDE_MIN(delay_ms * 2, 500);
    }
    errno = err;
    return err == ETIMEDOUT || tide_ms_left(deadline) == 0 ? TIDE_ERR_TIMEOUT : TIDE_ERR_IO;
}

tide_status_t tide_sock_connect(const tide_sockaddr_t *addr, int64_t deadline, int *fd)
{
    char s[TIDE_ADDR_STR_MAX];
    tide_status_t st = tide_sock_try_connect(addr, deadline, true, fd);
    if (st != TIDE_SUCCESS)
        tide_error("connect to %s: %m", tide_sock_str(addr, s, sizeof(s)));
    return st;
}

static tide_status_t sock_wait(int fd, short events, int64_t deadline, const char *what)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, tide_ms_left(deadline));
        if (rc > 0)
            return TIDE_SUCCESS;
        if (rc == 0) {
            tide_error("%s: timed out", what);
            return TIDE_ERR_TIMEOUT;
        }
        if (errno != EINTR) {
            tide_error("%s: poll: %m", what);
            return TIDE_ERR_IO;
        }
    }
}

tide_status_t tide_sock_send_all(int fd, const void *buf, size_t len, int64_t deadline,
                                 const char *what)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            tide_status_t st = sock_wait(fd, POLLOUT, deadline, what);
            if (st != TIDE_SUCCESS)
                return st;
        } else if (n < 0 && errno != EINTR) {
            tide_error("%s: send: %m", what);
            return TIDE_ERR_IO;
        }
    }
    return TIDE_SUCCESS;
}

tide_status_t tide_sock_recv_all(int fd, void *buf, size_t len, int64_t deadline, const char *what)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == 0) {
            tide_error("%s: connection closed by peer", what);
            return TIDE_ERR_IO;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tide_status_t st = sock_wait(fd, POLLIN, deadline, what);
            if (st != TIDE_SUCCESS)
                return st;
        } else if (errno != EINTR) {
            tide_error("%s: recv: %m", what);
            return TIDE_ERR_IO;
        }
    }
    return TIDE_SUCCESS;
}

tide_status_t tide_sock_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        tide_error("fcntl(O_NONBLOCK) on fd %d: %m", fd);
        return TIDE_ERR_IO;
    }
    return TIDE_SUCCESS;
}

static bool addr_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family != AF_INET6)
        return false;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

bool tide_sock_same_host(int fd)
{
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof(me), pl = sizeof(peer);
    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 || me.ss_family != peer.ss_family)
        return false;
    if (addr_loopback(&peer))
        return true;
    if (peer.ss_family == AF_INET)
        return ((struct sockaddr_in *)&me)->sin_addr.s_addr ==
               ((struct sockaddr_in *)&peer)->sin_addr.s_addr;
    if (peer.ss_family == AF_INET6)
        return memcmp(&((struct sockaddr_in6 *)&me)->sin6_addr,
                      &((struct sockaddr_in6 *)&peer)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

tide_status_t tide_sock_default_host(char *buf, size_t cap)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
                (i->ifa_flags & IFF_LOOPBACK))
                continue;
            struct sockaddr_in *in = (void *)i->ifa_addr;
            if (inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)cap)) {
                freeifaddrs(ifs);
                return TIDE_SUCCESS;
            }
        }
        freeifaddrs(ifs);
    }
    snprintf(buf, cap, "127.0.0.1");
    return TIDE_SUCCESS;
}

void tide_wake_post(int efd)
{
    uint64_t one = 1;
    ssize_t r = write(efd, &one, sizeof(one));
    (void)r; /* a full counter already wakes the reader */
}

void tide_wake_drain(int efd)
{
    uint64_t v;
    ssize_t r = read(efd, &v, sizeof(v));
    (void)r; /* EAGAIN: nothing was pending */
}
