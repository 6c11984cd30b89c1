/*
 * tide_perf: Tide's benchmarks. Run under tiderun.
 *
 *   tiderun -n 2 tide_perf p2p [options]
 *   tiderun -n N tide_perf allreduce|allgather|broadcast|reduce_scatter|reduce|alltoall
 *           [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS] [-w WARMUP] [-c 0|1] [-d DTYPE]
 *           [-o OP] [-r ROOT] [-W 0|1] [-p 0|1]
 *   tiderun -n N tide_perf barrier [-n ITERS] [-w WARMUP]   (one row: size 0)
 *
 * Collectives follow the nccl-tests conventions: size is the bytes of the
 * largest buffer (allgather: the output; reduce_scatter: the input;
 * alltoall: either), time the slowest rank's average, algbw = size / time,
 * busbw = algbw x 2(n-1)/n (allreduce), (n-1)/n (allgather, reduce_scatter,
 * alltoall) or 1 (broadcast, reduce), #wrong the wrong elements of all
 * ranks (checked with float inputs; -c 0 skips it). -W 1 rewrites each
 * rank's input before every iteration, as an application that computes it
 * anew would, and times only the collective calls: peers then read data
 * that sits modified in its owner's cache, not an unchanged buffer that
 * stays in their own caches from the previous iteration. -p 1 also times
 * every operation and prints, after each row, the median, 99th percentile
 * and slowest operation (of the slowest rank at each), where an average
 * hides a few operations that stall.
 *
 * p2p: rank 0 submits batches of N blocks of B bytes (WRITE or READ) to
 * rank 1, keeping several batches in flight, and reports GB/s, blocks/s
 * and mean/p99 batch latency. In the same run it measures the reference a
 * user would otherwise pick: a single-thread memcpy of the same blocks
 * (shm) or a plain blocking socket stream between the same two processes
 * (tcp), and prints Tide's ratio to it.
 *
 *   -b MIN -e MAX -f FACTOR   block sizes (1K .. 4M, x4)
 *   -N BLOCKS                 blocks per batch (1538; fewer for big blocks:
 *                             at most 256 MiB per batch)
 *   -n ITERS -w WARMUP        batches measured / discarded per size (20 / 3)
 *   -d DEPTH                  batches in flight (4)
 *   -o write|read             operation (write)
 *   -t|--transport shm|tcp|rdma  transport (shm); rdma prints, instead of a
 *                             reference, the engine's RDMA counts per
 *                             batch (ibv_post_send calls, WRs, signaled
 *                             WRs, completions polled); perf/rdma_vm.sh
 *                             compares it with ib_write_bw
 *   -c                        contiguous blocks (Tide coalesces them); the
 *                             default leaves a gap after each block
 *   -P                        tcp: the reference's receiver polls (recv
 *                             with MSG_DONTWAIT, as Tide's waiters do)
 *                             instead of blocking in recv
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"
#include "perf_util.h"

#define MAX_BATCH_BYTES (256u << 20)

#define CHECK(call)                                                                                \
    do {                                                                                           \
        tide_status_t st_ = (call);                                                                \
        if (st_ != TIDE_SUCCESS) {                                                                 \
            fprintf(stderr, "tide_perf: %s: %s\n", #call, tide_status_str(st_));                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct opts {
    size_t min, max, factor;
    int blocks, iters, warmup, depth;
    tide_op_t op;
    unsigned transport;
    int contiguous;
    int ref_poll; /* -P: the socket reference's receiver polls */
} opts_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Blocks of one batch: how many, and where block i sits on both sides. */
static int batch_blocks(const opts_t *o, size_t size)
{
    size_t stride = o->contiguous ? size : 2 * size;
    size_t fit = MAX_BATCH_BYTES / stride;
    return (int)(fit < (size_t)o->blocks ? (fit ? fit : 1) : (size_t)o->blocks);
}

static size_t block_offset(const opts_t *o, size_t size, int i)
{
    return (size_t)i * (o->contiguous ? size : 2 * size);
}

/* ------------------------------------------------------------ references */

static double ref_memcpy(const opts_t *o, size_t size, int nb, char *src, char *dst)
{
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = perf_now_s();
        int iters = 0;
        do {
            for (int i = 0; i < nb; i++)
                memcpy(dst + block_offset(o, size, i), src + block_offset(o, size, i), size);
            iters++;
        } while (perf_now_s() - t0 < 0.2);
        double gbs = (double)size * nb * iters / (perf_now_s() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    return best;
}

static int sock_listen(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("tide_perf: reference socket");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int sock_connect(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("tide_perf: reference connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void io_all(int fd, char *p, size_t n, int sending, int poll)
{
    while (n > 0) {
        ssize_t k =
            sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, poll ? MSG_DONTWAIT : 0);
        if (k <= 0) {
            if (k < 0 && (errno == EINTR || (poll && (errno == EAGAIN || errno == EWOULDBLOCK))))
                continue;
            perror("tide_perf: reference stream");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* The same blocks over one plain blocking socket: rank 0 sends each block
 * with send(), rank 1 receives each into place (blocking in recv, or with
 * -P polling) and answers one byte per batch. Both ranks call it. */
static double ref_socket(const opts_t *o, int rank, int fd, size_t size, int nb, char *buf)
{
    int iters = o->iters + o->warmup;
    char ack = 0;
    double t0 = 0;
    for (int it = 0; it < iters; it++) {
        if (it == o->warmup)
            t0 = perf_now_s();
        for (int i = 0; i < nb; i++)
            io_all(fd, buf + block_offset(o, size, i), size, rank == 0, o->ref_poll);
        io_all(fd, &ack, 1, rank == 1, o->ref_poll);
    }
    return (double)size * nb * o->iters / (perf_now_s() - t0) / 1e9;
}

/* ------------------------------------------------------------------ tide */

typedef struct result {
    double gbs, blocks_per_s, mean_us, p99_us;
} result_t;

static result_t run_tide(const opts_t *o, tide_engine_t *e, size_t size, int nb, uint32_t lid,
                         uint32_t rid)
{
    tide_request_t *req = calloc((size_t)nb, sizeof(*req));
    int total = o->warmup + o->iters;
    double *lat = calloc((size_t)total, sizeof(double)),
           *start = calloc((size_t)total, sizeof(double));
    tide_batch_t **inflight = calloc((size_t)total, sizeof(*inflight));
    result_t r = {0};
    for (int i = 0; i < nb; i++)
        req[i] = (tide_request_t){
            o->op, lid, block_offset(o, size, i), 1, rid, block_offset(o, size, i), size};
    int submitted = 0, done = 0;
    double t0 = 0;
    while (done < total) {
        while (submitted < total && submitted - done < o->depth) {
            start[submitted] = perf_now_s();
            CHECK(tide_batch_submit(e, req, (size_t)nb, 0, &inflight[submitted]));
            submitted++;
        }
        CHECK(tide_batch_wait(inflight[done], 60000));
        lat[done] = perf_now_s() - start[done];
        CHECK(tide_batch_free(inflight[done]));
        done++;
        if (done == o->warmup)
            t0 = perf_now_s();
    }
    double elapsed = perf_now_s() - t0;
    r.gbs = (double)size * nb * o->iters / elapsed / 1e9;
    r.blocks_per_s = (double)nb * o->iters / elapsed;
    double *m = lat + o->warmup, sum = 0;
    for (int i = 0; i < o->iters; i++)
        sum += m[i];
    qsort(m, (size_t)o->iters, sizeof(double), cmp_double);
    r.mean_us = sum / o->iters * 1e6;
    r.p99_us = m[(int)((o->iters - 1) * 0.99)] * 1e6;
    free(req);
    free(lat);
    free(start);
    free(inflight);
    return r;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tiderun -n 2 tide_perf p2p [-b MIN] [-e MAX] [-f FACTOR] [-N BLOCKS] "
            "[-n ITERS] [-w WARMUP] [-d DEPTH] [-o write|read] [-t shm|tcp|rdma] [-c] [-P]\n");
    exit(2);
}

static int perf_p2p(int argc, char **argv)
{
    opts_t o = {1024, 4u << 20, 4, 1538, 20, 3, 4, TIDE_OP_WRITE, TIDE_TRANSPORT_SHM, 0, 0};
    int c, rank, n;
    static const struct option longopts[] = {{"transport", required_argument, NULL, 't'},
                                             {NULL, 0, NULL, 0}};
    while ((c = getopt_long(argc, argv, "b:e:f:N:n:w:d:o:t:cP", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.min = perf_parse_size(optarg);
            break;
        case 'e':
            o.max = perf_parse_size(optarg);
            break;
        case 'f':
            o.factor = (size_t)atoi(optarg);
            break;
        case 'N':
            o.blocks = atoi(optarg);
            break;
        case 'n':
            o.iters = atoi(optarg);
            break;
        case 'w':
            o.warmup = atoi(optarg);
            break;
        case 'd':
            o.depth = atoi(optarg);
            break;
        case 'o':
            o.op = strcmp(optarg, "read") == 0 ? TIDE_OP_READ : TIDE_OP_WRITE;
            break;
        case 't':
            o.transport = strcmp(optarg, "tcp") == 0    ? TIDE_TRANSPORT_TCP
                          : strcmp(optarg, "rdma") == 0 ? TIDE_TRANSPORT_RDMA
                                                        : TIDE_TRANSPORT_SHM;
            break;
        case 'c':
            o.contiguous = 1;
            break;
        case 'P':
            o.ref_poll = 1;
            break;
        default:
            usage();
        }
    }
    if (o.min < 1 || o.max < o.min || o.factor < 2 || o.blocks < 1 || o.iters < 1 || o.depth < 1 ||
        o.warmup < 0)
        usage();

    tide_comm_t *comm;
    tide_engine_t *e;
    tide_store_t *store;
    tide_engine_config_t cfg = TIDE_ENGINE_CONFIG_INIT;
    cfg.transports = o.transport;
    CHECK(tide_comm_init(&comm, NULL));
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &n));
    if (n != 2) {
        fprintf(stderr, "tide_perf p2p: run it with 2 ranks (tiderun -n 2)\n");
        return 2;
    }
    CHECK(tide_comm_store(comm, &store));
    CHECK(tide_engine_create(comm, &cfg, &e));

    size_t region = MAX_BATCH_BYTES + (o.max > MAX_BATCH_BYTES ? o.max : 0);
    char *buf, *ref_dst = NULL;
    uint32_t seg;
    if (rank == 1 && o.transport == TIDE_TRANSPORT_SHM) {
        void *p;
        CHECK(tide_segment_alloc(e, region, &p, &seg)); /* peers map it: one memcpy */
        buf = p;
    } else {
        buf = malloc(region);
        CHECK(tide_segment_register(e, buf, region, &seg));
    }
    memset(buf, rank + 1, region);
    int fd = -1;
    if (o.transport == TIDE_TRANSPORT_TCP) {
        if (rank == 1) {
            uint16_t port;
            int lfd = sock_listen(&port);
            CHECK(tide_store_set(store, "perf/port", &port, sizeof(port)));
            fd = accept(lfd, NULL, NULL);
            close(lfd);
        } else {
            void *v;
            size_t len;
            CHECK(tide_store_get(store, "perf/port", -1, &v, &len));
            fd = sock_connect(*(uint16_t *)v);
            free(v);
        }
    } else if (rank == 0) {
        ref_dst = malloc(region);
        memset(ref_dst, 0, region);
    }
    if (rank == 0) {
        CHECK(tide_segment_open(e, 1, seg, -1)); /* both ranks made their first segment: id 0 */
        const char *tname = o.transport == TIDE_TRANSPORT_SHM   ? "shm"
                            : o.transport == TIDE_TRANSPORT_TCP ? "tcp"
                                                                : "rdma";
        printf("# tide_perf p2p: %s %s, %s blocks, %d batches in flight, %s\n",
               o.op == TIDE_OP_WRITE ? "WRITE" : "READ", tname,
               o.contiguous ? "contiguous" : "scattered", o.depth,
               o.transport == TIDE_TRANSPORT_SHM ? "reference: single-thread memcpy of the same "
                                                   "blocks"
               : o.transport == TIDE_TRANSPORT_TCP
                   ? (o.ref_poll ? "reference: one plain TCP socket stream, receiver polling"
                                 : "reference: one plain blocking TCP socket stream")
                   : "RDMA counts per batch");
        if (o.transport == TIDE_TRANSPORT_RDMA)
            printf("# %10s %7s %10s %11s %11s %11s %8s %8s %8s %8s\n", "size(B)", "blocks", "GB/s",
                   "Mblocks/s", "mean(us)", "p99(us)", "posts/b", "WRs/b", "signal/b", "CQEs/b");
        else
            printf("# %10s %7s %10s %11s %11s %11s %10s %7s\n", "size(B)", "blocks", "GB/s",
                   "Mblocks/s", "mean(us)", "p99(us)", "ref GB/s", "ratio");
    }
    for (size_t size = o.min; size <= o.max; size *= o.factor) {
        int nb = batch_blocks(&o, size);
        CHECK(tide_store_barrier(store, 2, -1));
        result_t r = {0};
        double ref;
        tide_engine_counters_t c0, c1;
        CHECK(tide_engine_counters(e, &c0));
        if (rank == 0)
            r = run_tide(&o, e, size, nb, seg, seg);
        CHECK(tide_engine_counters(e, &c1));
        CHECK(tide_store_barrier(store, 2, -1));
        if (o.transport == TIDE_TRANSPORT_RDMA) {
            double b = o.iters + o.warmup;
            if (rank == 0)
                printf("  %10zu %7d %10.3f %11.3f %11.1f %11.1f %8.1f %8.1f %8.1f %8.1f\n", size,
                       nb, r.gbs, r.blocks_per_s / 1e6, r.mean_us, r.p99_us,
                       (c1.rdma_post_calls - c0.rdma_post_calls) / b,
                       (c1.rdma_wrs - c0.rdma_wrs) / b, (c1.rdma_signaled - c0.rdma_signaled) / b,
                       (c1.rdma_cqes - c0.rdma_cqes) / b);
            fflush(stdout);
            continue;
        }
        if (o.transport == TIDE_TRANSPORT_TCP)
            ref = ref_socket(&o, rank, fd, size, nb, buf);
        else
            ref = rank == 0 ? ref_memcpy(&o, size, nb, buf, ref_dst) : 0;
        if (rank == 0)
            printf("  %10zu %7d %10.2f %11.3f %11.1f %11.1f %10.2f %7.2f\n", size, nb, r.gbs,
                   r.blocks_per_s / 1e6, r.mean_us, r.p99_us, ref, r.gbs / ref);
        fflush(stdout);
    }
    CHECK(tide_store_barrier(store, 2, -1));
    if (fd >= 0)
        close(fd);
    tide_engine_destroy(e);
    tide_comm_destroy(comm);
    return 0;
}

/* ------------------------------------------------------------ collectives */

typedef enum {
    K_ALLREDUCE,
    K_ALLGATHER,
    K_BROADCAST,
    K_REDUCE_SCATTER,
    K_REDUCE,
    K_ALLTOALL,
    K_BARRIER /* one row: the time per barrier */
} kind_t;

static const struct {
    const char *name;
    double (*factor)(int n); /* busbw = algbw * factor */
} kinds[] = {
    [K_ALLREDUCE] = {"allreduce", NULL}, [K_ALLGATHER] = {"allgather", NULL},
    [K_BROADCAST] = {"broadcast", NULL}, [K_REDUCE_SCATTER] = {"reduce_scatter", NULL},
    [K_REDUCE] = {"reduce", NULL},       [K_ALLTOALL] = {"alltoall", NULL},
    [K_BARRIER] = {"barrier", NULL},
};

static double bus_factor(kind_t k, int n)
{
    switch (k) {
    case K_ALLREDUCE:
        return 2.0 * (n - 1) / n;
    case K_ALLGATHER:
    case K_REDUCE_SCATTER:
    case K_ALLTOALL:
        return (double)(n - 1) / n;
    default:
        return 1.0;
    }
}

static const char *dtype_names[] = {"int8",   "uint8", "int32",    "uint32", "int64",
                                    "uint64", "half",  "bfloat16", "float",  "double"};
static const char *op_names[] = {"sum", "prod", "min", "max", "avg"};

static int parse_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Run the collective once on the given buffers. */
static tide_status_t run_coll(kind_t k, const void *s, void *r, size_t count, tide_dtype_t dt,
                              tide_redop_t op, int root, tide_comm_t *comm)
{
    switch (k) {
    case K_ALLREDUCE:
        return tide_allreduce(s, r, count, dt, op, comm);
    case K_ALLGATHER:
        return tide_allgather(s, r, count, dt, comm);
    case K_BROADCAST:
        return tide_broadcast(s, r, count, dt, root, comm);
    case K_REDUCE_SCATTER:
        return tide_reduce_scatter(s, r, count, dt, op, comm);
    case K_REDUCE:
        return tide_reduce(s, r, count, dt, op, root, comm);
    case K_BARRIER:
        return tide_barrier(comm);
    default:
        return tide_alltoall(s, r, count, dt, comm);
    }
}

/* Inputs: float value (rank + 1) * (i % 7 + 1), so sums are exact. Returns
 * the number of wrong elements of this rank's output (float only). */
static size_t check_output(kind_t k, const float *r, size_t count, int rank, int n, int root,
                           tide_redop_t op)
{
    size_t bad = 0;
    double ranksum = n * (n + 1) / 2.0;
    switch (k) {
    case K_ALLREDUCE:
    case K_REDUCE:
        if (k == K_REDUCE && rank != root)
            return 0;
        for (size_t i = 0; i < count; i++) {
            double want = op == TIDE_SUM ? ranksum * (double)(i % 7 + 1) : r[i];
            bad += r[i] != (float)want;
        }
        return bad;
    case K_REDUCE_SCATTER:
        for (size_t i = 0; i < count; i++) {
            size_t gi = (size_t)rank * count + i;
            double want = op == TIDE_SUM ? ranksum * (double)(gi % 7 + 1) : r[i];
            bad += r[i] != (float)want;
        }
        return bad;
    case K_ALLGATHER:
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                bad += r[(size_t)q * count + i] != (float)((q + 1) * (int)(i % 7 + 1));
        return bad;
    case K_BROADCAST:
        for (size_t i = 0; i < count; i++)
            bad += r[i] != (float)((root + 1) * (int)(i % 7 + 1));
        return bad;
    default: /* alltoall: block q came from rank q, block `rank` of its input */
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                bad += r[(size_t)q * count + i] !=
                       (float)((q + 1) * (int)(((size_t)rank * count + i) % 7 + 1));
        return bad;
    }
}

static int perf_coll(kind_t k, int argc, char **argv)
{
    size_t min = 8, max = 64u << 20, factor = 2;
    int iters = 20, warmup = 5, check = 1, root = 0, rewrite = 0, pct = 0, tmem = 0, c, rank, n;
    tide_dtype_t dt = TIDE_FLOAT32;
    tide_redop_t op = TIDE_SUM;
    while ((c = getopt(argc, argv, "b:e:f:n:w:c:d:o:r:W:p:R:")) != -1) {
        switch (c) {
        case 'b':
            min = perf_parse_size(optarg);
            break;
        case 'e':
            max = perf_parse_size(optarg);
            break;
        case 'f':
            factor = (size_t)atoi(optarg);
            break;
        case 'n':
            iters = atoi(optarg);
            break;
        case 'w':
            warmup = atoi(optarg);
            break;
        case 'c':
            check = atoi(optarg);
            break;
        case 'd':
            dt = (tide_dtype_t)parse_name(optarg, dtype_names, 10);
            break;
        case 'o':
            op = (tide_redop_t)parse_name(optarg, op_names, 5);
            break;
        case 'r':
            root = atoi(optarg);
            break;
        case 'W':
            rewrite = atoi(optarg);
            break;
        case 'p':
            pct = atoi(optarg);
            break;
        case 'R':
            tmem = atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: tide_perf %s [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS] "
                    "[-w WARMUP] [-c 0|1] [-d DTYPE] [-o OP] [-r ROOT] [-W 0|1] [-p 0|1] "
                    "[-R 0|1]\n",
                    kinds[k].name);
            return 2;
        }
    }
    if ((int)dt < 0 || (int)op < 0 || min < 1 || max < min || factor < 2 || iters < 1 ||
        warmup < 0 || (check != 0 && check != 1) || (rewrite != 0 && rewrite != 1) ||
        (pct != 0 && pct != 1) || (tmem != 0 && tmem != 1) || root < 0) {
        fprintf(stderr, "tide_perf: bad arguments\n");
        return 2;
    }
    if (k == K_BARRIER)
        min = max = 1;
    tide_comm_t *comm;
    CHECK(tide_comm_init(&comm, NULL));
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &n));
    size_t es = tide_dtype_size(dt);
    bool rooted = k == K_BROADCAST || k == K_REDUCE;
    if (rooted && root >= n) {
        fprintf(stderr, "tide_perf: root %d, but there are %d ranks\n", root, n);
        tide_comm_destroy(comm);
        return 2;
    }
    bool per_rank = k == K_ALLGATHER || k == K_REDUCE_SCATTER || k == K_ALLTOALL;
    if (check && dt != TIDE_FLOAT32)
        check = 0; /* the check knows float inputs only */
    size_t cap = max + (size_t)n * 64;
    char *sbuf = NULL, *rbuf = NULL;
    if (tmem) { /* -R 1: buffers in Tide memory, which peers on this host map */
        CHECK(tide_mem_alloc(cap, (void **)&sbuf));
        CHECK(tide_mem_alloc(cap, (void **)&rbuf));
    } else {
        sbuf = malloc(cap);
        rbuf = malloc(cap);
    }
    double *lat = malloc((size_t)iters * sizeof(*lat)), pcts[2][3] = {{0}};
    if (!sbuf || !rbuf || !lat) {
        fprintf(stderr, "tide_perf: out of memory\n");
        return 1;
    }
    memset(sbuf, 0, cap);
    memset(rbuf, 0, cap);
    if (rank == 0) {
        printf("# tide_perf %s: %d ranks, %s %s, %d iterations (%d warmup)\n", kinds[k].name, n,
               dtype_names[dt], rooted || k == K_ALLGATHER || k == K_ALLTOALL ? "" : op_names[op],
               iters, warmup);
        printf("# %10s %12s %8s %6s %5s   %9s %7s %7s %6s   %9s %7s %7s %6s\n", "size(B)", "count",
               "type", "redop", "root", "time(us)", "algbw", "busbw", "#wrong", "time(us)", "algbw",
               "busbw", "#wrong");
        printf("# %46s   %-32s   %-32s\n", "", "out-of-place (GB/s)", "in-place (GB/s)");
    }
    double bw_sum = 0;
    int bw_n = 0;
    for (size_t size = min; size <= max; size *= factor) {
        /* count: elements of the (per-rank) buffer the API takes */
        size_t count = k == K_BARRIER ? 0 : size / es / (per_rank ? (size_t)n : 1);
        size_t bytes = count * es * (per_rank ? (size_t)n : 1);
        double t[2];
        double wrong[2] = {0, 0};
        for (int inplace = 0; inplace < 2; inplace++) {
            /* the per-rank input: its own block (allgather) or its full buffer */
            size_t in_elems = k == K_ALLGATHER ? count : per_rank ? count * (size_t)n : count;
            char *in = sbuf, *out = rbuf;
            if (inplace) {
                in = k == K_ALLGATHER ? rbuf + (size_t)rank * count * es : rbuf;
                out = rbuf;
            }
            double busy = 0; /* -W: the time inside the collective calls */
            for (int it = 0; it < warmup + iters + 1; it++) {
                if (it == warmup)
                    CHECK(tide_barrier(comm));
                if (it == warmup)
                    t[inplace] = perf_now_s();
                if (it == warmup + iters) {
                    t[inplace] = (rewrite ? busy : perf_now_s() - t[inplace]) / iters;
                    if (!check)
                        break;
                    for (size_t i = 0; i < in_elems; i++)
                        ((float *)in)[i] = (float)((rank + 1) * (int)(i % 7 + 1));
                }
                if (rewrite && it < warmup + iters) { /* not over the check's input */
                    memset(in, it & 0x3f, in_elems * es);
                    double t0 = perf_now_s();
                    CHECK(run_coll(k, in, out, count, dt, op, root, comm));
                    double d = perf_now_s() - t0;
                    busy += it >= warmup ? d : 0;
                    if (pct && it >= warmup)
                        lat[it - warmup] = d;
                } else if (pct && it >= warmup && it < warmup + iters) {
                    double t0 = perf_now_s();
                    CHECK(run_coll(k, in, out, count, dt, op, root, comm));
                    lat[it - warmup] = perf_now_s() - t0;
                } else {
                    CHECK(run_coll(k, in, out, count, dt, op, root, comm));
                }
            }
            if (check)
                wrong[inplace] = (double)check_output(k, (float *)out, count, rank, n, root, op);
            if (pct) { /* median, 99th percentile, slowest: of the slowest rank at each */
                qsort(lat, (size_t)iters, sizeof(*lat), cmp_double);
                pcts[inplace][0] = lat[(iters - 1) / 2];
                pcts[inplace][1] = lat[(size_t)((iters - 1) * 0.99)];
                pcts[inplace][2] = lat[iters - 1];
                CHECK(
                    tide_allreduce(pcts[inplace], pcts[inplace], 3, TIDE_FLOAT64, TIDE_MAX, comm));
            }
            /* the slowest rank's time, the wrong elements of all */
            CHECK(tide_allreduce(&t[inplace], &t[inplace], 1, TIDE_FLOAT64, TIDE_MAX, comm));
            CHECK(
                tide_allreduce(&wrong[inplace], &wrong[inplace], 1, TIDE_FLOAT64, TIDE_SUM, comm));
        }
        double alg[2] = {bytes / t[0] / 1e9, bytes / t[1] / 1e9};
        double f = bus_factor(k, n);
        if (rank == 0)
            printf(
                "  %10zu %12zu %8s %6s %5d   %9.2f %7.3f %7.3f %6.0f   %9.2f %7.3f %7.3f %6.0f\n",
                bytes, count, dtype_names[dt],
                k == K_ALLREDUCE || k == K_REDUCE || k == K_REDUCE_SCATTER ? op_names[op] : "none",
                rooted ? root : -1, t[0] * 1e6, alg[0], alg[0] * f, check ? wrong[0] : -1.0,
                t[1] * 1e6, alg[1], alg[1] * f, check ? wrong[1] : -1.0);
        if (rank == 0 && pct)
            printf("# %10zu per operation (us): out-of-place p50 %.2f p99 %.2f max %.2f, "
                   "in-place p50 %.2f p99 %.2f max %.2f\n",
                   bytes, pcts[0][0] * 1e6, pcts[0][1] * 1e6, pcts[0][2] * 1e6, pcts[1][0] * 1e6,
                   pcts[1][1] * 1e6, pcts[1][2] * 1e6);
        fflush(stdout);
        bw_sum += alg[0] * f + alg[1] * f;
        bw_n += 2;
    }
    if (rank == 0)
        printf("# Avg bus bandwidth    : %g GB/s\n", bw_sum / bw_n);
    if (tmem) {
        CHECK(tide_mem_free(sbuf));
        CHECK(tide_mem_free(rbuf));
    } else {
        free(sbuf);
        free(rbuf);
    }
    free(lat);
    CHECK(tide_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "p2p") == 0)
        return perf_p2p(argc - 1, argv + 1);
    for (int k = 0; argc >= 2 && k < (int)(sizeof(kinds) / sizeof(kinds[0])); k++)
        if (strcmp(argv[1], kinds[k].name) == 0)
            return perf_coll((kind_t)k, argc - 1, argv + 1);
    fprintf(stderr, "usage: tide_perf p2p|allreduce|allgather|broadcast|reduce_scatter|reduce|"
                    "alltoall|barrier [options]\n");
    return 2;
}
