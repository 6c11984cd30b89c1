/* TCP store server. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "boot_kv.h"
#include "boot_proto.h"
#include "util_list.h"
#include "util_log.h"
#include "util_param.h"
#include "util_random.h"
#include "util_sock.h"
#include "util_time.h"

#define CONN_FRAMES_PER_WAKEUP 64
#define ACCEPT_PAUSE_MS        100

enum { SERVER_RUN, SERVER_STOP };

typedef struct conn {
    tide_list_t link;       /* server->conns, or server->dead */
    tide_list_t timed_link; /* server->timed while authenticating or waiting */
    int fd;
    uint32_t events;
    bool authed, waiting, closing, dead;
    int64_t deadline;
    char peer[TIDE_ADDR_STR_MAX];
    uint8_t hdr_buf[BOOT_HDR_LEN];
    size_t hdr_got;
    boot_hdr_t hdr;
    uint8_t *body;
    size_t body_got;
    boot_req_t req;     /* the pending GET or WAIT; points into wait_body */
    uint8_t *wait_body; /* owned while waiting */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
} conn_t;

struct boot_server {
    int listen_fd, epfd, wake_fd;
    pthread_t thread;
    tide_sockaddr_t addr;
    char secret[TIDE_SECRET_MAX + 1];
    size_t secret_len;
    size_t max_value, max_body, out_high;
    int max_conns, auth_timeout_ms;
    boot_kv_t *kv;
    tide_list_t conns, timed, dead;
    int nconns; /* atomic: read by other threads */
    int state;  /* atomic: SERVER_* */
    bool accept_paused;
    int64_t accept_resume;
    int64_t refuse_logged;
};

static const char *op_name(uint8_t op)
{
    static const char *const names[] = {"?",   "HELLO", "SET", "GET", "WAIT",
                                        "ADD", "CAS",   "DEL", "PING"};
    return op < BOOT_OP_MAX_ ? names[op] : "unknown-op";
}

/* ------------------------------------------------------------ connections */

static void conn_set_events(boot_server_t *s, conn_t *c)
{
    uint32_t ev = EPOLLRDHUP;
    bool out_pending = c->out_off < c->out_len;
    if (out_pending)
        ev |= EPOLLOUT;
    if (!c->waiting && !c->closing && c->out_len - c->out_off < s->out_high)
        ev |= EPOLLIN;
    if (ev != c->events) {
        struct epoll_event e = {.events = ev, .data.ptr = c};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->events = ev;
    }
}

static void conn_kill(boot_server_t *s, conn_t *c)
{
    if (c->dead)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->dead = true;
    tide_list_remove(&c->timed_link);
    tide_list_remove(&c->link);
    tide_list_push_back(&s->dead, &c->link);
    __atomic_sub_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
}

static void free_dead(boot_server_t *s)
{
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &s->dead)
    {
        conn_t *c = tide_list_entry(pos, conn_t, link);
        tide_list_remove(pos);
        free(c->body);
        free(c->wait_body);
        free(c->out);
        free(c);
    }
}

static void conn_flush(boot_server_t *s, conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            tide_info("store: client %s: send failed: %m; closing", c->peer);
            conn_kill(s, c);
            return;
        }
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->closing) {
            conn_kill(s, c);
            return;
        }
    }
    conn_set_events(s, c);
}

static void conn_send(boot_server_t *s, conn_t *c, boot_wr_t *wr)
{
    if (boot_wr_finish(wr) != TIDE_SUCCESS)
        goto err_nomem;
    if (c->out_len + wr->len > c->out_cap) {
        size_t cap = TIDE_MAX(c->out_cap * 2, c->out_len + wr->len);
        uint8_t *out = realloc(c->out, cap);
        if (!out)
            goto err_nomem;
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, wr->buf, wr->len);
    c->out_len += wr->len;
    boot_wr_free(wr);
    conn_flush(s, c);
    return;

err_nomem:
    boot_wr_free(wr);
    tide_error("store: out of memory replying to %s; closing it", c->peer);
    conn_kill(s, c);
}

static void conn_reply(boot_server_t *s, conn_t *c, uint8_t status)
{
    boot_wr_t wr;
    boot_wr_init(&wr, c->hdr.op, status);
    conn_send(s, c, &wr);
}

static boot_reply_t status_reply(tide_status_t st)
{
    switch (st) {
    case TIDE_SUCCESS:
        return BOOT_R_OK;
    case TIDE_ERR_NOMEM:
        return BOOT_R_NOMEM;
    default:
        return BOOT_R_INVALID;
    }
}

/* Copy a protocol key (validated: 1..BOOT_KEY_MAX bytes, no NUL) into a C
 * string. */
static void key_str(char out[BOOT_KEY_MAX + 1], const uint8_t *key, size_t len)
{
    memcpy(out, key, len);
    out[len] = '\0';
}

/* ----------------------------------------------------------------- waits */

/* Reply to a pending GET or WAIT if it is satisfied; true if it was. */
static bool wait_try(boot_server_t *s, conn_t *c)
{
    char k[BOOT_KEY_MAX + 1];
    const void *val;
    size_t len;

    if (c->req.op == BOOT_OP_GET) {
        key_str(k, c->req.key, c->req.key_len);
        if (!boot_kv_get(s->kv, k, &val, &len))
            return false;
        boot_wr_t wr;
        boot_wr_init(&wr, BOOT_OP_GET, BOOT_R_OK);
        boot_wr_bytes(&wr, val, len);
        c->hdr.op = BOOT_OP_GET;
        c->waiting = false;
        conn_send(s, c, &wr);
        return true;
    }
    boot_rd_t it = {0};
    for (uint32_t i = 0; i < c->req.nkeys; i++) {
        const uint8_t *key;
        size_t klen;
        boot_req_key_at(&c->req, &it, &key, &klen);
        key_str(k, key, klen);
        if (!boot_kv_get(s->kv, k, &val, &len))
            return false;
    }
    c->hdr.op = BOOT_OP_WAIT;
    c->waiting = false;
    conn_reply(s, c, BOOT_R_OK);
    return true;
}

static void wait_done(boot_server_t *s, conn_t *c)
{
    tide_list_remove(&c->timed_link);
    free(c->wait_body);
    c->wait_body = NULL;
    if (!c->dead)
        conn_set_events(s, c);
}

/* A key changed: answer every waiter it completes. */
static void wake_waiters(boot_server_t *s)
{
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &s->timed)
    {
        conn_t *c = tide_list_entry(pos, conn_t, timed_link);
        if (c->waiting && wait_try(s, c))
            wait_done(s, c);
    }
}

/* Expire waits and authentication deadlines; return ms to the next one. */
static int expire_timed(boot_server_t *s)
{
    int64_t now = tide_time_ns(), next = now + 1000 * TIDE_NS_PER_MS;
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &s->timed)
    {
        conn_t *c = tide_list_entry(pos, conn_t, timed_link);
        if (c->deadline > now) {
            next = TIDE_MIN(next, c->deadline);
        } else if (!c->authed) {
            tide_warn("store: client %s did not authenticate within %d ms; closing", c->peer,
                      s->auth_timeout_ms);
            conn_kill(s, c);
        } else if (c->waiting) {
            c->hdr.op = c->req.op;
            c->waiting = false;
            conn_reply(s, c, BOOT_R_TIMEOUT);
            wait_done(s, c);
        }
    }
    if (s->accept_paused)
        next = TIDE_MIN(next, s->accept_resume);
    return (int)((next - now + TIDE_NS_PER_MS - 1) / TIDE_NS_PER_MS);
}

/* -------------------------------------------------------------- requests */

static void handle_hello(boot_server_t *s, conn_t *c, const boot_req_t *req)
{
    if (c->authed) {
        tide_warn("store: client %s sent HELLO twice; closing", c->peer);
        conn_kill(s, c);
        return;
    }
    if (req->version != BOOT_PROTO_VERSION ||
        !tide_secret_equal(req->value, req->value_len, s->secret, s->secret_len)) {
        if (req->version != BOOT_PROTO_VERSION)
            tide_warn("store: refused client %s: protocol version %u, expected %u", c->peer,
                      req->version, BOOT_PROTO_VERSION);
        else
            tide_warn("store: refused client %s: %s secret", c->peer,
                      req->value_len ? "wrong" : "missing");
        c->closing = true;
        conn_reply(s, c, BOOT_R_AUTH);
        return;
    }
    c->authed = true;
    tide_list_remove(&c->timed_link);
    tide_debug("store: client %s authenticated", c->peer);
    conn_reply(s, c, BOOT_R_OK);
}

/* GET and WAIT: answer now, or park the connection until a change or its
 * deadline. The body moves to wait_body while parked (req points into it). */
static void handle_wait(boot_server_t *s, conn_t *c, const boot_req_t *req)
{
    c->req = *req;
    if (wait_try(s, c))
        return;
    if (req->timeout_ms == 0) {
        conn_reply(s, c, BOOT_R_NOT_FOUND);
        return;
    }
    c->waiting = true;
    c->deadline = tide_deadline_ms(req->timeout_ms);
    tide_list_push_back(&s->timed, &c->timed_link);
    c->wait_body = c->body; /* req points into it; freed in wait_done */
    c->body = NULL;
    conn_set_events(s, c);
}

static void handle_request(boot_server_t *s, conn_t *c)
{
    char k[BOOT_KEY_MAX + 1];
    boot_req_t req;
    boot_wr_t wr;
    tide_status_t st;

    if (boot_req_decode(c->hdr.op, c->body, c->hdr.len, s->max_value, &req) != TIDE_SUCCESS) {
        tide_warn("store: client %s sent a malformed %s request (%u bytes); closing", c->peer,
                  op_name(c->hdr.op), c->hdr.len);
        conn_kill(s, c);
        return;
    }
    if (!c->authed && req.op != BOOT_OP_HELLO) {
        tide_warn("store: client %s sent %s before authenticating; closing", c->peer,
                  op_name(req.op));
        conn_kill(s, c);
        return;
    }
    if (req.key)
        key_str(k, req.key, req.key_len);

    switch (req.op) {
    case BOOT_OP_HELLO:
        handle_hello(s, c, &req);
        break;
    case BOOT_OP_SET:
        st = boot_kv_set(s->kv, k, req.value, req.value_len);
        conn_reply(s, c, status_reply(st));
        if (st == TIDE_SUCCESS)
            wake_waiters(s);
        break;
    case BOOT_OP_GET:
    case BOOT_OP_WAIT:
        handle_wait(s, c, &req);
        break;
    case BOOT_OP_ADD: {
        int64_t v = 0;
        st = boot_kv_add(s->kv, k, req.delta, &v);
        boot_wr_init(&wr, BOOT_OP_ADD, status_reply(st));
        if (st == TIDE_SUCCESS)
            boot_wr_i64(&wr, v);
        conn_send(s, c, &wr);
        if (st == TIDE_SUCCESS)
            wake_waiters(s);
        break;
    }
    case BOOT_OP_CAS: {
        bool swapped = false;
        st = boot_kv_cas(s->kv, k, req.has_expected ? req.expected : NULL, req.expected_len,
                         req.value, req.value_len, &swapped);
        boot_wr_init(&wr, BOOT_OP_CAS, status_reply(st));
        if (st == TIDE_SUCCESS)
            boot_wr_u8(&wr, swapped);
        conn_send(s, c, &wr);
        if (swapped)
            wake_waiters(s);
        break;
    }
    case BOOT_OP_DEL:
        boot_wr_init(&wr, BOOT_OP_DEL, BOOT_R_OK);
        boot_wr_u8(&wr, boot_kv_del(s->kv, k));
        conn_send(s, c, &wr);
        break;
    case BOOT_OP_PING:
        conn_reply(s, c, BOOT_R_OK);
        break;
    }
}

/* Receive into buf[*got..want); false when the connection ended or has
 * nothing more now (then *alive says which). */
static bool conn_recv(boot_server_t *s, conn_t *c, uint8_t *buf, size_t *got, size_t want)
{
    while (*got < want) {
        ssize_t n = recv(c->fd, buf + *got, want - *got, MSG_DONTWAIT);
        if (n > 0) {
            *got += (size_t)n;
        } else if (n == 0) {
            if (c->hdr_got || c->body_got)
                tide_info("store: client %s disconnected in the middle of a message", c->peer);
            else
                tide_debug("store: client %s disconnected", c->peer);
            conn_kill(s, c);
            return false;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return false;
        } else {
            tide_info("store: client %s: recv: %m; closing", c->peer);
            conn_kill(s, c);
            return false;
        }
    }
    return true;
}

static void conn_read(boot_server_t *s, conn_t *c)
{
    for (int i = 0; i < CONN_FRAMES_PER_WAKEUP; i++) {
        if (c->dead || c->waiting || c->closing || c->out_len - c->out_off >= s->out_high)
            break;
        if (c->hdr_got < BOOT_HDR_LEN) {
            if (!conn_recv(s, c, c->hdr_buf, &c->hdr_got, BOOT_HDR_LEN))
                break;
            if (boot_hdr_decode(c->hdr_buf, s->max_body, &c->hdr) != TIDE_SUCCESS) {
                tide_warn("store: client %s sent a bad header (magic or reserved bytes wrong, or "
                          "a body over %zu bytes); closing",
                          c->peer, s->max_body);
                conn_kill(s, c);
                break;
            }
            c->body = malloc(c->hdr.len ? c->hdr.len : 1);
            if (!c->body) {
                tide_error("store: no memory for a %u-byte message from %s; closing", c->hdr.len,
                           c->peer);
                conn_kill(s, c);
                break;
            }
            c->body_got = 0;
        }
        if (!conn_recv(s, c, c->body, &c->body_got, c->hdr.len))
            break;
        handle_request(s, c);
        c->hdr_got = c->body_got = 0;
        free(c->body); /* NULL when a wait took it */
        c->body = NULL;
    }
    if (!c->dead)
        conn_set_events(s, c);
}

/* ---------------------------------------------------------------- accept */

static void server_accept(boot_server_t *s)
{
    for (;;) {
        tide_sockaddr_t peer = {.len = sizeof(peer.ss)};
        int fd = accept4(s->listen_fd, (struct sockaddr *)&peer.ss, &peer.len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                tide_warn("store: accept: %m; pausing new connections for %d ms", ACCEPT_PAUSE_MS);
                struct epoll_event e = {.events = 0, .data.ptr = &s->listen_fd};
                epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->listen_fd, &e);
                s->accept_paused = true;
                s->accept_resume = tide_deadline_ms(ACCEPT_PAUSE_MS);
            }
            return;
        }
        if (__atomic_load_n(&s->nconns, __ATOMIC_RELAXED) >= s->max_conns) {
            int64_t now = tide_time_ns();
            if (now - s->refuse_logged > 1000 * TIDE_NS_PER_MS) {
                tide_warn("store: refusing connections beyond TIDE_STORE_MAX_CONNS=%d",
                          s->max_conns);
                s->refuse_logged = now;
            }
            close(fd);
            continue;
        }
        conn_t *c = calloc(1, sizeof(*c));
        if (!c) {
            tide_error("store: out of memory accepting a connection");
            close(fd);
            continue;
        }
        c->fd = fd;
        tide_sock_str(&peer, c->peer, sizeof(c->peer));
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event e = {.events = c->events, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
            tide_error("store: epoll_ctl(ADD) for %s: %m", c->peer);
            close(fd);
            free(c);
            continue;
        }
        c->deadline = tide_deadline_ms(s->auth_timeout_ms);
        tide_list_push_back(&s->conns, &c->link);
        tide_list_push_back(&s->timed, &c->timed_link);
        __atomic_add_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
        tide_debug("store: client %s connected", c->peer);
    }
}

/* ------------------------------------------------------------------ loop */

static void server_close_all(boot_server_t *s)
{
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &s->conns)
    {
        conn_kill(s, tide_list_entry(pos, conn_t, link));
    }
    free_dead(s);
}

static void server_free(boot_server_t *s)
{
    close(s->listen_fd);
    close(s->epfd);
    close(s->wake_fd);
    boot_kv_destroy(s->kv);
    free(s);
}

static void *server_main(void *arg)
{
    boot_server_t *s = arg;
    struct epoll_event events[64];

    for (;;) {
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SERVER_STOP)
            break;
        int timeout = expire_timed(s);
        if (s->accept_paused && tide_time_ns() >= s->accept_resume) {
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->listen_fd};
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->listen_fd, &e);
            s->accept_paused = false;
        }
        free_dead(s);
        int n = epoll_wait(s->epfd, events, (int)TIDE_ARRAY_SIZE(events), timeout);
        if (n < 0 && errno != EINTR) {
            tide_error("store: epoll_wait: %m; the server stops");
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &s->wake_fd) {
                tide_wake_drain(s->wake_fd);
            } else if (p == &s->listen_fd) {
                server_accept(s);
            } else {
                conn_t *c = p;
                if (c->dead)
                    continue;
                if (events[i].events & EPOLLOUT)
                    conn_flush(s, c);
                if (!c->dead && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                    conn_read(s, c);
                /* A parked or backlogged connection is not read; notice a
                 * hang-up anyway. */
                if (!c->dead && (events[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) &&
                    !(c->events & EPOLLIN)) {
                    tide_debug("store: client %s hung up", c->peer);
                    conn_kill(s, c);
                }
            }
        }
    }
    server_close_all(s);
    return NULL;
}

/* --------------------------------------------------------------- control */

static tide_status_t server_limits(boot_server_t *s)
{
    int64_t max_value, max_bytes, max_conns, auth_ms;
    tide_status_t st;
    if ((st = tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &max_value)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_STORE_MAX_BYTES, &max_bytes)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_STORE_MAX_CONNS, &max_conns)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_STORE_AUTH_TIMEOUT, &auth_ms)) != TIDE_SUCCESS)
        return st;
    s->max_value = (size_t)max_value;
    s->max_body = boot_body_max(s->max_value);
    s->out_high = 2 * s->max_body;
    s->max_conns = (int)max_conns;
    s->auth_timeout_ms = (int)auth_ms;
    return boot_kv_create((size_t)max_bytes, &s->kv);
}

tide_status_t boot_server_start(const char *host, uint16_t port, const char *secret,
                                boot_server_t **out)
{
    char addr_s[TIDE_ADDR_STR_MAX];
    sigset_t all, old;
    tide_status_t st;
    boot_server_t *s;
    int rc;

    if (!secret || strlen(secret) == 0 || strlen(secret) > TIDE_SECRET_MAX) {
        tide_error("store server: the secret must be 1..%d bytes", TIDE_SECRET_MAX);
        return TIDE_ERR_INVALID;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        tide_error("store server: out of memory");
        return TIDE_ERR_NOMEM;
    }
    s->listen_fd = s->epfd = s->wake_fd = -1;
    tide_list_init(&s->conns);
    tide_list_init(&s->timed);
    tide_list_init(&s->dead);
    s->secret_len = strlen(secret);
    memcpy(s->secret, secret, s->secret_len);
    if ((st = server_limits(s)) != TIDE_SUCCESS)
        goto err_free;
    if ((st = tide_sock_resolve(host && *host ? host : "0.0.0.0", port, &s->addr)) != TIDE_SUCCESS)
        goto err_free;
    if ((st = tide_sock_listen(&s->addr, 4096, &s->listen_fd)) != TIDE_SUCCESS)
        goto err_free;
    st = TIDE_ERR_IO;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->epfd < 0 || s->wake_fd < 0) {
        tide_error("store server: epoll_create1/eventfd: %m");
        goto err_free;
    }
    tide_sock_set_nonblock(s->listen_fd);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &s->listen_fd};
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &s->wake_fd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &le) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &we) != 0) {
        tide_error("store server: epoll_ctl: %m");
        goto err_free;
    }
    /* Signals belong to the application's threads, not to ours. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&s->thread, NULL, server_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        tide_error("store server: pthread_create: %m");
        goto err_free;
    }
    tide_info("store server listening on %s", tide_sock_str(&s->addr, addr_s, sizeof(addr_s)));
    *out = s;
    return TIDE_SUCCESS;

err_free:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    boot_kv_destroy(s->kv);
    free(s);
    return st;
}

tide_status_t boot_server_start_hosted(char secret[33], boot_server_t **out)
{
    char host[TIDE_HOST_MAX];
    tide_status_t st = tide_param_str(TIDE_PARAM_BOOTSTRAP_ADDR, host, sizeof(host));
    if (st != TIDE_SUCCESS)
        return st;
    if (!host[0])
        tide_sock_default_host(host, sizeof(host));
    if ((st = tide_secret_new(secret)) != TIDE_SUCCESS)
        return st;
    return boot_server_start(host, 0, secret, out);
}

const tide_sockaddr_t *boot_server_addr(const boot_server_t *s)
{
    return &s->addr;
}

int boot_server_nconns(const boot_server_t *s)
{
    return __atomic_load_n(&s->nconns, __ATOMIC_RELAXED);
}

static void server_wake(boot_server_t *s)
{
    tide_wake_post(s->wake_fd);
}

void boot_server_stop(boot_server_t *s)
{
    if (!s)
        return;
    __atomic_store_n(&s->state, SERVER_STOP, __ATOMIC_RELEASE);
    server_wake(s);
    pthread_join(s->thread, NULL);
    server_free(s);
}

void boot_server_drain(boot_server_t *s, int timeout_ms)
{
    if (!s)
        return;
    int64_t deadline = tide_deadline_ms(timeout_ms);
    while (boot_server_nconns(s) > 0 && tide_ms_left(deadline) > 0)
        usleep(2000);
    if (boot_server_nconns(s) > 0)
        tide_warn("store server: %d client(s) still connected after %d ms; stopping anyway",
                  boot_server_nconns(s), timeout_ms);
    boot_server_stop(s);
}
