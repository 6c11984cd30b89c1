/*
 * Queue pairs: creation, the RESET -> INIT -> RTR -> RTS transitions, the
 * posting of slices as chains of work requests, and what a completion or
 * an error does to the slices a QP holds.
 *
 * A QP's slices live in `ring`, indexed by WR sequence number: [tail,
 * head) are posted and not yet known complete. A signaled completion for
 * sequence k completes [tail, k]; an error takes [tail, head) away to
 * other paths and moves tail to head, so completions of older WRs that
 * were flushed meanwhile are recognised as stale and ignored.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rdma.h"
#include "transport.h"
#include "util_log.h"

#define RING_MASK (RDMA_SQ_DEPTH - 1)
#define ACCESS    (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

rdma_qp_t *rdma_qp_create(rdma_ctx_t *c, rdma_ep_t *ep, rdma_dev_t *d, int rail, int q)
{
    if (c->nqps == c->qps_cap) {
        tide_error("rdma: more QPs than planned (%u)", c->qps_cap);
        return NULL;
    }
    rdma_qp_t *qp = calloc(1, sizeof(*qp));
    if (!qp || !(qp->ring = calloc(RDMA_SQ_DEPTH, sizeof(*qp->ring)))) {
        free(qp);
        tide_error("rdma: out of memory for a QP");
        return NULL;
    }
    struct ibv_qp_init_attr a = {
        .send_cq = d->cq,
        .recv_cq = d->cq,
        .qp_type = IBV_QPT_RC,
        .sq_sig_all = 0,
        .cap = {.max_send_wr = RDMA_SQ_DEPTH,
                .max_recv_wr = RDMA_RQ_DEPTH,
                .max_send_sge = 1,
                .max_recv_sge = 1,
                .max_inline_data = RDMA_INLINE},
    };
    qp->qp = ibv_create_qp(d->pd, &a);
    if (!qp->qp || a.cap.max_inline_data < sizeof(uint64_t)) {
        tide_warn("rdma: %s: cannot create an RC QP with %u send WRs and %u inline bytes: %m",
                  d->name, RDMA_SQ_DEPTH, RDMA_INLINE);
        if (qp->qp)
            ibv_destroy_qp(qp->qp);
        free(qp->ring);
        free(qp);
        return NULL;
    }
    qp->ctx = c;
    qp->ep = ep;
    qp->dev = d;
    qp->rail = rail;
    qp->q = q;
    qp->peer_dev = rail % ep->peer_ndev;
    qp->rstate = RDMA_QP_DEAD;
    qp->path.state = P2P_PATH_PROBING;
    pthread_mutex_init(&qp->lock, NULL);
    snprintf(qp->path.name, sizeof(qp->path.name), "rdma->%d#%.20s.%d", ep->peer, d->name, q);
    qp->index = c->nqps;
    c->qps[qp->index] = qp;
    __atomic_store_n(&c->nqps, c->nqps + 1, __ATOMIC_RELEASE);
    return qp;
}

void rdma_qp_destroy(rdma_qp_t *qp)
{
    if (!qp)
        return;
    if (qp->qp && ibv_destroy_qp(qp->qp) != 0)
        tide_warn("rdma: ibv_destroy_qp: %m");
    pthread_mutex_destroy(&qp->lock);
    free(qp->ring);
    free(qp);
}

static bool modify(rdma_qp_t *qp, struct ibv_qp_attr *a, int mask, const char *to)
{
    if (ibv_modify_qp(qp->qp, a, mask) == 0)
        return true;
    tide_warn("rdma: %s: QP %u to %s: %m", qp->path.name, qp->qp->qp_num, to);
    return false;
}

static bool post_recvs(rdma_qp_t *qp, unsigned n)
{
    struct ibv_recv_wr wr = {.wr_id = RDMA_WR_RECV | ((uint64_t)qp->index << RDMA_WR_QP_SHIFT)};
    struct ibv_recv_wr *bad;
    for (unsigned i = 0; i < n; i++)
        if (ibv_post_recv(qp->qp, &wr, &bad) != 0) {
            tide_warn("rdma: %s: ibv_post_recv: %m", qp->path.name);
            return false;
        }
    return true;
}

tide_status_t rdma_qp_init(rdma_qp_t *qp)
{
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_RESET};
    if (!modify(qp, &a, IBV_QP_STATE, "RESET"))
        return TIDE_ERR_LINK;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_INIT;
    a.pkey_index = 0;
    a.port_num = qp->dev->port;
    a.qp_access_flags = ACCESS;
    if (!modify(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS,
                "INIT") ||
        !post_recvs(qp, RDMA_RQ_DEPTH))
        return TIDE_ERR_LINK;
    return TIDE_SUCCESS;
}

tide_status_t rdma_qp_ready(rdma_qp_t *qp, uint32_t rpsn)
{
    rdma_ctx_t *c = qp->ctx;
    const rdma_dev_wire_t *r = &qp->ep->rdev[qp->peer_dev];
    struct ibv_qp_attr a = {0};
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = TIDE_MIN(qp->dev->mtu, (enum ibv_mtu)r->mtu);
    a.dest_qp_num = qp->rqpn;
    a.rq_psn = rpsn & 0xffffff;
    a.max_dest_rd_atomic = (uint8_t)qp->dev->max_rd_atomic;
    a.min_rnr_timer = 12;
    a.ah_attr.is_global = 1;
    memcpy(a.ah_attr.grh.dgid.raw, r->gid, sizeof(r->gid));
    a.ah_attr.grh.sgid_index = (uint8_t)qp->dev->gid_index;
    a.ah_attr.grh.hop_limit = 64;
    a.ah_attr.dlid = r->lid;
    a.ah_attr.port_num = qp->dev->port;
    if (!modify(qp, &a,
                IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
                "RTR"))
        return TIDE_ERR_LINK;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_RTS;
    a.timeout = (uint8_t)c->timeout;
    a.retry_cnt = (uint8_t)c->retry_cnt;
    a.rnr_retry = 7; /* receives are re-posted at once; wait for them */
    a.sq_psn = qp->lpsn & 0xffffff;
    a.max_rd_atomic = (uint8_t)qp->dev->max_rd_atomic;
    if (!modify(qp, &a,
                IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                    IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC,
                "RTS"))
        return TIDE_ERR_LINK;
    return TIDE_SUCCESS;
}

bool rdma_qp_live(rdma_qp_t *qp)
{
    return __atomic_load_n(&qp->rstate, __ATOMIC_ACQUIRE) == RDMA_QP_LIVE;
}

/* Fill wr/sge for slice s. */
static void build_wr(rdma_qp_t *qp, p2p_slice_t *s, struct ibv_send_wr *wr, struct ibv_sge *sge)
{
    rdma_ep_t *ep = qp->ep;
    memset(wr, 0, sizeof(*wr));
    wr->sg_list = sge;
    wr->num_sge = 1;
    if (s->op == P2P_OP_NOTIFY) {
        sge->addr = (uintptr_t)&s->tag;
        sge->length = sizeof(s->tag);
        sge->lkey = 0;
        wr->opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
        wr->send_flags = IBV_SEND_INLINE;
        wr->imm_data = htonl(s->chan);
        wr->wr.rdma.remote_addr =
            ep->peer_sig_base +
            ((uint64_t)qp->ctx->e->rank * P2P_NCHAN + s->chan) * sizeof(uint64_t);
        wr->wr.rdma.rkey = ep->rdev[qp->peer_dev].sig_rkey;
        return;
    }
    sge->addr = (uintptr_t)s->local;
    sge->length = s->len;
    sge->lkey = s->lseg->lkey[qp->dev->index];
    wr->opcode = s->op == TIDE_OP_WRITE ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
    if (s->op == TIDE_OP_WRITE && s->len <= RDMA_INLINE)
        wr->send_flags = IBV_SEND_INLINE;
    wr->wr.rdma.remote_addr = s->rseg->desc.base + s->roff;
    wr->wr.rdma.rkey = s->rseg->desc.rkey[qp->peer_dev];
}

/* Slices taken but not posted yet; under qp->lock. */
static void backlog_add(rdma_qp_t *qp, p2p_slice_t **s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s[i]->next = NULL;
        if (qp->backlog_tail)
            qp->backlog_tail->next = s[i];
        else
            qp->backlog = s[i];
        qp->backlog_tail = s[i];
    }
}

/* Post up to n slices (as many as the send queue has room for); under
 * qp->lock. Returns how many were posted, or -1 if ibv_post_send failed
 * (those before the failing WR stay posted). */
static long post_locked(rdma_qp_t *qp, p2p_slice_t **s, size_t n)
{
    tide_engine_t *e = qp->ctx->e;
    size_t room = RDMA_SQ_DEPTH - (size_t)(qp->head - qp->tail);
    size_t k = TIDE_MIN(n, room), done = 0;
    while (done < k) {
        struct ibv_send_wr wr[RDMA_CHAIN], *bad = NULL;
        struct ibv_sge sge[RDMA_CHAIN];
        size_t m = TIDE_MIN((size_t)RDMA_CHAIN, k - done);
        unsigned signaled = 0;
        for (size_t i = 0; i < m; i++) {
            size_t j = done + i;
            uint64_t seq = qp->head + i;
            build_wr(qp, s[j], &wr[i], &sge[i]);
            wr[i].wr_id = ((uint64_t)qp->index << RDMA_WR_QP_SHIFT) | (seq & RDMA_WR_SEQ_MASK);
            wr[i].next = i + 1 < m ? &wr[i + 1] : NULL;
            qp->ring[seq & RING_MASK] = s[j];
            /* The last WR of the run is signaled, and one in SIGNAL_EVERY
             * so the queue drains; never the WR just before an in-band
             * signal, which must complete together with its data. */
            bool last = j + 1 == k;
            bool due = ++qp->unsignaled >= RDMA_SIGNAL_EVERY && !(j + 1 < k && s[j + 1]->sig_batch);
            if (last || due) {
                wr[i].send_flags |= IBV_SEND_SIGNALED;
                qp->unsignaled = 0;
                signaled++;
            }
        }
        int rc = ibv_post_send(qp->qp, wr, &bad);
        __atomic_add_fetch(&e->counters.rdma_post_calls, 1, __ATOMIC_RELAXED);
        size_t posted = m;
        if (rc != 0) {
            posted = bad ? (size_t)(bad - wr) : 0;
            tide_warn("rdma: %s: ibv_post_send: %s", qp->path.name, strerror(rc));
        }
        __atomic_add_fetch(&e->counters.rdma_wrs, posted, __ATOMIC_RELAXED);
        __atomic_add_fetch(&e->counters.rdma_signaled, signaled, __ATOMIC_RELAXED);
        for (size_t i = posted; i < m; i++)
            qp->ring[(qp->head + i) & RING_MASK] = NULL;
        qp->head += posted;
        done += posted;
        if (rc != 0) {
            /* The slices not posted wait with the QP, so that its failure
             * moves them on with the rest. */
            backlog_add(qp, s + done, n - done);
            return -1;
        }
    }
    return (long)k;
}

/* Post what waits in the backlog while there is room; under qp->lock. */
static long backlog_flush_locked(rdma_qp_t *qp)
{
    p2p_slice_t *arr[RDMA_CHAIN];
    while (qp->backlog && qp->head - qp->tail < RDMA_SQ_DEPTH) {
        size_t n = 0;
        size_t room = RDMA_SQ_DEPTH - (size_t)(qp->head - qp->tail);
        p2p_slice_t *s = qp->backlog;
        while (s && n < RDMA_CHAIN && n < room) {
            arr[n++] = s;
            s = s->next;
        }
        qp->backlog = s;
        if (!s)
            qp->backlog_tail = NULL;
        long k = post_locked(qp, arr, n);
        if (k < 0)
            return -1;
    }
    return 0;
}

bool rdma_qp_post(rdma_qp_t *qp, p2p_slice_t **s, size_t n)
{
    pthread_mutex_lock(&qp->lock);
    if (qp->rstate != RDMA_QP_LIVE) {
        pthread_mutex_unlock(&qp->lock);
        return false;
    }
    long k = 0;
    if (!qp->backlog)
        k = post_locked(qp, s, n);
    if (k >= 0 && (size_t)k < n)
        backlog_add(qp, s + k, n - (size_t)k);
    pthread_mutex_unlock(&qp->lock);
    if (k < 0)
        rdma_qp_fail(qp, "ibv_post_send failed", TIDE_SUCCESS);
    return true;
}

bool rdma_qp_probe(rdma_qp_t *qp)
{
    struct ibv_send_wr wr = {0}, *bad;
    pthread_mutex_lock(&qp->lock);
    uint64_t seq = qp->head;
    wr.wr_id = ((uint64_t)qp->index << RDMA_WR_QP_SHIFT) | (seq & RDMA_WR_SEQ_MASK);
    wr.opcode = IBV_WR_RDMA_WRITE; /* zero bytes: no memory touched */
    wr.send_flags = IBV_SEND_SIGNALED;
    qp->ring[seq & RING_MASK] = NULL;
    int rc = ibv_post_send(qp->qp, &wr, &bad);
    if (rc == 0)
        qp->head++;
    pthread_mutex_unlock(&qp->lock);
    if (rc != 0)
        tide_info("rdma: %s: probe not posted: %s", qp->path.name, strerror(rc));
    return rc == 0;
}

void rdma_qp_send_done(rdma_qp_t *qp, uint64_t seq)
{
    tide_engine_t *e = qp->ctx->e;
    p2p_slice_t *done = NULL, **tail = &done;
    uint64_t nslices = 0, bytes = 0;
    pthread_mutex_lock(&qp->lock);
    /* seq has only the low bits: widen it relative to tail */
    uint64_t full = (qp->tail & ~RDMA_WR_SEQ_MASK) | seq;
    if (full < qp->tail)
        full += RDMA_WR_SEQ_MASK + 1;
    if (full >= qp->head) { /* older than the last failure: stale */
        pthread_mutex_unlock(&qp->lock);
        return;
    }
    for (uint64_t i = qp->tail; i <= full; i++) {
        p2p_slice_t *s = qp->ring[i & RING_MASK];
        qp->ring[i & RING_MASK] = NULL;
        if (!s)
            continue;
        s->next = NULL;
        *tail = s;
        tail = &s->next;
        nslices++;
        bytes += s->op == P2P_OP_NOTIFY ? 0 : s->len;
    }
    qp->tail = full + 1;
    bool probe = qp->rstate == RDMA_QP_PROBE;
    long rc = qp->rstate == RDMA_QP_LIVE ? backlog_flush_locked(qp) : 0;
    pthread_mutex_unlock(&qp->lock);
    __atomic_add_fetch(&qp->path.slices, nslices, __ATOMIC_RELAXED);
    __atomic_add_fetch(&qp->path.bytes, bytes, __ATOMIC_RELAXED);
    for (p2p_slice_t *s = done, *next; s; s = next) {
        next = s->next;
        p2p_slice_done(e, s, TIDE_SUCCESS);
    }
    if (rc < 0)
        rdma_qp_fail(qp, "ibv_post_send failed", TIDE_SUCCESS);
    if (probe)
        rdma_ep_probe_done(qp, true);
}

void rdma_qp_error(rdma_qp_t *qp, uint64_t seq, const char *why)
{
    pthread_mutex_lock(&qp->lock);
    uint64_t full = (qp->tail & ~RDMA_WR_SEQ_MASK) | seq;
    if (full < qp->tail)
        full += RDMA_WR_SEQ_MASK + 1;
    bool stale = full >= qp->head || qp->rstate == RDMA_QP_DOWN || qp->rstate == RDMA_QP_DEAD;
    bool probe = qp->rstate == RDMA_QP_PROBE;
    pthread_mutex_unlock(&qp->lock);
    if (stale) {
        tide_debug("rdma: %s: stale completion %s", qp->path.name, why);
        return;
    }
    if (probe)
        tide_info("rdma: %s: probe failed: %s", qp->path.name, why);
    rdma_qp_fail(qp, why, TIDE_SUCCESS);
}

void rdma_qp_recv_done(rdma_qp_t *qp, uint32_t imm)
{
    rdma_ctx_t *c = qp->ctx;
    int from = qp->ep->peer;
    post_recvs(qp, 1);
    if (imm >= P2P_NCHAN) {
        tide_error("rdma: %s: signal on unknown channel %u dropped", qp->path.name, imm);
        return;
    }
    uint64_t v = __atomic_load_n(&c->sig[(size_t)from * P2P_NCHAN + imm], __ATOMIC_ACQUIRE);
    p2p_signal_received(c->e, from, imm, v);
}

void rdma_qp_fail(rdma_qp_t *qp, const char *why, tide_status_t fail_with)
{
    rdma_ctx_t *c = qp->ctx;
    pthread_mutex_lock(&qp->lock);
    int was = qp->rstate;
    if (was == RDMA_QP_DOWN || was == RDMA_QP_DEAD) {
        pthread_mutex_unlock(&qp->lock);
        return;
    }
    /* Error state first: nothing this QP held may land after its slices
     * went elsewhere (and their buffers were reused). */
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
    ibv_modify_qp(qp->qp, &a, IBV_QP_STATE);
    /* Take every unfinished slice, in posting order: the ring, then the
     * backlog, as one list (no allocation; completed after unlocking). */
    p2p_slice_t *list = NULL, **end = &list;
    for (uint64_t i = qp->tail; i < qp->head; i++) {
        p2p_slice_t *s = qp->ring[i & RING_MASK];
        qp->ring[i & RING_MASK] = NULL;
        if (s) {
            *end = s;
            end = &s->next;
        }
    }
    *end = qp->backlog;
    qp->backlog = qp->backlog_tail = NULL;
    qp->tail = qp->head;
    qp->unsignaled = 0;
    __atomic_store_n(&qp->rstate, RDMA_QP_DOWN, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&qp->lock);

    /* In-band signals first: their batches will signal once their data
     * has landed elsewhere (the data is still in flight: the signal's WR
     * and the data's last completed together). */
    size_t k = 0;
    for (p2p_slice_t **pp = &list; *pp;) {
        p2p_slice_t *s = *pp;
        if (s->sig_batch) {
            *pp = s->next;
            __atomic_store_n(&s->sig_batch->signal_inband, false, __ATOMIC_RELEASE);
            s->sig_batch = NULL;
            p2p_slice_done(c->e, s, TIDE_SUCCESS);
        } else {
            pp = &s->next;
            k++;
        }
    }
    if (was == RDMA_QP_LIVE) {
        __atomic_add_fetch(&qp->path.errors, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&qp->path.failovers, k, __ATOMIC_RELAXED);
    }
    p2p_path_set_state(&qp->path, P2P_PATH_FAILED, why, k > 0 && fail_with == TIDE_SUCCESS);
    /* The rest move on (or fail) in runs; `next` is read before a run is
     * posted, since posting reuses it. */
    while (list) {
        p2p_slice_t *run[RDMA_CHAIN];
        size_t m = 0;
        for (; list && m < RDMA_CHAIN; list = list->next)
            run[m++] = list;
        if (fail_with != TIDE_SUCCESS)
            for (size_t i = 0; i < m; i++)
                p2p_slice_done(c->e, run[i], fail_with);
        else
            rdma_ep_failover(c, qp->ep, run, m);
    }
    if (fail_with == TIDE_SUCCESS)
        rdma_ep_qp_failed(qp);
}
