/*
 * Pipes over the transfer engine, for peers this rank cannot reach through
 * shared memory.
 *
 * Every rank registers two segments of nranks rings: `recv` (segment 0,
 * opened by its peers) holds, in ring s, the stream from rank s; `stage`
 * (segment 1, local) holds, in ring d, what it sends to rank d. A push
 * copies into stage and WRITEs the same ring positions into the peer's
 * recv ring; the batch signals DATA = bytes written so far once it has
 * landed. The receiver consumes up to DATA and returns CREDIT = bytes
 * consumed, which frees the sender's ring space.
 *
 * DATA signals must arrive in order (the engine keeps the highest value of
 * a counter: an earlier batch's data landing after a later one's signal
 * must not be possible). Over TCP the engine sends a batch's signal in
 * band, behind its data on one stream, and keeps such batches in order
 * (across stream failures too), so several may be in flight and the
 * receiver sees each signal without a round trip to us. Otherwise (RDMA:
 * the signal follows completion) one write batch per peer is in flight at
 * a time.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <stdlib.h>
#include <string.h>
#include "coll_ctx.h"
#include "p2p.h"
#include "util_log.h"
#include "util_numa.h"
#include "util_param.h"

#define CHAN_DATA   1
#define CHAN_CREDIT 2

/* Write batches in flight to a peer (signals in band): more than the
 * transport's lazy ACK count (32 over TCP), so that a stream of small
 * messages never waits for an ACK (8 and 8: 6.5 us per 8-byte allreduce
 * at np=2 over TCP; 48 and 32: 5.4-5.9). */
#define INFLIGHT_MAX 48
#define LAZY_ACK_MAX (16 * 1024)  /* staged batches acknowledged lazily (TCP-only: all) */
#define ZC_MIN       (128 * 1024) /* TCP-only peers: messages from this size go unstaged */
#define ZC_PIECE_MIN (4 * 1024)   /* ... in writes of at least this (less: staged) */
#define BATCH_SLICES 16 /* slices per write batch at most: its signal goes in band (tcp: < 64) */
#define ZONE_MIN     (128 * 1024) /* TCP-only peers: receives from this size land in place */

typedef struct eng_peer {
    uint64_t sent;   /* bytes pushed (copied to stage and written or being written) */
    uint64_t posted; /* bytes covered by a submitted write */
    tide_batch_t *inflight[INFLIGHT_MAX]; /* oldest first, from `first` */
    bool unstaged[INFLIGHT_MAX];          /* ... writing straight from the caller's buffer */
    unsigned first, n;
    unsigned zc;       /* unstaged writes in flight: the caller's buffer is still being read */
    tide_status_t err; /* a write failed: the stream to this peer is broken for good */
    bool tcp_only;     /* only TCP reaches it: signals in band, batches in order */
    uint64_t consumed; /* bytes taken from its stream */
    uint64_t credited; /* consumed bytes returned to it */
    /* A receive from it of stream bytes [zone_pos, zone_end) lands in
     * place: its ring range is a landing zone (see eng_expect). */
    bool zone_open;
    uint64_t zone_pos, zone_end;
    p2p_zone_t zone;
} eng_peer_t;

struct eng_state {
    size_t ring;
    int zones; /* peers with a zone open */
    char *recv, *stage;
    uint32_t recv_id, stage_id;
    eng_peer_t *peers;
};

static void bell_hook(void *arg)
{
    coll_ctx_t *c = arg;
    coll_bell_ring(c->doorbell, c->sleeping);
}

static void inflight_add(eng_peer_t *p, tide_batch_t *b, bool unstaged)
{
    unsigned i = (p->first + p->n++) % INFLIGHT_MAX;
    p->inflight[i] = b;
    p->unstaged[i] = unstaged;
    p->zc += unstaged;
}

/* Retire finished writes; start the next one if bytes wait in stage and
 * the batches in flight allow it. A failed write fails every later push
 * to the peer (its stream has a hole now). */
static int64_t eng_write_progress(coll_ctx_t *c, int peer)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    while (p->n) {
        tide_batch_t *b = p->inflight[p->first];
        tide_status_t st = tide_batch_test(b);
        if (st == TIDE_IN_PROGRESS)
            break;
        tide_batch_free(b);
        p->zc -= p->unstaged[p->first];
        p->first = (p->first + 1) % INFLIGHT_MAX;
        p->n--;
        if (st != TIDE_SUCCESS && p->err == TIDE_SUCCESS) {
            tide_error("coll %s: write to rank %d failed: %s", c->op_name, peer,
                       tide_status_str(st));
            p->err = st;
        }
    }
    if (p->err != TIDE_SUCCESS)
        return p->err;
    if (p->posted == p->sent)
        return 0;
    /* Another batch in flight only where every batch's signal goes in band
     * on one ordered stream: a signal sent after completion (RDMA, or a
     * batch moved from RDMA to TCP) could overtake an earlier batch's
     * data. */
    if (p->n && (!p->tcp_only || p->n == INFLIGHT_MAX ||
                 !p->inflight[(p->first + p->n - 1) % INFLIGHT_MAX]->signal_inband))
        return 0;
    /* One contiguous run of the ring per batch (at most two requests). */
    tide_request_t req[2];
    size_t n = 0;
    uint64_t from = p->posted, to = p->sent;
    /* Few enough slices for the signal to go in band (tcp: up to 63). */
    uint64_t end = TIDE_MIN(to, from + BATCH_SLICES * (uint64_t)c->engine->slice_size);
    while (from < end && n < 2) {
        size_t pos = from % s->ring, len = TIDE_MIN((size_t)(end - from), s->ring - pos);
        req[n++] = (tide_request_t){TIDE_OP_WRITE,
                                    s->stage_id,
                                    (uint64_t)peer * s->ring + pos,
                                    peer,
                                    s->recv_id,
                                    (uint64_t)c->rank * s->ring + pos,
                                    len};
        from += len;
    }
    /* Staged batches are acknowledged lazily: nothing here waits on their
     * completion (the receiver's DATA signal and CREDIT are what count),
     * and an ACK per message costs each side a system call. To a peer
     * that only TCP reaches, whatever their size: up to INFLIGHT_MAX may
     * be in flight, so none waits for an ACK (np=2, allgather of 64 KiB:
     * 18.6-19.9 -> 15.1-15.8 us). Elsewhere only small ones: one batch at
     * a time there, and the next would wait for the lazy ACK. */
    unsigned flags = p->tcp_only || from - p->posted <= LAZY_ACK_MAX ? P2P_BATCH_LAZY_ACK : 0;
    tide_batch_t *b;
    tide_status_t st = p2p_batch_submit_signal(c->engine, req, n, flags, peer, CHAN_DATA, from, &b);
    if (st != TIDE_SUCCESS)
        return st;
    inflight_add(p, b, false);
    p->posted = from;
    return 0;
}

/* A large message to a TCP-only peer: WRITE n bytes straight from the
 * caller's buffer into the peer's ring at the stream position, no copy
 * into stage (TCP sends from any memory). Nothing may be staged ahead of
 * it, so that its DATA signal covers only landed bytes. The send step is
 * flushed only once such writes completed: the caller keeps the buffer
 * until then. (An operation that fails by its deadline first may return
 * with such a write still queued: the kernel then reads whatever the
 * buffer holds, or fails the send where it is unmapped; local memory is
 * never written.) Returns the bytes written or an error. */
static int64_t eng_push_unstaged(coll_ctx_t *c, int peer, const void *buf, size_t n)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    n = TIDE_MIN(n, BATCH_SLICES * c->engine->slice_size);
    tide_request_t req = {TIDE_OP_WRITE,
                          0,
                          (uint64_t)(uintptr_t)buf,
                          peer,
                          s->recv_id,
                          (uint64_t)c->rank * s->ring + p->sent % s->ring,
                          n};
    tide_batch_t *b;
    tide_status_t st = p2p_batch_submit_signal(c->engine, &req, 1, P2P_BATCH_RAW_LOCAL, peer,
                                               CHAN_DATA, p->sent + n, &b);
    if (st != TIDE_SUCCESS)
        return st;
    inflight_add(p, b, true);
    p->sent += n;
    p->posted = p->sent;
    return (int64_t)n;
}

static int64_t eng_push(coll_ctx_t *c, int peer, const void *buf, size_t len)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    int64_t rc = eng_write_progress(c, peer);
    if (rc < 0)
        return rc;
    uint64_t credit = p2p_signal_value(c->engine, peer, CHAN_CREDIT);
    if (credit > p->sent || p->sent - credit > s->ring) {
        tide_error("coll %s: rank %d credits %llu bytes of its pipe, but %llu were sent (ring "
                   "%zu)",
                   c->op_name, peer, (unsigned long long)credit, (unsigned long long)p->sent,
                   s->ring);
        return TIDE_ERR_PEER;
    }
    size_t pos = p->sent % s->ring;
    size_t n = TIDE_MIN(len, s->ring - (size_t)(p->sent - credit));
    n = TIDE_MIN(n, s->ring - pos);
    if (n == 0)
        return 0;
    bool large = p->tcp_only && len >= ZC_MIN;
    if (large && p->posted == p->sent && n >= ZC_PIECE_MIN) /* else stage this piece */
        return p->n == INFLIGHT_MAX ? 0 : eng_push_unstaged(c, peer, buf, n);
    memcpy(s->stage + (size_t)peer * s->ring + pos, buf, n);
    p->sent += n;
    /* Stage now, write at the flush that follows the pushes of a step (a
     * message and its padding go out as one batch), or now when a
     * quarter of the ring is waiting (large streams keep moving), or
     * when a large message goes on unstaged after this piece. */
    if ((large || p->sent - p->posted >= s->ring / 4) && (rc = eng_write_progress(c, peer)) < 0)
        return rc;
    return (int64_t)n;
}

/* Everything pushed is on its way: submitted, its DATA signal behind it
 * (in band over TCP, else at completion: the receiver sees it either way
 * without us). */
static bool eng_flushed(coll_ctx_t *c, int peer)
{
    eng_peer_t *p = &c->eng->peers[peer];
    /* After a failure: done once the caller's buffer is no longer read
     * (the error fails the next push; the receiver times out). */
    if (eng_write_progress(c, peer) < 0)
        return p->zc == 0;
    return p->posted == p->sent && p->zc == 0;
}

/* Return consumed ring space to peer; not a zone's, while it is open:
 * the sender could otherwise write the ring's next lap there, which the
 * zone would take for this one's. */
static void eng_credit(coll_ctx_t *c, int peer)
{
    eng_peer_t *p = &c->eng->peers[peer];
    uint64_t upto = p->zone_open ? p->zone_pos : p->consumed; /* consumed >= zone_pos */
    if (upto > p->credited) {
        p->credited = upto;
        p2p_signal_post(c->engine, peer, CHAN_CREDIT, upto);
    }
}

/* Close peer's zone: nothing lands in its destination any more. (Runs an
 * operation that failed had not taken are lost to the pipe's stream, as
 * are the bytes of its messages still in the ring: a failed operation
 * leaves its pipes out of step either way.) */
static void zone_close(coll_ctx_t *c, int peer)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    coll_poll_end(c, false); /* a zone closes under the progress we may hold */
    p2p_zone_close(c->engine, &p->zone);
    p->zone_open = false;
    s->zones--;
}

/* A receive of len bytes into dst begins with the next byte of peer's
 * stream: over TCP, have the frames that carry it land in dst rather than
 * in the ring (a landing zone over the ring range, up to the ring's end),
 * so that the receive needs no copy. What lands before the zone opens, or
 * in frames that straddle its edges, is copied from the ring as before.
 * Everything consumed before it is credited now: the sender needs none of
 * the zone's space back to send into it. */
static void eng_expect(coll_ctx_t *c, int peer, char *dst, size_t len)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    if (!p->tcp_only || len < ZONE_MIN || (p->zone_open && p->zone_pos == p->consumed))
        return;
    if (p->zone_open) /* never left open by a receive, but p->zone is reused below */
        zone_close(c, peer);
    if (p2p_signal_value(c->engine, peer, CHAN_DATA) >= p->consumed + len)
        return; /* all of it is in the ring already */
    size_t pos = p->consumed % s->ring, zlen = TIDE_MIN(len, s->ring - pos);
    if (zlen < ZONE_MIN)
        return;
    p->zone = (p2p_zone_t){
        .seg = s->recv_id, .off = (uint64_t)peer * s->ring + pos, .len = zlen, .dst = dst};
    if (p2p_zone_open(c->engine, &p->zone) != TIDE_SUCCESS)
        return;
    p->zone_open = true;
    p->zone_pos = p->consumed;
    p->zone_end = p->consumed + zlen;
    s->zones++;
    eng_credit(c, peer);
}

void coll_engine_op_end(coll_ctx_t *c)
{
    struct eng_state *s = c->eng;
    for (int r = 0; s->zones > 0 && r < c->nranks; r++)
        if (s->peers[r].zone_open)
            zone_close(c, r);
}

static int64_t eng_peek(coll_ctx_t *c, int peer, const char **data)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    uint64_t data_at = p2p_signal_value(c->engine, peer, CHAN_DATA);
    if (data_at < p->consumed || data_at - p->consumed > s->ring) {
        tide_error("coll %s: rank %d says its pipe holds bytes up to %llu, but %llu were taken "
                   "(ring %zu)",
                   c->op_name, peer, (unsigned long long)data_at, (unsigned long long)p->consumed,
                   s->ring);
        return TIDE_ERR_PEER;
    }
    uint64_t avail = data_at - p->consumed;
    size_t pos = p->consumed % s->ring;
    size_t n = TIDE_MIN((size_t)avail, s->ring - pos);
    *data = s->recv + (size_t)peer * s->ring + pos;
    if (p->zone_open && n > 0 && p->consumed < p->zone_end) { /* consumed >= zone_pos */
        /* landed in place, or in the ring up to the next run that did */
        uint64_t at = (uint64_t)peer * s->ring + pos, next;
        uint64_t run = p2p_zone_landed(&p->zone, at, &next);
        if (run > 0)
            *data = p->zone.dst + (at - p->zone.off);
        n = TIDE_MIN(n, (size_t)(run > 0 ? run : next - at));
    }
    return (int64_t)n;
}

static void eng_consume(coll_ctx_t *c, int peer, size_t n)
{
    struct eng_state *s = c->eng;
    eng_peer_t *p = &s->peers[peer];
    p->consumed += n;
    if (p->zone_open && p->consumed >= p->zone_end)
        zone_close(c, peer);
    if (p->consumed - p->credited >= s->ring / 4)
        eng_credit(c, peer);
}

const coll_pipe_ops_t coll_engine_pipe = {
    .name = "engine",
    .push = eng_push,
    .peek = eng_peek,
    .consume = eng_consume,
    .flushed = eng_flushed,
    .expect = eng_expect,
    /* No .pulled: space goes back a quarter of the ring at a time (in
     * eng_consume), never after each message, which would cost a message of
     * its own each time; the sender always has three quarters of the ring
     * and pushes what fits, so no exchange can wait on space held back. */
};

tide_status_t coll_engine_setup(coll_ctx_t *c)
{
    int64_t ring;
    tide_status_t st = tide_param_int(TIDE_PARAM_COLL_PIPE_SIZE, &ring);
    if (st != TIDE_SUCCESS)
        return st;
    struct eng_state *s = calloc(1, sizeof(*s));
    if (!s || !(s->peers = calloc((size_t)c->nranks, sizeof(*s->peers)))) {
        free(s);
        return TIDE_ERR_NOMEM;
    }
    c->eng = s;
    s->ring = ((size_t)ring + 63) & ~(size_t)63;
    size_t bytes = (size_t)c->nranks * s->ring;
    s->recv = calloc(1, bytes);
    s->stage = calloc(1, bytes);
    if (!s->recv || !s->stage)
        return TIDE_ERR_NOMEM;
    tide_numa_place(s->recv, bytes, tide_numa_node_here());
    tide_numa_place(s->stage, bytes, tide_numa_node_here());
    if ((st = tide_engine_create(c->comm, NULL, &c->engine)) != TIDE_SUCCESS ||
        (st = tide_segment_register(c->engine, s->recv, bytes, &s->recv_id)) != TIDE_SUCCESS ||
        (st = tide_segment_register(c->engine, s->stage, bytes, &s->stage_id)) != TIDE_SUCCESS)
        return st;
    p2p_set_signal_hook(c->engine, bell_hook, c);
    for (int r = 0; r < c->nranks; r++)
        s->peers[r].tcp_only = r != c->rank && p2p_peer_tcp_only(c->engine, r);
    for (int r = 0; r < c->nranks; r++) /* every rank's recv segment has our id */
        if (c->pipe[r] == &coll_engine_pipe &&
            (st = tide_segment_open(c->engine, r, s->recv_id, c->timeout_ms)) != TIDE_SUCCESS)
            return st;
    return TIDE_SUCCESS;
}

void coll_engine_teardown(coll_ctx_t *c)
{
    struct eng_state *s = c->eng;
    if (c->engine) {
        p2p_set_signal_hook(c->engine, NULL, NULL);
        tide_engine_destroy(c->engine); /* fails what is in flight, then frees batches */
        c->engine = NULL;
    }
    if (!s)
        return;
    free(s->recv);
    free(s->stage);
    free(s->peers);
    free(s);
    c->eng = NULL;
}
