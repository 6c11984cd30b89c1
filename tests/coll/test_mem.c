/*
 * Tide memory (tide_mem_alloc): arguments refused with TIDE_ERR_INVALID,
 * zeroed page-aligned memory, frees of anything else refused; the
 * references a card carries name the allocation holding a buffer, and
 * references a peer could send that do not hold are not mapped. Mapping
 * a peer's memory for real is tested across processes (test_coll_mp).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "coll_ctx.h"
#include "test_util.h"
#include "tide.h"

static void test_alloc_free(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = (void *)1;
    test_log_capture_start();
    assert_int_equal(tide_mem_alloc(0, &p), TIDE_ERR_INVALID);
    assert_int_equal(tide_mem_alloc(100, NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_mem_alloc(SIZE_MAX, &p), TIDE_ERR_INVALID);
    assert_null(p);
    assert_true(test_log_contains("more than can be mapped"));

    unsigned char *a, *b;
    assert_int_equal(tide_mem_alloc(100, (void **)&a), TIDE_SUCCESS);
    assert_int_equal(tide_mem_alloc(3 * page + 1, (void **)&b), TIDE_SUCCESS);
    assert_int_equal((uintptr_t)a % page, 0);
    assert_int_equal((uintptr_t)b % page, 0);
    for (size_t i = 0; i < 4 * page; i++) /* zeroed, and writable to the page's end */
        assert_int_equal(b[i], 0);
    memset(a, 0x5a, page);
    memset(b, 0xa5, 4 * page);
    assert_int_equal(a[page - 1], 0x5a);

    void *m = malloc(64);
    assert_int_equal(tide_mem_free(m), TIDE_ERR_INVALID);
    assert_int_equal(tide_mem_free(NULL), TIDE_ERR_INVALID);
    assert_int_equal(tide_mem_free(a + 1), TIDE_ERR_INVALID); /* not the start */
    assert_true(test_log_contains("is not memory from tide_mem_alloc"));
    free(m);
    assert_int_equal(tide_mem_free(a), TIDE_SUCCESS);
    assert_int_equal(tide_mem_free(a), TIDE_ERR_INVALID); /* twice */
    assert_int_equal(tide_mem_free(b), TIDE_SUCCESS);
    test_log_capture_stop();
}

static void test_refs(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *a, *b;
    coll_mem_ref_t ra, rb, r;
    assert_int_equal(tide_mem_alloc(2 * page, (void **)&a), TIDE_SUCCESS);
    assert_int_equal(tide_mem_alloc(page, (void **)&b), TIDE_SUCCESS);
    coll_mem_ref(a, 2 * page, &ra);
    coll_mem_ref(b + 10, page - 10, &rb);
    assert_true(ra.serial != 0 && rb.serial != 0 && ra.serial != rb.serial);
    assert_int_equal(ra.base, (uint64_t)(uintptr_t)a);
    assert_int_equal(ra.len, 2 * page);
    assert_int_equal(rb.base, (uint64_t)(uintptr_t)b);
    assert_true(ra.fd >= 0 && rb.fd >= 0 && ra.fd != rb.fd);
    coll_mem_ref(a + page, page + 1, &r); /* past the end */
    assert_int_equal(r.serial, 0);
    coll_mem_ref(a + 2 * page, 0, &r); /* empty, at the end: inside */
    assert_int_equal(r.serial, ra.serial);
    char *m = malloc(64);
    coll_mem_ref(m, 64, &r);
    assert_int_equal(r.serial, 0);
    free(m);
    assert_int_equal(tide_mem_free(b), TIDE_SUCCESS);
    coll_mem_ref(b, 1, &r); /* freed: no longer Tide memory */
    assert_int_equal(r.serial, 0);

    /* What a peer's card could say that does not hold is not mapped
     * (nothing here reaches a peer: these are refused before that). */
    coll_ctx_t *c = calloc(1, sizeof(*c));
    uint64_t base = ra.base;
    coll_mem_ref_t bad = ra;
    bad.serial = 0;
    assert_null(coll_map_peer(c, 1, &bad, base, 8));
    assert_null(coll_map_peer(c, 1, &ra, base - 1, 8));           /* before it */
    assert_null(coll_map_peer(c, 1, &ra, base + 2 * page, 1));    /* after it */
    assert_null(coll_map_peer(c, 1, &ra, base + page, page + 1)); /* across its end */
    assert_null(coll_map_peer(c, 1, &ra, base + 8, SIZE_MAX));    /* wrapping */
    bad = ra;
    bad.len = UINT64_MAX;
    assert_null(coll_map_peer(c, 1, &bad, base, 8));
    bad = ra;
    bad.fd = -1;
    assert_null(coll_map_peer(c, 1, &bad, base, 8));
    for (int i = 0; i < COLL_MAPS; i++)
        assert_int_equal(c->maps[i].used, 0); /* none got as far as the cache */
    free(c);
    assert_int_equal(tide_mem_free(a), TIDE_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free),
        cmocka_unit_test(test_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
