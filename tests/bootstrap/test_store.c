/*
 * The store contract, run against every backend: in-process, and TCP (a
 * server in this process, clients over loopback). Each test opens extra
 * handles the way separate ranks would: views of one backend, or separate
 * TCP connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "boot_server.h"
#include "boot_store.h"
#include "test_util.h"

typedef struct fixture {
    bool tcp;
    boot_backend_t *mem;   /* in-process backend */
    boot_server_t *server; /* TCP */
    char addr[TIDE_ADDR_STR_MAX];
    tide_store_t *store; /* the main handle */
} fixture_t;

#define SECRET "0123456789abcdef0123456789abcdef"

static tide_store_t *open_store(fixture_t *fx)
{
    tide_store_t *s = NULL;
    if (fx->tcp)
        assert_int_equal(tide_store_connect(fx->addr, SECRET, 5000, &s), TIDE_SUCCESS);
    else
        assert_int_equal(boot_store_create(fx->mem, "", -1, &s), TIDE_SUCCESS);
    return s;
}

static int setup_mem(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_int_equal(boot_store_mem_create(&fx->mem), TIDE_SUCCESS);
    fx->store = open_store(fx);
    *state = fx;
    return 0;
}

static int setup_tcp(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    fx->tcp = true;
    assert_int_equal(boot_server_start("127.0.0.1", 0, SECRET, &fx->server), TIDE_SUCCESS);
    tide_sock_str(boot_server_addr(fx->server), fx->addr, sizeof(fx->addr));
    fx->store = open_store(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    tide_store_destroy(fx->store);
    if (fx->mem)
        boot_backend_unref(fx->mem);
    boot_server_stop(fx->server);
    free(fx);
    test_log_capture_stop();
    return 0;
}

static void expect_stored(tide_store_t *s, const char *key, const void *val, size_t len)
{
    void *got = NULL;
    size_t got_len = 12345;
    assert_int_equal(tide_store_get(s, key, 1000, &got, &got_len), TIDE_SUCCESS);
    assert_int_equal(got_len, len);
    if (len)
        assert_memory_equal(got, val, len);
    free(got);
}

static void test_set_get(void **state)
{
    fixture_t *fx = *state;
    tide_store_t *other = open_store(fx);
    const unsigned char bin[] = {0, 1, 2, 0, 255, 0};
    assert_int_equal(tide_store_set(fx->store, "k", "v1", 2), TIDE_SUCCESS);
    expect_stored(other, "k", "v1", 2);
    assert_int_equal(tide_store_set(other, "k", "value-2", 7), TIDE_SUCCESS);
    expect_stored(fx->store, "k", "value-2", 7);
    assert_int_equal(tide_store_set(fx->store, "empty", NULL, 0), TIDE_SUCCESS);
    expect_stored(other, "empty", "", 0);
    assert_int_equal(tide_store_set(fx->store, "bin", bin, sizeof(bin)), TIDE_SUCCESS);
    expect_stored(other, "bin", bin, sizeof(bin));
    tide_store_destroy(other);
}

static void test_get_timeout(void **state)
{
    fixture_t *fx = *state;
    void *v = (void *)0x1;
    size_t len = 99;
    test_log_capture_start();
    double t0 = test_now();
    assert_int_equal(tide_store_get(fx->store, "missing", 200, &v, &len), TIDE_ERR_TIMEOUT);
    double dt = test_now() - t0;
    assert_true(dt >= 0.15 && dt < 5.0);
    assert_ptr_equal(v, (void *)0x1); /* outputs untouched on error */
    assert_int_equal(len, 99);
    assert_true(test_log_contains("store get 'missing': not set within 200 ms"));
    assert_int_equal(tide_store_get(fx->store, "missing", 0, &v, &len), TIDE_ERR_NOT_FOUND);
    /* the handle still works after a timeout */
    assert_int_equal(tide_store_set(fx->store, "after", "x", 1), TIDE_SUCCESS);
    expect_stored(fx->store, "after", "x", 1);
}

typedef struct setter {
    tide_store_t *s;
    const char *keys[3];
    int delay_ms;
} setter_t;

static void *set_later(void *arg)
{
    setter_t *st = arg;
    for (int i = 0; i < 3; i++) {
        usleep((useconds_t)st->delay_ms * 1000);
        tide_store_set(st->s, st->keys[i], "1", 1);
    }
    return NULL;
}

static void test_wait(void **state)
{
    fixture_t *fx = *state;
    setter_t st = {open_store(fx), {"w/a", "w/b", "w/c"}, 50};
    pthread_t t;
    pthread_create(&t, NULL, set_later, &st);
    assert_int_equal(tide_store_wait(fx->store, st.keys, 3, 5000), TIDE_SUCCESS);
    pthread_join(t, NULL);
    const char *partial[] = {"w/a", "w/never"};
    test_log_capture_start();
    assert_int_equal(tide_store_wait(fx->store, partial, 2, 150), TIDE_ERR_TIMEOUT);
    assert_int_equal(tide_store_wait(fx->store, partial, 2, 0), TIDE_ERR_NOT_FOUND);
    assert_int_equal(tide_store_wait(fx->store, partial, 1, 0), TIDE_SUCCESS);
    tide_store_destroy(st.s);
}

static void test_add(void **state)
{
    fixture_t *fx = *state;
    int64_t v = 0;
    assert_int_equal(tide_store_add(fx->store, "ctr", 5, &v), TIDE_SUCCESS);
    assert_int_equal(v, 5);
    assert_int_equal(tide_store_add(fx->store, "ctr", -7, &v), TIDE_SUCCESS);
    assert_int_equal(v, -2);
    assert_int_equal(tide_store_add(fx->store, "ctr", 0, NULL), TIDE_SUCCESS);
    assert_int_equal(tide_store_add(fx->store, "ctr", INT64_MAX, &v), TIDE_SUCCESS);
    assert_int_equal(v, INT64_MAX - 2);
    /* A counter reads back as 8 little-endian bytes. */
    unsigned char le[8];
    uint64_t u = (uint64_t)(INT64_MAX - 2);
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(u >> (8 * i));
    expect_stored(fx->store, "ctr", le, 8);
    test_log_capture_start();
    assert_int_equal(tide_store_set(fx->store, "text", "abc", 3), TIDE_SUCCESS);
    v = 42;
    assert_int_equal(tide_store_add(fx->store, "text", 1, &v), TIDE_ERR_INVALID);
    assert_int_equal(v, 42);
}

static void test_cas(void **state)
{
    fixture_t *fx = *state;
    int swapped = -1;
    assert_int_equal(tide_store_cas(fx->store, "c", NULL, 0, "one", 3, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 1);
    assert_int_equal(tide_store_cas(fx->store, "c", NULL, 0, "two", 3, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 0);
    expect_stored(fx->store, "c", "one", 3);
    assert_int_equal(tide_store_cas(fx->store, "c", "on", 2, "two", 3, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 0);
    assert_int_equal(tide_store_cas(fx->store, "c", "one", 3, "two", 3, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 1);
    expect_stored(fx->store, "c", "two", 3);
    assert_int_equal(tide_store_cas(fx->store, "c", "two", 3, "", 0, NULL), TIDE_SUCCESS);
    expect_stored(fx->store, "c", "", 0);
    assert_int_equal(tide_store_cas(fx->store, "c", "", 0, "three", 5, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 1);
    assert_int_equal(tide_store_cas(fx->store, "absent", "x", 1, "y", 1, &swapped), TIDE_SUCCESS);
    assert_int_equal(swapped, 0);
}

static void test_delete(void **state)
{
    fixture_t *fx = *state;
    int existed = -1;
    void *v;
    size_t len;
    assert_int_equal(tide_store_set(fx->store, "d", "x", 1), TIDE_SUCCESS);
    assert_int_equal(tide_store_delete(fx->store, "d", &existed), TIDE_SUCCESS);
    assert_int_equal(existed, 1);
    assert_int_equal(tide_store_delete(fx->store, "d", &existed), TIDE_SUCCESS);
    assert_int_equal(existed, 0);
    assert_int_equal(tide_store_get(fx->store, "d", 0, &v, &len), TIDE_ERR_NOT_FOUND);
    assert_int_equal(tide_store_delete(fx->store, "d", NULL), TIDE_SUCCESS);
}

#define NTHREADS 4
#define ROUNDS   20

typedef struct party {
    fixture_t *fx;
    tide_store_t *s;
    int errors;
} party_t;

static void *barrier_party(void *arg)
{
    party_t *p = arg;
    char key[32];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t v;
        snprintf(key, sizeof(key), "round/%d", r);
        if (tide_store_add(p->s, key, 1, NULL) != TIDE_SUCCESS)
            p->errors++;
        if (tide_store_barrier(p->s, NTHREADS, 5000) != TIDE_SUCCESS)
            p->errors++;
        /* Nobody passes the barrier before everybody has added. */
        if (tide_store_add(p->s, key, 0, &v) != TIDE_SUCCESS || v != NTHREADS)
            p->errors++;
    }
    return NULL;
}

static void test_barrier(void **state)
{
    fixture_t *fx = *state;
    pthread_t t[NTHREADS];
    party_t p[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        p[i] = (party_t){fx, open_store(fx), 0};
        pthread_create(&t[i], NULL, barrier_party, &p[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(p[i].errors, 0);
        tide_store_destroy(p[i].s);
    }
    /* Old barriers' keys are cleaned up: only the last one's remain. */
    void *v;
    size_t len;
    assert_int_equal(tide_store_get(fx->store, "barrier/1/n", 0, &v, &len), TIDE_ERR_NOT_FOUND);
}

static void test_barrier_timeout(void **state)
{
    fixture_t *fx = *state;
    test_log_capture_start();
    assert_int_equal(tide_store_barrier(fx->store, 3, 200), TIDE_ERR_TIMEOUT);
    assert_true(test_log_contains("1 of 3 parties arrived within 200 ms"));
}

static void test_namespaces(void **state)
{
    fixture_t *fx = *state;
    tide_store_t *a, *b;
    assert_int_equal(boot_store_sub(fx->store, "a/", &a), TIDE_SUCCESS);
    assert_int_equal(boot_store_sub(fx->store, "b/", &b), TIDE_SUCCESS);
    assert_int_equal(tide_store_set(a, "key", "A", 1), TIDE_SUCCESS);
    assert_int_equal(tide_store_set(b, "key", "B", 1), TIDE_SUCCESS);
    expect_stored(a, "key", "A", 1);
    expect_stored(b, "key", "B", 1);
    expect_stored(fx->store, "a/key", "A", 1);
    void *v;
    size_t len;
    assert_int_equal(tide_store_get(fx->store, "key", 0, &v, &len), TIDE_ERR_NOT_FOUND);
    /* barriers in different namespaces do not mix */
    assert_int_equal(tide_store_barrier(a, 1, 1000), TIDE_SUCCESS);
    assert_int_equal(tide_store_barrier(b, 1, 1000), TIDE_SUCCESS);
    boot_store_free(a);
    boot_store_free(b);
}

static void test_large_value(void **state)
{
    fixture_t *fx = *state;
    size_t n = 1 << 20; /* TIDE_STORE_MAX_VALUE default */
    unsigned char *big = malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        big[i] = (unsigned char)(i * 131 + 7);
    assert_int_equal(tide_store_set(fx->store, "big", big, n), TIDE_SUCCESS);
    expect_stored(fx->store, "big", big, n);
    test_log_capture_start();
    assert_int_equal(tide_store_set(fx->store, "big", big, n + 1), TIDE_ERR_INVALID);
    assert_true(test_log_contains("over TIDE_STORE_MAX_VALUE"));
    expect_stored(fx->store, "big", big, n);
    free(big);
}

static void test_invalid_args(void **state)
{
    fixture_t *fx = *state;
    char long_key[1100];
    void *v;
    size_t len;
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    test_log_capture_start();
    assert_int_equal(tide_store_set(NULL, "k", "v", 1), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_set(fx->store, NULL, "v", 1), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_set(fx->store, "", "v", 1), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_set(fx->store, long_key, "v", 1), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_set(fx->store, "k", NULL, 3), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_get(fx->store, "k", 0, NULL, &len), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_get(fx->store, "k", 0, &v, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_wait(fx->store, NULL, 1, 0), TIDE_ERR_INVALID);
    const char *keys[] = {"k"};
    assert_int_equal(tide_store_wait(fx->store, keys, 0, 0), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_add(fx->store, "", 1, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_cas(fx->store, "k", NULL, 0, NULL, 2, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_delete(NULL, "k", NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_barrier(fx->store, 0, 100), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_barrier(NULL, 2, 100), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_destroy(NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_store_connect(NULL, "s", 10, NULL), TIDE_ERR_INVALID);
    assert_true(test_log_contains("must be 1..1024 bytes"));
}

typedef struct adder {
    tide_store_t *s;
    int errors;
} adder_t;

static void *add_many(void *arg)
{
    adder_t *a = arg;
    for (int i = 0; i < 200; i++)
        if (tide_store_add(a->s, "many", 1, NULL) != TIDE_SUCCESS)
            a->errors++;
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    fixture_t *fx = *state;
    pthread_t t[8];
    adder_t a[8];
    int64_t v;
    for (int i = 0; i < 8; i++) {
        /* half share the main handle (one connection), half have their own */
        a[i] = (adder_t){i % 2 ? open_store(fx) : fx->store, 0};
        pthread_create(&t[i], NULL, add_many, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].errors, 0);
        if (i % 2)
            tide_store_destroy(a[i].s);
    }
    assert_int_equal(tide_store_add(fx->store, "many", 0, &v), TIDE_SUCCESS);
    assert_int_equal(v, 1600);
}

#define BOTH(fn)                                                                                   \
    cmocka_unit_test_setup_teardown(fn, setup_mem, teardown),                                      \
        cmocka_unit_test_setup_teardown(fn, setup_tcp, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_set_get),      BOTH(test_get_timeout),
        BOTH(test_wait),         BOTH(test_add),
        BOTH(test_cas),          BOTH(test_delete),
        BOTH(test_barrier),      BOTH(test_barrier_timeout),
        BOTH(test_namespaces),   BOTH(test_large_value),
        BOTH(test_invalid_args), BOTH(test_concurrent_adds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
