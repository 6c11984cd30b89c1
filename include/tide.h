/*
 * Tide: collective communication over a point-to-point transfer engine.
 *
 * This is the only public header. Every handle is opaque; every call
 * validates its arguments and returns a tide_status_t (0 on success,
 * positive while in progress, negative on error) after logging the reason.
 * Output parameters are written only on success.
 *
 * Threading: unless a call says otherwise, calls on different handles may
 * run concurrently from different threads; calls on the same handle are
 * serialised by the caller.
 */
#ifndef TIDE_H
#define TIDE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TIDE_BUILDING_LIBRARY)
#define TIDE_API __attribute__((visibility("default")))
#else
#define TIDE_API
#endif

#define TIDE_VERSION_MAJOR 0
#define TIDE_VERSION_MINOR 1
#define TIDE_VERSION_PATCH 0
#define TIDE_VERSION_CODE                                                                          \
    ((TIDE_VERSION_MAJOR)*10000 + (TIDE_VERSION_MINOR)*100 + (TIDE_VERSION_PATCH))

/* ---------------------------------------------------------------- status */

/*
 * One list, three uses: the enum, tide_status_str() and the docs.
 * Classes: 0 success; > 0 not finished yet; < 0 errors. Link failures are
 * retryable on another path; peer failures mean the membership changed.
 */
#define TIDE_STATUS_LIST(X)                                                                        \
    X(TIDE_SUCCESS, 0, "success")                                                                  \
    X(TIDE_IN_PROGRESS, 1, "operation in progress")                                                \
    X(TIDE_ERR_INVALID, -1, "invalid argument")                                                    \
    X(TIDE_ERR_NOMEM, -2, "out of memory")                                                         \
    X(TIDE_ERR_TIMEOUT, -3, "timed out")                                                           \
    X(TIDE_ERR_IO, -4, "I/O error")                                                                \
    X(TIDE_ERR_LINK, -5, "link failure (retryable on another path)")                               \
    X(TIDE_ERR_PEER, -6, "peer failure")                                                           \
    X(TIDE_ERR_REVOKED, -7, "communicator revoked or aborted")                                     \
    X(TIDE_ERR_UNSUPPORTED, -8, "operation not supported")                                         \
    X(TIDE_ERR_AUTH, -9, "authentication refused")                                                 \
    X(TIDE_ERR_NOT_FOUND, -10, "not found")                                                        \
    X(TIDE_ERR_INTERNAL, -11, "internal error")

typedef enum tide_status {
#define TIDE_STATUS_ENUM_(name, value, text) name = (value),
    TIDE_STATUS_LIST(TIDE_STATUS_ENUM_)
#undef TIDE_STATUS_ENUM_
} tide_status_t;

/* A static string naming the status; "unknown status" for other values. */
TIDE_API const char *tide_status_str(tide_status_t status);

/* --------------------------------------------------------------- version */

/* "major.minor.patch"; a static string. */
TIDE_API const char *tide_version_string(void);

/* The library's version (may differ from TIDE_VERSION_* of the header the
 * caller was built with). Any output pointer may be NULL. */
TIDE_API tide_status_t tide_version(int *major, int *minor, int *patch);

/* --------------------------------------------------------------- logging */

typedef enum tide_log_level {
    TIDE_LOG_ERROR = 0,
    TIDE_LOG_WARN = 1,
    TIDE_LOG_INFO = 2,
    TIDE_LOG_DEBUG = 3,
    TIDE_LOG_TRACE = 4
} tide_log_level_t;

/*
 * A logger receives each message that passes TIDE_LOG_LEVEL and
 * TIDE_LOG_SUBSYS, already formatted and prefixed, without a trailing
 * newline. It may be called from any Tide thread, concurrently; it must not
 * call back into Tide.
 */
typedef void (*tide_log_fn_t)(void *arg, tide_log_level_t level, const char *subsys,
                              const char *message);

/* Install (fn != NULL) or remove (fn == NULL) the logger. With a logger
 * installed, messages go to it instead of TIDE_LOG_FILE / stderr. */
TIDE_API tide_status_t tide_set_logger(tide_log_fn_t fn, void *arg);

/* ---------------------------------------------------------------- config */

/*
 * Extensible configuration. Initialise with TIDE_CONFIG_INIT, then set what
 * you need; fields left at their initial value mean "default, or from the
 * environment". The library reads only the first `size` bytes, so a program
 * built against an older header keeps working with a newer library.
 */
typedef struct tide_config {
    size_t size;            /* sizeof(tide_config_t), set by TIDE_CONFIG_INIT */
    unsigned int version;   /* TIDE_VERSION_CODE of the caller's header */
    int rank;               /* -1: from the launcher or environment */
    int nranks;             /* -1: from the launcher or environment */
    const char *store_addr; /* "host:port" of the rendezvous store, or NULL */
    const char *secret;     /* store secret, or NULL (TIDE_SECRET) */
    int timeout_ms;         /* bootstrap waits; 0: TIDE_BOOTSTRAP_TIMEOUT */
} tide_config_t;

#define TIDE_CONFIG_INIT                                                                           \
    {                                                                                              \
        sizeof(tide_config_t), TIDE_VERSION_CODE, -1, -1, NULL, NULL, 0                            \
    }

/* ---------------------------------------------------------- communicator */

typedef struct tide_comm tide_comm_t;

/* Opaque bootstrap handle for tide_comm_init_rank, passed between processes
 * by the user (as with NCCL's unique id). Plain bytes: copy it freely. */
#define TIDE_UNIQUE_ID_BYTES 128
typedef struct tide_unique_id {
    char internal[TIDE_UNIQUE_ID_BYTES];
} tide_unique_id_t;

/*
 * Create the world communicator from the launcher or the environment.
 * Order: cfg (rank, nranks, store_addr) -> PMIx -> TIDE_RANK/TIDE_SIZE/
 * TIDE_STORE/TIDE_SECRET -> RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (rank 0
 * hosts the store) -> a 1-rank communicator. A process started by a
 * launcher (PMI_SIZE, OMPI_COMM_WORLD_SIZE, SLURM_NTASKS > 1) that would
 * become a 1-rank communicator fails with TIDE_ERR_UNSUPPORTED instead.
 * Collective over all ranks; blocks up to the bootstrap timeout.
 * cfg may be NULL. On success *comm is the caller's until destroyed.
 */
TIDE_API tide_status_t tide_comm_init(tide_comm_t **comm, const tide_config_t *cfg);

/*
 * Create a bootstrap id. The calling process hosts a rendezvous store for
 * it (on TIDE_BOOTSTRAP_ADDR, or the first non-loopback interface) that
 * stays up while communicators use it. Call once, on one process, and give
 * the id to every rank. Not collective.
 */
TIDE_API tide_status_t tide_get_unique_id(tide_unique_id_t *id);

/*
 * Create a communicator of nranks processes (or threads) from an id made by
 * tide_get_unique_id; this caller becomes `rank`. Collective over all
 * nranks callers; blocks up to the bootstrap timeout. cfg may be NULL
 * (its rank, nranks and store fields are ignored here).
 */
TIDE_API tide_status_t tide_comm_init_rank(tide_comm_t **comm, int nranks,
                                           const tide_unique_id_t *id, int rank,
                                           const tide_config_t *cfg);

TIDE_API tide_status_t tide_comm_rank(const tide_comm_t *comm, int *rank);
TIDE_API tide_status_t tide_comm_size(const tide_comm_t *comm, int *nranks);

/* Ranks of this communicator on the caller's host (same boot id), and the
 * caller's position among them. */
TIDE_API tide_status_t tide_comm_local(const tide_comm_t *comm, int *local_rank, int *local_size);

/* Membership epoch (0 at creation) and the stable member id of a rank.
 * Member ids survive later shrink/grow; ranks are renumbered. */
TIDE_API tide_status_t tide_comm_epoch(const tide_comm_t *comm, uint64_t *epoch);
TIDE_API tide_status_t tide_comm_member_id(const tide_comm_t *comm, int rank, uint32_t *id);

/* New communicators from an existing one (collective over it). Split:
 * ranks with the same color form one, ordered by key (then old rank);
 * TIDE_COLOR_NONE gives *newcomm = NULL. Dup: the same ranks, a separate
 * communicator (its own collective order). Members keep their stable ids;
 * the new communicators are the caller's and may be used concurrently
 * with the parent, from other threads. */
#define TIDE_COLOR_NONE (-1)
TIDE_API tide_status_t tide_comm_split(tide_comm_t *comm, int color, int key,
                                       tide_comm_t **newcomm);
TIDE_API tide_status_t tide_comm_dup(tide_comm_t *comm, tide_comm_t **newcomm);

/* Free the communicator. Local, except on the rank that hosts the store
 * (rank 0 under torchrun variables; the process that made the unique id,
 * with its last communicator): it keeps the store up until the other
 * ranks have disconnected, for at most the bootstrap timeout. */
TIDE_API tide_status_t tide_comm_destroy(tide_comm_t *comm);

/* Free the communicator without waiting for anything: no store traffic,
 * no collective step. Use it when the job is failing. */
TIDE_API tide_status_t tide_comm_abort(tide_comm_t *comm);

/* ----------------------------------------------------------------- store */

/*
 * The key-value store that ranks rendezvous through. A store obtained from
 * a communicator is namespaced to it and borrowed (valid until the
 * communicator is destroyed); one from tide_store_connect is the caller's
 * and is freed with tide_store_destroy. Keys are NUL-terminated strings of
 * at most 1024 bytes; values are bytes (TIDE_STORE_MAX_VALUE at most).
 * Every call that can wait takes a timeout in ms (< 0: the bootstrap
 * default). Calls on one store handle are thread-safe.
 */
typedef struct tide_store tide_store_t;

TIDE_API tide_status_t tide_comm_store(tide_comm_t *comm, tide_store_t **store);

/* Connect to a TCP store at "host:port" with its secret, retrying until
 * timeout_ms while nothing listens there yet. */
TIDE_API tide_status_t tide_store_connect(const char *addr, const char *secret, int timeout_ms,
                                          tide_store_t **store);
TIDE_API tide_status_t tide_store_destroy(tide_store_t *store);

TIDE_API tide_status_t tide_store_set(tide_store_t *store, const char *key, const void *value,
                                      size_t len);

/* Wait until key exists, then return a copy of its value in *value
 * (malloc'd; the caller frees it) and its length in *len. */
TIDE_API tide_status_t tide_store_get(tide_store_t *store, const char *key, int timeout_ms,
                                      void **value, size_t *len);

/* Wait until every key of keys[0..nkeys) exists. */
TIDE_API tide_status_t tide_store_wait(tide_store_t *store, const char *const *keys, size_t nkeys,
                                       int timeout_ms);

/* Atomically add delta to the 64-bit counter at key (created as 0) and
 * return the new value in *result (may be NULL). */
TIDE_API tide_status_t tide_store_add(tide_store_t *store, const char *key, int64_t delta,
                                      int64_t *result);

/* Compare-and-set: if key's value equals expected (expected == NULL: if
 * key does not exist), set it to desired. *swapped says whether it did
 * (may be NULL). */
TIDE_API tide_status_t tide_store_cas(tide_store_t *store, const char *key, const void *expected,
                                      size_t expected_len, const void *desired, size_t desired_len,
                                      int *swapped);

/* Delete key; *existed (may be NULL) says whether it was there. */
TIDE_API tide_status_t tide_store_delete(tide_store_t *store, const char *key, int *existed);

/* Wait until nparties callers on this store's namespace have called it
 * (the n-th call of each caller meets the n-th call of the others). */
TIDE_API tide_status_t tide_store_barrier(tide_store_t *store, int nparties, int timeout_ms);

/* ------------------------------------------------------ transfer engine */

/*
 * The transfer engine moves bytes between registered memory of processes:
 * one-sided WRITE and READ requests, submitted in batches, split into
 * slices and carried over shared memory (peers on the same host) or TCP
 * streams. A path that fails is replaced by another one to the same peer;
 * only when none is left does the batch fail. Usable without collectives.
 *
 * Threading: engine calls may come from any thread; several threads may
 * submit concurrently. A batch is waited on or tested by one thread at a
 * time.
 */
typedef struct tide_engine tide_engine_t;
typedef struct tide_batch tide_batch_t;

/* Transport bits for tide_engine_config_t.transports. */
#define TIDE_TRANSPORT_SHM  0x1u
#define TIDE_TRANSPORT_TCP  0x2u
#define TIDE_TRANSPORT_RDMA 0x4u

typedef struct tide_engine_config {
    size_t size;             /* sizeof(tide_engine_config_t) */
    unsigned int transports; /* 0: TIDE_TRANSPORTS (default shm,rdma,tcp) */
    int tcp_streams;         /* 0: TIDE_TCP_STREAMS */
    size_t slice_size;       /* 0: TIDE_SLICE_SIZE */
    int timeout_ms;          /* setup waits; 0: TIDE_BOOTSTRAP_TIMEOUT */
    const char *ib_devices;  /* RDMA devices, in order ("mlx5_0,mlx5_1"); NULL: TIDE_IB_DEVICES */
} tide_engine_config_t;

#define TIDE_ENGINE_CONFIG_INIT                                                                    \
    {                                                                                              \
        sizeof(tide_engine_config_t), 0, 0, 0, 0, NULL                                             \
    }

/* Create an engine over the ranks of a communicator (collective over
 * them: it exchanges endpoints through the store). cfg may be NULL. The
 * engine is the caller's until tide_engine_destroy; the communicator must
 * outlive it. */
TIDE_API tide_status_t tide_engine_create(tide_comm_t *comm, const tide_engine_config_t *cfg,
                                          tide_engine_t **engine);

/* The same, over a store the caller shares with nranks processes (ranks
 * 0..nranks-1, this one being rank); for programs that move data without
 * collectives. Collective over the nranks. */
TIDE_API tide_status_t tide_engine_create_from_store(tide_store_t *store, int rank, int nranks,
                                                     const tide_engine_config_t *cfg,
                                                     tide_engine_t **engine);

/* Fails in-flight batches (TIDE_ERR_REVOKED), closes every path, frees
 * the engine. Segments memory from tide_segment_alloc is unmapped;
 * registered user memory stays the user's. */
TIDE_API tide_status_t tide_engine_destroy(tide_engine_t *engine);

/* Register [addr, addr+len) of the caller's memory as a segment that peers
 * may WRITE into and READ from; *id names it to them. The memory stays the
 * caller's and must stay valid until tide_segment_free. Publishes its
 * descriptor; not collective. */
TIDE_API tide_status_t tide_segment_register(tide_engine_t *engine, void *addr, size_t len,
                                             uint32_t *id);

/* Allocate len bytes of shared memory (memfd) as a segment: peers on this
 * host map it and reach it with one memcpy. *addr is valid until
 * tide_segment_free. */
TIDE_API tide_status_t tide_segment_alloc(tide_engine_t *engine, size_t len, void **addr,
                                          uint32_t *id);

/* Withdraw a local segment (and unmap it if allocated). Operations of
 * peers on it must have finished. */
TIDE_API tide_status_t tide_segment_free(tide_engine_t *engine, uint32_t id);

/* Make peer's segment id usable as a remote segment: fetch its descriptor
 * (waiting up to timeout_ms, < 0: default, for the peer to publish it)
 * and map it when shared memory reaches the peer. Idempotent. */
TIDE_API tide_status_t tide_segment_open(tide_engine_t *engine, int peer, uint32_t id,
                                         int timeout_ms);

/* A local segment's descriptor as bytes (at most TIDE_SEGMENT_DESC_MAX),
 * for programs that pass descriptors themselves instead of through the
 * store. *len is in: the buffer's size, out: the descriptor's. */
#define TIDE_SEGMENT_DESC_MAX 64
TIDE_API tide_status_t tide_segment_export(tide_engine_t *engine, uint32_t id, void *desc,
                                           size_t *len);

/* Open a peer's segment from exported bytes (checked: owner must be peer).
 * Like tide_segment_open, without the store. */
TIDE_API tide_status_t tide_segment_import(tide_engine_t *engine, int peer, const void *desc,
                                           size_t len);

typedef enum tide_op { TIDE_OP_WRITE = 0, TIDE_OP_READ = 1 } tide_op_t;

/* WRITE: local -> peer's segment; READ: peer's segment -> local. */
typedef struct tide_request {
    tide_op_t op;
    uint32_t local_segment;
    uint64_t local_offset;
    int peer;
    uint32_t remote_segment; /* opened with tide_segment_open */
    uint64_t remote_offset;
    uint64_t length; /* > 0 */
} tide_request_t;

/* Batch flags */
#define TIDE_BATCH_NOTIFY 0x1u /* when every WRITE has landed, notify each target peer */

/* Submit n requests as one batch. Every request is checked (segments,
 * bounds, peer) before anything moves; a bad one fails the call with
 * TIDE_ERR_INVALID and nothing is posted. Does not block on the network.
 * *batch is the caller's until tide_batch_free. */
TIDE_API tide_status_t tide_batch_submit(tide_engine_t *engine, const tide_request_t *reqs,
                                         size_t n, unsigned int flags, tide_batch_t **batch);

/* TIDE_SUCCESS when every request completed, TIDE_IN_PROGRESS while some
 * are running, or the batch's error (TIDE_ERR_LINK, TIDE_ERR_PEER, ...). */
TIDE_API tide_status_t tide_batch_test(tide_batch_t *batch);

/* Wait for the batch up to timeout_ms (< 0: forever is not offered; it
 * means the bootstrap default). Spins briefly, then blocks. TIDE_ERR_TIMEOUT
 * leaves the batch running: wait again or destroy the engine. */
TIDE_API tide_status_t tide_batch_wait(tide_batch_t *batch, int timeout_ms);

/* Release a finished batch; a running one is refused (TIDE_IN_PROGRESS). */
TIDE_API tide_status_t tide_batch_free(tide_batch_t *batch);

/* Notifications received from peer so far (TIDE_BATCH_NOTIFY batches of
 * that peer whose writes landed here). */
TIDE_API tide_status_t tide_notify_count(tide_engine_t *engine, int peer, uint64_t *count);

/* Wait until at least count notifications from peer have arrived. */
TIDE_API tide_status_t tide_notify_wait(tide_engine_t *engine, int peer, uint64_t count,
                                        int timeout_ms);

/* Paths: the ways an engine reaches a peer (the shm path, each TCP stream,
 * each RDMA queue pair on each NIC), with their health and counters. */
typedef enum tide_path_state {
    TIDE_PATH_OK = 0,   /* carries data */
    TIDE_PATH_DEGRADED, /* carries data; errors were seen */
    TIDE_PATH_FAILED,   /* carries nothing; its work moved to other paths */
    TIDE_PATH_PROBING   /* being re-established */
} tide_path_state_t;

typedef struct tide_path_stats {
    char name[48];          /* "shm->1", "tcp->1#0", "rdma->1#rxe_a0.1" */
    unsigned int transport; /* TIDE_TRANSPORT_* */
    tide_path_state_t state;
    uint64_t slices;    /* slices carried */
    uint64_t bytes;     /* bytes carried */
    uint64_t errors;    /* failures seen on the path */
    uint64_t failovers; /* slices moved off it to other paths */
} tide_path_stats_t;

/* The paths to peer: up to max into out; *n is how many there are (may
 * exceed max). */
TIDE_API tide_status_t tide_engine_paths(tide_engine_t *engine, int peer, tide_path_stats_t *out,
                                         size_t max, size_t *n);

/* Engine-wide counters since creation (a transport's are zero without
 * it). */
typedef struct tide_engine_counters {
    uint64_t rdma_post_calls;  /* ibv_post_send calls */
    uint64_t rdma_wrs;         /* work requests posted */
    uint64_t rdma_signaled;    /* of them signaled */
    uint64_t rdma_cqes;        /* completions polled */
    uint64_t tcp_frames_in;    /* TCP requests received (writes, reads, signals) */
    uint64_t tcp_acks_out;     /* TCP acknowledgement frames sent for them */
    uint64_t tcp_acks_carried; /* ... and acknowledgements sent riding on requests */
} tide_engine_counters_t;

TIDE_API tide_status_t tide_engine_counters(tide_engine_t *engine, tide_engine_counters_t *out);

/* ----------------------------------------------------------- collectives */

/* Element types of collectives. fp16 is IEEE binary16, bf16 bfloat16; both
 * are reduced with float arithmetic and rounded to nearest even. Buffers
 * of collectives are aligned to their element size. */
typedef enum tide_dtype {
    TIDE_INT8 = 0,
    TIDE_UINT8,
    TIDE_INT32,
    TIDE_UINT32,
    TIDE_INT64,
    TIDE_UINT64,
    TIDE_FLOAT16,
    TIDE_BFLOAT16,
    TIDE_FLOAT32,
    TIDE_FLOAT64,
    TIDE_DTYPE_COUNT
} tide_dtype_t;

/* Reduction operations. AVG is the sum divided by the number of ranks
 * (integer types: truncated toward zero). */
typedef enum tide_redop {
    TIDE_SUM = 0,
    TIDE_PROD,
    TIDE_MIN,
    TIDE_MAX,
    TIDE_AVG,
    TIDE_REDOP_COUNT
} tide_redop_t;

/* Bytes per element of dtype, 0 for an unknown one. */
TIDE_API size_t tide_dtype_size(tide_dtype_t dtype);

/*
 * Tide memory: buffers that the other ranks on this host can map. Where a
 * rank's buffers of a collective lie in it, the direct algorithms of its
 * peers on this host read and write them in place instead of copying them
 * through the kernel (process_vm_readv/writev); other buffers work as
 * before. The memory is zeroed, page-aligned, and shared with no other
 * process until a collective names it; a peer that mapped it keeps its
 * mapping until its communicator is destroyed or it maps others instead.
 * Peers need the permission CMA needs (same user, ptrace scope). Free
 * with tide_mem_free only. Both calls are thread-safe. The memory is a
 * shared mapping: a child created by fork shares it with its parent
 * instead of getting a copy.
 */
TIDE_API tide_status_t tide_mem_alloc(size_t size, void **ptr);
TIDE_API tide_status_t tide_mem_free(void *ptr);

/*
 * Collectives. Every rank of the communicator calls the same collectives
 * in the same order (send/recv: matching pairs in the same order). Buffers
 * stay the caller's. In place: sendbuf == recvbuf (allgather: sendbuf ==
 * recvbuf + rank * count elements). Counts are elements; for allgather
 * and alltoall `count` is per rank, for reduce_scatter it is the result's.
 * Blocking calls return when this rank's part is done. tide_i* calls
 * return at once with a work handle; the operation runs in order behind
 * earlier ones, without the caller polling. Calls on one communicator are
 * serialised by the caller.
 *
 * Operations of a communicator run one at a time in issue order, and the
 * k-th send from A to B meets the k-th receive on B from A. So a pattern
 * of sends and receives must not wait in a cycle: in a ring exchange, let
 * even ranks send first and odd ranks receive first (as with NCCL outside
 * a group).
 */
typedef struct tide_work tide_work_t;

TIDE_API tide_status_t tide_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                                      tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm);
TIDE_API tide_status_t tide_allgather(const void *sendbuf, void *recvbuf, size_t count,
                                      tide_dtype_t dtype, tide_comm_t *comm);
/* sendbuf is read on the root only; recvbuf is written on every rank. */
TIDE_API tide_status_t tide_broadcast(const void *sendbuf, void *recvbuf, size_t count,
                                      tide_dtype_t dtype, int root, tide_comm_t *comm);
/* sendbuf holds nranks * recvcount elements; rank r gets block r reduced. */
TIDE_API tide_status_t tide_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                           tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm);
/* recvbuf is written on the root only. */
TIDE_API tide_status_t tide_reduce(const void *sendbuf, void *recvbuf, size_t count,
                                   tide_dtype_t dtype, tide_redop_t op, int root,
                                   tide_comm_t *comm);
/* Block j (count elements) of sendbuf goes to rank j's block `rank`. */
TIDE_API tide_status_t tide_alltoall(const void *sendbuf, void *recvbuf, size_t count,
                                     tide_dtype_t dtype, tide_comm_t *comm);
TIDE_API tide_status_t tide_barrier(tide_comm_t *comm);
TIDE_API tide_status_t tide_send(const void *buf, size_t count, tide_dtype_t dtype, int peer,
                                 tide_comm_t *comm);
TIDE_API tide_status_t tide_recv(void *buf, size_t count, tide_dtype_t dtype, int peer,
                                 tide_comm_t *comm);

TIDE_API tide_status_t tide_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
                                       tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm,
                                       tide_work_t **work);
TIDE_API tide_status_t tide_iallgather(const void *sendbuf, void *recvbuf, size_t count,
                                       tide_dtype_t dtype, tide_comm_t *comm, tide_work_t **work);
TIDE_API tide_status_t tide_ibroadcast(const void *sendbuf, void *recvbuf, size_t count,
                                       tide_dtype_t dtype, int root, tide_comm_t *comm,
                                       tide_work_t **work);
TIDE_API tide_status_t tide_ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                            tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm,
                                            tide_work_t **work);
TIDE_API tide_status_t tide_ireduce(const void *sendbuf, void *recvbuf, size_t count,
                                    tide_dtype_t dtype, tide_redop_t op, int root,
                                    tide_comm_t *comm, tide_work_t **work);
TIDE_API tide_status_t tide_ialltoall(const void *sendbuf, void *recvbuf, size_t count,
                                      tide_dtype_t dtype, tide_comm_t *comm, tide_work_t **work);
TIDE_API tide_status_t tide_ibarrier(tide_comm_t *comm, tide_work_t **work);
TIDE_API tide_status_t tide_isend(const void *buf, size_t count, tide_dtype_t dtype, int peer,
                                  tide_comm_t *comm, tide_work_t **work);
TIDE_API tide_status_t tide_irecv(void *buf, size_t count, tide_dtype_t dtype, int peer,
                                  tide_comm_t *comm, tide_work_t **work);

/* TIDE_IN_PROGRESS while it runs; otherwise its result, and the handle is
 * freed. */
TIDE_API tide_status_t tide_test(tide_work_t *work);
/* Wait up to timeout_ms (< 0: the bootstrap default). On completion the
 * result is returned and the handle freed; TIDE_ERR_TIMEOUT keeps it. */
TIDE_API tide_status_t tide_wait(tide_work_t *work, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_H */
