/*
 * Shared-memory pipes between ranks on one host.
 *
 * Every rank owns an inbox (a memfd, mapped by its local peers):
 *
 *   +----------+----------------+----------------+-----+-------+-------+-----+
 *   | doorbell | ring hdr (j=0) | ring hdr (j=1) | ... | ring0 | ring1 | ... |
 *   +----------+----------------+----------------+-----+-------+-------+-----+
 *
 * Ring j carries the stream from the local rank with local index j: that
 * rank alone advances `tail` (after copying data in), the owner alone
 * advances `head` (after consuming). Either side then rings the other's
 * doorbell, a futex word a waiting rank sleeps on, if that rank announced
 * that it may sleep (coll_idle).
 *
 * Between the header and the ring headers lies the owner's board: two
 * slots, each a sequence number, a length and up to COLL_BOARD_BYTES of
 * data, which the owner alone writes and every local peer reads
 * (coll_board_exchange). Slot seq % 2 holds value `seq`: the
 * owner posts seq + 2 only after it has read every peer's seq + 1, which
 * each peer posts only after it has read the owner's seq, so a slot is
 * never overwritten while it is still read.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/futex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "boot_store.h"
#include "coll_ctx.h"
#include "util_log.h"
#include "util_numa.h"
#include "util_param.h"

#define INBOX_MAGIC 0x58424e49u /* "INBX" */
#define CACHELINE   64

typedef struct inbox_hdr {
    uint32_t doorbell;
    uint32_t sleeping;
    uint32_t cma_probe; /* a known value peers read to check direct access */
    char pad[CACHELINE - 12];
    uint64_t claim; /* the direct broadcast's chunk counter (coll_shm_claim) */
    char pad2[CACHELINE - 8];
} inbox_hdr_t;

typedef struct board_slot {
    uint64_t seq; /* the value's sequence number: written last */
    uint64_t bytes;
    char data[COLL_BOARD_BYTES];
} board_slot_t;
#define BOARD_SIZE (2 * ((sizeof(board_slot_t) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1)))

typedef struct ring_hdr {
    uint64_t tail; /* written by the sender */
    char pad1[CACHELINE - 8];
    uint64_t head; /* written by the owner */
    char pad2[CACHELINE - 8];
} ring_hdr_t;

typedef struct inbox_info {
    uint32_t magic;
    int32_t pid;
    int32_t fd;
    uint32_t nslots;
    uint64_t size;
    uint64_t ring;
    uint64_t addr; /* where the owner mapped it (for the CMA check) */
    int32_t cpu;   /* the one CPU the owner is bound to, or -1 */
    uint32_t pad;
} inbox_info_t;

typedef struct shm_peer {
    char *base; /* the peer's inbox, mapped here (or ours) */
    size_t size;
    int slot; /* its local index: the ring it writes in our inbox */
    pid_t pid;
    int cpu; /* the one CPU it is bound to, or -1 (unbound, or not known) */
} shm_peer_t;

struct shm_state {
    int fd;
    char *inbox; /* ours */
    size_t size;
    size_t ring; /* bytes per ring (a multiple of 64) */
    int nslots, my_slot;
    shm_peer_t *peers; /* per rank; base NULL for ranks not on this host */
};

static inbox_hdr_t *hdr_of(char *base)
{
    return (inbox_hdr_t *)(void *)base;
}

static board_slot_t *board_slot(char *base, uint64_t seq)
{
    return (board_slot_t *)(void *)(base + sizeof(inbox_hdr_t) + (seq % 2) * (BOARD_SIZE / 2));
}

static ring_hdr_t *ring_hdr(char *base, int slot)
{
    return (ring_hdr_t *)(void *)(base + sizeof(inbox_hdr_t) + BOARD_SIZE +
                                  (size_t)slot * sizeof(ring_hdr_t));
}

static char *ring_data(struct shm_state *s, char *base, int slot)
{
    return base + sizeof(inbox_hdr_t) + BOARD_SIZE + (size_t)s->nslots * sizeof(ring_hdr_t) +
           (size_t)slot * s->ring;
}

void coll_bell_ring(uint32_t *bell, uint32_t *sleeping)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the data before the flag: see coll_idle */
    if (__atomic_load_n(sleeping, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(bell, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, bell, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    }
}

static int64_t shm_push(coll_ctx_t *c, int peer, const void *buf, size_t len)
{
    struct shm_state *s = c->shm;
    char *base = s->peers[peer].base;
    ring_hdr_t *r = ring_hdr(base, s->my_slot);
    uint64_t tail = r->tail, head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    size_t pos = tail % s->ring;
    size_t n = TIDE_MIN(len, s->ring - (size_t)(tail - head));
    n = TIDE_MIN(n, s->ring - pos);
    if (n == 0)
        return 0;
    memcpy(ring_data(s, base, s->my_slot) + pos, buf, n);
    __atomic_store_n(&r->tail, tail + n, __ATOMIC_RELEASE);
    inbox_hdr_t *h = hdr_of(base);
    coll_bell_ring(&h->doorbell, &h->sleeping);
    return (int64_t)n;
}

static int64_t shm_peek(coll_ctx_t *c, int peer, const char **data)
{
    struct shm_state *s = c->shm;
    int slot = s->peers[peer].slot;
    ring_hdr_t *r = ring_hdr(s->inbox, slot);
    uint64_t head = r->head, tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    size_t pos = head % s->ring;
    *data = ring_data(s, s->inbox, slot) + pos;
    return (int64_t)TIDE_MIN((size_t)(tail - head), s->ring - pos);
}

static void shm_consume(coll_ctx_t *c, int peer, size_t n)
{
    struct shm_state *s = c->shm;
    ring_hdr_t *r = ring_hdr(s->inbox, s->peers[peer].slot);
    __atomic_store_n(&r->head, r->head + n, __ATOMIC_RELEASE);
    inbox_hdr_t *h = hdr_of(s->peers[peer].base);
    coll_bell_ring(&h->doorbell, &h->sleeping);
}

static bool shm_flushed(coll_ctx_t *c, int peer)
{
    (void)c;
    (void)peer;
    return true;
}

static void shm_pulled(coll_ctx_t *c, int peer)
{
    (void)c;
    (void)peer;
}

static void board_post(coll_ctx_t *c, uint64_t seq, const void *data, size_t len)
{
    struct shm_state *s = c->shm;
    board_slot_t *b = board_slot(s->inbox, seq);
    if (len)
        memcpy(b->data, data, len);
    b->bytes = len;
    __atomic_store_n(&b->seq, seq, __ATOMIC_RELEASE);
    for (int r = 0; r < c->nranks; r++) {
        if (r != c->rank && s->peers[r].base) {
            inbox_hdr_t *h = hdr_of(s->peers[r].base);
            coll_bell_ring(&h->doorbell, &h->sleeping);
        }
    }
}

static int64_t board_peek(coll_ctx_t *c, int rank, uint64_t seq, const char **data)
{
    board_slot_t *b = board_slot(c->shm->peers[rank].base, seq);
    uint64_t at = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
    if (at + 2 == seq || (at == 0 && seq < 2))
        return 0;
    uint64_t bytes = __atomic_load_n(&b->bytes, __ATOMIC_RELAXED);
    if (at != seq || bytes > COLL_BOARD_BYTES) {
        tide_error("coll %s: rank %d's board holds value %llu of %llu bytes where value %llu "
                   "was due",
                   c->op_name, rank, (unsigned long long)at, (unsigned long long)bytes,
                   (unsigned long long)seq);
        return TIDE_ERR_PEER;
    }
    *data = b->data;
    return (int64_t)bytes;
}

void (*coll_board_posted_hook)(coll_ctx_t *c, uint64_t seq);

/* Every rank whose value is still missing is bound to a CPU other than
 * the one we are bound to: handing our CPU to a rank that shares it would
 * not bring those values any sooner (the ranks here have shown theirs and
 * wait for the same ones), and a context switch costs more than the wait
 * (coll_idle). */
static bool awaits_other_cpus(coll_ctx_t *c, const char *const *vals)
{
    const shm_peer_t *peers = c->shm->peers;
    int mine = peers[c->rank].cpu;
    if (mine < 0)
        return false;
    for (int p = 0; p < c->nranks; p++)
        if (!vals[p] && (peers[p].cpu < 0 || peers[p].cpu == mine))
            return false;
    return true;
}

tide_status_t coll_board_exchange(coll_ctx_t *c, const void *data, size_t len, const char **vals)
{
    int n = c->nranks, left = n;
    uint64_t seq = ++c->board_seq;
    tide_status_t result = TIDE_SUCCESS;
    board_post(c, seq, data, len);
    if (coll_board_posted_hook)
        coll_board_posted_hook(c, seq);
    coll_wait_t w = {0};
    for (int p = 0; p < n; p++)
        vals[p] = NULL;
    for (;;) {
        bool moved = false;
        for (int p = 0; p < n; p++) {
            if (vals[p])
                continue;
            const char *v = NULL;
            int64_t got = board_peek(c, p, seq, &v);
            if (got < 0) {
                coll_busy(c, &w);
                return (tide_status_t)got;
            }
            if (v && (size_t)got != len && result == TIDE_SUCCESS) {
                tide_error("coll %s: rank %d shows %lld bytes, this rank %zu (counts differ)",
                           c->op_name, p, (long long)got, len);
                result = TIDE_ERR_INVALID;
            }
            if (v) {
                vals[p] = v;
                moved = true;
                left--;
            }
        }
        if (moved || !left)
            coll_busy(c, &w);
        /* Even where counts differ, not before every peer has shown this
         * value: only then has each read our last one, and our next may
         * take its slot (a rank still reading it would find a later
         * value there). */
        if (!left)
            return result;
        if (!moved)
            w.remote = awaits_other_cpus(c, vals);
        if (!moved && !coll_idle(c, &w)) {
            for (int p = 0; p < n; p++)
                if (!vals[p])
                    tide_error("coll %s: rank %d did not show value %llu on its board within %d "
                               "ms",
                               c->op_name, p, (unsigned long long)seq, c->timeout_ms);
            return TIDE_ERR_TIMEOUT;
        }
    }
}

bool coll_board_ok(coll_ctx_t *c)
{
    for (int r = 0; r < c->nranks; r++)
        if (r != c->rank && c->pipe[r] != &coll_shm_pipe)
            return false;
    return c->shm != NULL;
}

const coll_pipe_ops_t coll_shm_pipe = {
    .name = "shm",
    .push = shm_push,
    .peek = shm_peek,
    .consume = shm_consume,
    .flushed = shm_flushed,
    .pulled = shm_pulled,
};

/* ------------------------------------------------------------------ setup */

static tide_status_t map_peer(coll_ctx_t *c, int r, const inbox_info_t *info)
{
    struct shm_state *s = c->shm;
    char path[64];
    struct stat st;
    if (info->magic != INBOX_MAGIC || info->ring != s->ring ||
        info->nslots != (uint32_t)s->nslots || info->size != s->size) {
        tide_error("coll: rank %d's shared inbox does not match ours (TIDE_COLL_PIPE_SIZE must "
                   "be the same on every rank)",
                   r);
        return TIDE_ERR_INVALID;
    }
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", info->pid, info->fd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        tide_error("coll: cannot open rank %d's shared inbox (%s): %m", r, path);
        return TIDE_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < info->size) {
        tide_error("coll: rank %d's shared inbox is smaller than it says", r);
        close(fd);
        return TIDE_ERR_INVALID;
    }
    /* populated now: the first pass around each ring then takes no faults */
    void *m = mmap(NULL, info->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        tide_error("coll: cannot map rank %d's shared inbox: %m", r);
        return TIDE_ERR_IO;
    }
    s->peers[r].base = m;
    return TIDE_SUCCESS;
}

/* The CPU this thread is bound to, where its affinity names exactly one
 * (tiderun binds each rank to one CPU where the ranks fit, or share the
 * CPUs evenly), else -1. */
static int bound_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            return i;
    return -1;
}

tide_status_t coll_shm_setup(coll_ctx_t *c, tide_store_t *store)
{
    tide_comm_t *comm = c->comm;
    int64_t ring;
    char key[32];
    tide_status_t st = tide_param_int(TIDE_PARAM_COLL_PIPE_SIZE, &ring);
    if (st != TIDE_SUCCESS)
        return st;
    struct shm_state *s = calloc(1, sizeof(*s));
    if (!s || !(s->peers = calloc((size_t)c->nranks, sizeof(*s->peers)))) {
        free(s);
        return TIDE_ERR_NOMEM;
    }
    c->shm = s;
    s->fd = -1;
    s->ring = ((size_t)ring + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
    s->nslots = comm->local_size;
    s->my_slot = comm->local_rank;
    s->size = sizeof(inbox_hdr_t) + BOARD_SIZE + (size_t)s->nslots * (sizeof(ring_hdr_t) + s->ring);
    for (int r = 0, slot = 0; r < c->nranks; r++) {
        s->peers[r].cpu = -1;
        if (strcmp(comm->peers[r].boot_id, comm->peers[c->rank].boot_id) == 0)
            s->peers[r].slot = slot++;
    }

    s->fd = memfd_create("tide-coll-inbox", MFD_CLOEXEC);
    if (s->fd < 0 || ftruncate(s->fd, (off_t)s->size) != 0) {
        tide_error("coll: shared inbox of %zu bytes: %m", s->size);
        return TIDE_ERR_IO;
    }
    s->inbox = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->inbox == MAP_FAILED) {
        s->inbox = NULL;
        tide_error("coll: cannot map our shared inbox: %m");
        return TIDE_ERR_IO;
    }
    tide_numa_place(s->inbox, s->size, tide_numa_node_here());
    /* Allocate every page now, where it was placed, before the peers map it
     * populated: otherwise the first pass around a ring faults on each
     * page (a 4 KiB allreduce took 5 us instead of 1.7 over its first
     * hundred operations). */
    if (madvise(s->inbox, s->size, MADV_POPULATE_WRITE) != 0)
        memset(s->inbox, 0, s->size);
    c->doorbell = &hdr_of(s->inbox)->doorbell;
    c->sleeping = &hdr_of(s->inbox)->sleeping;
    s->peers[c->rank].base = s->inbox;
    s->peers[c->rank].pid = getpid();
    s->peers[c->rank].cpu = bound_cpu();
    bool cma_ok = true;

    inbox_info_t info = {INBOX_MAGIC,
                         (int32_t)getpid(),
                         s->fd,
                         (uint32_t)s->nslots,
                         s->size,
                         s->ring,
                         (uint64_t)(uintptr_t)s->inbox,
                         s->peers[c->rank].cpu,
                         0};
    hdr_of(s->inbox)->cma_probe = INBOX_MAGIC;
    snprintf(key, sizeof(key), "inbox/%d", c->rank);
    if ((st = tide_store_set(store, key, &info, sizeof(info))) != TIDE_SUCCESS)
        return st;
    for (int r = 0; r < c->nranks; r++) {
        if (r == c->rank || c->pipe[r] != &coll_shm_pipe)
            continue;
        void *val;
        size_t len;
        snprintf(key, sizeof(key), "inbox/%d", r);
        if ((st = tide_store_get(store, key, c->timeout_ms, &val, &len)) != TIDE_SUCCESS) {
            tide_error("coll: rank %d did not set up its side of the shared pipes within %d ms "
                       "(gone, or not in this collective)",
                       r, c->timeout_ms);
            return st;
        }
        if (len != sizeof(info)) {
            free(val);
            tide_error("coll: rank %d's inbox record is %zu bytes", r, len);
            return TIDE_ERR_INVALID;
        }
        inbox_info_t peer;
        memcpy(&peer, val, sizeof(peer));
        free(val);
        if ((st = map_peer(c, r, &peer)) != TIDE_SUCCESS)
            return st;
        s->peers[r].pid = peer.pid;
        s->peers[r].cpu = peer.cpu >= 0 && peer.cpu < CPU_SETSIZE ? peer.cpu : -1; /* a hint */
        /* Can we read the peer's memory directly (CMA)? Read the probe
         * word of its inbox at the address it mapped it. */
        uint32_t probe = 0;
        struct iovec l = {&probe, sizeof(probe)};
        struct iovec rm = {(void *)(uintptr_t)(peer.addr + offsetof(inbox_hdr_t, cma_probe)),
                           sizeof(probe)};
        if (process_vm_readv(peer.pid, &l, 1, &rm, 1, 0) != (ssize_t)sizeof(probe) ||
            probe != INBOX_MAGIC) {
            tide_info("coll: no direct memory access to rank %d (%m): the direct algorithms "
                      "are off",
                      r);
            cma_ok = false;
        }
    }
    /* Every rank must be able to use the direct algorithms, or none does. */
    snprintf(key, sizeof(key), "cma/%d", c->rank);
    if ((st = tide_store_set(store, key, &cma_ok, sizeof(cma_ok))) != TIDE_SUCCESS)
        return st;
    bool all = c->nranks == comm->local_size;
    for (int r = 0; r < c->nranks && all; r++) {
        void *val;
        size_t len;
        snprintf(key, sizeof(key), "cma/%d", r);
        if ((st = tide_store_get(store, key, c->timeout_ms, &val, &len)) != TIDE_SUCCESS)
            return st;
        all = len == sizeof(bool) && *(bool *)val;
        free(val);
    }
    c->direct_ok = all;
    return TIDE_SUCCESS;
}

pid_t coll_shm_pid(coll_ctx_t *c, int rank)
{
    return c->shm->peers[rank].pid;
}

uint64_t *coll_shm_claim(coll_ctx_t *c, int rank)
{
    return &hdr_of(c->shm->peers[rank].base)->claim;
}

void coll_shm_teardown(coll_ctx_t *c)
{
    struct shm_state *s = c->shm;
    if (!s)
        return;
    for (int r = 0; s->peers && r < c->nranks; r++)
        if (s->peers[r].base && s->peers[r].base != s->inbox)
            munmap(s->peers[r].base, s->size);
    if (s->inbox)
        munmap(s->inbox, s->size);
    if (s->fd >= 0)
        close(s->fd);
    free(s->peers);
    free(s);
    c->shm = NULL;
}
