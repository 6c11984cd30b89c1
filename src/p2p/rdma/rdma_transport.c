/*
 * RDMA transport: the ops table the engine drives, and the progress
 * thread. Posting happens in the submitting thread (rdma_ep_post); the
 * progress thread sleeps on the devices' completion channels and async
 * event queues, completes slices, re-posts receives, handles port events
 * and runs the recovery timers.
 *
 * Where libibverbs finds no device (no RDMA in this kernel: ENOSYS), the
 * transport stays quiet, reaches no peer, and peers learn that this rank
 * has no RDMA.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "rdma.h"
#include "transport.h"
#include "util_log.h"
#include "util_param.h"

enum { EV_WAKE = 0, EV_CQ = 1, EV_ASYNC = 2 };

static void *progress_main(void *arg)
{
    rdma_ctx_t *c = arg;
    struct epoll_event ev[16];
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        int timeout = rdma_ep_tick(c);
        int n = epoll_wait(c->epfd, ev, 16, timeout);
        if (n < 0 && errno != EINTR) {
            tide_error("rdma: epoll_wait: %m");
            break;
        }
        for (int i = 0; i < n; i++) {
            int kind = (int)(ev[i].data.u64 >> 8), d = (int)(ev[i].data.u64 & 0xff);
            if (kind == EV_CQ)
                rdma_cq_event(c, &c->devs[d]);
            else if (kind == EV_ASYNC)
                rdma_dev_async(c, &c->devs[d]);
            else
                tide_wake_drain(c->wake_fd);
        }
    }
    return NULL;
}

static void rdma_stop(void *ctx)
{
    rdma_ctx_t *c = ctx;
    if (!c || !c->started)
        return;
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
    tide_wake_post(c->wake_fd);
    pthread_join(c->thread, NULL);
    c->started = false;
}

static void rdma_fini(void *ctx)
{
    rdma_ctx_t *c = ctx;
    if (!c)
        return;
    rdma_stop(c);
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
    tide_engine_t *e = c->e;
    for (uint32_t i = 0; i < c->nqps; i++)
        if (c->qps[i])
            rdma_qp_fail(c->qps[i], "engine destroyed", TIDE_ERR_REVOKED);
    for (int p = 0; e->peers && p < e->nranks; p++) {
        rdma_ep_free(e->peers[p].rdma);
        e->peers[p].rdma = NULL;
    }
    pthread_rwlock_wrlock(&e->lseg_lock);
    for (uint32_t i = 0; i < e->nlsegs; i++)
        if (e->lsegs[i])
            rdma_mr_deregister(c, e->lsegs[i]);
    pthread_rwlock_unlock(&e->lseg_lock);
    rdma_sig_deregister(c);
    rdma_devices_close(c);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->recover_lock);
    free(c->qps);
    free(c);
}

static tide_status_t read_params(rdma_ctx_t *c, int64_t *gid)
{
    int64_t nq, to, rc, rec;
    tide_status_t st;
    if ((st = tide_param_int(TIDE_PARAM_IB_QPS_PER_EP, &nq)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_IB_TIMEOUT, &to)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_IB_RETRY_CNT, &rc)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_IB_RECOVER_MS, &rec)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_IB_GID_INDEX, gid)) != TIDE_SUCCESS)
        return st;
    c->nq = (int)nq;
    c->timeout = (int)to;
    c->retry_cnt = (int)rc;
    c->recover_ms = (int)rec;
    return TIDE_SUCCESS;
}

/* TIDE_IB_DEVICES may hold groups separated by ';' (a NIC set per local
 * rank, as on hosts with a NIC per GPU): local rank r takes group
 * r % groups. The local rank is TIDE_LOCAL_RANK (set by tiderun), else
 * the engine's rank. */
static tide_status_t pick_group(tide_engine_t *e, char *out, size_t cap)
{
    int64_t local;
    tide_status_t st = tide_param_int(TIDE_PARAM_LOCAL_RANK, &local);
    if (st != TIDE_SUCCESS)
        return st;
    if (local < 0)
        local = e->rank;
    int groups = 1;
    for (const char *p = e->ib_devices; *p; p++)
        groups += *p == ';';
    const char *g = e->ib_devices;
    for (int i = 0; i < local % groups; i++)
        g = strchr(g, ';') + 1;
    size_t len = strcspn(g, ";");
    if (len >= cap)
        return TIDE_ERR_INVALID;
    memcpy(out, g, len);
    out[len] = '\0';
    return TIDE_SUCCESS;
}

static tide_status_t rdma_init(tide_engine_t *e, void **ctx)
{
    int64_t gid;
    tide_status_t st;
    rdma_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) {
        tide_error("rdma transport: out of memory");
        return TIDE_ERR_NOMEM;
    }
    c->e = e;
    c->epfd = c->wake_fd = -1;
    pthread_mutex_init(&c->recover_lock, NULL);
    *ctx = c;
    char names[sizeof(e->ib_devices)];
    if ((st = read_params(c, &gid)) != TIDE_SUCCESS ||
        (st = pick_group(e, names, sizeof(names))) != TIDE_SUCCESS ||
        (st = rdma_devices_open(c, names, (int)gid)) != TIDE_SUCCESS)
        goto err;
    if (c->ndev == 0) {
        e->self.transports &= ~TIDE_TRANSPORT_RDMA; /* peers will not wait for us */
        return TIDE_SUCCESS;
    }
    c->qps_cap = (uint32_t)e->nranks * P2P_MAX_DEVS * (uint32_t)c->nq;
    c->qps = calloc(c->qps_cap, sizeof(*c->qps));
    if (!c->qps) {
        st = TIDE_ERR_NOMEM;
        goto err;
    }
    if ((st = rdma_sig_register(c)) != TIDE_SUCCESS)
        goto err;
    st = TIDE_ERR_IO;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event we = {.events = EPOLLIN, .data.u64 = (uint64_t)EV_WAKE << 8};
    if (c->epfd < 0 || c->wake_fd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->wake_fd, &we)) {
        tide_error("rdma transport: epoll setup: %m");
        goto err;
    }
    for (int d = 0; d < c->ndev; d++) {
        struct epoll_event ce = {.events = EPOLLIN,
                                 .data.u64 = ((uint64_t)EV_CQ << 8) | (unsigned)d};
        struct epoll_event ae = {.events = EPOLLIN,
                                 .data.u64 = ((uint64_t)EV_ASYNC << 8) | (unsigned)d};
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->devs[d].chan->fd, &ce) ||
            epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->devs[d].ctx->async_fd, &ae)) {
            tide_error("rdma transport: epoll setup: %m");
            goto err;
        }
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, progress_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        tide_error("rdma transport: pthread_create: %m");
        goto err;
    }
    c->started = true;
    return TIDE_SUCCESS;
err:
    rdma_fini(c);
    *ctx = NULL;
    return st;
}

static void rdma_connect(void *ctx)
{
    rdma_ctx_t *c = ctx;
    if (c->ndev > 0)
        rdma_ep_connect_all(c);
}

static bool rdma_reaches(void *ctx, const p2p_peer_t *peer)
{
    (void)ctx;
    return peer->rdma != NULL;
}

static void rdma_seg_register(void *ctx, p2p_lseg_t *seg)
{
    rdma_ctx_t *c = ctx;
    if (c->ndev > 0)
        rdma_mr_register(c, seg);
}

static void rdma_seg_deregister(void *ctx, p2p_lseg_t *seg)
{
    rdma_mr_deregister(ctx, seg);
}

static size_t rdma_post(void *ctx, p2p_peer_t *peer, p2p_slice_t **s, size_t n)
{
    return peer->rdma ? rdma_ep_post(ctx, peer->rdma, s, n) : 0;
}

static size_t rdma_paths(void *ctx, p2p_peer_t *peer, tide_path_stats_t *out, size_t max)
{
    (void)ctx;
    rdma_ep_t *ep = peer->rdma;
    if (!ep)
        return 0;
    size_t n = (size_t)(ep->nrails * ep->nq);
    for (size_t i = 0; i < n && i < max; i++)
        p2p_path_stats(&ep->qps[i]->path, TIDE_TRANSPORT_RDMA, &out[i]);
    return n;
}

static void rdma_ctrl(void *ctx, int from, uint32_t kind, uint64_t a, uint64_t b)
{
    rdma_ctx_t *c = ctx;
    if (c->ndev > 0)
        rdma_ep_ctrl(c, from, kind, a, b);
}

const p2p_transport_ops_t p2p_rdma_transport = {
    .name = "rdma",
    .bit = TIDE_TRANSPORT_RDMA,
    .init = rdma_init,
    .connect = rdma_connect,
    .reaches = rdma_reaches,
    .seg_register = rdma_seg_register,
    .seg_deregister = rdma_seg_deregister,
    .post = rdma_post,
    .paths = rdma_paths,
    .ctrl = rdma_ctrl,
    .stop = rdma_stop,
    .fini = rdma_fini,
};
