/*
 * TCP store client backend. Requests run on a small pool of connections,
 * opened on demand: one request at a time per connection, so a caller
 * blocked in a wait occupies one connection and never holds up another
 * thread's requests (communicators of one process share the client). A
 * single-threaded process uses one connection. The server answers wait
 * timeouts itself; our own deadline is the wait plus the I/O timeout, after
 * which that connection is considered broken and closed (the next request
 * reconnects and authenticates again). Replies are checked like requests
 * are on the server: op, status, length and fields, before anything is
 * used.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util_log.h"
#include "util_param.h"
#include "util_random.h"
#include "util_sock.h"
#include "util_time.h"

#define POOL_MAX 16

typedef struct tcp_client {
    boot_backend_t be;
    pthread_mutex_t lock;
    pthread_cond_t idle; /* a connection was returned */
    int fds[POOL_MAX];   /* -1: not connected */
    bool busy[POOL_MAX];
    tide_sockaddr_t addr;
    char addr_s[TIDE_ADDR_STR_MAX];
    char secret[TIDE_SECRET_MAX + 1];
    int io_timeout_ms;
    size_t max_body;
} tcp_client_t;

static tcp_client_t *to_client(boot_backend_t *be)
{
    return tide_container_of(be, tcp_client_t, be);
}

static tide_status_t reply_status(const tcp_client_t *cl, uint8_t op, uint8_t status,
                                  const char *key)
{
    switch (status) {
    case BOOT_R_OK:
        return TIDE_SUCCESS;
    case BOOT_R_TIMEOUT:
        return TIDE_ERR_TIMEOUT;
    case BOOT_R_NOT_FOUND:
        return TIDE_ERR_NOT_FOUND;
    case BOOT_R_AUTH:
        tide_error("store %s refused our secret", cl->addr_s);
        return TIDE_ERR_AUTH;
    case BOOT_R_NOMEM:
        tide_error("store %s: out of space for '%s' (TIDE_STORE_MAX_BYTES)", cl->addr_s, key);
        return TIDE_ERR_NOMEM;
    default:
        tide_error("store %s refused request %u on '%s' as invalid", cl->addr_s, op, key);
        return TIDE_ERR_INVALID;
    }
}

/* Send wr on fd and receive the reply: header in *h, body (malloc'd) in
 * *body. */
static tide_status_t client_exchange(tcp_client_t *cl, int fd, boot_wr_t *wr, int64_t deadline,
                                     boot_hdr_t *h, uint8_t **body)
{
    uint8_t hdr[BOOT_HDR_LEN];
    tide_status_t st = boot_wr_finish(wr);
    if (st != TIDE_SUCCESS)
        return st;
    if ((st = tide_sock_send_all(fd, wr->buf, wr->len, deadline, "store request")) != 0 ||
        (st = tide_sock_recv_all(fd, hdr, sizeof(hdr), deadline, "store reply")) != 0)
        return st;
    if (boot_hdr_decode(hdr, cl->max_body, h) != TIDE_SUCCESS || h->op != wr->buf[4]) {
        tide_error("store %s sent a malformed reply header", cl->addr_s);
        return TIDE_ERR_IO;
    }
    *body = malloc(h->len ? h->len : 1);
    if (!*body)
        return TIDE_ERR_NOMEM;
    st = tide_sock_recv_all(fd, *body, h->len, deadline, "store reply");
    if (st != TIDE_SUCCESS) {
        free(*body);
        *body = NULL;
    }
    return st;
}

/* Open and authenticate a connection; *fd on success. */
static tide_status_t client_connect(tcp_client_t *cl, int64_t deadline, int *fd_out)
{
    boot_wr_t wr;
    boot_hdr_t h;
    uint8_t *body = NULL;
    int fd;
    tide_status_t st = tide_sock_connect(&cl->addr, deadline, &fd);
    if (st != TIDE_SUCCESS)
        return st;
    boot_wr_init(&wr, BOOT_OP_HELLO, 0);
    boot_wr_u32(&wr, BOOT_PROTO_VERSION);
    boot_wr_bytes(&wr, cl->secret, strlen(cl->secret));
    st = client_exchange(cl, fd, &wr, deadline, &h, &body);
    boot_wr_free(&wr);
    free(body);
    if (st == TIDE_SUCCESS)
        st = reply_status(cl, BOOT_OP_HELLO, h.status, "(hello)");
    if (st != TIDE_SUCCESS) {
        if (st != TIDE_ERR_AUTH)
            tide_error("store %s: handshake failed: %s", cl->addr_s, tide_status_str(st));
        close(fd);
        return st;
    }
    *fd_out = fd;
    return TIDE_SUCCESS;
}

/* Take a connection for one request: an idle one, else a new one (up to
 * POOL_MAX), else wait for one to come back. Returns the slot, or -1. */
static int conn_acquire(tcp_client_t *cl, int64_t deadline, tide_status_t *st)
{
    struct timespec ts;
    tide_deadline_timespec(deadline, &ts);
    pthread_mutex_lock(&cl->lock);
    for (;;) {
        int fresh = -1;
        for (int i = 0; i < POOL_MAX; i++) {
            if (cl->busy[i])
                continue;
            if (cl->fds[i] >= 0) {
                cl->busy[i] = true;
                pthread_mutex_unlock(&cl->lock);
                return i;
            }
            if (fresh < 0)
                fresh = i;
        }
        if (fresh >= 0) {
            cl->busy[fresh] = true;
            pthread_mutex_unlock(&cl->lock);
            int fd;
            *st = client_connect(cl, deadline, &fd);
            pthread_mutex_lock(&cl->lock);
            if (*st == TIDE_SUCCESS)
                cl->fds[fresh] = fd;
            else
                cl->busy[fresh] = false;
            pthread_cond_broadcast(&cl->idle);
            pthread_mutex_unlock(&cl->lock);
            return *st == TIDE_SUCCESS ? fresh : -1;
        }
        if (pthread_cond_timedwait(&cl->idle, &cl->lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&cl->lock);
            tide_error("store %s: all %d connections stayed busy", cl->addr_s, POOL_MAX);
            *st = TIDE_ERR_TIMEOUT;
            return -1;
        }
    }
}

static void conn_release(tcp_client_t *cl, int slot, bool broken)
{
    pthread_mutex_lock(&cl->lock);
    if (broken) {
        close(cl->fds[slot]);
        cl->fds[slot] = -1;
    }
    cl->busy[slot] = false;
    pthread_cond_broadcast(&cl->idle);
    pthread_mutex_unlock(&cl->lock);
}

/*
 * One request/reply round trip on a pooled connection; on success the
 * reply's status is translated and its body handed to *body (for the
 * caller to parse and free). Any I/O failure drops that connection.
 */
static tide_status_t client_rpc(tcp_client_t *cl, boot_wr_t *wr, int wait_ms, const char *key,
                                uint8_t **body, size_t *body_len)
{
    int64_t deadline = tide_deadline_ms((int64_t)wait_ms + cl->io_timeout_ms);
    boot_hdr_t h;
    tide_status_t st = TIDE_SUCCESS;

    *body = NULL;
    int slot = conn_acquire(cl, tide_deadline_ms(cl->io_timeout_ms), &st);
    if (slot >= 0) {
        st = client_exchange(cl, cl->fds[slot], wr, deadline, &h, body);
        if (st != TIDE_SUCCESS)
            tide_error("store %s: request on '%s' failed: %s", cl->addr_s, key,
                       tide_status_str(st));
        conn_release(cl, slot, st != TIDE_SUCCESS);
    }
    boot_wr_free(wr);
    if (st != TIDE_SUCCESS)
        return st;
    *body_len = h.len;
    st = reply_status(cl, h.op, h.status, key);
    if (st != TIDE_SUCCESS) {
        free(*body);
        *body = NULL;
    }
    return st;
}

/* Parse a reply body with exactly the fields the caller reads. */
static tide_status_t reply_check(tcp_client_t *cl, const boot_rd_t *rd, const char *key)
{
    if (rd->bad || rd->left != 0) {
        /* The connection went back to the pool with the reply read in
         * full, so the stream is still in step; the reply is refused. */
        tide_error("store %s: malformed reply for '%s'", cl->addr_s, key);
        return TIDE_ERR_IO;
    }
    return TIDE_SUCCESS;
}

/* What a reply body holds besides its status. */
typedef enum reply_shape { REPLY_EMPTY, REPLY_U8, REPLY_I64 } reply_shape_t;

/* A round trip whose reply is empty or one scalar, returned in *out. */
static tide_status_t client_call(tcp_client_t *cl, boot_wr_t *wr, int wait_ms, const char *key,
                                 reply_shape_t shape, int64_t *out)
{
    uint8_t *body;
    size_t blen;
    tide_status_t st = client_rpc(cl, wr, wait_ms, key, &body, &blen);
    if (st != TIDE_SUCCESS)
        return st;
    boot_rd_t rd = {.p = body, .left = blen};
    int64_t v = shape == REPLY_U8 ? boot_rd_u8(&rd) : shape == REPLY_I64 ? boot_rd_i64(&rd) : 0;
    st = reply_check(cl, &rd, key);
    free(body);
    if (st == TIDE_SUCCESS && out)
        *out = v;
    return st;
}

static tide_status_t tcp_set(boot_backend_t *be, const char *key, const void *val, size_t len)
{
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_SET, 0);
    boot_wr_bytes(&wr, key, strlen(key));
    boot_wr_bytes(&wr, val, len);
    return client_call(to_client(be), &wr, 0, key, REPLY_EMPTY, NULL);
}

static tide_status_t tcp_get(boot_backend_t *be, const char *key, int timeout_ms, void **val,
                             size_t *len)
{
    tcp_client_t *cl = to_client(be);
    boot_wr_t wr;
    uint8_t *body;
    size_t blen;
    boot_wr_init(&wr, BOOT_OP_GET, 0);
    boot_wr_bytes(&wr, key, strlen(key));
    boot_wr_u32(&wr, (uint32_t)TIDE_MIN((unsigned)timeout_ms, BOOT_TIMEOUT_MAX));
    tide_status_t st = client_rpc(cl, &wr, timeout_ms, key, &body, &blen);
    if (st == TIDE_ERR_TIMEOUT)
        tide_error("store get '%s': not set within %d ms", key, timeout_ms);
    if (st != TIDE_SUCCESS)
        return st;
    boot_rd_t rd = {.p = body, .left = blen};
    const uint8_t *v;
    size_t vlen;
    boot_rd_bytes(&rd, blen, &v, &vlen);
    st = reply_check(cl, &rd, key);
    if (st != TIDE_SUCCESS) {
        free(body);
        return st;
    }
    /* Hand back the body itself, the value moved to its start. */
    memmove(body, v, vlen);
    *val = body;
    *len = vlen;
    return TIDE_SUCCESS;
}

static tide_status_t tcp_wait(boot_backend_t *be, const char *const *keys, size_t nkeys,
                              int timeout_ms)
{
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_WAIT, 0);
    boot_wr_u32(&wr, (uint32_t)TIDE_MIN((unsigned)timeout_ms, BOOT_TIMEOUT_MAX));
    boot_wr_u32(&wr, (uint32_t)nkeys);
    for (size_t i = 0; i < nkeys; i++)
        boot_wr_bytes(&wr, keys[i], strlen(keys[i]));
    tide_status_t st = client_call(to_client(be), &wr, timeout_ms, keys[0], REPLY_EMPTY, NULL);
    if (st == TIDE_ERR_TIMEOUT)
        tide_error("store wait for %zu keys ('%s'...): not all set within %d ms", nkeys, keys[0],
                   timeout_ms);
    return st;
}

static tide_status_t tcp_add(boot_backend_t *be, const char *key, int64_t delta, int64_t *result)
{
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_ADD, 0);
    boot_wr_bytes(&wr, key, strlen(key));
    boot_wr_i64(&wr, delta);
    return client_call(to_client(be), &wr, 0, key, REPLY_I64, result);
}

static tide_status_t tcp_cas(boot_backend_t *be, const char *key, const void *expected,
                             size_t exp_len, const void *desired, size_t des_len, bool *swapped)
{
    boot_wr_t wr;
    int64_t v;
    boot_wr_init(&wr, BOOT_OP_CAS, 0);
    boot_wr_bytes(&wr, key, strlen(key));
    boot_wr_u8(&wr, expected != NULL);
    boot_wr_bytes(&wr, expected ? expected : "", expected ? exp_len : 0);
    boot_wr_bytes(&wr, desired, des_len);
    tide_status_t st = client_call(to_client(be), &wr, 0, key, REPLY_U8, &v);
    if (st == TIDE_SUCCESS)
        *swapped = v != 0;
    return st;
}

static tide_status_t tcp_del(boot_backend_t *be, const char *key, bool *existed)
{
    boot_wr_t wr;
    int64_t v;
    boot_wr_init(&wr, BOOT_OP_DEL, 0);
    boot_wr_bytes(&wr, key, strlen(key));
    tide_status_t st = client_call(to_client(be), &wr, 0, key, REPLY_U8, &v);
    if (st == TIDE_SUCCESS)
        *existed = v != 0;
    return st;
}

static void tcp_destroy(boot_backend_t *be)
{
    tcp_client_t *cl = to_client(be);
    for (int i = 0; i < POOL_MAX; i++)
        if (cl->fds[i] >= 0)
            close(cl->fds[i]);
    pthread_mutex_destroy(&cl->lock);
    pthread_cond_destroy(&cl->idle);
    free(cl);
}

static const boot_backend_ops_t tcp_client_ops = {
    .name = "tcp",
    .set = tcp_set,
    .get = tcp_get,
    .wait = tcp_wait,
    .add = tcp_add,
    .cas = tcp_cas,
    .del = tcp_del,
    .destroy = tcp_destroy,
};

tide_status_t boot_tcp_client_create(const char *addr, const char *secret, int timeout_ms,
                                     boot_backend_t **out)
{
    char host[TIDE_HOST_MAX];
    uint16_t port;
    int64_t max_value;
    int io_timeout;
    tide_status_t st;
    tcp_client_t *cl;

    if (strlen(secret) > TIDE_SECRET_MAX) {
        tide_error("store secret is longer than %d bytes", TIDE_SECRET_MAX);
        return TIDE_ERR_INVALID;
    }
    if ((st = tide_param_int(TIDE_PARAM_STORE_MAX_VALUE, &max_value)) != TIDE_SUCCESS ||
        (st = boot_default_timeout(&io_timeout)) != TIDE_SUCCESS ||
        (st = tide_sock_split(addr, host, sizeof(host), &port)) != TIDE_SUCCESS)
        return st;
    cl = calloc(1, sizeof(*cl));
    if (!cl) {
        tide_error("store client: out of memory");
        return TIDE_ERR_NOMEM;
    }
    for (int i = 0; i < POOL_MAX; i++)
        cl->fds[i] = -1;
    cl->io_timeout_ms = io_timeout;
    cl->max_body = boot_body_max((size_t)max_value);
    snprintf(cl->secret, sizeof(cl->secret), "%s", secret);
    pthread_mutex_init(&cl->lock, NULL);
    pthread_cond_init(&cl->idle, NULL);
    if ((st = tide_sock_resolve(host, port, &cl->addr)) != TIDE_SUCCESS)
        goto err_free;
    tide_sock_str(&cl->addr, cl->addr_s, sizeof(cl->addr_s));
    /* The first connection now: a wrong address or secret fails here. */
    if ((st = client_connect(cl, tide_deadline_ms(timeout_ms), &cl->fds[0])) != TIDE_SUCCESS)
        goto err_free;
    boot_backend_init(&cl->be, &tcp_client_ops);
    *out = &cl->be;
    return TIDE_SUCCESS;

err_free:
    pthread_mutex_destroy(&cl->lock);
    pthread_cond_destroy(&cl->idle);
    free(cl);
    return st;
}
