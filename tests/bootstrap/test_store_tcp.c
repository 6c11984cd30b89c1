/*
 * The TCP store server against clients that misbehave: wrong or missing
 * secrets, garbage, truncated, oversized and malformed messages, requests
 * before authentication, silence, disconnects in the middle of a message or
 * of a wait; and many clients at once. Each bad client must lose its own
 * connection and nothing else: a well-behaved client keeps working through
 * all of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "boot_proto.h"
#include "boot_server.h"
#include "boot_store.h"
#include "test_util.h"
#include "util_log.h"
#include "util_time.h"

#define SECRET "fedcba9876543210fedcba9876543210"

typedef struct fixture {
    boot_server_t *server;
    char addr[TIDE_ADDR_STR_MAX];
    tide_store_t *good; /* a well-behaved client throughout */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    test_log_capture_start();
    assert_int_equal(boot_server_start("127.0.0.1", 0, SECRET, &fx->server), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(fx->server), fx->addr, sizeof(fx->addr));
    assert_int_equal(tide_store_connect(fx->addr, SECRET, 5000, &fx->good), TIDE_SUCCESS);
    assert_int_equal(tide_store_set(fx->good, "alive", "yes", 3), TIDE_SUCCESS);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    void *v;
    size_t len;
    /* The good client survived whatever the test did. */
    assert_int_equal(tide_store_get(fx->good, "alive", 1000, &v, &len), TIDE_SUCCESS);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "yes", 3);
    free(v);
    tide_store_destroy(fx->good);
    boot_server_stop(fx->server);
    test_log_capture_stop();
    unsetenv("TIDE_STORE_AUTH_TIMEOUT");
    unsetenv("TIDE_STORE_MAX_CONNS");
    free(fx);
    return 0;
}

static int raw_connect(fixture_t *fx)
{
    int fd;
    assert_int_equal(tide_sock_connect(boot_server_addr(fx->server), tide_deadline_ms(2000), &fd),
                     TIDE_SUCCESS);
    return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(tide_sock_send_all(fd, buf, len, tide_deadline_ms(2000), "test send"),
                     TIDE_SUCCESS);
}

static void raw_send_msg(int fd, boot_wr_t *wr)
{
    assert_int_equal(boot_wr_finish(wr), TIDE_SUCCESS);
    raw_send(fd, wr->buf, wr->len);
    boot_wr_free(wr);
}

/* The next reply's status, or -1 if the server closed the connection. */
static int raw_reply(int fd)
{
    uint8_t hdr[BOOT_HDR_LEN];
    boot_hdr_t h;
    if (tide_sock_recv_all(fd, hdr, sizeof(hdr), tide_deadline_ms(3000), "test reply") != 0)
        return -1;
    assert_int_equal(boot_hdr_decode(hdr, 1 << 24, &h), TIDE_SUCCESS);
    uint8_t *body = malloc(h.len + 1);
    assert_int_equal(tide_sock_recv_all(fd, body, h.len, tide_deadline_ms(3000), "test body"),
                     TIDE_SUCCESS);
    free(body);
    return h.status;
}

/* True when the server closed fd within timeout_ms. */
static bool closed_by_server(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    return recv(fd, &c, 1, 0) <= 0;
}

static void raw_hello(int fd, const char *secret)
{
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_HELLO, 0);
    boot_wr_u32(&wr, BOOT_PROTO_VERSION);
    boot_wr_bytes(&wr, secret, strlen(secret));
    raw_send_msg(fd, &wr);
}

static void test_wrong_secret(void **state)
{
    fixture_t *fx = *state;
    tide_store_t *s = (tide_store_t *)0x1;
    assert_int_equal(tide_store_connect(fx->addr, "not-the-secret", 2000, &s), TIDE_ERR_AUTH);
    assert_ptr_equal(s, (tide_store_t *)0x1);
    assert_true(test_log_contains("refused client 127.0.0.1:"));
    assert_true(test_log_contains("wrong secret"));
    assert_true(test_log_contains("refused our secret"));
}

static void test_missing_secret(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    raw_hello(fd, "");
    assert_int_equal(raw_reply(fd), BOOT_R_AUTH);
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("missing secret"));
    close(fd);
}

static void test_wrong_version(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_HELLO, 0);
    boot_wr_u32(&wr, 99);
    boot_wr_bytes(&wr, SECRET, strlen(SECRET));
    raw_send_msg(fd, &wr);
    assert_int_equal(raw_reply(fd), BOOT_R_AUTH);
    assert_true(test_log_contains("protocol version 99"));
    close(fd);
}

static void test_garbage(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, junk, sizeof(junk) - 1);
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("bad header"));
    close(fd);
}

static void test_request_before_hello(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    boot_wr_t wr;
    boot_wr_init(&wr, BOOT_OP_SET, 0);
    boot_wr_bytes(&wr, "alive", 5);
    boot_wr_bytes(&wr, "no", 2);
    raw_send_msg(fd, &wr);
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("sent SET before authenticating"));
    close(fd);
}

static void test_oversized(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    uint8_t hdr[BOOT_HDR_LEN];
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_hdr_encode(hdr, BOOT_OP_SET, 0, 0x7fffffff); /* claims 2 GiB */
    raw_send(fd, hdr, sizeof(hdr));
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("bad header"));
    close(fd);
}

static void test_truncated_then_gone(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    boot_wr_t wr;
    setenv("TIDE_LOG_LEVEL", "info", 1); /* a vanished client is an info message */
    tide_log_reinit();
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_wr_init(&wr, BOOT_OP_SET, 0);
    boot_wr_bytes(&wr, "alive", 5);
    boot_wr_bytes(&wr, "overwritten?", 12);
    assert_int_equal(boot_wr_finish(&wr), TIDE_SUCCESS);
    raw_send(fd, wr.buf, wr.len - 6); /* all but the last 6 bytes */
    boot_wr_free(&wr);
    usleep(50000);
    close(fd);
    for (int i = 0; i < 100 && !test_log_contains("in the middle of a message"); i++)
        usleep(10000);
    assert_true(test_log_contains("disconnected in the middle of a message"));
    unsetenv("TIDE_LOG_LEVEL");
    tide_log_reinit();
    /* the half message was not applied: teardown checks "alive" == "yes" */
}

static void test_malformed_body(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    boot_wr_t wr;
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    /* a key whose length field runs past the end of the body */
    boot_wr_init(&wr, BOOT_OP_SET, 0);
    boot_wr_u32(&wr, 1000);
    boot_wr_u32(&wr, 0);
    raw_send_msg(fd, &wr);
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("malformed SET request"));
    close(fd);

    /* a key with a NUL inside */
    fd = raw_connect(fx);
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_wr_init(&wr, BOOT_OP_DEL, 0);
    boot_wr_bytes(&wr, "al\0ive", 6);
    raw_send_msg(fd, &wr);
    assert_true(closed_by_server(fd, 2000));
    close(fd);

    /* an unknown op */
    fd = raw_connect(fx);
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_wr_init(&wr, 200, 0);
    raw_send_msg(fd, &wr);
    assert_true(closed_by_server(fd, 2000));
    assert_true(test_log_contains("malformed unknown-op request"));
    close(fd);

    /* trailing bytes after a valid PING */
    fd = raw_connect(fx);
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_wr_init(&wr, BOOT_OP_PING, 0);
    boot_wr_u32(&wr, 7);
    raw_send_msg(fd, &wr);
    assert_true(closed_by_server(fd, 2000));
    close(fd);
}

static void test_auth_timeout(void **state)
{
    fixture_t *fx = *state;
    boot_server_t *s;
    char addr[TIDE_ADDR_STR_MAX];
    int fd;
    setenv("TIDE_STORE_AUTH_TIMEOUT", "300", 1);
    assert_int_equal(boot_server_start("127.0.0.1", 0, SECRET, &s), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(s), addr, sizeof(addr));
    assert_int_equal(tide_sock_connect(boot_server_addr(s), tide_deadline_ms(2000), &fd),
                     TIDE_SUCCESS);
    double t0 = test_now();
    assert_true(closed_by_server(fd, 3000));
    assert_true(test_now() - t0 < 2.5);
    assert_true(test_log_contains("did not authenticate within 300 ms"));
    close(fd);
    boot_server_stop(s);
    (void)fx;
}

typedef struct waiter {
    tide_store_t *s;
    tide_status_t st;
    char value[16];
} waiter_t;

static void *wait_for_go(void *arg)
{
    waiter_t *w = arg;
    void *v;
    size_t len;
    w->st = tide_store_get(w->s, "go", 5000, &v, &len);
    if (w->st == TIDE_SUCCESS) {
        memcpy(w->value, v, len < 15 ? len : 15);
        free(v);
    }
    return NULL;
}

static void test_waiter_undisturbed(void **state)
{
    fixture_t *fx = *state;
    waiter_t w = {0};
    pthread_t t;
    assert_int_equal(tide_store_connect(fx->addr, SECRET, 2000, &w.s), TIDE_SUCCESS);
    pthread_create(&t, NULL, wait_for_go, &w);
    usleep(50000);
    for (int i = 0; i < 5; i++) { /* a burst of bad clients */
        int fd = raw_connect(fx);
        raw_send(fd, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12);
        close(fd);
    }
    assert_int_equal(tide_store_set(fx->good, "go", "now", 3), TIDE_SUCCESS);
    pthread_join(t, NULL);
    assert_int_equal(w.st, TIDE_SUCCESS);
    assert_string_equal(w.value, "now");
    tide_store_destroy(w.s);
}

static void test_gone_while_waiting(void **state)
{
    fixture_t *fx = *state;
    int fd = raw_connect(fx);
    boot_wr_t wr;
    raw_hello(fd, SECRET);
    assert_int_equal(raw_reply(fd), BOOT_R_OK);
    boot_wr_init(&wr, BOOT_OP_WAIT, 0);
    boot_wr_u32(&wr, 10000);
    boot_wr_u32(&wr, 1);
    boot_wr_bytes(&wr, "later", 5);
    raw_send_msg(fd, &wr);
    usleep(50000);
    close(fd);
    for (int i = 0; i < 100 && boot_server_nconns(fx->server) != 1; i++)
        usleep(10000);
    assert_int_equal(boot_server_nconns(fx->server), 1);
    /* waking the departed waiter must not touch freed memory (ASan) */
    assert_int_equal(tide_store_set(fx->good, "later", "x", 1), TIDE_SUCCESS);
}

static void test_max_conns(void **state)
{
    fixture_t *fx = *state;
    boot_server_t *s;
    char addr[TIDE_ADDR_STR_MAX];
    tide_store_t *a, *b, *c = NULL;
    setenv("TIDE_STORE_MAX_CONNS", "2", 1);
    assert_int_equal(boot_server_start("127.0.0.1", 0, SECRET, &s), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(s), addr, sizeof(addr));
    assert_int_equal(tide_store_connect(addr, SECRET, 2000, &a), TIDE_SUCCESS);
    assert_int_equal(tide_store_connect(addr, SECRET, 2000, &b), TIDE_SUCCESS);
    assert_int_not_equal(tide_store_connect(addr, SECRET, 500, &c), TIDE_SUCCESS);
    assert_null(c);
    assert_true(test_log_contains("beyond TIDE_STORE_MAX_CONNS=2"));
    assert_int_equal(tide_store_set(a, "k", "v", 1), TIDE_SUCCESS);
    tide_store_destroy(b);
    tide_store_destroy(a);
    boot_server_stop(s);
    (void)fx;
}

#define NCLIENTS 256

typedef struct client {
    fixture_t *fx;
    int index;
    int errors;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    tide_store_t *s;
    char key[32], want[32];
    int64_t n;
    if (tide_store_connect(c->fx->addr, SECRET, 20000, &s) != TIDE_SUCCESS) {
        c->errors++;
        return NULL;
    }
    snprintf(key, sizeof(key), "client/%d", c->index);
    snprintf(want, sizeof(want), "v%d", c->index);
    if (tide_store_set(s, key, want, strlen(want)) != TIDE_SUCCESS ||
        tide_store_add(s, "joined", 1, NULL) != TIDE_SUCCESS ||
        tide_store_barrier(s, NCLIENTS, 30000) != TIDE_SUCCESS ||
        tide_store_add(s, "joined", 0, &n) != TIDE_SUCCESS || n != NCLIENTS)
        c->errors++;
    /* read a neighbour's value, which must be there after the barrier */
    int peer = (c->index + 17) % NCLIENTS;
    void *v;
    size_t len;
    snprintf(key, sizeof(key), "client/%d", peer);
    snprintf(want, sizeof(want), "v%d", peer);
    if (tide_store_get(s, key, 0, &v, &len) != TIDE_SUCCESS)
        c->errors++;
    else {
        if (len != strlen(want) || memcmp(v, want, len) != 0)
            c->errors++;
        free(v);
    }
    if (tide_store_barrier(s, NCLIENTS, 30000) != TIDE_SUCCESS)
        c->errors++;
    tide_store_destroy(s);
    return NULL;
}

static void test_256_clients(void **state)
{
    fixture_t *fx = *state;
    pthread_t t[NCLIENTS];
    client_t c[NCLIENTS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < NCLIENTS; i++) {
        c[i] = (client_t){fx, i, 0};
        assert_int_equal(pthread_create(&t[i], &attr, client_main, &c[i]), 0);
    }
    int errors = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(t[i], NULL);
        errors += c[i].errors;
    }
    pthread_attr_destroy(&attr);
    assert_int_equal(errors, 0);
    int64_t n;
    assert_int_equal(tide_store_add(fx->good, "joined", 0, &n), TIDE_SUCCESS);
    assert_int_equal(n, NCLIENTS);
}

static void *drain_main(void *arg)
{
    boot_server_drain(arg, 10000);
    return NULL;
}

static void test_drain(void **state)
{
    fixture_t *fx = *state;
    boot_server_t *s;
    tide_store_t *a, *b = NULL;
    char addr[TIDE_ADDR_STR_MAX];
    pthread_t t;
    assert_int_equal(boot_server_start("127.0.0.1", 0, SECRET, &s), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(s), addr, sizeof(addr));
    assert_int_equal(tide_store_connect(addr, SECRET, 2000, &a), TIDE_SUCCESS);
    pthread_create(&t, NULL, drain_main, s);
    usleep(50000);
    /* still serving its client while draining */
    assert_int_equal(tide_store_set(a, "k", "v", 1), TIDE_SUCCESS);
    double t0 = test_now();
    tide_store_destroy(a);
    pthread_join(t, NULL); /* returns once the client has gone, not at its timeout */
    assert_true(test_now() - t0 < 5.0);
    /* gone: nothing listens there any more */
    tide_status_t st = tide_store_connect(addr, SECRET, 100, &b);
    if (st == TIDE_SUCCESS)
        tide_store_destroy(b);
    assert_int_not_equal(st, TIDE_SUCCESS);
    (void)fx;
}

/* One store handle shared by threads (as communicators of a process share
 * it): a thread blocked in a get must not hold up another thread's set. */
static void test_shared_handle_no_head_of_line(void **state)
{
    fixture_t *fx = *state;
    waiter_t w = {.s = fx->good};
    pthread_t t;
    int before = boot_server_nconns(fx->server);
    pthread_create(&t, NULL, wait_for_go, &w); /* blocks in get("go") on fx->good */
    usleep(50000);
    double t0 = test_now();
    assert_int_equal(tide_store_set(fx->good, "unrelated", "x", 1), TIDE_SUCCESS);
    assert_true(test_now() - t0 < 1.0); /* not queued behind the waiting get */
    assert_int_equal(boot_server_nconns(fx->server), before + 1); /* one more, on demand */
    assert_int_equal(tide_store_set(fx->good, "go", "now", 3), TIDE_SUCCESS);
    pthread_join(t, NULL);
    assert_int_equal(w.st, TIDE_SUCCESS);
    assert_string_equal(w.value, "now");
}

static void test_one_connection_when_single_threaded(void **state)
{
    fixture_t *fx = *state;
    int before = boot_server_nconns(fx->server);
    tide_store_t *s;
    assert_int_equal(tide_store_connect(fx->addr, SECRET, 2000, &s), TIDE_SUCCESS);
    for (int i = 0; i < 50; i++)
        assert_int_equal(tide_store_add(s, "n", 1, NULL), TIDE_SUCCESS);
    assert_int_equal(boot_server_nconns(fx->server), before + 1);
    tide_store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wrong_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_before_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_then_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiter_undisturbed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_256_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_handle_no_head_of_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_connection_when_single_threaded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
