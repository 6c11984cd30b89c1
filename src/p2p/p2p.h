/*
 * Transfer engine internals shared by the engine, batches and transports.
 *
 * Vocabulary: a *segment* is registered memory (local: p2p_lseg_t; a
 * peer's, once opened: p2p_rseg_t). A *batch* holds the *slices* its
 * requests were split into (one array per batch, never a heap allocation
 * per slice). A *path* is one way to a peer (the shm path, one TCP stream)
 * with a health state.
 */
#ifndef TIDE_P2P_H
#define TIDE_P2P_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "tide.h"
#include "util_list.h"
#include "util_sock.h"

#define P2P_BOOT_ID_MAX 40
#define P2P_NCHAN       4 /* signal channels per peer; 0 is the public notification */
#define P2P_MAX_DEVS    4 /* RDMA devices an engine uses at most */

typedef struct p2p_transport_ops p2p_transport_ops_t;

/* ------------------------------------------------------------------ paths */

typedef enum p2p_path_state {
    P2P_PATH_OK,       /* carries data */
    P2P_PATH_DEGRADED, /* carries data, but errors were seen: preferred last */
    P2P_PATH_FAILED,   /* carries nothing; its slices moved elsewhere */
    P2P_PATH_PROBING   /* being re-established; carries nothing yet */
} p2p_path_state_t;

typedef struct p2p_path {
    char name[48]; /* "shm->3", "tcp->3#1", "rdma->3#rxe_a0.1" */
    int state;     /* p2p_path_state_t, atomic */
    uint64_t slices, bytes, errors, failovers;
} p2p_path_t;

/* Copy a path's name, state and counters out (for tide_engine_paths). */
void p2p_path_stats(const p2p_path_t *path, unsigned transport, tide_path_stats_t *out);

/* The one place a path changes state: logs "name: old -> new (why)", as a
 * warning when it fails or degrades with work on it (`with_work`), else
 * as information (a peer that left with nothing in flight). */
void p2p_path_set_state(p2p_path_t *path, p2p_path_state_t state, const char *why, bool with_work);
bool p2p_path_usable(const p2p_path_t *path);
const char *p2p_path_state_str(p2p_path_state_t state);

/* --------------------------------------------------------------- segments */

typedef enum p2p_seg_kind { P2P_SEG_USER = 1, P2P_SEG_SHM = 2 } p2p_seg_kind_t;

typedef struct p2p_lseg {
    uint32_t id;
    p2p_seg_kind_t kind;
    char *addr;
    uint64_t len;
    int memfd; /* P2P_SEG_SHM: backing memfd */
    int busy;  /* atomic: transfers using the memory right now */
    bool dead; /* freed by the user, waiting for busy == 0 */
    /* RDMA: the registration on each of the engine's devices (0: none) */
    void *mr[P2P_MAX_DEVS];
    uint32_t lkey[P2P_MAX_DEVS], rkey[P2P_MAX_DEVS];
    uint32_t rkey_valid; /* bit d: registered on device d */
} p2p_lseg_t;

/* What peers learn of a segment (published in the store). */
typedef struct p2p_seg_desc {
    uint32_t magic;
    uint32_t owner;
    uint32_t id;
    uint32_t kind;
    uint64_t base;
    uint64_t len;
    int32_t pid;
    int32_t memfd;
    uint32_t rkey[P2P_MAX_DEVS]; /* RDMA: per device of the owner */
    uint32_t rkey_valid;         /* bit d: rkey[d] is valid */
} p2p_seg_desc_t;

_Static_assert(sizeof(p2p_seg_desc_t) <= TIDE_SEGMENT_DESC_MAX, "descriptor fits the API's bound");

typedef struct p2p_rseg {
    p2p_seg_desc_t desc;
    char *map;      /* shm: the peer's memory reachable here, or NULL */
    size_t map_len; /* > 0: map is our mapping, to munmap */
} p2p_rseg_t;

/* ------------------------------------------------------------------ peers */

/* What peers learn of an engine (published in the store). */
typedef struct p2p_ep_info {
    uint32_t magic;
    int32_t rank;
    int32_t pid;
    uint32_t transports;
    char boot_id[P2P_BOOT_ID_MAX];
    uint64_t ipc_ns, pid_ns;
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
    uint16_t port;
    uint8_t token[16]; /* presented by peers' TCP streams */
} p2p_ep_info_t;

typedef struct p2p_peer {
    int rank;
    p2p_ep_info_t info;
    bool same_host; /* same boot id and namespaces: shm can reach it */
    pthread_mutex_t seg_lock;
    p2p_rseg_t **rsegs; /* by segment id; NULL until opened */
    uint32_t nrsegs;
    p2p_path_t shm_path;
    void *tcp;                  /* the TCP transport's per-peer state */
    void *rdma;                 /* the RDMA transport's per-peer state, or NULL */
    uint64_t notify_sent;       /* atomic: sequence of our notifications to it */
    uint64_t signal[P2P_NCHAN]; /* atomic: highest value received per channel;
                                   channel 0 counts TIDE_BATCH_NOTIFY batches */
} p2p_peer_t;

/* ----------------------------------------------------------------- slices */

struct tide_batch;

typedef struct p2p_slice {
    struct p2p_slice *next;   /* transport queues */
    struct tide_batch *batch; /* NULL for a notification */
    uint8_t op;               /* TIDE_OP_WRITE, TIDE_OP_READ, P2P_OP_NOTIFY */
    int peer;
    char *local;
    p2p_lseg_t *lseg;
    p2p_rseg_t *rseg;
    uint64_t roff;
    uint32_t len;
    uint64_t tag;                 /* signal value */
    struct tide_batch *sig_batch; /* an in-band signal: the batch it follows */
    uint32_t chan;                /* signal channel */
    uint8_t hdr[32];              /* the transport's frame header for it */
} p2p_slice_t;

#define P2P_OP_NOTIFY 2
#define P2P_OP_CTRL   3 /* a transport's control message (chan, roff, tag) */

/* Internal batch flag (beside the public TIDE_BATCH_*): the batch's
 * completion is not awaited closely, so its acknowledgements may come
 * late and ride with later ones (TCP: saves the target a send and the
 * initiator a receive per batch). */
#define P2P_BATCH_LAZY_ACK  0x100u
/* Internal batch flag: every request is a WRITE to a peer that only TCP
 * reaches, and its local_offset is an address of plain memory, not an
 * offset in a registered segment (TCP sends from it as it is; the caller
 * keeps it unchanged until the batch completes). */
#define P2P_BATCH_RAW_LOCAL 0x200u

struct tide_batch {
    tide_engine_t *engine;
    p2p_slice_t *slices;
    p2p_slice_t **ptrs; /* scratch for posting, same capacity */
    size_t nslices, cap;
    uint32_t remaining; /* atomic */
    int32_t status;     /* atomic: the first error */
    uint32_t done;      /* futex word */
    uint32_t waiters;   /* atomic */
    unsigned flags;
    int *notify_peers;
    size_t nnotify, notify_cap;
    int signal_peer;    /* >= 0: on success, signal it (chan, value) */
    bool signal_inband; /* a transport sent the signal behind the data */
    uint32_t signal_chan;
    uint64_t signal_value;
    struct tide_batch *next_free;
    struct tide_batch *next_all; /* every batch of the engine, freed at destroy */
};

/* ----------------------------------------------------------------- engine */

typedef void (*p2p_signal_hook_t)(void *arg);

#define P2P_MAX_TRANSPORTS 3

/* TIDE_TCP_DUPLEX, in the order of its values */
typedef enum p2p_duplex { P2P_DUPLEX_AUTO, P2P_DUPLEX_ON, P2P_DUPLEX_OFF } p2p_duplex_t;

struct tide_engine {
    int rank, nranks;
    tide_store_t *store; /* the engine's namespace */
    int timeout_ms;
    unsigned transports; /* TIDE_TRANSPORT_* allowed */
    int tcp_streams;
    size_t slice_size;
    size_t sockbuf;
    char tcp_host[TIDE_HOST_MAX];
    char tcp_cc[16];      /* TIDE_TCP_CONGESTION: "auto", "system" or an algorithm */
    int tcp_duplex;       /* TIDE_TCP_DUPLEX: a p2p_duplex_t */
    char ib_devices[256]; /* TIDE_IB_DEVICES or the config's */
    p2p_ep_info_t self;
    p2p_peer_t *peers; /* [nranks] */

    pthread_rwlock_t lseg_lock;
    p2p_lseg_t **lsegs;
    uint32_t nlsegs, lsegs_cap;

    pthread_mutex_t batch_lock;
    struct tide_batch *free_batches;
    struct tide_batch *all_batches;

    pthread_mutex_t notify_lock;
    pthread_cond_t notify_cond;

    p2p_signal_hook_t signal_hook;
    void *signal_hook_arg;

    tide_engine_counters_t counters; /* atomic; the transports count */
    pthread_rwlock_t ctrl_lock;      /* held while a control message is delivered */
    bool closing;                    /* under ctrl_lock: deliver no more */

    const p2p_transport_ops_t *tr[P2P_MAX_TRANSPORTS];
    void *tr_ctx[P2P_MAX_TRANSPORTS];
    int ntr;
};

/* True when [off, off+len) lies inside a segment of seg_len bytes
 * (no overflow for any inputs: they may come from the network). */
static inline bool p2p_range_ok(uint64_t off, uint64_t len, uint64_t seg_len)
{
    return off <= seg_len && len <= seg_len - off;
}

/* Segments (p2p_segment.c) */
/* The local segment [off, off+len) of id, or NULL if it is not there
 * (logged with who asked). Takes a busy reference: p2p_lseg_put it. */
p2p_lseg_t *p2p_lseg_get(tide_engine_t *e, uint32_t id, uint64_t off, uint64_t len,
                         const char *who);
void p2p_lseg_put(p2p_lseg_t *seg);
void p2p_segments_fini(tide_engine_t *e);
p2p_rseg_t *p2p_rseg_find(p2p_peer_t *peer, uint32_t id);

/* Batches (p2p_batch.c) */
/* A slice finished: status TIDE_SUCCESS or its error. Exactly once per
 * slice; any thread. */
void p2p_slice_done(tide_engine_t *e, p2p_slice_t *s, tide_status_t status);

/* Signals (p2p_engine.c): a per-peer, per-channel counter the peer sets
 * to a value (the highest wins, so duplicates and reordering are harmless).
 * Channel 0 is tide_notify_*; the others are for layers above. */
void p2p_signal_received(tide_engine_t *e, int from, uint32_t chan, uint64_t value);

/* Set peer's counter for us on chan to value (over RDMA where it reaches,
 * else TCP; to ourselves directly). Non-blocking. */
void p2p_signal_post(tide_engine_t *e, int peer, uint32_t chan, uint64_t value);

/* Transport control messages: (kind, a, b) to the same transport of peer,
 * carried over TCP (best effort: lost when TCP to peer is down).
 * Delivered to that transport's ctrl op on the TCP progress thread. */
void p2p_ctrl_post(tide_engine_t *e, int peer, unsigned transport, uint32_t kind, uint64_t a,
                   uint64_t b);
void p2p_ctrl_received(tide_engine_t *e, int from, uint32_t word, uint64_t a, uint64_t b);

/* Slices a transport took but can no longer carry (its paths to peer
 * failed): hand them to the transports after it, TCP last (TCP is every
 * failed path's fallback, whatever TIDE_TRANSPORTS says). Any thread. */
void p2p_reroute(tide_engine_t *e, unsigned from_transport, int peer, p2p_slice_t **s, size_t n);

static inline uint64_t p2p_signal_value(tide_engine_t *e, int peer, uint32_t chan);

/* Submit a batch that, once every request has completed, sets peer's
 * counter `chan` for us to `value` (a signal), and calls the signal hook
 * here. Otherwise tide_batch_submit; flags: P2P_BATCH_LAZY_ACK,
 * P2P_BATCH_RAW_LOCAL. */
tide_status_t p2p_batch_submit_signal(tide_engine_t *e, const tide_request_t *reqs, size_t n,
                                      unsigned flags, int peer, uint32_t chan, uint64_t value,
                                      tide_batch_t **batch);

/* Called (from the engine's threads) after a signal arrives here or a
 * signalling batch completed. */
void p2p_set_signal_hook(tide_engine_t *e, p2p_signal_hook_t hook, void *arg);

/* Caller-driven progress (see transport.h): take over the progress of the
 * transports that allow it (returns the set taken, 0 if none now), poll
 * them (true when anything happened), give them back (`now`: before the
 * caller sleeps). A thread that spins waiting on the engine polls instead
 * of waiting for a progress thread to wake; it gives progress back before
 * it sleeps or leaves. */
unsigned p2p_poll_begin(tide_engine_t *e);
/* No transport but TCP reaches peer (its in-band signals keep order). */
bool p2p_peer_tcp_only(tide_engine_t *e, int peer);
bool p2p_poll(tide_engine_t *e, unsigned taken);
void p2p_poll_end(tide_engine_t *e, unsigned taken, bool now);

/*
 * Landing zones (TCP): a receiver that knows where the bytes a peer is
 * writing into [off, off+len) of its local segment `seg` should end up
 * (dst, which it owns while the zone is open) opens a zone there. A WRITE
 * frame that arrives wholly inside the range, after the zone opened, then
 * lands at dst + (frame offset - off) instead of in the segment, and the
 * zone records the frame's range (runs, appended by the progress holder,
 * published by `n`). What the zone does not record is in the segment.
 * Close it before dst goes back to its owner: a frame still arriving into
 * it finishes in the segment instead. The sender is not involved.
 */
#define P2P_ZONE_RUNS 64
typedef struct p2p_zone {
    uint32_t seg;
    uint64_t off, len;
    char *dst;
    uint32_t n; /* atomic: runs[0..n) are final */
    struct {
        uint64_t off, len;
    } runs[P2P_ZONE_RUNS];
    uint32_t reserved; /* under the transport's zone lock: runs taken by frames arriving */
    tide_list_t link;
} p2p_zone_t;

/* Open z (seg, off, len, dst set by the caller; the rest is reset):
 * TIDE_ERR_UNSUPPORTED where no transport has zones (no TCP). Any thread;
 * the caller keeps z until p2p_zone_close returns. */
tide_status_t p2p_zone_open(tide_engine_t *e, p2p_zone_t *z);
void p2p_zone_close(tide_engine_t *e, p2p_zone_t *z);
/* Where the zone's byte at segment offset `at` is: the length of the run
 * that landed in dst from there (0: `at` is in the segment), and in *next
 * the offset where the next run starts (at most off + len). */
uint64_t p2p_zone_landed(const p2p_zone_t *z, uint64_t at, uint64_t *next);

tide_status_t p2p_engine_create(tide_store_t *store, int rank, int nranks,
                                const tide_engine_config_t *cfg, tide_engine_t **out);

static inline uint64_t p2p_signal_value(tide_engine_t *e, int peer, uint32_t chan)
{
    return __atomic_load_n(&e->peers[peer].signal[chan], __ATOMIC_ACQUIRE);
}

#endif
