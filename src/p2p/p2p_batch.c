/*
 * Batches: check every request, split them into slices (one array per
 * batch, reused with the batch), hand the slices of each peer to the
 * transports in order, count completions, and wake the waiter.
 *
 * Completion is counted per batch: `remaining` drops once per slice; the
 * slice that brings it to zero completes the batch (and, for
 * TIDE_BATCH_NOTIFY, sends the notifications: every write has landed by
 * then). Waiters spin briefly on `done`, then sleep on it as a futex.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "p2p.h"
#include "transport.h"
#include "util_log.h"
#include "util_time.h"

#define SPIN_NS        (30 * 1000) /* spin this long before sleeping */
/* and from this long on yield the core between polls: the process that
 * completes the batch may have been placed on this very core */
#define YIELD_AFTER_NS (1 * 1000)

static void futex_wake_all(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void futex_wait(uint32_t *word, uint32_t expected, int64_t deadline)
{
    int64_t left = deadline - tide_time_ns();
    if (left <= 0)
        return;
    struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
}

static p2p_slice_t *small_slice(int peer, uint8_t op, uint32_t chan, uint64_t roff, uint64_t tag)
{
    p2p_slice_t *s = calloc(1, sizeof(*s));
    if (s) {
        s->op = op;
        s->peer = peer;
        s->chan = chan;
        s->roff = roff;
        s->tag = tag;
    }
    return s;
}

/* Offer one signal or control slice to the transports with `bits`, in
 * order; true when one took it. */
static bool post_one(tide_engine_t *e, int peer, p2p_slice_t *s, unsigned bits)
{
    p2p_peer_t *p = &e->peers[peer];
    p2p_slice_t *one[1] = {s};
    for (int i = 0; i < e->ntr; i++)
        if ((e->tr[i]->bit & bits) && e->tr[i]->reaches(e->tr_ctx[i], p) &&
            e->tr[i]->post(e->tr_ctx[i], p, one, 1) == 1)
            return true;
    return false;
}

void p2p_signal_post(tide_engine_t *e, int peer, uint32_t chan, uint64_t value)
{
    if (peer == e->rank) {
        p2p_signal_received(e, peer, chan, value);
        return;
    }
    p2p_slice_t *s = small_slice(peer, P2P_OP_NOTIFY, chan, 0, value);
    if (!s) {
        tide_error("signal to rank %d: out of memory", peer);
        return;
    }
    unsigned bits = TIDE_TRANSPORT_TCP | (e->transports & TIDE_TRANSPORT_RDMA);
    if (!post_one(e, peer, s, bits)) {
        tide_error("signal to rank %d: no transport carries signals", peer);
        free(s);
    }
}

void p2p_ctrl_post(tide_engine_t *e, int peer, unsigned transport, uint32_t kind, uint64_t a,
                   uint64_t b)
{
    p2p_slice_t *s = small_slice(peer, P2P_OP_CTRL, (transport << 24) | (kind & 0xffffffu), a, b);
    if (!s || !post_one(e, peer, s, TIDE_TRANSPORT_TCP)) {
        tide_warn("control message to rank %d: %s", peer, s ? "no tcp path" : "out of memory");
        free(s);
    }
}

/* A notification (channel 0) to peer, numbered in sequence. */
static void notify_post(tide_engine_t *e, int peer)
{
    uint64_t seq = __atomic_add_fetch(&e->peers[peer].notify_sent, 1, __ATOMIC_ACQ_REL);
    p2p_signal_post(e, peer, 0, seq);
}

static void batch_complete(tide_engine_t *e, tide_batch_t *b)
{
    bool ok = __atomic_load_n(&b->status, __ATOMIC_ACQUIRE) == 0;
    if ((b->flags & TIDE_BATCH_NOTIFY) && ok)
        for (size_t i = 0; i < b->nnotify; i++)
            notify_post(e, b->notify_peers[i]);
    int speer = b->signal_peer;
    uint32_t schan = b->signal_chan;
    uint64_t svalue = b->signal_value;
    bool inband = __atomic_load_n(&b->signal_inband, __ATOMIC_ACQUIRE);
    __atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&b->waiters, __ATOMIC_ACQUIRE))
        futex_wake_all(&b->done);
    /* b may be freed and reused from here on */
    if (speer >= 0) {
        if (ok && !inband)
            p2p_signal_post(e, speer, schan, svalue);
        pthread_mutex_lock(&e->notify_lock);
        p2p_signal_hook_t hook = e->signal_hook;
        void *arg = e->signal_hook_arg;
        pthread_mutex_unlock(&e->notify_lock);
        if (hook)
            hook(arg);
    }
}

void p2p_slice_done(tide_engine_t *e, p2p_slice_t *s, tide_status_t status)
{
    if (s->lseg)
        p2p_lseg_put(s->lseg);
    if (!s->batch) { /* a signal or control message */
        if (s->op == P2P_OP_CTRL) {
            if (status != TIDE_SUCCESS)
                tide_info("control message to rank %d lost: %s", s->peer, tide_status_str(status));
        } else if (status != TIDE_SUCCESS && s->chan == 0) /* a user's notification */
            tide_error("notification %" PRIu64 " to rank %d lost: %s", s->tag, s->peer,
                       tide_status_str(status));
        else if (status != TIDE_SUCCESS)
            tide_debug("signal %" PRIu64 " (channel %u) to rank %d lost: %s", s->tag, s->chan,
                       s->peer, tide_status_str(status));
        free(s);
        return;
    }
    tide_batch_t *b = s->batch;
    if (status != TIDE_SUCCESS) {
        int32_t ok = 0;
        __atomic_compare_exchange_n(&b->status, &ok, (int32_t)status, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
    if (__atomic_sub_fetch(&b->remaining, 1, __ATOMIC_ACQ_REL) == 0)
        batch_complete(e, b);
}

/* ------------------------------------------------------------- submission */

/* Check request i; *rs_io is its remote segment (looked up again only
 * when the peer or segment differs from the previous request's). */
static tide_status_t check_request(tide_engine_t *e, const tide_request_t *r, size_t i,
                                   const tide_request_t *prev, p2p_rseg_t **rs_io)
{
    if (r->op != TIDE_OP_WRITE && r->op != TIDE_OP_READ) {
        tide_error("tide_batch_submit: request %zu: unknown op %d", i, (int)r->op);
        return TIDE_ERR_INVALID;
    }
    if (r->peer < 0 || r->peer >= e->nranks) {
        tide_error("tide_batch_submit: request %zu: peer %d is not in 0..%d", i, r->peer,
                   e->nranks - 1);
        return TIDE_ERR_INVALID;
    }
    if (r->length == 0) {
        tide_error("tide_batch_submit: request %zu: length is 0", i);
        return TIDE_ERR_INVALID;
    }
    p2p_rseg_t *rs = *rs_io;
    if (!prev || !rs || prev->peer != r->peer || prev->remote_segment != r->remote_segment)
        rs = p2p_rseg_find(&e->peers[r->peer], r->remote_segment);
    *rs_io = rs;
    if (!rs) {
        tide_error("tide_batch_submit: request %zu: segment %u of rank %d is not open "
                   "(tide_segment_open)",
                   i, r->remote_segment, r->peer);
        return TIDE_ERR_INVALID;
    }
    if (!p2p_range_ok(r->remote_offset, r->length, rs->desc.len)) {
        tide_error("tide_batch_submit: request %zu: [%" PRIu64 ", +%" PRIu64
                   ") is outside segment %u of rank %d (%" PRIu64 " bytes)",
                   i, r->remote_offset, r->length, r->remote_segment, r->peer, rs->desc.len);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_batch_t *batch_get(tide_engine_t *e, size_t nslices, size_t nreqs)
{
    tide_batch_t *b;
    pthread_mutex_lock(&e->batch_lock);
    b = e->free_batches;
    if (b)
        e->free_batches = b->next_free;
    pthread_mutex_unlock(&e->batch_lock);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        b->engine = e;
        pthread_mutex_lock(&e->batch_lock);
        b->next_all = e->all_batches;
        e->all_batches = b;
        pthread_mutex_unlock(&e->batch_lock);
    }
    if (b->cap < nslices) {
        p2p_slice_t *s = realloc(b->slices, nslices * sizeof(*s));
        if (s)
            b->slices = s;
        p2p_slice_t **p = realloc(b->ptrs, nslices * sizeof(*p));
        if (p)
            b->ptrs = p;
        if (!s || !p)
            goto err;
        b->cap = nslices;
    }
    size_t want = nreqs < (size_t)e->nranks ? nreqs : (size_t)e->nranks;
    if (b->notify_cap < want) {
        int *p = realloc(b->notify_peers, want * sizeof(*p));
        if (!p)
            goto err;
        b->notify_peers = p;
        b->notify_cap = want;
    }
    return b;
err:
    pthread_mutex_lock(&e->batch_lock);
    b->next_free = e->free_batches;
    e->free_batches = b;
    pthread_mutex_unlock(&e->batch_lock);
    return NULL;
}

/* Hand slices of one peer to the transports from index `first` on, in
 * order of preference; `fallback`: TCP takes what is left, allowed or not. */
static void route_from(tide_engine_t *e, int first, bool fallback, int peer, p2p_slice_t **s,
                       size_t n)
{
    p2p_peer_t *p = &e->peers[peer];
    for (int i = first; i < e->ntr && n > 0; i++) {
        /* Our own segments are plain memory, whatever the transports. */
        unsigned bit = e->tr[i]->bit;
        bool allowed = (e->transports & bit) || (peer == e->rank && bit == TIDE_TRANSPORT_SHM) ||
                       (fallback && bit == TIDE_TRANSPORT_TCP);
        if (!allowed || !e->tr[i]->reaches(e->tr_ctx[i], p))
            continue;
        size_t taken = e->tr[i]->post(e->tr_ctx[i], p, s, n);
        s += taken;
        n -= taken;
    }
    if (n > 0) {
        tide_error("no usable path to rank %d for %zu slices", peer, n);
        for (size_t i = 0; i < n; i++)
            p2p_slice_done(e, s[i], TIDE_ERR_LINK);
    }
}

static void route(tide_engine_t *e, int peer, p2p_slice_t **s, size_t n)
{
    /* Where RDMA is asked for, TCP backs it up: for a peer whose RDMA
     * paths are down or never connected, for new work as for the work of
     * failed paths. */
    bool fallback = (e->transports & TIDE_TRANSPORT_RDMA) != 0;
    route_from(e, 0, fallback, peer, s, n);
}

void p2p_reroute(tide_engine_t *e, unsigned from_transport, int peer, p2p_slice_t **s, size_t n)
{
    int i = 0;
    while (i < e->ntr && e->tr[i]->bit != from_transport)
        i++;
    route_from(e, i + 1, true, peer, s, n);
}

static size_t count_slices(const tide_engine_t *e, const tide_request_t *reqs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (size_t)((reqs[i].length + e->slice_size - 1) / e->slice_size);
    return total;
}

static tide_status_t batch_submit(tide_engine_t *e, const tide_request_t *reqs, size_t n,
                                  unsigned flags, int speer, uint32_t schan, uint64_t svalue,
                                  tide_batch_t **out);

tide_status_t tide_batch_submit(tide_engine_t *e, const tide_request_t *reqs, size_t n,
                                unsigned flags, tide_batch_t **out)
{
    if (flags & ~TIDE_BATCH_NOTIFY) {
        tide_error("tide_batch_submit: unknown flags 0x%x", flags);
        return TIDE_ERR_INVALID;
    }
    return batch_submit(e, reqs, n, flags, -1, 0, 0, out);
}

tide_status_t p2p_batch_submit_signal(tide_engine_t *e, const tide_request_t *reqs, size_t n,
                                      unsigned flags, int peer, uint32_t chan, uint64_t value,
                                      tide_batch_t **out)
{
    if (peer < 0 || peer >= e->nranks || chan == 0 || chan >= P2P_NCHAN ||
        (flags & ~(P2P_BATCH_LAZY_ACK | P2P_BATCH_RAW_LOCAL))) {
        tide_error("signalling batch: rank %d, channel %u or flags 0x%x out of range", peer, chan,
                   flags);
        return TIDE_ERR_INVALID;
    }
    /* Plain memory as the source: only TCP can send from it. */
    bool raw_ok = peer != e->rank && p2p_peer_tcp_only(e, peer);
    for (size_t i = 0; (flags & P2P_BATCH_RAW_LOCAL) && reqs && i < n; i++)
        if (!raw_ok || reqs[i].op != TIDE_OP_WRITE || reqs[i].peer != peer) {
            tide_error("batch from plain memory: request %zu is not a WRITE to rank %d, a peer "
                       "only TCP reaches",
                       i, peer);
            return TIDE_ERR_INVALID;
        }
    return batch_submit(e, reqs, n, flags, peer, chan, value, out);
}

static tide_status_t batch_submit(tide_engine_t *e, const tide_request_t *reqs, size_t n,
                                  unsigned flags, int speer, uint32_t schan, uint64_t svalue,
                                  tide_batch_t **out)
{
    tide_status_t st;
    size_t i, k = 0;

    if (!e || !reqs || n == 0 || !out) {
        tide_error("tide_batch_submit: need an engine, 1 or more requests (got %zu) and an "
                   "output",
                   n);
        return TIDE_ERR_INVALID;
    }
    p2p_rseg_t *rs = NULL;
    for (i = 0; i < n; i++)
        if ((st = check_request(e, &reqs[i], i, i ? &reqs[i - 1] : NULL, &rs)) != TIDE_SUCCESS)
            return st;
    size_t nslices = count_slices(e, reqs, n);
    tide_batch_t *b = batch_get(e, nslices, n);
    if (!b) {
        tide_error("tide_batch_submit: out of memory for %zu slices", nslices);
        return TIDE_ERR_NOMEM;
    }
    p2p_slice_t **ptrs = b->ptrs;
    /* Take the local segments; refuse the batch if one is wrong. A run of
     * requests on the same segments looks them up once: the busy reference
     * the previous slice holds keeps the segment alive meanwhile. */
    p2p_lseg_t *ls = NULL;
    bool raw = flags & P2P_BATCH_RAW_LOCAL;
    rs = NULL;
    for (i = 0; i < n; i++) {
        const tide_request_t *r = &reqs[i];
        const tide_request_t *pr = i ? &reqs[i - 1] : NULL;
        char *base;
        if (raw) {
            base = (char *)(uintptr_t)r->local_offset;
        } else if (ls && pr->local_segment == r->local_segment &&
                   p2p_range_ok(r->local_offset, r->length, ls->len)) {
            __atomic_add_fetch(&ls->busy, 1, __ATOMIC_ACQ_REL);
        } else {
            ls = p2p_lseg_get(e, r->local_segment, r->local_offset, r->length, "tide_batch_submit");
            if (!ls)
                goto err_put;
        }
        if (!raw)
            base = ls->addr + r->local_offset;
        if (!rs || pr->peer != r->peer || pr->remote_segment != r->remote_segment)
            rs = p2p_rseg_find(&e->peers[r->peer], r->remote_segment);
        /* A small request that continues the previous slice on both sides
         * joins it (up to the slice size): one frame, one completion. */
        p2p_slice_t *prev = k ? &b->slices[k - 1] : NULL;
        if (prev && prev->peer == r->peer && prev->op == (uint8_t)r->op && prev->lseg == ls &&
            prev->rseg == rs && prev->local + prev->len == base &&
            prev->roff + prev->len == r->remote_offset && prev->len + r->length <= e->slice_size) {
            prev->len += (uint32_t)r->length;
            if (ls)
                p2p_lseg_put(ls); /* prev already holds the segment */
            continue;
        }
        for (uint64_t off = 0; off < r->length; off += e->slice_size) {
            p2p_slice_t *s = &b->slices[k++];
            memset(s, 0, offsetof(p2p_slice_t, hdr));
            s->batch = b;
            s->op = (uint8_t)r->op;
            s->peer = r->peer;
            s->local = base + off;
            s->lseg = ls;
            s->rseg = rs;
            s->roff = r->remote_offset + off;
            s->len = (uint32_t)TIDE_MIN(e->slice_size, r->length - off);
            if (off > 0 && ls)
                __atomic_add_fetch(&ls->busy, 1, __ATOMIC_ACQ_REL);
        }
    }
    nslices = k; /* after coalescing */
    b->nslices = nslices;
    b->flags = flags;
    b->signal_peer = speer;
    b->signal_chan = schan;
    b->signal_value = svalue;
    b->signal_inband = false;
    b->status = 0;
    b->done = 0;
    b->waiters = 0;
    b->remaining = (uint32_t)nslices + 1; /* +1: held until every slice is posted */
    b->nnotify = 0;
    for (i = 0; i < n && (flags & TIDE_BATCH_NOTIFY); i++) {
        bool seen = false;
        if (reqs[i].op != TIDE_OP_WRITE)
            continue;
        for (size_t j = 0; j < b->nnotify && !seen; j++)
            seen = b->notify_peers[j] == reqs[i].peer;
        if (!seen)
            b->notify_peers[b->nnotify++] = reqs[i].peer;
    }
    /* Post runs of slices that go to the same peer. */
    for (size_t s = 0; s < nslices;) {
        size_t t = s;
        while (t < nslices && b->slices[t].peer == b->slices[s].peer) {
            ptrs[t] = &b->slices[t];
            t++;
        }
        route(e, b->slices[s].peer, ptrs + s, t - s);
        s = t;
    }
    if (__atomic_sub_fetch(&b->remaining, 1, __ATOMIC_ACQ_REL) == 0)
        batch_complete(e, b);
    *out = b;
    return TIDE_SUCCESS;

err_put:
    for (size_t j = 0; j < k; j++)
        if (b->slices[j].lseg)
            p2p_lseg_put(b->slices[j].lseg);
    pthread_mutex_lock(&e->batch_lock);
    b->next_free = e->free_batches;
    e->free_batches = b;
    pthread_mutex_unlock(&e->batch_lock);
    return TIDE_ERR_INVALID;
}

/* ------------------------------------------------------------- completion */

tide_status_t tide_batch_test(tide_batch_t *b)
{
    if (!b) {
        tide_error("tide_batch_test: batch must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE))
        return TIDE_IN_PROGRESS;
    return (tide_status_t)__atomic_load_n(&b->status, __ATOMIC_ACQUIRE);
}

tide_status_t tide_batch_wait(tide_batch_t *b, int timeout_ms)
{
    if (!b) {
        tide_error("tide_batch_wait: batch must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (timeout_ms < 0)
        timeout_ms = b->engine->timeout_ms;
    int64_t start = tide_time_ns(), deadline = tide_deadline_ms(timeout_ms);
    /* Spin a little, receiving what completes the batch ourselves. */
    unsigned taken = 0;
    int64_t spun;
    while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE) &&
           (spun = tide_time_ns() - start) < SPIN_NS) {
        if (!taken)
            taken = p2p_poll_begin(b->engine);
        if (taken && p2p_poll(b->engine, taken))
            continue;
        if (spun >= YIELD_AFTER_NS)
            sched_yield();
        else
            __builtin_ia32_pause();
    }
    p2p_poll_end(b->engine, taken, true); /* the caller may wait on anything next */
    if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&b->waiters, 1, __ATOMIC_ACQ_REL);
        while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE) && tide_time_ns() < deadline)
            futex_wait(&b->done, 0, deadline);
        __atomic_sub_fetch(&b->waiters, 1, __ATOMIC_ACQ_REL);
    }
    if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
        tide_error("batch of %zu slices: %u not done after %d ms", b->nslices,
                   __atomic_load_n(&b->remaining, __ATOMIC_ACQUIRE), timeout_ms);
        return TIDE_ERR_TIMEOUT;
    }
    tide_status_t st = (tide_status_t)__atomic_load_n(&b->status, __ATOMIC_ACQUIRE);
    if (st != TIDE_SUCCESS)
        tide_error("batch of %zu slices failed: %s", b->nslices, tide_status_str(st));
    return st;
}

tide_status_t tide_batch_free(tide_batch_t *b)
{
    if (!b) {
        tide_error("tide_batch_free: batch must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
        tide_error("tide_batch_free: the batch is still running; wait for it first");
        return TIDE_IN_PROGRESS;
    }
    tide_engine_t *e = b->engine;
    pthread_mutex_lock(&e->batch_lock);
    b->next_free = e->free_batches;
    e->free_batches = b;
    pthread_mutex_unlock(&e->batch_lock);
    return TIDE_SUCCESS;
}
