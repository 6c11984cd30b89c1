/*
 * Shared-memory transport, for peers on this host (same boot id, IPC and
 * PID namespaces). A peer's memfd segment is mapped here, so a WRITE or
 * READ is one memcpy from the submitting thread; a peer's registered user
 * memory is reached with CMA (process_vm_writev/readv). A failed CMA call
 * (e.g. EPERM under a ptrace policy) fails the shm path to that peer and
 * leaves the slices to the next transport. Our own segments (peer == self)
 * are plain memory.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "transport.h"
#include "util_log.h"

typedef struct shm_ctx {
    tide_engine_t *e;
    pid_t pid;
} shm_ctx_t;

static tide_status_t shm_init(tide_engine_t *e, void **ctx)
{
    shm_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) {
        tide_error("shm transport: out of memory");
        return TIDE_ERR_NOMEM;
    }
    c->e = e;
    c->pid = getpid();
    *ctx = c;
    return TIDE_SUCCESS;
}

static bool shm_reaches(void *ctx, const p2p_peer_t *peer)
{
    shm_ctx_t *c = ctx;
    return peer->rank == c->e->rank || (peer->same_host && p2p_path_usable(&peer->shm_path));
}

static void shm_seg_open(void *ctx, p2p_peer_t *peer, p2p_rseg_t *r)
{
    shm_ctx_t *c = ctx;
    char path[64];
    if (r->desc.pid == c->pid && peer->info.pid == c->pid && peer->same_host) {
        r->map = (char *)(uintptr_t)r->desc.base; /* our own process */
        return;
    }
    if (!peer->same_host || r->desc.kind != P2P_SEG_SHM)
        return; /* CMA or another transport */
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", r->desc.pid, r->desc.memfd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        tide_info("shm: cannot open rank %d's segment %u (%s): %m; using CMA or tcp", peer->rank,
                  r->desc.id, path);
        return;
    }
    /* The length comes from the peer: map no more than the file holds,
     * or a touch past its end would be SIGBUS here. */
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < r->desc.len) {
        tide_warn("shm: rank %d's segment %u claims %llu bytes, its memory holds %lld; not "
                  "mapping it",
                  peer->rank, r->desc.id, (unsigned long long)r->desc.len, (long long)sb.st_size);
        close(fd);
        return;
    }
    void *m = mmap(NULL, r->desc.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        tide_info("shm: cannot map rank %d's segment %u: %m", peer->rank, r->desc.id);
        return;
    }
    r->map = m;
    r->map_len = r->desc.len;
}

static void shm_seg_close(void *ctx, p2p_rseg_t *r)
{
    (void)ctx;
    if (r->map_len)
        munmap(r->map, r->map_len);
    r->map = NULL;
    r->map_len = 0;
}

/* One slice by CMA; false (path failed, logged) if the kernel refused. */
static bool shm_cma(p2p_peer_t *peer, p2p_slice_t *s)
{
    struct iovec l = {.iov_base = s->local, .iov_len = s->len};
    struct iovec r = {.iov_base = (void *)(uintptr_t)(s->rseg->desc.base + s->roff),
                      .iov_len = s->len};
    ssize_t n = s->op == TIDE_OP_WRITE ? process_vm_writev(s->rseg->desc.pid, &l, 1, &r, 1, 0)
                                       : process_vm_readv(s->rseg->desc.pid, &l, 1, &r, 1, 0);
    if (n == (ssize_t)s->len)
        return true;
    char why[128];
    snprintf(why, sizeof(why), "%s to pid %d: %s",
             s->op == TIDE_OP_WRITE ? "process_vm_writev" : "process_vm_readv", s->rseg->desc.pid,
             n < 0 ? strerror(errno) : "short transfer");
    __atomic_add_fetch(&peer->shm_path.errors, 1, __ATOMIC_RELAXED);
    p2p_path_set_state(&peer->shm_path, P2P_PATH_FAILED, why, true);
    return false;
}

static size_t shm_post(void *ctx, p2p_peer_t *peer, p2p_slice_t **slices, size_t n)
{
    shm_ctx_t *c = ctx;
    size_t i;
    uint64_t bytes = 0;
    for (i = 0; i < n; i++) {
        p2p_slice_t *s = slices[i];
        bytes += s->len;
        if (s->rseg->map) {
            char *remote = s->rseg->map + s->roff;
            if (s->op == TIDE_OP_WRITE)
                memcpy(remote, s->local, s->len);
            else
                memcpy(s->local, remote, s->len);
        } else if (!peer->same_host || !shm_cma(peer, s)) {
            break;
        }
        p2p_slice_done(c->e, s, TIDE_SUCCESS);
    }
    if (i < n) {
        bytes -= slices[i]->len;
        if (!p2p_path_usable(&peer->shm_path)) /* the rest move to another transport */
            __atomic_add_fetch(&peer->shm_path.failovers, n - i, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&peer->shm_path.slices, i, __ATOMIC_RELAXED);
    __atomic_add_fetch(&peer->shm_path.bytes, bytes, __ATOMIC_RELAXED);
    return i;
}

static size_t shm_paths(void *ctx, p2p_peer_t *peer, tide_path_stats_t *out, size_t max)
{
    (void)ctx;
    if (!peer->same_host)
        return 0;
    if (max > 0)
        p2p_path_stats(&peer->shm_path, TIDE_TRANSPORT_SHM, out);
    return 1;
}

static void shm_fini(void *ctx)
{
    free(ctx);
}

const p2p_transport_ops_t p2p_shm_transport = {
    .name = "shm",
    .bit = TIDE_TRANSPORT_SHM,
    .init = shm_init,
    .reaches = shm_reaches,
    .seg_open = shm_seg_open,
    .seg_close = shm_seg_close,
    .post = shm_post,
    .paths = shm_paths,
    .fini = shm_fini,
};
