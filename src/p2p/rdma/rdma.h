/*
 * RDMA transport internals (libibverbs, RC queue pairs).
 *
 * Vocabulary: a *device* is one opened RDMA NIC port with its protection
 * domain and one completion queue. An *endpoint* (rdma_ep_t) is everything
 * that reaches one peer: *rails* x TIDE_IB_QPS_PER_EP queue pairs, where
 * rail k joins our device k % ndev to the peer's device k % peer_ndev.
 * Each QP is one *path* with a health state.
 *
 * Posting: the submitting thread builds chains of work requests and posts
 * each chain with one ibv_post_send; only the last WR of a run (and one in
 * RDMA_SIGNAL_EVERY) is signaled. QPs complete in order, so a signaled
 * completion completes every slice posted before it on that QP: a ring of
 * slices indexed by WR sequence number (the low bits of wr_id) finds them.
 *
 * Signals (notifications, pipe credits) are an 8-byte inline RDMA WRITE
 * WITH IMMEDIATE into the peer's signal area (one word per source rank
 * and channel); the immediate is the channel, and the receive completion
 * tells the peer's progress thread to read the word.
 *
 * Failure: an error completion or a port error fails the QP: it is moved
 * to the error state (so nothing it held can land later), its unfinished
 * slices are posted again on another QP, else handed to TCP. The lower
 * rank of the pair then re-establishes it in the background (see
 * rdma_ep.c) and probes it before it carries data again.
 */
#ifndef TIDE_RDMA_H
#define TIDE_RDMA_H

#include <infiniband/verbs.h>
#include <pthread.h>
#include "p2p.h"

#define RDMA_SQ_DEPTH     1024u /* send WRs per QP (a power of two: the slice ring) */
#define RDMA_RQ_DEPTH     64u   /* receives per QP (one per incoming signal) */
#define RDMA_CHAIN        64u   /* WRs per ibv_post_send */
#define RDMA_SIGNAL_EVERY 512u  /* at least one signaled WR in this many */
#define RDMA_CQ_DEPTH     4096
#define RDMA_INLINE       64u

#define RDMA_WR_RECV     (1ull << 63)
#define RDMA_WR_QP_SHIFT 40
#define RDMA_WR_SEQ_MASK ((1ull << RDMA_WR_QP_SHIFT) - 1)

struct rdma_ctx;

typedef struct rdma_dev {
    int index;
    char name[64];
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_comp_channel *chan;
    struct ibv_cq *cq;
    uint8_t port;
    int gid_index;
    union ibv_gid gid;
    uint16_t lid;
    enum ibv_mtu mtu; /* active MTU of the port */
    int max_rd_atomic;
    int port_up; /* atomic: from port events */
    struct ibv_mr *sig_mr;
    unsigned cq_events; /* not yet acknowledged */
} rdma_dev_t;

/* What a peer learns of one of our devices. */
typedef struct rdma_dev_wire {
    uint8_t gid[16];
    uint16_t lid;
    uint8_t mtu;
    uint8_t port;
    uint32_t sig_rkey;
} rdma_dev_wire_t;

/* Recovery state of a QP (see rdma_ep.c). */
typedef enum rdma_qp_rstate {
    RDMA_QP_LIVE,       /* carries data */
    RDMA_QP_DOWN,       /* failed; the lower rank retries at next_try */
    RDMA_QP_WAIT_ACK,   /* lower rank: reset, asked the peer to reset too */
    RDMA_QP_PROBE,      /* lower rank: both reset, a probe WRITE is in flight */
    RDMA_QP_WAIT_READY, /* higher rank: reset at the lower one's request */
    RDMA_QP_DEAD        /* never connected */
} rdma_qp_rstate_t;

typedef struct rdma_qp {
    struct rdma_ctx *ctx;
    struct rdma_ep *ep;
    rdma_dev_t *dev;
    struct ibv_qp *qp;
    uint32_t index; /* in ctx->qps: the high bits of wr_id */
    int rail, q;
    int peer_dev; /* the peer's device index on this rail */
    p2p_path_t path;

    pthread_mutex_t lock;                /* everything below */
    p2p_slice_t **ring;                  /* [RDMA_SQ_DEPTH]: the slice of each posted WR */
    uint64_t head;                       /* sequence of the next WR */
    uint64_t tail;                       /* oldest WR not known complete */
    uint32_t unsignaled;                 /* WRs since the last signaled one */
    p2p_slice_t *backlog, *backlog_tail; /* taken, waiting for room */
    int rstate;                          /* rdma_qp_rstate_t */
    uint32_t gen;                        /* recovery generation */
    uint32_t lpsn;                       /* our send PSN */
    uint32_t rqpn;                       /* the peer's QP */
    int64_t next_try_ns;
    int backoff;
} rdma_qp_t;

typedef struct rdma_ep {
    int peer;
    int nrails, nq;
    rdma_qp_t **qps; /* [nrails * nq] */
    rdma_dev_wire_t rdev[P2P_MAX_DEVS];
    int peer_ndev;
    uint64_t peer_sig_base;
    unsigned rr; /* atomic: spreading */
    bool owner;  /* we are the lower rank: we drive recovery */
} rdma_ep_t;

typedef struct rdma_ctx {
    tide_engine_t *e;
    rdma_dev_t devs[P2P_MAX_DEVS];
    int ndev;
    int nq, timeout, retry_cnt, recover_ms;
    uint64_t *sig; /* signal area: [nranks][P2P_NCHAN] words */
    size_t sig_len;
    rdma_qp_t **qps; /* every QP, by index */
    uint32_t nqps, qps_cap;
    int epfd, wake_fd;
    pthread_t thread;
    bool started;
    int stop;                     /* atomic */
    pthread_mutex_t recover_lock; /* recovery state machines */
} rdma_ctx_t;

/* Devices (rdma_device.c) */
tide_status_t rdma_devices_open(rdma_ctx_t *c, const char *names, int gid_index);
void rdma_devices_close(rdma_ctx_t *c);
void rdma_dev_async(rdma_ctx_t *c, rdma_dev_t *d); /* read and handle async events */
void rdma_dev_wire(const rdma_dev_t *d, rdma_dev_wire_t *w);

/* Memory registration (rdma_mr.c) */
void rdma_mr_register(rdma_ctx_t *c, p2p_lseg_t *seg);
void rdma_mr_deregister(rdma_ctx_t *c, p2p_lseg_t *seg);
tide_status_t rdma_sig_register(rdma_ctx_t *c);
void rdma_sig_deregister(rdma_ctx_t *c);

/* Completion queues (rdma_cq.c) */
tide_status_t rdma_cq_create(rdma_ctx_t *c, rdma_dev_t *d);
void rdma_cq_destroy(rdma_dev_t *d);
void rdma_cq_event(rdma_ctx_t *c, rdma_dev_t *d); /* channel readable: drain, re-arm */

/* Queue pairs (rdma_qp.c) */
rdma_qp_t *rdma_qp_create(rdma_ctx_t *c, rdma_ep_t *ep, rdma_dev_t *d, int rail, int q);
void rdma_qp_destroy(rdma_qp_t *qp);
tide_status_t rdma_qp_init(rdma_qp_t *qp);                 /* RESET -> INIT, receives posted */
tide_status_t rdma_qp_ready(rdma_qp_t *qp, uint32_t rpsn); /* INIT -> RTR -> RTS */
bool rdma_qp_live(rdma_qp_t *qp);
/* Post slices (taken: on failure they move on); false when the QP is not
 * live (nothing taken). */
bool rdma_qp_post(rdma_qp_t *qp, p2p_slice_t **s, size_t n);
bool rdma_qp_probe(rdma_qp_t *qp);
void rdma_qp_send_done(rdma_qp_t *qp, uint64_t seq);
/* An error completion for WR seq (ignored when it is older than the QP's
 * last failure). */
void rdma_qp_error(rdma_qp_t *qp, uint64_t seq, const char *why);
void rdma_qp_recv_done(rdma_qp_t *qp, uint32_t imm);
/* Fail the QP: error state, path FAILED, unfinished slices moved on (or
 * failed with `fail_with` when it is not TIDE_SUCCESS). */
void rdma_qp_fail(rdma_qp_t *qp, const char *why, tide_status_t fail_with);

/* Endpoints (rdma_ep.c) */
void rdma_ep_connect_all(rdma_ctx_t *c);
void rdma_ep_free(rdma_ep_t *ep);
/* Move slices a failed QP of ep held to its other live QPs, else to TCP. */
void rdma_ep_failover(rdma_ctx_t *c, rdma_ep_t *ep, p2p_slice_t **s, size_t n);
/* Post slices on ep's live QPs; returns how many it took (a prefix). */
size_t rdma_ep_post(rdma_ctx_t *c, rdma_ep_t *ep, p2p_slice_t **s, size_t n);
void rdma_ep_qp_failed(rdma_qp_t *qp); /* the recovery side of a failure */
void rdma_ep_probe_done(rdma_qp_t *qp, bool ok);
void rdma_ep_ctrl(rdma_ctx_t *c, int from, uint32_t kind, uint64_t a, uint64_t b);
void rdma_ep_port_event(rdma_ctx_t *c, rdma_dev_t *d, bool up);
int rdma_ep_tick(rdma_ctx_t *c); /* recovery timers; returns ms until the next, or -1 */

#endif
