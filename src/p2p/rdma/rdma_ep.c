/*
 * Endpoints: the QPs that reach one peer, how they are connected, how
 * slices are spread over them, and how a failed one is re-established.
 *
 * Connection (at engine creation, through the engine's store):
 *
 *   publish rdma/dev/<me>           (devices: GID, LID, MTU, signal rkey)
 *   per peer: read rdma/dev/<peer>, create rails x nq QPs (INIT),
 *             publish rdma/qp/<me>/<peer> (QPNs, PSNs)
 *   per peer: read rdma/qp/<peer>/<me>, QPs to RTR and RTS,
 *             publish rdma/ready/<me>/<peer>
 *   per peer: read rdma/ready/<peer>/<me>: the QPs are live
 *
 * A peer that cannot connect publishes an empty record, so nobody waits
 * for it; the engine reaches it over TCP.
 *
 * Recovery of a failed QP pair, driven by the lower rank ("owner"),
 * messages over TCP (p2p_ctrl_post):
 *
 *   owner                                  peer
 *   DOWN --(recover_ms, port up)--> reset, INIT
 *   WAIT_ACK  ---- RESET_REQ(gen, psn) ---->  fail if live, reset, INIT,
 *                                             RTR, RTS      WAIT_READY
 *             <--- RESET_ACK(gen, psn) -----
 *   RTR, RTS, zero-byte WRITE probe: PROBE
 *   probe completes: LIVE ---- READY(gen) -->  LIVE
 *
 * A failure on the peer's side reaches the owner as FAILED. A probe that
 * fails, or an answer that does not come within the retry period, sends
 * the owner back to DOWN, to try again recover_ms later.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rdma.h"
#include "transport.h"
#include "util_log.h"
#include "util_random.h"
#include "util_time.h"

#define DEV_MAGIC 0x56445254u /* "TRDV" */
#define QP_MAGIC  0x50515254u /* "TRQP" */
#define MAX_QPS   (P2P_MAX_DEVS * 16)

enum ctrl_kind { CTRL_RESET_REQ = 1, CTRL_RESET_ACK, CTRL_READY, CTRL_FAILED };

typedef struct dev_rec {
    uint32_t magic;
    uint32_t ndev;
    uint32_t nq;
    uint32_t zero;
    uint64_t sig_base;
    rdma_dev_wire_t devs[P2P_MAX_DEVS];
} dev_rec_t;

typedef struct qp_rec {
    uint32_t magic;
    uint32_t nrails; /* 0: this rank cannot connect to the reader */
    uint32_t nq;
    uint32_t zero;
    uint32_t qpn[MAX_QPS];
    uint32_t psn[MAX_QPS];
} qp_rec_t;

static uint32_t random_psn(void)
{
    uint32_t v = 0;
    tide_random_bytes(&v, sizeof(v));
    return v & 0xffffff;
}

static void set_rstate(rdma_qp_t *qp, rdma_qp_rstate_t s)
{
    __atomic_store_n(&qp->rstate, (int)s, __ATOMIC_RELEASE);
}

static void wake(rdma_ctx_t *c)
{
    tide_wake_post(c->wake_fd);
}

/* ------------------------------------------------------------ connection */

static tide_status_t get_rec(rdma_ctx_t *c, const char *key, void *out, size_t len)
{
    void *val;
    size_t got;
    tide_status_t st = tide_store_get(c->e->store, key, c->e->timeout_ms, &val, &got);
    if (st != TIDE_SUCCESS) {
        tide_warn("rdma: %s did not appear within %d ms", key, c->e->timeout_ms);
        return st;
    }
    if (got != len) {
        free(val);
        tide_warn("rdma: %s is %zu bytes, expected %zu", key, got, len);
        return TIDE_ERR_INVALID;
    }
    memcpy(out, val, len);
    free(val);
    return TIDE_SUCCESS;
}

static bool dev_rec_ok(const dev_rec_t *r)
{
    if (r->magic != DEV_MAGIC || r->ndev < 1 || r->ndev > P2P_MAX_DEVS || r->nq < 1 || r->nq > 16 ||
        r->zero)
        return false;
    for (uint32_t i = 0; i < r->ndev; i++)
        if (r->devs[i].mtu < IBV_MTU_256 || r->devs[i].mtu > IBV_MTU_4096 ||
            r->devs[i].sig_rkey == 0)
            return false;
    return true;
}

/* Create the endpoint to peer from its device record; NULL on failure. */
static rdma_ep_t *ep_create(rdma_ctx_t *c, int peer, const dev_rec_t *r)
{
    rdma_ep_t *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return NULL;
    ep->peer = peer;
    ep->peer_ndev = (int)r->ndev;
    memcpy(ep->rdev, r->devs, sizeof(ep->rdev));
    ep->peer_sig_base = r->sig_base;
    ep->nrails = TIDE_MAX(c->ndev, ep->peer_ndev);
    ep->nq = TIDE_MIN(c->nq, (int)r->nq);
    ep->owner = c->e->rank < peer;
    ep->qps = calloc((size_t)(ep->nrails * ep->nq), sizeof(*ep->qps));
    if (!ep->qps)
        goto err;
    for (int rail = 0; rail < ep->nrails; rail++)
        for (int q = 0; q < ep->nq; q++) {
            rdma_qp_t *qp = rdma_qp_create(c, ep, &c->devs[rail % c->ndev], rail, q);
            if (!qp)
                goto err;
            ep->qps[rail * ep->nq + q] = qp;
            qp->lpsn = random_psn();
            if (rdma_qp_init(qp) != TIDE_SUCCESS)
                goto err;
        }
    return ep;
err:
    rdma_ep_free(ep);
    return NULL;
}

void rdma_ep_free(rdma_ep_t *ep)
{
    if (!ep)
        return;
    for (int i = 0; ep->qps && i < ep->nrails * ep->nq; i++)
        if (ep->qps[i]) {
            rdma_ctx_t *c = ep->qps[i]->ctx;
            pthread_mutex_lock(&c->recover_lock); /* the timers no longer see it */
            c->qps[ep->qps[i]->index] = NULL;
            pthread_mutex_unlock(&c->recover_lock);
            rdma_qp_destroy(ep->qps[i]);
        }
    free(ep->qps);
    free(ep);
}

static void put_rec(rdma_ctx_t *c, const char *key, const void *rec, size_t len)
{
    if (tide_store_set(c->e->store, key, rec, len) != TIDE_SUCCESS)
        tide_warn("rdma: cannot publish %s", key);
}

void rdma_ep_connect_all(rdma_ctx_t *c)
{
    tide_engine_t *e = c->e;
    char key[64];
    dev_rec_t mine = {.magic = DEV_MAGIC, .ndev = (uint32_t)c->ndev, .nq = (uint32_t)c->nq};
    mine.sig_base = (uintptr_t)c->sig;
    for (int d = 0; d < c->ndev; d++)
        rdma_dev_wire(&c->devs[d], &mine.devs[d]);
    snprintf(key, sizeof(key), "rdma/dev/%d", e->rank);
    put_rec(c, key, &mine, sizeof(mine));

    rdma_ep_t **eps = calloc((size_t)e->nranks, sizeof(*eps));
    qp_rec_t *rec = calloc(1, sizeof(*rec));
    if (!eps || !rec) {
        tide_error("rdma: out of memory connecting");
        goto out;
    }
    /* QPs to every peer that has RDMA, in INIT; publish them. */
    for (int p = 0; p < e->nranks; p++) {
        if (p == e->rank || !(e->peers[p].info.transports & TIDE_TRANSPORT_RDMA))
            continue;
        dev_rec_t theirs;
        snprintf(key, sizeof(key), "rdma/dev/%d", p);
        memset(rec, 0, sizeof(*rec));
        rec->magic = QP_MAGIC;
        if (get_rec(c, key, &theirs, sizeof(theirs)) == TIDE_SUCCESS) {
            if (!dev_rec_ok(&theirs))
                tide_warn("rdma: rank %d's device record is not valid", p);
            else if (!(eps[p] = ep_create(c, p, &theirs)))
                tide_warn("rdma: cannot create QPs to rank %d; it is reached over tcp", p);
        }
        if (eps[p]) {
            rec->nrails = (uint32_t)eps[p]->nrails;
            rec->nq = (uint32_t)eps[p]->nq;
            for (int i = 0; i < eps[p]->nrails * eps[p]->nq; i++) {
                rec->qpn[i] = eps[p]->qps[i]->qp->qp_num;
                rec->psn[i] = eps[p]->qps[i]->lpsn;
            }
        }
        snprintf(key, sizeof(key), "rdma/qp/%d/%d", e->rank, p);
        put_rec(c, key, rec, sizeof(*rec));
    }
    /* Theirs: RTR, RTS. */
    for (int p = 0; p < e->nranks; p++) {
        if (!eps[p])
            continue;
        rdma_ep_t *ep = eps[p];
        snprintf(key, sizeof(key), "rdma/qp/%d/%d", p, e->rank);
        bool ok = get_rec(c, key, rec, sizeof(*rec)) == TIDE_SUCCESS && rec->magic == QP_MAGIC &&
                  rec->nrails == (uint32_t)ep->nrails && rec->nq == (uint32_t)ep->nq;
        for (int i = 0; ok && i < ep->nrails * ep->nq; i++) {
            ep->qps[i]->rqpn = rec->qpn[i] & 0xffffff;
            ok = rdma_qp_ready(ep->qps[i], rec->psn[i]) == TIDE_SUCCESS;
        }
        if (!ok) {
            tide_warn("rdma: cannot connect to rank %d; it is reached over tcp", p);
            rdma_ep_free(ep);
            eps[p] = NULL;
        }
        snprintf(key, sizeof(key), "rdma/ready/%d/%d", e->rank, p);
        uint32_t flag = ok;
        put_rec(c, key, &flag, sizeof(flag));
    }
    /* Live once both sides are ready to receive. */
    for (int p = 0; p < e->nranks; p++) {
        if (!eps[p])
            continue;
        uint32_t flag = 0;
        snprintf(key, sizeof(key), "rdma/ready/%d/%d", p, e->rank);
        if (get_rec(c, key, &flag, sizeof(flag)) != TIDE_SUCCESS || !flag) {
            tide_warn("rdma: rank %d could not connect to us; it is reached over tcp", p);
            rdma_ep_free(eps[p]);
            continue;
        }
        for (int i = 0; i < eps[p]->nrails * eps[p]->nq; i++) {
            set_rstate(eps[p]->qps[i], RDMA_QP_LIVE);
            p2p_path_set_state(&eps[p]->qps[i]->path, P2P_PATH_OK, "connected", false);
        }
        e->peers[p].rdma = eps[p];
    }
out:
    free(eps);
    free(rec);
}

/* --------------------------------------------------------------- posting */

static bool eligible(const rdma_ep_t *ep, const p2p_slice_t *s)
{
    if (s->op == P2P_OP_NOTIFY)
        return true;
    if (s->op == P2P_OP_CTRL || !s->lseg || !s->lseg->rkey_valid || !s->rseg)
        return false;
    uint32_t need = (1u << ep->peer_ndev) - 1;
    return (s->rseg->desc.rkey_valid & need) == need;
}

static int live_qps(rdma_ep_t *ep, rdma_qp_t **out)
{
    int k = 0;
    for (int i = 0; i < ep->nrails * ep->nq; i++)
        if (rdma_qp_live(ep->qps[i]))
            out[k++] = ep->qps[i];
    return k;
}

/* Put slices on one of the live QPs, starting at `first`; false if none
 * took them. */
static bool post_any(rdma_qp_t **live, int k, int first, p2p_slice_t **s, size_t n)
{
    for (int j = 0; j < k; j++)
        if (rdma_qp_post(live[(first + j) % k], s, n))
            return true;
    return false;
}

/* A signalling batch going wholly to this peer: its data and its signal
 * on one QP, the signal last, so the peer sees the signal only after the
 * data landed, with no round trip to us. */
static bool post_inband(rdma_ctx_t *c, rdma_ep_t *ep, rdma_qp_t **live, int k, p2p_slice_t **s,
                        size_t n)
{
    tide_batch_t *b = s[0]->batch;
    if (!b || b->signal_peer != ep->peer || n != b->nslices || n >= RDMA_CHAIN)
        return false;
    p2p_slice_t *sig = calloc(1, sizeof(*sig));
    if (!sig)
        return false;
    sig->op = P2P_OP_NOTIFY;
    sig->peer = ep->peer;
    sig->chan = b->signal_chan;
    sig->tag = b->signal_value;
    sig->sig_batch = b;
    p2p_slice_t *all[RDMA_CHAIN];
    memcpy(all, s, n * sizeof(*s));
    all[n] = sig;
    __atomic_store_n(&b->signal_inband, true, __ATOMIC_RELEASE);
    unsigned first = __atomic_fetch_add(&ep->rr, 1, __ATOMIC_RELAXED);
    if (post_any(live, k, (int)(first % (unsigned)k), all, n + 1))
        return true;
    __atomic_store_n(&b->signal_inband, false, __ATOMIC_RELEASE);
    free(sig);
    (void)c;
    return false;
}

size_t rdma_ep_post(rdma_ctx_t *c, rdma_ep_t *ep, p2p_slice_t **s, size_t n)
{
    rdma_qp_t *live[MAX_QPS];
    int k = live_qps(ep, live);
    if (k == 0)
        return 0;
    size_t m = 0;
    while (m < n && eligible(ep, s[m]))
        m++;
    if (m == 0)
        return 0;
    if (m == n && post_inband(c, ep, live, k, s, n))
        return n;
    /* Contiguous runs, one per QP, starting at a rotating QP. */
    unsigned first = __atomic_fetch_add(&ep->rr, 1, __ATOMIC_RELAXED);
    size_t runs = TIDE_MIN((size_t)k, m);
    size_t per = (m + runs - 1) / runs, off = 0;
    for (size_t j = 0; off < m; j++) {
        size_t len = TIDE_MIN(per, m - off);
        if (!post_any(live, k, (int)((first + j) % (unsigned)k), s + off, len))
            p2p_reroute(c->e, TIDE_TRANSPORT_RDMA, ep->peer, s + off, len);
        off += len;
    }
    return m;
}

void rdma_ep_failover(rdma_ctx_t *c, rdma_ep_t *ep, p2p_slice_t **s, size_t n)
{
    if (__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        for (size_t i = 0; i < n; i++)
            p2p_slice_done(c->e, s[i], TIDE_ERR_REVOKED);
        return;
    }
    size_t taken = rdma_ep_post(c, ep, s, n);
    if (taken < n) {
        tide_info("rdma: no live QP to rank %d: %zu slices move to tcp", ep->peer, n - taken);
        p2p_reroute(c->e, TIDE_TRANSPORT_RDMA, ep->peer, s + taken, n - taken);
    }
}

/* -------------------------------------------------------------- recovery */

static void send_ctrl(rdma_ctx_t *c, rdma_qp_t *qp, enum ctrl_kind kind, uint32_t gen, uint32_t psn)
{
    uint64_t a = ((uint64_t)qp->rail << 48) | ((uint64_t)qp->q << 40) | gen;
    p2p_ctrl_post(c->e, qp->ep->peer, TIDE_TRANSPORT_RDMA, kind, a, psn);
}

void rdma_ep_qp_failed(rdma_qp_t *qp)
{
    rdma_ctx_t *c = qp->ctx;
    pthread_mutex_lock(&qp->lock);
    qp->next_try_ns = tide_time_ns() + (int64_t)c->recover_ms * TIDE_NS_PER_MS;
    uint32_t gen = qp->gen;
    pthread_mutex_unlock(&qp->lock);
    if (!qp->ep->owner)
        send_ctrl(c, qp, CTRL_FAILED, gen, 0);
    wake(c);
}

/* Owner: reset our side and ask the peer to reset its side. */
static void start_reset(rdma_ctx_t *c, rdma_qp_t *qp)
{
    pthread_mutex_lock(&qp->lock);
    qp->gen++;
    qp->lpsn = random_psn();
    uint32_t gen = qp->gen, psn = qp->lpsn;
    bool ok = rdma_qp_init(qp) == TIDE_SUCCESS;
    qp->next_try_ns = tide_time_ns() + (int64_t)TIDE_MAX(c->recover_ms, 2000) * TIDE_NS_PER_MS;
    set_rstate(qp, ok ? RDMA_QP_WAIT_ACK : RDMA_QP_DOWN);
    pthread_mutex_unlock(&qp->lock);
    if (!ok)
        return;
    p2p_path_set_state(&qp->path, P2P_PATH_PROBING, "re-establishing", false);
    send_ctrl(c, qp, CTRL_RESET_REQ, gen, psn);
}

/* A recovery step that did not finish in time: back to DOWN. */
static void step_timeout(rdma_ctx_t *c, rdma_qp_t *qp, const char *what)
{
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
    pthread_mutex_lock(&qp->lock);
    ibv_modify_qp(qp->qp, &a, IBV_QP_STATE);
    qp->tail = qp->head; /* only a probe can be there */
    set_rstate(qp, RDMA_QP_DOWN);
    qp->next_try_ns = tide_time_ns() + (int64_t)c->recover_ms * TIDE_NS_PER_MS;
    uint32_t gen = qp->gen;
    pthread_mutex_unlock(&qp->lock);
    p2p_path_set_state(&qp->path, P2P_PATH_FAILED, what, false);
    if (!qp->ep->owner)
        send_ctrl(c, qp, CTRL_FAILED, gen, 0);
}

int rdma_ep_tick(rdma_ctx_t *c)
{
    int64_t now = tide_time_ns(), next = INT64_MAX;
    pthread_mutex_lock(&c->recover_lock);
    uint32_t n = __atomic_load_n(&c->nqps, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        rdma_qp_t *qp = c->qps[i];
        if (!qp || !c->e->peers[qp->ep->peer].rdma)
            continue;
        int rs = __atomic_load_n(&qp->rstate, __ATOMIC_ACQUIRE);
        if (rs == RDMA_QP_LIVE || rs == RDMA_QP_DEAD)
            continue;
        int64_t t = __atomic_load_n(&qp->next_try_ns, __ATOMIC_ACQUIRE);
        if (now < t) {
            next = TIDE_MIN(next, t);
            continue;
        }
        if (rs == RDMA_QP_DOWN && qp->ep->owner) {
            if (__atomic_load_n(&qp->dev->port_up, __ATOMIC_ACQUIRE))
                start_reset(c, qp);
            else
                __atomic_store_n(&qp->next_try_ns, now + (int64_t)c->recover_ms * TIDE_NS_PER_MS,
                                 __ATOMIC_RELEASE);
        } else if (rs == RDMA_QP_WAIT_ACK || rs == RDMA_QP_WAIT_READY) {
            step_timeout(c, qp, "no answer from the peer");
        } else if (rs == RDMA_QP_DOWN) {
            __atomic_store_n(&qp->next_try_ns, INT64_MAX, __ATOMIC_RELEASE);
            continue;
        }
        /* PROBE: its completion (success or error) decides */
        t = __atomic_load_n(&qp->next_try_ns, __ATOMIC_ACQUIRE);
        if (t > now)
            next = TIDE_MIN(next, t);
    }
    pthread_mutex_unlock(&c->recover_lock);
    if (next == INT64_MAX)
        return -1;
    return (int)TIDE_MIN((next - now) / TIDE_NS_PER_MS + 1, 60000);
}

void rdma_ep_probe_done(rdma_qp_t *qp, bool ok)
{
    rdma_ctx_t *c = qp->ctx;
    if (!ok)
        return;
    pthread_mutex_lock(&qp->lock);
    bool live = qp->rstate == RDMA_QP_PROBE;
    if (live)
        set_rstate(qp, RDMA_QP_LIVE);
    uint32_t gen = qp->gen;
    pthread_mutex_unlock(&qp->lock);
    if (!live)
        return;
    p2p_path_set_state(&qp->path, P2P_PATH_OK, "re-established and probed", false);
    send_ctrl(c, qp, CTRL_READY, gen, 0);
}

void rdma_ep_ctrl(rdma_ctx_t *c, int from, uint32_t kind, uint64_t a, uint64_t b)
{
    if (from < 0 || from >= c->e->nranks || from == c->e->rank)
        return;
    rdma_ep_t *ep = c->e->peers[from].rdma;
    int rail = (int)(a >> 48) & 0xffff, q = (int)(a >> 40) & 0xff;
    uint32_t gen = (uint32_t)a, psn = (uint32_t)b & 0xffffff;
    if (!ep || rail >= ep->nrails || q >= ep->nq) {
        tide_debug("rdma: control message %u from rank %d for no QP of ours", kind, from);
        return;
    }
    rdma_qp_t *qp = ep->qps[rail * ep->nq + q];
    pthread_mutex_lock(&c->recover_lock);
    int rs = __atomic_load_n(&qp->rstate, __ATOMIC_ACQUIRE);
    switch (kind) {
    case CTRL_RESET_REQ: { /* we are not the owner */
        if (ep->owner)
            break;
        if (rs == RDMA_QP_LIVE)
            rdma_qp_fail(qp, "the peer is re-establishing the connection", TIDE_SUCCESS);
        pthread_mutex_lock(&qp->lock);
        qp->gen = gen;
        qp->lpsn = random_psn();
        bool ok = rdma_qp_init(qp) == TIDE_SUCCESS && rdma_qp_ready(qp, psn) == TIDE_SUCCESS;
        set_rstate(qp, ok ? RDMA_QP_WAIT_READY : RDMA_QP_DOWN);
        qp->next_try_ns = tide_time_ns() + (int64_t)TIDE_MAX(c->recover_ms, 2000) * TIDE_NS_PER_MS;
        uint32_t mine = qp->lpsn;
        pthread_mutex_unlock(&qp->lock);
        if (ok) {
            p2p_path_set_state(&qp->path, P2P_PATH_PROBING, "re-establishing", false);
            send_ctrl(c, qp, CTRL_RESET_ACK, gen, mine);
        }
        wake(c);
        break;
    }
    case CTRL_RESET_ACK: {
        if (!ep->owner || rs != RDMA_QP_WAIT_ACK || gen != qp->gen)
            break;
        pthread_mutex_lock(&qp->lock);
        bool ok = rdma_qp_ready(qp, psn) == TIDE_SUCCESS;
        set_rstate(qp, ok ? RDMA_QP_PROBE : RDMA_QP_DOWN);
        qp->next_try_ns = tide_time_ns() + (int64_t)c->recover_ms * TIDE_NS_PER_MS;
        pthread_mutex_unlock(&qp->lock);
        if (ok && !rdma_qp_probe(qp))
            step_timeout(c, qp, "probe not posted");
        break;
    }
    case CTRL_READY:
        if (ep->owner || rs != RDMA_QP_WAIT_READY || gen != qp->gen)
            break;
        set_rstate(qp, RDMA_QP_LIVE);
        p2p_path_set_state(&qp->path, P2P_PATH_OK, "re-established by the peer", false);
        break;
    case CTRL_FAILED:
        if (!ep->owner)
            break;
        if (rs == RDMA_QP_LIVE)
            rdma_qp_fail(qp, "the peer saw the connection fail", TIDE_SUCCESS);
        else if (rs == RDMA_QP_DOWN)
            __atomic_store_n(&qp->next_try_ns, tide_time_ns(), __ATOMIC_RELEASE);
        wake(c);
        break;
    default:
        tide_debug("rdma: unknown control message %u from rank %d", kind, from);
    }
    pthread_mutex_unlock(&c->recover_lock);
}

void rdma_ep_port_event(rdma_ctx_t *c, rdma_dev_t *d, bool up)
{
    pthread_mutex_lock(&c->recover_lock); /* no recovery step runs meanwhile */
    uint32_t n = __atomic_load_n(&c->nqps, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        rdma_qp_t *qp = c->qps[i];
        if (!qp || qp->dev != d || !c->e->peers[qp->ep->peer].rdma)
            continue;
        if (!up) {
            rdma_qp_fail(qp, "port error", TIDE_SUCCESS);
        } else if (qp->ep->owner) {
            __atomic_store_n(&qp->next_try_ns, tide_time_ns(), __ATOMIC_RELEASE);
        } else if (__atomic_load_n(&qp->rstate, __ATOMIC_ACQUIRE) == RDMA_QP_DOWN) {
            send_ctrl(c, qp, CTRL_FAILED, qp->gen, 0); /* ask the owner to retry now */
        }
    }
    pthread_mutex_unlock(&c->recover_lock);
}
