/* NUMA placement. See util_numa.h. */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_numa.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>
#include "util_log.h"
#include "util_param.h"
#ifdef TIDE_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool active;

static void decide(void)
{
    int64_t mode = 0; /* auto */
    if (tide_param_int(TIDE_PARAM_NUMA, &mode) != TIDE_SUCCESS)
        mode = 1; /* a bad value was reported; stay out of the way */
#ifdef TIDE_HAVE_NUMA
    int nodes = numa_available() < 0 ? 1 : numa_num_configured_nodes();
    active = mode == 0 && nodes > 1;
    tide_debug("numa: %d node(s), TIDE_NUMA=%s: placement %s", nodes, mode ? "off" : "auto",
               active ? "on" : "off");
#else
    active = false;
    (void)mode;
#endif
}

bool tide_numa_active(void)
{
    pthread_once(&once, decide);
    return active;
}

int tide_numa_node_here(void)
{
#ifdef TIDE_HAVE_NUMA
    int cpu = sched_getcpu();
    if (cpu >= 0 && numa_available() >= 0) {
        int node = numa_node_of_cpu(cpu);
        if (node >= 0)
            return node;
    }
#endif
    return 0;
}

tide_status_t tide_numa_place_always(void *addr, size_t len, int node)
{
#ifdef TIDE_HAVE_NUMA
    if (numa_available() < 0 || node < 0 || node > numa_max_node())
        return TIDE_ERR_INVALID;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    size_t span = (size_t)((uintptr_t)addr + len - lo);
    unsigned long mask[16] = {0};
    mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
    if (mbind((void *)lo, span, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0) != 0) {
        tide_warn("numa: mbind of %zu bytes to node %d: %m", span, node);
        return TIDE_ERR_IO;
    }
    return TIDE_SUCCESS;
#else
    (void)addr;
    (void)len;
    (void)node;
    return TIDE_ERR_UNSUPPORTED;
#endif
}

tide_status_t tide_numa_place(void *addr, size_t len, int node)
{
    if (!tide_numa_active() || !addr || !len)
        return TIDE_SUCCESS;
    return tide_numa_place_always(addr, len, node);
}

void tide_numa_bind_thread(int node)
{
#ifdef TIDE_HAVE_NUMA
    if (tide_numa_active() && numa_run_on_node(node) != 0)
        tide_warn("numa: cannot run this thread on node %d: %m", node);
#else
    (void)node;
#endif
}
