/*
 * Collective context of a communicator: the pipes between its ranks, the
 * executor that moves data through them, and the worker that runs
 * nonblocking operations.
 *
 * Vocabulary:
 * - pipe: an ordered byte stream from one rank to another. Local peers
 *   (same host) use single-producer/single-consumer rings in shared memory
 *   (coll_pipe_shm.c); other peers use the transfer engine
 *   (coll_pipe_engine.c). Both sides of every operation move the same
 *   bytes in the same order, so no message needs a header.
 * - step: one send or receive of a message (a buffer) on a pipe; a
 *   receive either copies or reduces into its buffer. Messages are padded
 *   to 16 bytes so that reductions always read aligned elements.
 * - xfer: run a set of steps concurrently until all are done (a ring step
 *   sends and receives at once), waiting, when nothing moves, on the
 *   rank's doorbell, with a deadline.
 */
#ifndef TIDE_COLL_CTX_H
#define TIDE_COLL_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "coll_comm.h"
#include "coll_reduce.h"
#include "util_compiler.h"
#include "tide.h"

typedef struct coll_ctx coll_ctx_t;

typedef struct coll_pipe_ops {
    const char *name;
    /* Move up to len bytes into the stream to peer; returns the bytes
     * moved (0: no room now) or a negative tide_status_t. Never blocks. */
    int64_t (*push)(coll_ctx_t *c, int peer, const void *buf, size_t len);
    /* The bytes of the stream from peer that can be read now, in one
     * contiguous run at *data: their count (0: none yet) or a negative
     * tide_status_t. Never blocks. */
    int64_t (*peek)(coll_ctx_t *c, int peer, const char **data);
    /* The first n bytes peek showed are used: their room goes back to the
     * sender. */
    void (*consume)(coll_ctx_t *c, int peer, size_t n);
    /* All bytes pushed to peer are visible to it (engine: written). */
    bool (*flushed)(coll_ctx_t *c, int peer);
    /* A receive from peer finished: return space to the sender now.
     * Optional. */
    void (*pulled)(coll_ctx_t *c, int peer);
    /* A receive of len bytes from peer, copied as they are into dst,
     * begins: the pipe may have them land there (peek then shows them at
     * dst). Optional; called until the first byte is taken. */
    void (*expect)(coll_ctx_t *c, int peer, char *dst, size_t len);
} coll_pipe_ops_t;

extern const coll_pipe_ops_t coll_shm_pipe;
extern const coll_pipe_ops_t coll_engine_pipe;

typedef struct coll_step {
    int peer;
    bool send;
    char *buf;
    size_t len;          /* payload bytes (a multiple of esize) */
    coll_reduce_fn_t fn; /* receive: NULL copies, else reduces into buf */
    /* receive with `with` set: buf = with op data, one pass (fn3); with
     * with_last, buf = data op with */
    coll_reduce3_fn_t fn3;
    const char *with;
    bool with_last;
    size_t esize;
    size_t done; /* bytes moved, padding included */
} coll_step_t;

typedef enum coll_kind {
    COLL_ALLREDUCE,
    COLL_ALLGATHER,
    COLL_BROADCAST,
    COLL_REDUCE_SCATTER,
    COLL_REDUCE,
    COLL_ALLTOALL,
    COLL_BARRIER,
    COLL_SEND,
    COLL_RECV,
    COLL_KIND_COUNT
} coll_kind_t;

/* One operation, as the user gave it. */
typedef struct coll_op {
    coll_kind_t kind;
    const void *sbuf;
    void *rbuf;
    size_t count; /* elements (per rank for allgather/reduce_scatter/alltoall) */
    tide_dtype_t dtype;
    tide_redop_t redop;
    int root; /* broadcast/reduce root; send/recv peer */
    size_t esize;
} coll_op_t;

typedef tide_status_t (*coll_algo_fn_t)(coll_ctx_t *c, const coll_op_t *op);

struct tide_work {
    coll_op_t op;
    coll_ctx_t *ctx;
    tide_status_t status;
    uint32_t done; /* futex word */
    uint32_t waiters;
    uint32_t retired; /* set after the worker's last access: only then may it be freed */
    struct tide_work *next;
};

/* Wait (briefly) until the worker no longer touches w. */
static inline void coll_work_settle(struct tide_work *w)
{
    while (!__atomic_load_n(&w->retired, __ATOMIC_ACQUIRE))
        __builtin_ia32_pause();
}

struct shm_state;
struct eng_state;

/* What a card says of a rank's buffer in Tide memory (coll_mem.c): serial
 * 0 where it is not. */
typedef struct coll_mem_ref {
    uint64_t serial, ino, base, len;
    int32_t fd;
    uint32_t pad;
} coll_mem_ref_t;

/* A peer's allocation mapped here (base NULL: mapping it failed). */
typedef struct coll_map {
    int peer;
    uint64_t serial;
    char *base;
    size_t len;
    uint64_t used; /* 0: free; else when last used (LRU) */
    uint64_t op;   /* the operation that last used it (c->nops): not evicted during it */
} coll_map_t;

#define COLL_MAPS 16

struct coll_ctx {
    tide_comm_t *comm;
    int rank, nranks;
    int timeout_ms;
    size_t chunk;        /* TIDE_CHUNK_SIZE */
    bool chunk_forced;   /* ... set by the user: pipelines use it as it is */
    int depth;           /* TIDE_PIPELINE_DEPTH */
    bool oversubscribed; /* more local ranks than cores */
    bool direct_ok;      /* all ranks local and CMA-reachable by every rank */
    bool any_engine;     /* some rank is reached through the engine */
    char algo[256];      /* TIDE_ALGO, read at creation */
    bool trace;          /* TIDE_TRACE */
    char *scratch;       /* per-operation scratch, reused */
    size_t scratch_len;
    int64_t spin_ns;              /* spin before sleeping */
    const coll_pipe_ops_t **pipe; /* per rank; NULL for self */
    struct shm_state *shm;
    struct eng_state *eng;
    tide_engine_t *engine;
    bool poll_engine; /* waits of this operation poll the engine */
    unsigned polling; /* engine transports whose progress this thread took over */
    bool lent;        /* ... and gave back lazily (the transport takes it back later) */
    /* waiting: this rank's doorbell (in its shared inbox, else private) */
    uint32_t *doorbell, *sleeping;
    uint32_t private_bell[2];
    /* the operation now running, for error messages */
    const char *op_name;
    int64_t deadline;
    /* execution order and the nonblocking worker */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct tide_work *qhead, *qtail;
    int pending;      /* queued or running through the queue */
    bool inline_busy; /* a blocking call runs in its caller's thread */
    bool stop;
    pthread_t worker;
    bool worker_started;
    uint64_t nops;
    uint64_t board_seq;         /* values posted on the board */
    coll_map_t maps[COLL_MAPS]; /* peers' Tide memory mapped here */
    uint64_t map_clock;
    /* By collective: the last direct operation's buffers were all Tide
     * memory (as far as its cards tell every rank), and the operations
     * that could have gone direct for it (coll_select.c): alike on every
     * rank. */
    bool mem_all[COLL_KIND_COUNT];
    uint64_t mem_eligible[COLL_KIND_COUNT];
};

/* Create the context for comm (collective: the first collective call of
 * every rank does it). */
tide_status_t coll_ctx_create(tide_comm_t *comm, coll_ctx_t **out);
void coll_ctx_destroy(coll_ctx_t *c);
tide_status_t coll_ctx_get(tide_comm_t *comm, coll_ctx_t **out);

/* Run op in order: in the caller's thread when nothing is queued, else
 * behind the queue (blocking until it is done). */
tide_status_t coll_run_blocking(coll_ctx_t *c, const coll_op_t *op);
/* Queue w (the caller's until it is done) for the worker. */
void coll_enqueue(coll_ctx_t *c, struct tide_work *w);

/* A scratch buffer of at least len bytes, valid until the next call (the
 * context runs one operation at a time). NULL when out of memory. */
void *coll_scratch(coll_ctx_t *c, size_t len);

/* Wake the rank owning doorbell `bell` (any process on the host) if it
 * announced that it may sleep; call after the data it waits for is
 * stored. */
void coll_bell_ring(uint32_t *bell, uint32_t *sleeping);

/* Run steps until all are done, or fail naming what was waited for. */
tide_status_t coll_xfer(coll_ctx_t *c, coll_step_t *steps, int n, const char *what);

/* The executor's parts: move a step's bytes (returns the bytes moved, 0 or
 * a negative tide_status_t); whether it is complete (a send: flushed too);
 * wait a little when nothing moved (false: the deadline passed); log what
 * a step was waiting for. */
int64_t coll_step_move(coll_ctx_t *c, coll_step_t *s);
bool coll_step_complete(coll_ctx_t *c, const coll_step_t *s);
typedef struct coll_wait {
    int64_t idle_since;
    uint32_t seen;
    bool armed;  /* announced as maybe sleeping (c->sleeping set) */
    bool remote; /* set by the waiter: only ranks bound to other CPUs are awaited */
} coll_wait_t;
/* Nothing moved in a whole pass over the steps: spin, yield or sleep on
 * the doorbell (false: the deadline passed). */
bool coll_idle(coll_ctx_t *c, coll_wait_t *w);
/* Something moved, or the wait ends: back to spinning. */
void coll_busy(coll_ctx_t *c, coll_wait_t *w);
/* Give back the engine progress a wait took over as the operation ends
 * (lazily, unless `now`: the next operation's waits take it again without
 * a system call); give it back for certain, before sleeping. */
void coll_poll_end(coll_ctx_t *c, bool now);
void coll_poll_release(coll_ctx_t *c);
void coll_step_report(coll_ctx_t *c, const coll_step_t *s, const char *what);

/* The chunked pipeline executor (coll_pipeline.c): buf flows through this
 * rank in chunks, received from `from` (in order; combined with fn, or
 * copied from a single source) and sent on to every rank in `to` once
 * it has arrived. See coll_pipeline.c for the rules. */
typedef struct coll_pipeline {
    const int *from;
    int nfrom;
    const int *to;
    int nto;
    char *buf;
    const char *init; /* chunk i of buf starts as chunk i of init (NULL: as it is) */
    size_t bytes, chunk, esize;
    coll_reduce_fn_t fn;
    int depth; /* chunks the first source may run ahead of the slowest destination */
} coll_pipeline_t;

tide_status_t coll_pipeline(coll_ctx_t *c, const coll_pipeline_t *p, const char *what);
/* The chunk for a pipeline of `stages` ranks moving `bytes`: TIDE_CHUNK_SIZE
 * when the user set it, else the size that balances per-chunk cost against
 * the pipeline's fill time (at most TIDE_CHUNK_SIZE). */
size_t coll_pipeline_chunk(coll_ctx_t *c, size_t bytes, size_t esize, int stages);

static inline coll_step_t coll_send_step(int peer, const void *buf, size_t len)
{
    coll_step_t s = {.peer = peer, .send = true, .buf = (char *)(uintptr_t)buf, .len = len};
    return s;
}

static inline coll_step_t coll_recv_step(int peer, void *buf, size_t len, coll_reduce_fn_t fn,
                                         size_t esize)
{
    coll_step_t s = {.peer = peer, .buf = buf, .len = len, .fn = fn, .esize = esize ? esize : 1};
    return s;
}

/* A receive that combines its data with `with` into buf in one pass:
 * buf = data op with where data_first, else with op data. buf must not
 * overlap with. (Two ranks combining each other's values must put them in
 * the same order to end with the same bits: min and max of a NaN, signed
 * zeros.) */
static inline coll_step_t coll_recv_combine_step(int peer, void *buf, const void *with, size_t len,
                                                 tide_dtype_t dtype, tide_redop_t op, size_t esize,
                                                 bool data_first)
{
    coll_step_t s = coll_recv_step(peer, buf, len, coll_reduce_fn(dtype, op), esize);
    s.fn3 = coll_reduce3_fn(dtype, op);
    s.with = with;
    s.with_last = data_first;
    return s;
}

/* The same where buf may be with (then buf op= data): buf = with op data. */
static inline coll_step_t coll_recv_with_step(int peer, void *buf, const void *with, size_t len,
                                              tide_dtype_t dtype, tide_redop_t op, size_t esize)
{
    return with == buf ? coll_recv_step(peer, buf, len, coll_reduce_fn(dtype, op), esize)
                       : coll_recv_combine_step(peer, buf, with, len, dtype, op, esize, false);
}

/* One send and one receive at once (either peer may be -1: none). */
tide_status_t coll_sendrecv(coll_ctx_t *c, int to, const void *sbuf, size_t slen, int from,
                            void *rbuf, size_t rlen, coll_reduce_fn_t fn, size_t esize,
                            const char *what);

/* The board (coll_pipe_shm.c): a small value per rank in its shared
 * inbox, which every local peer reads in place. coll_board_ok: every peer
 * is local (shm pipes). coll_board_exchange shows len <= COLL_BOARD_BYTES
 * bytes of data to every rank and waits until every rank has shown its
 * own: vals[p] then points at rank p's (this rank's included), valid
 * until this rank's next exchange; TIDE_ERR_INVALID where a rank's length
 * differs. Every rank of the communicator takes part in every exchange. */
#define COLL_BOARD_BYTES 2048
bool coll_board_ok(coll_ctx_t *c);
tide_status_t coll_board_exchange(coll_ctx_t *c, const void *data, size_t len, const char **vals);
/* Tests: called after this rank posted value seq on its board. */
extern void (*coll_board_posted_hook)(coll_ctx_t *c, uint64_t seq);

/* Pipe setup (coll_pipe_shm.c, coll_pipe_engine.c) */
tide_status_t coll_shm_setup(coll_ctx_t *c, tide_store_t *store);
void coll_shm_teardown(coll_ctx_t *c);
pid_t coll_shm_pid(coll_ctx_t *c, int rank);
/* A counter in rank's shared inbox that it and its peers may update
 * atomically (the direct broadcast's chunk claims). */
uint64_t *coll_shm_claim(coll_ctx_t *c, int rank);
tide_status_t coll_engine_setup(coll_ctx_t *c);
void coll_engine_teardown(coll_ctx_t *c);
/* An operation ends (whatever its outcome): nothing lands in its buffers
 * any more. */
void coll_engine_op_end(coll_ctx_t *c);

/* Algorithms (one per file) and selection (coll_select.c) */
tide_status_t coll_allreduce_ring(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allreduce_rd(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allreduce_oneshot(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allreduce_direct(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_bcast_direct(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allgather_direct(coll_ctx_t *c, const coll_op_t *op);

/* Direct algorithms (coll_direct.c): ranks all local with CMA. Send `mine`
 * (len bytes) to every peer and receive theirs into theirs[p * len]. */
tide_status_t coll_direct_exchange(coll_ctx_t *c, const void *mine, void *theirs, size_t len,
                                   const char *what);
/* Read len bytes at address src of peer's memory into dst. */
tide_status_t coll_direct_read(coll_ctx_t *c, int peer, void *dst, uint64_t src, size_t len);
/* Write len bytes from src to address dst of peer's memory. */
tide_status_t coll_direct_write(coll_ctx_t *c, int peer, uint64_t dst, const void *src, size_t len);
/* Tests: asked before each such write; false fails it as a refused write. */
extern bool (*coll_direct_write_hook)(coll_ctx_t *c, int peer);

/* Tide memory (coll_mem.c). The allocation of this process holding
 * [addr, addr + len), if any, in *ref (else serial 0). */
void coll_mem_ref(const void *addr, size_t len, coll_mem_ref_t *ref);
/* Peer's buffer [addr, addr + len) that its card places in Tide memory
 * (ref), mapped here: a pointer to it, or NULL where it is not Tide
 * memory, the reference does not hold, or it cannot be mapped (the caller
 * reads it with CMA instead). Write only into a buffer the peer gave for
 * that (an output). Mappings are cached per context. */
char *coll_map_peer(coll_ctx_t *c, int peer, const coll_mem_ref_t *ref, uint64_t addr, size_t len);
void coll_maps_release(coll_ctx_t *c);
/* Whether every rank's card names Tide memory: cards[p] every `stride`
 * bytes (this rank's own is mine), each with a coll_mem_ref_t at ref_off.
 * The same cards give every rank the same answer. */
bool coll_cards_tide(const coll_ctx_t *c, const void *mine, const void *cards, size_t stride,
                     size_t ref_off);
tide_status_t coll_allgather_ring(coll_ctx_t *c, const coll_op_t *op);
/* Allgather out of place: this rank's input into its block of the output,
 * where every algorithm starts from it (in place it is there already). */
void coll_allgather_own(const coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_reduce_scatter_ring(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allreduce_rabenseifner(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allgather_bruck(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_allgather_rd(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_bcast_tree(coll_ctx_t *c, const coll_op_t *op);

/* This rank's place in the binomial tree rooted at root (coll_bcast_tree.c
 * draws it): its parent (-1 at the root), its children from the largest
 * subtree to the smallest (returns how many, at most 32), and the tree's
 * levels. */
static inline int coll_binomial_tree(int n, int rank, int root, int *parent, int children[32],
                                     int *levels)
{
    int v = (rank - root + n) % n, mask = 1, k = 0;
    *parent = -1;
    while (mask < n) {
        if (v & mask) {
            *parent = (v - mask + root) % n;
            break;
        }
        mask <<= 1;
    }
    for (mask >>= 1; mask > 0; mask >>= 1)
        if (v + mask < n)
            children[k++] = (v + mask + root) % n;
    *levels = 1;
    for (int m = 1; m < n; m <<= 1)
        ++*levels;
    return k;
}
tide_status_t coll_bcast_chain(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_reduce_tree(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_reduce_chain(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_alltoall_pairwise(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_barrier_dissemination(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_barrier_board(coll_ctx_t *c, const coll_op_t *op);
tide_status_t coll_sendrecv_p2p(coll_ctx_t *c, const coll_op_t *op);

typedef struct coll_algo {
    const char *name;
    coll_kind_t kind;
    coll_algo_fn_t fn;
} coll_algo_t;

/* The algorithm for op (TIDE_ALGO overrides the table); logs the choice
 * when TIDE_TRACE is set. */
tide_status_t coll_select(coll_ctx_t *c, const coll_op_t *op, const coll_algo_t **algo);
const char *coll_kind_name(coll_kind_t kind);

#endif
