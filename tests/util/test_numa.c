/*
 * NUMA placement: TIDE_NUMA parsing, off on one-node machines (and with
 * TIDE_NUMA=off), and the mechanism itself: after tide_numa_place_always
 * the kernel's policy for the range is "prefer that node".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "test_util.h"
#include "util_numa.h"
#include "util_param.h"

static int online_nodes(void)
{
    char buf[256] = "";
    FILE *f = fopen("/sys/devices/system/node/online", "r");
    if (!f)
        return 1;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    int n = 0, a, b;
    for (char *p = strtok(buf, ","); p; p = strtok(NULL, ","))
        n += sscanf(p, "%d-%d", &a, &b) == 2 ? b - a + 1 : 1;
    return n ? n : 1;
}

static void test_param(void **state)
{
    (void)state;
    int64_t v;
    test_log_capture_start();
    setenv("TIDE_NUMA", "off", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_NUMA, &v), TIDE_SUCCESS);
    assert_int_equal(v, 1);
    setenv("TIDE_NUMA", "maybe", 1);
    assert_int_equal(tide_param_int(TIDE_PARAM_NUMA, &v), TIDE_ERR_INVALID);
    assert_true(test_log_contains("TIDE_NUMA='maybe'"));
    unsetenv("TIDE_NUMA");
    assert_int_equal(tide_param_int(TIDE_PARAM_NUMA, &v), TIDE_SUCCESS);
    assert_int_equal(v, 0);
    test_log_capture_stop();
}

static void test_active_only_with_nodes(void **state)
{
    (void)state;
    /* decided once, from the environment as it is (TIDE_NUMA unset: auto) */
    assert_int_equal(tide_numa_active(), online_nodes() > 1);
    int node = tide_numa_node_here();
    assert_true(node >= 0 && node < 1024);
}

static void test_mechanism(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    int mode = -1;
    unsigned long mask[16] = {0};
    assert_int_equal(get_mempolicy(&mode, mask, sizeof(mask) * 8, p, MPOL_F_ADDR), 0);
    assert_int_equal(mode, MPOL_DEFAULT);
    /* on a one-node machine tide_numa_place leaves memory alone */
    if (!tide_numa_active()) {
        assert_int_equal(tide_numa_place(p, len, 0), TIDE_SUCCESS);
        assert_int_equal(get_mempolicy(&mode, mask, sizeof(mask) * 8, p, MPOL_F_ADDR), 0);
        assert_int_equal(mode, MPOL_DEFAULT);
    }
    int node = tide_numa_node_here();
    assert_int_equal(tide_numa_place_always(p + 100, len - 200, node), TIDE_SUCCESS);
    memset(mask, 0, sizeof(mask));
    assert_int_equal(get_mempolicy(&mode, mask, sizeof(mask) * 8, p + 4096, MPOL_F_ADDR), 0);
    assert_int_equal(mode, MPOL_PREFERRED);
    assert_true(mask[node / 64] & (1UL << (node % 64)));
    memset(p, 1, len); /* the pages can be touched */
    assert_int_equal(tide_numa_place_always(p, len, 4000), TIDE_ERR_INVALID);
    munmap(p, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param),
        cmocka_unit_test(test_active_only_with_nodes),
        cmocka_unit_test(test_mechanism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
