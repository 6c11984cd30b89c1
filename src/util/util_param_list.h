/*
 * The one table of Tide's tunables and environment inputs.
 * X(id, env name, type, default, range, help)
 *   type:  INT (range "min:max"), SIZE (bytes, K/M/G suffixes, range
 *          "min:max"), BOOL, STR, ENUM (range "a|b|c", value = index)
 * Read only through tide_param_*(); docs/params.md is generated from this.
 */
#ifndef TIDE_UTIL_PARAM_LIST_H
#define TIDE_UTIL_PARAM_LIST_H

#define TIDE_PARAM_LIST(X)                                                                         \
    X(LOG_LEVEL, "TIDE_LOG_LEVEL", ENUM, "warn", "error|warn|info|debug|trace",                    \
      "Messages at this level and more severe are logged.")                                        \
    X(LOG_SUBSYS, "TIDE_LOG_SUBSYS", STR, "all", "",                                               \
      "Comma-separated subsystems to log (util,boot,p2p,coll,tool), 'all', or '^name' to "         \
      "exclude one. Errors are always logged.")                                                    \
    X(LOG_FILE, "TIDE_LOG_FILE", STR, "", "",                                                      \
      "Log to this file instead of stderr; %h is replaced by the host name, %p by the pid.")       \
    X(RANK, "TIDE_RANK", INT, "-1", "-1:16777215", "This process's rank (set by tiderun).")        \
    X(SIZE, "TIDE_SIZE", INT, "-1", "-1:16777216", "Number of ranks (set by tiderun).")            \
    X(LOCAL_RANK, "TIDE_LOCAL_RANK", INT, "-1", "-1:16777215",                                     \
      "Rank among the ranks on this host (set by tiderun; informational).")                        \
    X(STORE, "TIDE_STORE", STR, "", "", "host:port of the rendezvous store (set by tiderun).")     \
    X(SECRET, "TIDE_SECRET", STR, "", "",                                                          \
      "Per-job secret that store clients present (set by tiderun).")                               \
    X(BOOTSTRAP_TIMEOUT, "TIDE_BOOTSTRAP_TIMEOUT", INT, "60000", "1:86400000",                     \
      "Milliseconds a rendezvous or store wait may take before it fails.")                         \
    X(BOOTSTRAP_ADDR, "TIDE_BOOTSTRAP_ADDR", STR, "", "",                                          \
      "Address a process-hosted store (tide_get_unique_id, rank 0 under torchrun variables) "      \
      "binds and advertises; default: the first non-loopback IPv4 interface that is up.")          \
    X(STORE_MAX_VALUE, "TIDE_STORE_MAX_VALUE", SIZE, "1M", "1K:64M",                               \
      "Largest value the store accepts; larger messages close the client's connection.")           \
    X(STORE_MAX_BYTES, "TIDE_STORE_MAX_BYTES", SIZE, "256M", "1M:64G",                             \
      "Total bytes of keys and values a store server holds before refusing writes.")               \
    X(STORE_MAX_CONNS, "TIDE_STORE_MAX_CONNS", INT, "4096", "1:1048576",                           \
      "Connections a store server accepts at once.")                                               \
    X(STORE_AUTH_TIMEOUT, "TIDE_STORE_AUTH_TIMEOUT", INT, "10000", "1:3600000",                    \
      "Milliseconds a new store connection has to authenticate before it is closed.")              \
    X(TORCH_RANK, "RANK", INT, "-1", "-1:16777215",                                                \
      "torchrun-style rank (read when TIDE_RANK "                                                  \
      "is unset).")                                                                                \
    X(TORCH_WORLD_SIZE, "WORLD_SIZE", INT, "-1", "-1:16777216", "torchrun-style number of ranks.") \
    X(TORCH_MASTER_ADDR, "MASTER_ADDR", STR, "", "",                                               \
      "torchrun-style store host; rank 0 hosts the store there.")                                  \
    X(TORCH_MASTER_PORT, "MASTER_PORT", INT, "-1", "-1:65535", "torchrun-style store port.")       \
    X(LAUNCHER_PMI_SIZE, "PMI_SIZE", INT, "-1", "-1:16777216",                                     \
      "Set by PMI launchers; > 1 with no other rendezvous is refused as a silent singleton.")      \
    X(LAUNCHER_OMPI_SIZE, "OMPI_COMM_WORLD_SIZE", INT, "-1", "-1:16777216",                        \
      "Set by Open MPI's mpirun; > 1 with no other rendezvous is refused.")                        \
    X(LAUNCHER_PMIX_NAMESPACE, "PMIX_NAMESPACE", STR, "", "",                                      \
      "Set by PMIx launchers (mpirun, srun); PMIx is tried only when it is set.")                  \
    X(LAUNCHER_SLURM_NTASKS, "SLURM_NTASKS", INT, "-1", "-1:16777216",                             \
      "Set by srun; > 1 with no other rendezvous is refused.")                                     \
    X(TRANSPORTS, "TIDE_TRANSPORTS", STR, "shm,rdma,tcp", "",                                      \
      "Transports the engine may use for data, from shm,rdma,tcp, preferred in that order. TCP "   \
      "always carries control messages, and the slices of failed shm/RDMA paths.")                 \
    X(IB_DEVICES, "TIDE_IB_DEVICES", STR, "", "",                                                  \
      "RDMA devices to use, in order (mlx5_0,mlx5_1; at most 4); default: every device with an "   \
      "active port. Groups separated by ';' give each local rank its own: local rank r uses "      \
      "group r % groups (mlx5_0;mlx5_1).")                                                         \
    X(IB_GID_INDEX, "TIDE_IB_GID_INDEX", INT, "-1", "-1:1023",                                     \
      "GID index for RoCE; -1: the first RoCE v2 GID holding an IPv4 address, else RoCE v2, "      \
      "else 0.")                                                                                   \
    X(IB_QPS_PER_EP, "TIDE_IB_QPS_PER_EP", INT, "2", "1:16",                                       \
      "RDMA queue pairs per peer and NIC; slices are spread over them.")                           \
    X(IB_TIMEOUT, "TIDE_IB_TIMEOUT", INT, "14", "1:31",                                            \
      "RC local ACK timeout exponent: 4.096 us * 2^value before a retry (14: 67 ms).")             \
    X(IB_RETRY_CNT, "TIDE_IB_RETRY_CNT", INT, "6", "0:7",                                          \
      "RC retries before a path fails (7 is infinite on some devices, rxe included: avoid).")      \
    X(IB_RECOVER_MS, "TIDE_IB_RECOVER_MS", INT, "1000", "10:600000",                               \
      "Milliseconds between attempts to re-establish a failed RDMA path.")                         \
    X(TCP_STREAMS, "TIDE_TCP_STREAMS", INT, "2", "1:64",                                           \
      "TCP streams per peer; large requests are striped across them.")                             \
    X(TCP_ADDR, "TIDE_TCP_ADDR", STR, "", "",                                                      \
      "Address the engine's TCP listener binds and advertises; default: TIDE_BOOTSTRAP_ADDR, "     \
      "else the first non-loopback IPv4 interface that is up.")                                    \
    X(TCP_SOCKBUF, "TIDE_TCP_SOCKBUF", SIZE, "4M", "0:1G",                                         \
      "Socket send/receive buffer size for TCP streams (0: the system default).")                  \
    X(TCP_CONGESTION, "TIDE_TCP_CONGESTION", STR, "auto", "",                                      \
      "Congestion control of TCP streams: auto (reno between two addresses of one host, where "    \
      "there is no network to share and bbr's pacing can only slow transfers down; the "           \
      "system's otherwise), system, or an algorithm for every stream (cubic, reno, ...).")         \
    X(TCP_DUPLEX, "TIDE_TCP_DUPLEX", ENUM, "auto", "auto|on|off",                                  \
      "Adopt the TCP streams a peer opens and send on them too, one connection per pair and "      \
      "stream: on, off, or auto (on unless this host runs more of the job's ranks than it has "    \
      "cores, where a connection carrying bulk data both ways is slower than two).")               \
    X(SLICE_SIZE, "TIDE_SLICE_SIZE", SIZE, "64K", "4K:16M",                                        \
      "Requests larger than this are split into slices of this size.")                             \
    X(CHUNK_SIZE, "TIDE_CHUNK_SIZE", SIZE, "1M", "1:1G",                                           \
      "Collectives pipeline large buffers in chunks of this many bytes (per rank and step).")      \
    X(PIPELINE_DEPTH, "TIDE_PIPELINE_DEPTH", INT, "4", "1:1024",                                   \
      "Chunks a pipelined collective (chain, tree) may receive ahead of what it has sent on.")     \
    X(COLL_PIPE_SIZE, "TIDE_COLL_PIPE_SIZE", SIZE, "1M", "4K:1G",                                  \
      "Bytes of each pipe between two ranks (a shared-memory ring, or engine buffers).")           \
    X(ALGO, "TIDE_ALGO", STR, "", "",                                                              \
      "Force collective algorithms: a name (ring) or per collective "                              \
      "(allreduce=rd,broadcast=tree).")                                                            \
    X(SIMD, "TIDE_SIMD", ENUM, "auto", "auto|baseline|avx2|avx512",                                \
      "Reduction kernels: auto takes the widest vectors this CPU runs; a narrower set can be "     \
      "named to compare.")                                                                         \
    X(NUMA, "TIDE_NUMA", ENUM, "auto", "auto|off",                                                 \
      "Place Tide's memory and progress threads on one NUMA node (with more than one node).")      \
    X(TRACE, "TIDE_TRACE", BOOL, "0", "",                                                          \
      "Log every collective: operation, size, algorithm, chunk and pipes it used.")

#endif
