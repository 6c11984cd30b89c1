/*
 * PMIx: the job as the launcher (mpirun, srun) knows it. Rank and size,
 * local rank and size, node id; and one exchange of addresses: rank 0
 * starts the job's store server and publishes "host:port secret" (put +
 * commit), every rank runs one whole-job fence (Open MPI 4.1 kills the job
 * on a fence over a subset of ranks) and reads it (get). From there on the
 * job uses the TCP store like any other: PMIx is the bootstrap, not the
 * store, so everything the store offers (rendezvous checks, split, later
 * membership changes) works the same under every launcher.
 *
 * A rank gone before the fence makes it return incomplete (with Open MPI's
 * --enable-recovery; otherwise mpirun ends the job): the ranks whose keys
 * cannot be read are named in the error.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_detect.h"

#include <pmix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "boot_server.h"
#include "util_log.h"
#include "util_param.h"
#include "util_random.h"

#define KEY_STORE "tide.store"
#define KEY_HERE  "tide.here"

static int pmix_inits; /* tide_comm_init calls through PMIx: names each exchange */

static tide_status_t get_u32(const pmix_proc_t *proc, const char *key, uint32_t *out)
{
    pmix_value_t *v;
    if (PMIx_Get(proc, key, NULL, 0, &v) != PMIX_SUCCESS)
        return TIDE_ERR_NOT_FOUND;
    switch (v->type) {
    case PMIX_UINT32:
        *out = v->data.uint32;
        break;
    case PMIX_UINT16:
        *out = v->data.uint16;
        break;
    case PMIX_INT:
        *out = (uint32_t)v->data.integer;
        break;
    default:
        PMIX_VALUE_RELEASE(v);
        return TIDE_ERR_INVALID;
    }
    PMIX_VALUE_RELEASE(v);
    return TIDE_SUCCESS;
}

/* After an incomplete fence: which ranks never published? */
static void name_missing(const pmix_proc_t *me, int nranks, const char *key)
{
    char list[256] = "";
    size_t n = 0;
    pmix_info_t opt;
    bool yes = true;
    PMIX_INFO_LOAD(&opt, PMIX_OPTIONAL, &yes, PMIX_BOOL);
    for (int r = 0; r < nranks; r++) {
        pmix_proc_t p;
        pmix_value_t *v;
        PMIX_LOAD_PROCID(&p, me->nspace, (pmix_rank_t)r);
        if (PMIx_Get(&p, key, &opt, 1, &v) == PMIX_SUCCESS) {
            PMIX_VALUE_RELEASE(v);
            continue;
        }
        if (n < sizeof(list) - 16)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", n ? "," : "", r);
    }
    tide_error("PMIx: ranks that never reached the exchange: %s", n ? list : "(none named)");
}

/* Rank 0: start the store and publish it. */
static tide_status_t publish_store(boot_job_t *job, const char *key)
{
    char secret[33], addr[TIDE_ADDR_STR_MAX], value[TIDE_ADDR_STR_MAX + 40];
    tide_status_t st = boot_server_start_hosted(secret, &job->server);
    if (st != TIDE_SUCCESS)
        return st;
    tide_sock_str(boot_server_addr(job->server), addr, sizeof(addr));
    snprintf(value, sizeof(value), "%s %s", addr, secret);
    pmix_value_t v;
    PMIX_VALUE_LOAD(&v, value, PMIX_STRING);
    pmix_status_t rc = PMIx_Put(PMIX_GLOBAL, key, &v);
    PMIX_VALUE_DESTRUCT(&v);
    if (rc != PMIX_SUCCESS) {
        tide_error("PMIx_Put(%s): %s", key, PMIx_Error_string(rc));
        return TIDE_ERR_IO;
    }
    return TIDE_SUCCESS;
}

tide_status_t boot_pmix_detect(boot_job_t *job, bool *found)
{
    pmix_proc_t me, wild, root;
    char key_store[32], key_here[32];
    tide_status_t st = TIDE_SUCCESS;
    *found = false;
    /* No PMIx launcher put us here: do not even try (PMIx_Init would only
     * fail, slowly). */
    if (!tide_param_is_set(TIDE_PARAM_LAUNCHER_PMIX_NAMESPACE))
        return TIDE_SUCCESS;
    pmix_status_t rc = PMIx_Init(&me, NULL, 0);

    if (rc != PMIX_SUCCESS) {
        if (rc != PMIX_ERR_UNREACH)
            tide_info("PMIx_Init: %s; not under a PMIx launcher", PMIx_Error_string(rc));
        return TIDE_SUCCESS; /* no launcher: the next way of finding the job */
    }
    PMIX_LOAD_PROCID(&wild, me.nspace, PMIX_RANK_WILDCARD);
    uint32_t size = 0, lrank = 0, lsize = 0, node = 0;
    if (get_u32(&wild, PMIX_JOB_SIZE, &size) != TIDE_SUCCESS || size == 0) {
        tide_error("PMIx: no job size from the launcher");
        st = TIDE_ERR_IO;
        goto out;
    }
    get_u32(&me, PMIX_LOCAL_RANK, &lrank);
    get_u32(&wild, PMIX_LOCAL_SIZE, &lsize);
    get_u32(&me, PMIX_NODEID, &node);
    *found = true;
    job->source = BOOT_SRC_PMIX;
    job->rank = (int)me.rank;
    job->nranks = (int)size;
    job->local_rank = (int)lrank;
    job->local_size = (int)lsize;
    job->node = (int)node;
    if (size == 1)
        goto out; /* a 1-rank job needs no exchange */

    int k = __atomic_fetch_add(&pmix_inits, 1, __ATOMIC_RELAXED);
    snprintf(key_store, sizeof(key_store), "%s.%d", KEY_STORE, k);
    snprintf(key_here, sizeof(key_here), "%s.%d", KEY_HERE, k);
    pmix_value_t here;
    PMIX_VALUE_LOAD(&here, &me.rank, PMIX_UINT32);
    rc = PMIx_Put(PMIX_GLOBAL, key_here, &here);
    if (rc == PMIX_SUCCESS && me.rank == 0 && (st = publish_store(job, key_store)) != 0)
        goto out;
    if (rc == PMIX_SUCCESS)
        rc = PMIx_Commit();
    if (rc != PMIX_SUCCESS) {
        tide_error("PMIx_Put/Commit: %s", PMIx_Error_string(rc));
        st = TIDE_ERR_IO;
        goto out;
    }
    pmix_info_t info[2];
    bool yes = true;
    int secs = (job->timeout_ms + 999) / 1000;
    PMIX_INFO_LOAD(&info[0], PMIX_COLLECT_DATA, &yes, PMIX_BOOL);
    PMIX_INFO_LOAD(&info[1], PMIX_TIMEOUT, &secs, PMIX_INT);
    rc = PMIx_Fence(NULL, 0, info, 2); /* the whole job */
    if (rc != PMIX_SUCCESS) {
        tide_error("PMIx_Fence over the %u ranks of the job: %s", size, PMIx_Error_string(rc));
        name_missing(&me, (int)size, key_here);
        st = rc == PMIX_ERR_TIMEOUT ? TIDE_ERR_TIMEOUT : TIDE_ERR_PEER;
        goto out;
    }
    pmix_value_t *v;
    PMIX_LOAD_PROCID(&root, me.nspace, 0);
    rc = PMIx_Get(&root, key_store, NULL, 0, &v);
    if (rc != PMIX_SUCCESS || v->type != PMIX_STRING || !v->data.string ||
        sscanf(v->data.string, "%271s %128s", job->store, job->secret) != 2) {
        tide_error("PMIx: rank 0's store address (%s) is missing or malformed: %s", key_store,
                   rc == PMIX_SUCCESS ? "bad value" : PMIx_Error_string(rc));
        if (rc == PMIX_SUCCESS)
            PMIX_VALUE_RELEASE(v);
        st = TIDE_ERR_IO;
        goto out;
    }
    PMIX_VALUE_RELEASE(v);
out:
    PMIx_Finalize(NULL, 0);
    return st;
}
