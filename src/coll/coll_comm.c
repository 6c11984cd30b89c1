/*
 * Communicator lifecycle: creation from the environment or a unique id,
 * the rendezvous that makes every rank known to every other, queries,
 * destroy and abort.
 *
 * Rendezvous, in the communicator's namespace:
 *   1. each rank claims sys/rank/<r> with compare-and-set, storing where it
 *      runs (host, boot id, pid) and a random nonce: a second process
 *      claiming the same rank fails at once, naming both;
 *   2. each rank waits for all nranks claims; a timeout names the ranks
 *      that never arrived;
 *   3. hosts are compared (boot id) to give local rank and size.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include "coll_comm.h"

#include <inttypes.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "boot_detect.h"
#include "boot_server.h"
#include "boot_store.h"
#include "boot_uid.h"
#include "coll_ctx.h"
#include "util_log.h"
#include "util_random.h"

#define PEER_MAGIC 0x52454550u /* "PEER" */

/* The claim each rank stores (fixed layout, checked on read). */
typedef struct peer_wire {
    uint32_t magic;
    uint32_t pid;
    int32_t node; /* the launcher's node id, or -1 */
    uint32_t pad;
    uint64_t nonce;
    char host[COLL_HOST_MAX];
    char boot_id[COLL_BOOT_ID_MAX];
} peer_wire_t;

/*
 * Namespaces of tide_comm_init: the k-th communicator a rank creates from
 * the environment or a config lives under "w<k>". Every rank counts the
 * same way, whether ranks are processes or threads of one process (so
 * the count is kept per rank).
 */
static pthread_mutex_t inits_lock = PTHREAD_MUTEX_INITIALIZER;
static int *inits_by_rank;
static int inits_cap;

static int next_init_index(int rank)
{
    int k = -1;
    pthread_mutex_lock(&inits_lock);
    if (rank >= inits_cap) {
        int cap = TIDE_MAX(rank + 1, inits_cap * 2);
        int *grown = realloc(inits_by_rank, (size_t)cap * sizeof(int));
        if (grown) {
            memset(grown + inits_cap, 0, (size_t)(cap - inits_cap) * sizeof(int));
            inits_by_rank = grown;
            inits_cap = cap;
        }
    }
    if (rank < inits_cap)
        k = inits_by_rank[rank]++;
    pthread_mutex_unlock(&inits_lock);
    return k;
}

static void self_peer(peer_wire_t *w, int node)
{
    memset(w, 0, sizeof(*w));
    w->magic = PEER_MAGIC;
    w->node = node;
    w->pid = (uint32_t)getpid();
    tide_random_bytes(&w->nonce, sizeof(w->nonce));
    gethostname(w->host, sizeof(w->host) - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f || !fgets(w->boot_id, sizeof(w->boot_id), f))
        snprintf(w->boot_id, sizeof(w->boot_id), "host:%.32s", w->host);
    if (f)
        fclose(f);
    w->boot_id[strcspn(w->boot_id, "\n")] = '\0';
}

static tide_status_t peer_parse(int rank, const void *val, size_t len, peer_wire_t *w)
{
    if (len != sizeof(*w)) {
        tide_error("rendezvous: rank %d's record is %zu bytes, expected %zu", rank, len,
                   sizeof(*w));
        return TIDE_ERR_INVALID;
    }
    memcpy(w, val, sizeof(*w));
    if (w->magic != PEER_MAGIC) {
        tide_error("rendezvous: rank %d's record is not a Tide peer record", rank);
        return TIDE_ERR_INVALID;
    }
    w->host[sizeof(w->host) - 1] = '\0';
    w->boot_id[sizeof(w->boot_id) - 1] = '\0';
    return TIDE_SUCCESS;
}

static tide_status_t claim_rank(tide_comm_t *comm, const peer_wire_t *self)
{
    char key[32];
    void *val;
    size_t len;
    int swapped;
    peer_wire_t other;

    snprintf(key, sizeof(key), "rank/%d", comm->rank);
    tide_status_t st = tide_store_cas(comm->sys, key, NULL, 0, self, sizeof(*self), &swapped);
    if (st != TIDE_SUCCESS || swapped)
        return st;
    st = tide_store_get(comm->sys, key, 0, &val, &len);
    if (st == TIDE_SUCCESS)
        st = peer_parse(comm->rank, val, len, &other);
    if (st == TIDE_SUCCESS) {
        tide_error("rendezvous: rank %d is claimed twice: by %s:%u and by this process (%s:%u)",
                   comm->rank, other.host, other.pid, self->host, self->pid);
        st = TIDE_ERR_INVALID;
    }
    free(val);
    return st;
}

/* After a wait timed out: say which ranks never claimed their slot. */
static void report_missing(tide_comm_t *comm)
{
    char list[256] = "", key[32];
    size_t n = 0, missing = 0;
    for (int r = 0; r < comm->nranks; r++) {
        void *val;
        size_t len;
        snprintf(key, sizeof(key), "rank/%d", r);
        if (tide_store_get(comm->sys, key, 0, &val, &len) == TIDE_SUCCESS) {
            free(val);
            continue;
        }
        missing++;
        if (n < sizeof(list) - 16)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", n ? "," : "", r);
        else if (n < sizeof(list) - 4)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "...");
    }
    tide_error("rendezvous of %d ranks: %zu rank(s) did not arrive within %d ms: %s", comm->nranks,
               missing, comm->timeout_ms, list);
}

static tide_status_t gather_peers(tide_comm_t *comm)
{
    char(*keys)[32] = calloc((size_t)comm->nranks, sizeof(*keys));
    const char **kp = calloc((size_t)comm->nranks, sizeof(*kp));
    tide_status_t st = TIDE_ERR_NOMEM;

    if (!keys || !kp)
        goto out;
    for (int r = 0; r < comm->nranks; r++) {
        snprintf(keys[r], sizeof(keys[r]), "rank/%d", r);
        kp[r] = keys[r];
    }
    /* Waits are bounded by the store's key limit per call. */
    for (int r = 0; r < comm->nranks; r += BOOT_WAIT_KEYS_MAX) {
        size_t n = (size_t)TIDE_MIN(comm->nranks - r, (int)BOOT_WAIT_KEYS_MAX);
        st = tide_store_wait(comm->sys, kp + r, n, comm->timeout_ms);
        if (st == TIDE_ERR_TIMEOUT)
            report_missing(comm);
        if (st != TIDE_SUCCESS)
            goto out;
    }
    for (int r = 0; r < comm->nranks && st == TIDE_SUCCESS; r++) {
        void *val;
        size_t len;
        peer_wire_t w;
        st = tide_store_get(comm->sys, keys[r], 0, &val, &len);
        if (st != TIDE_SUCCESS)
            break;
        st = peer_parse(r, val, len, &w);
        free(val);
        comm->peers[r].pid = w.pid;
        comm->peers[r].node = w.node;
        memcpy(comm->peers[r].host, w.host, sizeof(w.host));
        memcpy(comm->peers[r].boot_id, w.boot_id, sizeof(w.boot_id));
    }
out:
    free(kp);
    free(keys);
    return st;
}

/* Ranks on this host: by the launcher's node ids when every rank has one
 * (cross-checked with boot ids), else by boot id (same kernel). */
static void compute_local(tide_comm_t *comm)
{
    const coll_peer_t *me = &comm->peers[comm->rank];
    bool by_node = true;
    for (int r = 0; r < comm->nranks; r++)
        by_node &= comm->peers[r].node >= 0;
    comm->local_rank = comm->local_size = 0;
    for (int r = 0; r < comm->nranks; r++) {
        bool same_boot = strcmp(comm->peers[r].boot_id, me->boot_id) == 0;
        bool same = by_node ? comm->peers[r].node == me->node : same_boot;
        if (by_node && same != same_boot)
            tide_warn("rank %d: the launcher says node %d (we are on %d), its kernel says %s "
                      "host; going by the launcher",
                      r, comm->peers[r].node, me->node, same_boot ? "the same" : "another");
        if (!same)
            continue;
        if (r < comm->rank)
            comm->local_rank++;
        comm->local_size++;
    }
}

/* drain: a rank hosting the store keeps it up until the others have left
 * (bounded by the bootstrap timeout); abort does not wait. */
static void comm_free(tide_comm_t *comm, bool drain)
{
    if (!comm)
        return;
    int drain_ms = drain ? comm->timeout_ms : 0;
    coll_ctx_destroy(comm->coll);
    boot_store_free(comm->user);
    boot_store_free(comm->sys);
    if (comm->uid_attached)
        boot_uid_release(comm->uid_nonce, drain_ms);
    if (comm->host && __atomic_sub_fetch(&comm->host->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        boot_server_drain(comm->host->server, drain_ms);
        free(comm->host);
    }
    free(comm->peers);
    free(comm->member_ids);
    free(comm);
}

static tide_status_t comm_alloc(int rank, int nranks, int timeout_ms, tide_comm_t **out)
{
    tide_comm_t *comm = calloc(1, sizeof(*comm));
    if (!comm)
        goto err_nomem;
    comm->rank = rank;
    comm->nranks = nranks;
    comm->timeout_ms = timeout_ms;
    comm->launcher_node = -1;
    comm->member_ids = calloc((size_t)nranks, sizeof(*comm->member_ids));
    comm->peers = calloc((size_t)nranks, sizeof(*comm->peers));
    if (!comm->member_ids || !comm->peers)
        goto err_free;
    for (int r = 0; r < nranks; r++)
        comm->member_ids[r] = (uint32_t)r;
    *out = comm;
    return TIDE_SUCCESS;
err_free:
    comm_free(comm, false);
err_nomem:
    tide_error("communicator of %d ranks: out of memory", nranks);
    return TIDE_ERR_NOMEM;
}

/* Given a backend and a namespace: make the views and run the rendezvous. */
static tide_status_t comm_rendezvous(tide_comm_t *comm, boot_backend_t *be, const char *ns)
{
    char prefix[BOOT_PREFIX_MAX];
    peer_wire_t self;
    tide_status_t st;

    snprintf(prefix, sizeof(prefix), "tide/%s/sys/", ns);
    if ((st = boot_store_create(be, prefix, comm->timeout_ms, &comm->sys)) != TIDE_SUCCESS)
        return st;
    snprintf(prefix, sizeof(prefix), "tide/%s/user/", ns);
    if ((st = boot_store_create(be, prefix, comm->timeout_ms, &comm->user)) != TIDE_SUCCESS)
        return st;
    comm->user->borrowed = true;
    tide_log_set_thread_rank(comm->rank);
    self_peer(&self, comm->launcher_node);
    if ((st = claim_rank(comm, &self)) != TIDE_SUCCESS || (st = gather_peers(comm)) != TIDE_SUCCESS)
        return st;
    compute_local(comm);
    tide_info("communicator ready: rank %d of %d (local %d of %d), namespace %s", comm->rank,
              comm->nranks, comm->local_rank, comm->local_size, ns);
    return TIDE_SUCCESS;
}

/* The store backend a detected job uses: hosted here, remote or local. */
static tide_status_t job_backend(tide_comm_t *comm, const boot_job_t *job, boot_backend_t **be)
{
    tide_status_t st;
    if (job->nranks == 1 && !job->store[0])
        return boot_store_mem_create(be);
    if (job->server) { /* started during detection (PMIx rank 0) */
        comm->host = calloc(1, sizeof(*comm->host));
        if (!comm->host) {
            boot_server_stop(job->server);
            return TIDE_ERR_NOMEM;
        }
        comm->host->refs = 1;
        comm->host->server = job->server;
    }
    if (job->host_store) {
        char host[TIDE_HOST_MAX];
        uint16_t port;
        boot_server_t *server;
        if ((st = tide_sock_split(job->store, host, sizeof(host), &port)) != TIDE_SUCCESS ||
            (st = boot_server_start(host, port, job->secret, &server)) != TIDE_SUCCESS)
            return st;
        comm->host = calloc(1, sizeof(*comm->host));
        if (!comm->host) {
            boot_server_stop(server);
            return TIDE_ERR_NOMEM;
        }
        comm->host->refs = 1;
        comm->host->server = server;
    }
    return boot_tcp_client_create(job->store, job->secret, job->timeout_ms, be);
}

tide_status_t tide_comm_init(tide_comm_t **comm_out, const tide_config_t *cfg)
{
    char ns[32];
    boot_job_t job;
    boot_backend_t *be = NULL;
    tide_comm_t *comm;
    tide_status_t st;

    if (!comm_out) {
        tide_error("tide_comm_init: comm must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if ((st = boot_detect(cfg, &job)) != TIDE_SUCCESS)
        return st;
    if (job.source == BOOT_SRC_PMIX && job.nranks > 1)
        tide_info("PMIx job: rank %d of %d, local %d of %d on node %d, store %s", job.rank,
                  job.nranks, job.local_rank, job.local_size, job.node, job.store);
    if ((st = comm_alloc(job.rank, job.nranks, job.timeout_ms, &comm)) != TIDE_SUCCESS)
        return st;
    comm->launcher_node = job.node;
    if ((st = job_backend(comm, &job, &be)) != TIDE_SUCCESS)
        goto err_free;
    int k = next_init_index(job.rank);
    if (k < 0) {
        st = TIDE_ERR_NOMEM;
        boot_backend_unref(be);
        goto err_free;
    }
    snprintf(ns, sizeof(ns), "w%d", k);
    st = comm_rendezvous(comm, be, ns);
    boot_backend_unref(be);
    if (st != TIDE_SUCCESS)
        goto err_free;
    if (job.source != BOOT_SRC_SINGLETON)
        tide_log_set_rank(comm->rank);
    *comm_out = comm;
    return TIDE_SUCCESS;

err_free:
    tide_error("tide_comm_init (%s, rank %d of %d, store '%s') failed: %s",
               boot_source_name(job.source), job.rank, job.nranks, job.store, tide_status_str(st));
    comm_free(comm, false);
    return st;
}

tide_status_t tide_get_unique_id(tide_unique_id_t *id)
{
    if (!id) {
        tide_error("tide_get_unique_id: id must not be NULL");
        return TIDE_ERR_INVALID;
    }
    return boot_uid_create(id);
}

tide_status_t tide_comm_init_rank(tide_comm_t **comm_out, int nranks, const tide_unique_id_t *id,
                                  int rank, const tide_config_t *cfg)
{
    char ns[32];
    boot_uid_t uid;
    boot_backend_t *be;
    tide_config_t c;
    tide_comm_t *comm;
    int timeout_ms;
    tide_status_t st;

    if (!comm_out || !id || nranks < 1 || rank < 0 || rank >= nranks) {
        tide_error("tide_comm_init_rank: need comm and id, and 0 <= rank < nranks (rank %d, "
                   "nranks %d)",
                   rank, nranks);
        return TIDE_ERR_INVALID;
    }
    if ((st = boot_uid_decode(id, &uid)) != TIDE_SUCCESS)
        return st;
    boot_config_read(cfg, &c);
    timeout_ms = c.timeout_ms;
    if (timeout_ms <= 0 && (st = boot_default_timeout(&timeout_ms)) != TIDE_SUCCESS)
        return st;
    if ((st = comm_alloc(rank, nranks, timeout_ms, &comm)) != TIDE_SUCCESS)
        return st;
    boot_uid_acquire(uid.nonce);
    comm->uid_attached = true;
    comm->uid_nonce = uid.nonce;
    if ((st = boot_tcp_client_create(uid.addr, uid.secret, timeout_ms, &be)) != TIDE_SUCCESS)
        goto err_free;
    snprintf(ns, sizeof(ns), "u%016" PRIx64, uid.nonce);
    st = comm_rendezvous(comm, be, ns);
    boot_backend_unref(be);
    if (st != TIDE_SUCCESS)
        goto err_free;
    *comm_out = comm;
    return TIDE_SUCCESS;

err_free:
    tide_error("tide_comm_init_rank (rank %d of %d, store %s) failed: %s", rank, nranks, uid.addr,
               tide_status_str(st));
    comm_free(comm, false);
    return st;
}

/* ------------------------------------------------------------ split, dup */

typedef struct split_wire {
    int32_t color, key;
} split_wire_t;

typedef struct split_member {
    int key, rank;
} split_member_t;

static int member_cmp(const void *a, const void *b)
{
    const split_member_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* The child communicator of `members` (ranks of parent, in new order). */
static tide_status_t comm_child(tide_comm_t *parent, const split_member_t *members, int n,
                                uint32_t k, int color, tide_comm_t **out)
{
    char prefix[64];
    tide_comm_t *c;
    int me = -1;
    for (int i = 0; i < n; i++)
        if (members[i].rank == parent->rank)
            me = i;
    tide_status_t st = comm_alloc(me, n, parent->timeout_ms, &c);
    if (st != TIDE_SUCCESS)
        return st;
    for (int i = 0; i < n; i++) {
        c->peers[i] = parent->peers[members[i].rank];
        c->member_ids[i] = parent->member_ids[members[i].rank]; /* stable across splits */
    }
    c->epoch = parent->epoch;
    compute_local(c);
    /* Under the parent's own namespace: no clash with its user keys. */
    snprintf(prefix, sizeof(prefix), "c%u.%d/sys/", k, color);
    if ((st = boot_store_sub(parent->sys, prefix, &c->sys)) != TIDE_SUCCESS)
        goto err;
    snprintf(prefix, sizeof(prefix), "c%u.%d/user/", k, color);
    if ((st = boot_store_sub(parent->sys, prefix, &c->user)) != TIDE_SUCCESS)
        goto err;
    c->user->borrowed = true;
    if (parent->host) {
        c->host = parent->host;
        __atomic_add_fetch(&c->host->refs, 1, __ATOMIC_ACQ_REL);
    }
    if (parent->uid_attached) {
        boot_uid_acquire(parent->uid_nonce);
        c->uid_attached = true;
        c->uid_nonce = parent->uid_nonce;
    }
    *out = c;
    return TIDE_SUCCESS;
err:
    comm_free(c, false);
    return st;
}

tide_status_t tide_comm_split(tide_comm_t *comm, int color, int key, tide_comm_t **newcomm)
{
    char name[48];
    if (!comm || !newcomm) {
        tide_error("tide_comm_split: comm and newcomm must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (color < TIDE_COLOR_NONE) {
        tide_error("tide_comm_split: color %d is negative (TIDE_COLOR_NONE is -1)", color);
        return TIDE_ERR_INVALID;
    }
    uint32_t k = comm->nsplits++;
    split_wire_t mine = {color, key};
    snprintf(name, sizeof(name), "split/%u/%d", k, comm->rank);
    tide_status_t st = tide_store_set(comm->sys, name, &mine, sizeof(mine));
    split_member_t *members = calloc((size_t)comm->nranks, sizeof(*members));
    int n = 0;
    if (!members)
        st = TIDE_ERR_NOMEM;
    for (int r = 0; r < comm->nranks && st == TIDE_SUCCESS; r++) {
        void *val;
        size_t len;
        snprintf(name, sizeof(name), "split/%u/%d", k, r);
        st = tide_store_get(comm->sys, name, comm->timeout_ms, &val, &len);
        if (st != TIDE_SUCCESS) {
            tide_error("tide_comm_split: rank %d did not take part within %d ms", r,
                       comm->timeout_ms);
            break;
        }
        split_wire_t w = {0, 0};
        if (len == sizeof(w))
            memcpy(&w, val, sizeof(w));
        else
            st = TIDE_ERR_INVALID;
        free(val);
        if (st == TIDE_SUCCESS && color != TIDE_COLOR_NONE && w.color == color)
            members[n++] = (split_member_t){w.key, r};
    }
    if (st == TIDE_SUCCESS && color == TIDE_COLOR_NONE) {
        *newcomm = NULL;
    } else if (st == TIDE_SUCCESS) {
        qsort(members, (size_t)n, sizeof(*members), member_cmp);
        st = comm_child(comm, members, n, k, color, newcomm);
    }
    free(members);
    if (st == TIDE_SUCCESS && *newcomm)
        tide_info("split %u: rank %d of %d, color %d -> rank %d of %d", k, comm->rank, comm->nranks,
                  color, (*newcomm)->rank, (*newcomm)->nranks);
    return st;
}

tide_status_t tide_comm_dup(tide_comm_t *comm, tide_comm_t **newcomm)
{
    if (!comm || !newcomm) {
        tide_error("tide_comm_dup: comm and newcomm must not be NULL");
        return TIDE_ERR_INVALID;
    }
    return tide_comm_split(comm, 0, comm->rank, newcomm);
}

#define COMM_CHECK(comm, out, call)                                                                \
    do {                                                                                           \
        if (!(comm) || !(out)) {                                                                   \
            tide_error(call ": comm and output must not be NULL");                                 \
            return TIDE_ERR_INVALID;                                                               \
        }                                                                                          \
    } while (0)

tide_status_t tide_comm_rank(const tide_comm_t *comm, int *rank)
{
    COMM_CHECK(comm, rank, "tide_comm_rank");
    *rank = comm->rank;
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_size(const tide_comm_t *comm, int *nranks)
{
    COMM_CHECK(comm, nranks, "tide_comm_size");
    *nranks = comm->nranks;
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_local(const tide_comm_t *comm, int *local_rank, int *local_size)
{
    if (!comm || (!local_rank && !local_size)) {
        tide_error("tide_comm_local: comm and an output must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (local_rank)
        *local_rank = comm->local_rank;
    if (local_size)
        *local_size = comm->local_size;
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_epoch(const tide_comm_t *comm, uint64_t *epoch)
{
    COMM_CHECK(comm, epoch, "tide_comm_epoch");
    *epoch = comm->epoch;
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_member_id(const tide_comm_t *comm, int rank, uint32_t *id)
{
    COMM_CHECK(comm, id, "tide_comm_member_id");
    if (rank < 0 || rank >= comm->nranks) {
        tide_error("tide_comm_member_id: rank %d is not in 0..%d", rank, comm->nranks - 1);
        return TIDE_ERR_INVALID;
    }
    *id = comm->member_ids[rank];
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_store(tide_comm_t *comm, tide_store_t **store)
{
    COMM_CHECK(comm, store, "tide_comm_store");
    *store = comm->user;
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_destroy(tide_comm_t *comm)
{
    if (!comm) {
        tide_error("tide_comm_destroy: comm must not be NULL");
        return TIDE_ERR_INVALID;
    }
    comm_free(comm, true);
    return TIDE_SUCCESS;
}

tide_status_t tide_comm_abort(tide_comm_t *comm)
{
    if (!comm) {
        tide_error("tide_comm_abort: comm must not be NULL");
        return TIDE_ERR_INVALID;
    }
    tide_warn("communicator rank %d of %d aborted", comm->rank, comm->nranks);
    comm_free(comm, false);
    return TIDE_SUCCESS;
}
