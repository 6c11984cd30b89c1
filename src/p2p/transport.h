/*
 * Transport interface. A transport is an ops table; the engine tries the
 * transports that reach a peer in order (shm, then tcp) and hands each the
 * slices the previous ones did not take. One transport never includes
 * another.
 *
 * Ownership: slices belong to their batch. A transport that takes a slice
 * (post's return value counts them) must call p2p_slice_done() exactly
 * once for it, on success or error, from any thread; it must not touch the
 * slice afterwards. Slices are idempotent: re-posting one on another path
 * is always safe.
 */
#ifndef TIDE_P2P_TRANSPORT_H
#define TIDE_P2P_TRANSPORT_H

#include "p2p.h"

struct p2p_transport_ops {
    const char *name;
    unsigned bit; /* TIDE_TRANSPORT_* */

    /* Per-engine setup before endpoints are exchanged; may fill e->self
     * (listening address, token). Blocking; the creating thread. On error
     * nothing is left to undo. */
    tide_status_t (*init)(tide_engine_t *e, void **ctx);

    /* After the exchange: connect to the peers (blocking, collective over
     * the engine's ranks through its store). Optional. On error the
     * transport carries nothing, and the engine goes on without it. */
    void (*connect)(void *ctx);

    /* After the exchange: can this transport reach peer? Creating thread. */
    bool (*reaches)(void *ctx, const p2p_peer_t *peer);

    /* Prepare a peer's segment for this transport (e.g. map it). Optional.
     * Blocking; any thread; failure only means the transport will not
     * carry slices to that segment. */
    void (*seg_open)(void *ctx, p2p_peer_t *peer, p2p_rseg_t *rseg);
    void (*seg_close)(void *ctx, p2p_rseg_t *rseg);

    /* Prepare a local segment before it is published (e.g. register it
     * with the NICs, filling seg->rkey); undo it. Optional. A failure only
     * means this transport cannot carry slices to or from that segment. */
    void (*seg_register)(void *ctx, p2p_lseg_t *seg);
    void (*seg_deregister)(void *ctx, p2p_lseg_t *seg);

    /* Post slices[0..n) to peer. Does not block on the network; may
     * complete slices before it returns. Returns how many it took (a
     * prefix of the array); the rest go to the next transport. Any thread,
     * concurrently. */
    size_t (*post)(void *ctx, p2p_peer_t *peer, p2p_slice_t **slices, size_t n);

    /* Append up to max of the paths to peer to out; return how many there
     * are. Optional. Any thread. */
    size_t (*paths)(void *ctx, p2p_peer_t *peer, tide_path_stats_t *out, size_t max);

    /* A control message (kind, a, b) from the same transport of peer
     * `from` (see p2p_ctrl_post). Optional. Whoever runs TCP progress: its
     * progress thread, or a thread waiting on the engine that took it
     * over; either way one at a time. */
    void (*ctrl)(void *ctx, int from, uint32_t kind, uint64_t a, uint64_t b);

    /* Caller-driven progress, optional: a thread waiting on the engine
     * takes the transport's progress over (poll_begin; false: not now),
     * does its progress thread's work without blocking (poll; true when
     * anything happened), and gives it back (poll_end; with `now` at once,
     * as before the taker sleeps, else the transport may take it back a
     * little later, so that a taker polling again soon costs nothing).
     * Between begin and end the progress thread does nothing, so the taker
     * must poll or end soon, and never sleep in between. Any thread, one at
     * a time. */
    bool (*poll_begin)(void *ctx);
    bool (*poll)(void *ctx);
    void (*poll_end)(void *ctx, bool now);

    /* Landing zones (see p2p_zone_open); optional. zone_close returns
     * once no frame lands in z any more. Any thread but one that holds
     * this transport's progress. */
    tide_status_t (*zone_open)(void *ctx, p2p_zone_t *z);
    void (*zone_close)(void *ctx, p2p_zone_t *z);

    /* Quiesce: stop the transport's threads, so that nothing calls into
     * the engine or other transports any more. Optional; fini follows. */
    void (*stop)(void *ctx);

    /* Stop: every slice still held completes with TIDE_ERR_REVOKED; then
     * free ctx. Blocking; the destroying thread. */
    void (*fini)(void *ctx);
};

extern const p2p_transport_ops_t p2p_shm_transport;
extern const p2p_transport_ops_t p2p_tcp_transport;
extern const p2p_transport_ops_t p2p_rdma_transport;

/* TCP test hooks: break stream `index` to peer as a failing link would;
 * the slices written on all streams to peer so far; the connections open
 * with peer (ours, adopted ones included, and those we only answer on);
 * the congestion control of stream `index` to peer, or (target) of the
 * stream peer opened to us as its `index` (false: no such stream
 * connected). */
void p2p_tcp_break_stream(tide_engine_t *e, int peer, int index);
uint64_t p2p_tcp_slices(tide_engine_t *e, int peer);
int p2p_tcp_sockets(tide_engine_t *e, int peer);
bool p2p_tcp_duplex(tide_engine_t *e); /* whether streams peers open are adopted */
bool p2p_tcp_stream_cc(tide_engine_t *e, int peer, int index, bool target, char *buf, size_t cap);

#endif
