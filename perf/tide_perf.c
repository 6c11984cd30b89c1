/*
 * tide_perf: Tide's benchmarks. Run under tiderun.
 *
 *   tiderun -n 2 tide_perf p2p [options]
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
 *   -t shm|tcp                transport (shm)
 *   -c                        contiguous blocks (Tide coalesces them); the
 *                             default leaves a gap after each block
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"

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
} opts_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        break;
    }
    return (size_t)v;
}

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
        double t0 = now_s();
        int iters = 0;
        do {
            for (int i = 0; i < nb; i++)
                memcpy(dst + block_offset(o, size, i), src + block_offset(o, size, i), size);
            iters++;
        } while (now_s() - t0 < 0.2);
        double gbs = (double)size * nb * iters / (now_s() - t0) / 1e9;
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

static void io_all(int fd, char *p, size_t n, int sending)
{
    while (n > 0) {
        ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            perror("tide_perf: reference stream");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* The same blocks over one plain blocking socket: rank 0 sends each block
 * with send(), rank 1 receives each into place and answers one byte per
 * batch. Both ranks call it. */
static double ref_socket(const opts_t *o, int rank, int fd, size_t size, int nb, char *buf)
{
    int iters = o->iters + o->warmup;
    char ack = 0;
    double t0 = 0;
    for (int it = 0; it < iters; it++) {
        if (it == o->warmup)
            t0 = now_s();
        for (int i = 0; i < nb; i++)
            io_all(fd, buf + block_offset(o, size, i), size, rank == 0);
        io_all(fd, &ack, 1, rank == 1);
    }
    return (double)size * nb * o->iters / (now_s() - t0) / 1e9;
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
            start[submitted] = now_s();
            CHECK(tide_batch_submit(e, req, (size_t)nb, 0, &inflight[submitted]));
            submitted++;
        }
        CHECK(tide_batch_wait(inflight[done], 60000));
        lat[done] = now_s() - start[done];
        CHECK(tide_batch_free(inflight[done]));
        done++;
        if (done == o->warmup)
            t0 = now_s();
    }
    double elapsed = now_s() - t0;
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
    fprintf(stderr, "usage: tiderun -n 2 tide_perf p2p [-b MIN] [-e MAX] [-f FACTOR] [-N BLOCKS] "
                    "[-n ITERS] [-w WARMUP] [-d DEPTH] [-o write|read] [-t shm|tcp] [-c]\n");
    exit(2);
}

static int perf_p2p(int argc, char **argv)
{
    opts_t o = {1024, 4u << 20, 4, 1538, 20, 3, 4, TIDE_OP_WRITE, TIDE_TRANSPORT_SHM, 0};
    int c, rank, n;
    while ((c = getopt(argc, argv, "b:e:f:N:n:w:d:o:t:c")) != -1) {
        switch (c) {
        case 'b':
            o.min = parse_size(optarg);
            break;
        case 'e':
            o.max = parse_size(optarg);
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
            o.transport = strcmp(optarg, "tcp") == 0 ? TIDE_TRANSPORT_TCP : TIDE_TRANSPORT_SHM;
            break;
        case 'c':
            o.contiguous = 1;
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
        printf("# tide_perf p2p: %s %s, %s blocks, %d batches in flight, reference: %s\n",
               o.op == TIDE_OP_WRITE ? "WRITE" : "READ",
               o.transport == TIDE_TRANSPORT_SHM ? "shm" : "tcp",
               o.contiguous ? "contiguous" : "scattered", o.depth,
               o.transport == TIDE_TRANSPORT_SHM ? "single-thread memcpy of the same blocks"
                                                 : "one plain blocking TCP socket stream");
        printf("# %10s %7s %10s %11s %11s %11s %10s %7s\n", "size(B)", "blocks", "GB/s",
               "Mblocks/s", "mean(us)", "p99(us)", "ref GB/s", "ratio");
    }
    for (size_t size = o.min; size <= o.max; size *= o.factor) {
        int nb = batch_blocks(&o, size);
        CHECK(tide_store_barrier(store, 2, -1));
        result_t r = {0};
        double ref;
        if (rank == 0)
            r = run_tide(&o, e, size, nb, seg, seg);
        CHECK(tide_store_barrier(store, 2, -1));
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

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "p2p") == 0)
        return perf_p2p(argc - 1, argv + 1);
    fprintf(stderr, "usage: tide_perf p2p [options]   (collectives come with the collectives)\n");
    return 2;
}
