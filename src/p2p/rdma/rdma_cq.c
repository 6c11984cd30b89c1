/*
 * Completion queues: one per device, shared by all its QPs, with a
 * completion channel the progress thread sleeps on. Draining dispatches
 * each completion to its QP by the index in wr_id.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include "rdma.h"
#include "util_log.h"

#define POLL_BATCH 32
#define ACK_EVERY  64

tide_status_t rdma_cq_create(rdma_ctx_t *c, rdma_dev_t *d)
{
    (void)c;
    d->chan = ibv_create_comp_channel(d->ctx);
    if (!d->chan) {
        tide_warn("rdma: %s: ibv_create_comp_channel: %m", d->name);
        return TIDE_ERR_IO;
    }
    int fl = fcntl(d->chan->fd, F_GETFL);
    fcntl(d->chan->fd, F_SETFL, fl | O_NONBLOCK);
    d->cq = ibv_create_cq(d->ctx, RDMA_CQ_DEPTH, d, d->chan, 0);
    if (!d->cq) {
        tide_warn("rdma: %s: ibv_create_cq(%d): %m", d->name, RDMA_CQ_DEPTH);
        return TIDE_ERR_IO;
    }
    if (ibv_req_notify_cq(d->cq, 0) != 0) {
        tide_warn("rdma: %s: ibv_req_notify_cq: %m", d->name);
        return TIDE_ERR_IO;
    }
    return TIDE_SUCCESS;
}

void rdma_cq_destroy(rdma_dev_t *d)
{
    if (d->cq) {
        if (d->cq_events)
            ibv_ack_cq_events(d->cq, d->cq_events);
        d->cq_events = 0;
        ibv_destroy_cq(d->cq);
        d->cq = NULL;
    }
    if (d->chan) {
        ibv_destroy_comp_channel(d->chan);
        d->chan = NULL;
    }
}

static void dispatch(rdma_ctx_t *c, const struct ibv_wc *wc)
{
    uint32_t idx = (uint32_t)((wc->wr_id & ~RDMA_WR_RECV) >> RDMA_WR_QP_SHIFT);
    if (idx >= c->nqps) {
        tide_error("rdma: completion for unknown QP index %u (wr_id 0x%llx)", idx,
                   (unsigned long long)wc->wr_id);
        return;
    }
    rdma_qp_t *qp = c->qps[idx];
    if (!qp)
        return; /* its endpoint was given up */
    if (wc->wr_id & RDMA_WR_RECV) {
        if (wc->status == IBV_WC_SUCCESS && wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM)
            rdma_qp_recv_done(qp, ntohl(wc->imm_data));
        /* flushed receives: the send side reports the failure */
        return;
    }
    if (wc->status == IBV_WC_SUCCESS) {
        rdma_qp_send_done(qp, wc->wr_id & RDMA_WR_SEQ_MASK);
        return;
    }
    char why[96];
    snprintf(why, sizeof(why), "%s (vendor error 0x%x)", ibv_wc_status_str(wc->status),
             wc->vendor_err);
    rdma_qp_error(qp, wc->wr_id & RDMA_WR_SEQ_MASK, why);
}

void rdma_cq_event(rdma_ctx_t *c, rdma_dev_t *d)
{
    struct ibv_cq *cq;
    void *cq_ctx;
    while (ibv_get_cq_event(d->chan, &cq, &cq_ctx) == 0)
        if (++d->cq_events >= ACK_EVERY) {
            ibv_ack_cq_events(d->cq, d->cq_events);
            d->cq_events = 0;
        }
    /* Drain, re-arm, drain again: nothing that arrived in between is missed. */
    for (int armed = 0; armed < 2; armed++) {
        struct ibv_wc wc[POLL_BATCH];
        int n;
        while ((n = ibv_poll_cq(d->cq, POLL_BATCH, wc)) > 0) {
            __atomic_add_fetch(&c->e->counters.rdma_cqes, (uint64_t)n, __ATOMIC_RELAXED);
            for (int i = 0; i < n; i++)
                dispatch(c, &wc[i]);
        }
        if (n < 0)
            tide_error("rdma: %s: ibv_poll_cq failed", d->name);
        if (!armed)
            ibv_req_notify_cq(d->cq, 0);
    }
}
