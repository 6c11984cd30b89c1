/*
 * What a float-sum allreduce costs on this host with no library at
 * all: the fewest copies the transport allows and nothing else (no
 * framing, no acknowledgements, no fault tolerance), as a bound for what
 * Tide and Open MPI reach (docs/performance.md). Processes from fork, out
 * of place, the columns of tide_perf and mpi_coll_bench (busbw 2(n-1)/n).
 *
 *   tcp (2, 4 or 8 ranks): loopback TCP connections (TCP_NODELAY, 4 MiB
 *        buffers, reno where allowed), one per pair that exchanges.
 *        2 ranks: each sends the half of its input the peer owns (as much
 *        per call as the socket takes) and receives the peer's copy of its
 *        own half; what lands is summed into the output at once and sent
 *        back, straight from the output, into the peer's output. Per rank
 *        and byte of the buffer: one copy into the socket, one out of it,
 *        half a sum; the two phases overlap.
 *        4 or 8 ranks: recursive halving, then doubling (the schedule Tide
 *        picks over TCP at these counts): in each halving step a rank
 *        sends the half of its range the partner keeps and sums the
 *        partner's copy of its own half as it lands; the doubling steps
 *        send the range a rank owns straight from the output into the
 *        partner's. Sends and receives of a step run at once.
 *        Waits spin for 1 ms before poll() sleeps, as Tide's do; with more
 *        ranks than cores they yield the core between tries.
 *   cma (2-8 ranks): each rank owns a slice; its peers' inputs there are
 *        read with process_vm_readv, 256 KiB at a time, summed into its
 *        output and written into every peer's output with
 *        process_vm_writev (Tide's direct allreduce, without the library);
 *        shared counters mark the start and the end of each operation
 *        (waits spin, then yield the core).
 *
 *   bound_allreduce tcp|cma [-p RANKS] [-b MIN] [-e MAX] [-f F] [-n ITERS]
 *                   [-w WARMUP] [-W 0|1]
 *
 * -W 1 rewrites the input before every operation and times only the
 * operations, as tide_perf -W 1 does. Buffers are written before timing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "perf_util.h"

#define PIECE  (256 * 1024)
#define MAXR   8
#define WAIT_S 60   /* a rank that makes no progress this long has failed */
#define SPIN_S 1e-3 /* tcp: busy retries before poll() sleeps */

typedef struct shared {
    uint64_t arrived[MAXR]; /* operations each rank has entered (cma) */
    uint64_t done[MAXR];    /* operations each rank has finished */
    uint64_t out[MAXR];     /* each rank's output and input addresses */
    uint64_t in[MAXR];
    pid_t pid[MAXR];
    double t[MAXR]; /* each rank's time per operation */
    int n;          /* ranks */
} shared_t;

static void sum(float *dst, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = a[i] + b[i];
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Wait until every rank's v[r] reaches want: spin a little, then yield
 * the core (more ranks than cores). */
static void wait_all(const shared_t *sh, const uint64_t *v, uint64_t want, const char *what)
{
    double deadline = 0;
    for (int r = 0; r < sh->n; r++)
        for (int spins = 0; __atomic_load_n(&v[r], __ATOMIC_ACQUIRE) < want; spins++) {
            if (spins < 2000)
                continue;
            sched_yield();
            if (deadline == 0) {
                deadline = perf_now_s() + WAIT_S;
            } else if (perf_now_s() > deadline) {
                fprintf(stderr, "bound_allreduce: rank %d %s operation %llu within %d s\n", r, what,
                        (unsigned long long)want, WAIT_S);
                exit(1);
            }
        }
}

/* One non-blocking send (out) or receive of buf[*off, end); false when
 * nothing moved. An error or the peer's end of stream ends the program. */
static bool io_step(int fd, bool out, char *buf, size_t end, size_t *off)
{
    ssize_t k = out ? send(fd, buf + *off, end - *off, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : recv(fd, buf + *off, end - *off, MSG_DONTWAIT);
    if (k > 0) {
        *off += (size_t)k;
        return true;
    }
    if ((k == 0 && !out) || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        die(out ? "send" : "recv");
    return false;
}

/* Wait for fd to be ready (spun SPIN_S first; the caller retries):
 * false when nothing happened within WAIT_S. */
static bool tcp_wait(int fd, bool out, double *idle_since, bool yield)
{
    if (*idle_since == 0) {
        *idle_since = perf_now_s(); /* spin a while first, as Tide's waits do */
    } else if (perf_now_s() - *idle_since > SPIN_S) {
        struct pollfd p = {fd, (short)(POLLIN | (out ? POLLOUT : 0)), 0};
        return poll(&p, 1, WAIT_S * 1000) != 0;
    } else if (yield) {
        sched_yield(); /* a rank we wait for may need this core */
    }
    return true;
}

/* One tcp allreduce of count floats: my half is [lo, lo + h). */
static void op_tcp(int fd, int rank, const float *in, float *out, float *tmp, size_t count)
{
    size_t h = count / 2, lo = rank ? h : 0, plo = rank ? 0 : h;
    size_t mine = (rank ? count - h : h) * 4, theirs = (rank ? h : count - h) * 4;
    const char *s1 = (const char *)(in + plo); /* phase 1: the peer's half of my input */
    size_t s1_off = 0, r1_off = 0, s2_off = 0, r2_off = 0, summed = 0;
    char *r1 = (char *)tmp, *r2 = (char *)(out + plo);
    double idle_since = 0;
    while (s1_off < theirs || r1_off < mine || s2_off < mine || r2_off < theirs) {
        bool moved = s1_off < theirs && io_step(fd, true, (char *)s1, theirs, &s1_off);
        if (r1_off < mine && io_step(fd, false, r1, mine, &r1_off)) {
            moved = true;
            size_t ready = r1_off / 4 * 4; /* sum what landed, whole floats */
            if (ready > summed) {
                sum(out + lo + summed / 4, in + lo + summed / 4, tmp + summed / 4,
                    (ready - summed) / 4);
                summed = ready;
            }
        }
        /* Phase 2 may only send what is summed, and only once phase 1's
         * sends are out (one byte stream). */
        if (s1_off == theirs && s2_off < summed)
            moved |= io_step(fd, true, (char *)(out + lo), summed, &s2_off);
        if (r1_off == mine && r2_off < theirs)
            moved |= io_step(fd, false, r2, theirs, &r2_off);
        if (moved) {
            idle_since = 0;
        } else if (!tcp_wait(fd, s1_off < theirs || s2_off < summed, &idle_since, false)) {
            fprintf(stderr,
                    "bound_allreduce: rank %d: nothing moved on the connection within %d s "
                    "(sent %zu + %zu, received %zu + %zu bytes)\n",
                    rank, WAIT_S, s1_off, s2_off, r1_off, r2_off);
            exit(1);
        }
    }
}

/* One step of recursive halving or doubling with one partner: send
 * slen bytes from s while len bytes land in r; with dst, what lands is
 * summed at once: dst = a + r. */
static void tcp_exchange(int fd, int rank, int partner, const char *s, size_t slen, char *r,
                         size_t rlen, float *dst, const float *a, bool yield)
{
    size_t soff = 0, roff = 0, summed = 0;
    double idle_since = 0;
    while (soff < slen || roff < rlen) {
        bool moved = soff < slen && io_step(fd, true, (char *)s, slen, &soff);
        if (roff < rlen && io_step(fd, false, r, rlen, &roff)) {
            moved = true;
            size_t ready = roff / 4 * 4;
            if (dst && ready > summed) {
                sum(dst + summed / 4, a + summed / 4, (const float *)r + summed / 4,
                    (ready - summed) / 4);
                summed = ready;
            }
        }
        if (moved) {
            idle_since = 0;
        } else if (!tcp_wait(fd, soff < slen, &idle_since, yield)) {
            fprintf(stderr,
                    "bound_allreduce: rank %d: nothing moved to or from rank %d within %d s "
                    "(sent %zu of %zu, received %zu of %zu bytes)\n",
                    rank, partner, WAIT_S, soff, slen, roff, rlen);
            exit(1);
        }
    }
}

/* One tcp allreduce of count floats over n = 4 or 8 ranks (a power of
 * two): recursive halving, then doubling. */
static void op_tcp_halving(const int *fds, int rank, int n, const float *in, float *out, float *tmp,
                           size_t count, bool yield)
{
    size_t lo[MAXR], hi[MAXR]; /* the range before each halving step */
    size_t a = 0, b = count;
    const float *src = in;
    int step = 0;
    for (int m = n / 2; m >= 1; m /= 2, step++) {
        int partner = rank ^ m;
        size_t mid = a + (b - a) / 2;
        bool low = (rank & m) == 0; /* keep [a, mid), send [mid, b); or the other way */
        size_t ka = low ? a : mid, kb = low ? mid : b, sa = low ? mid : a, sb = low ? b : mid;
        lo[step] = a;
        hi[step] = b;
        tcp_exchange(fds[partner], rank, partner, (const char *)(src + sa), (sb - sa) * 4,
                     (char *)tmp, (kb - ka) * 4, out + ka, src + ka, yield);
        src = out;
        a = ka;
        b = kb;
    }
    for (int m = 1; m < n; m *= 2) {
        int partner = rank ^ m;
        step--;
        size_t mid = lo[step] + (hi[step] - lo[step]) / 2;
        bool low = (rank & m) == 0;
        size_t pa = low ? mid : lo[step], pb = low ? hi[step] : mid; /* the partner's */
        tcp_exchange(fds[partner], rank, partner, (const char *)(out + a), (b - a) * 4,
                     (char *)(out + pa), (pb - pa) * 4, NULL, NULL, yield);
        a = lo[step];
        b = hi[step];
    }
}

/* One cma allreduce (the op-th): rank r owns elements [lo, lo + cnt). */
static void op_cma(shared_t *sh, int rank, uint64_t op, const float *in, float *out, float *tmp,
                   size_t count)
{
    int nr = sh->n;
    size_t lo = count * (size_t)rank / (size_t)nr,
           cnt = count * (size_t)(rank + 1) / (size_t)nr - lo;
    __atomic_store_n(&sh->arrived[rank], op, __ATOMIC_RELEASE);
    wait_all(sh, sh->arrived, op, "did not enter"); /* every input is ready */
    for (size_t off = 0; off < cnt; off += PIECE / 4) {
        size_t m = cnt - off < PIECE / 4 ? cnt - off : PIECE / 4;
        bool first = true;
        for (int p = 0; p < nr; p++) {
            if (p == rank)
                continue;
            struct iovec l = {tmp, m * 4},
                         r = {(void *)(uintptr_t)(sh->in[p] + (lo + off) * 4), m * 4};
            if (process_vm_readv(sh->pid[p], &l, 1, &r, 1, 0) != (ssize_t)(m * 4))
                die("process_vm_readv");
            sum(out + lo + off, first ? in + lo + off : out + lo + off, tmp, m);
            first = false;
        }
        for (int p = 0; p < nr; p++) {
            struct iovec l2 = {out + lo + off, m * 4},
                         r2 = {(void *)(uintptr_t)(sh->out[p] + (lo + off) * 4), m * 4};
            if (p != rank && process_vm_writev(sh->pid[p], &l2, 1, &r2, 1, 0) != (ssize_t)(m * 4))
                die("process_vm_writev");
        }
    }
    __atomic_store_n(&sh->done[rank], op, __ATOMIC_RELEASE);
    wait_all(sh, sh->done, op, "did not finish"); /* my output is whole, my input read */
}

static void sock_tune(int fd)
{
    int one = 1, buf = 4 << 20;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4); /* as Tide within a host */
}

/* A connection to every rank this one exchanges with (rank ^ 2^k): the
 * higher rank connects and names itself in its first byte. */
static void connect_partners(int rank, int n, const int *lfds, const struct sockaddr_in *a,
                             int *fds)
{
    int accepts = 0;
    for (int m = 1; m < n; m *= 2) {
        int p = rank ^ m;
        if (p > rank) {
            accepts++;
            continue;
        }
        char me = (char)rank;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)&a[p], sizeof(a[p])) != 0 ||
            send(fd, &me, 1, MSG_NOSIGNAL) != 1)
            die("connect");
        sock_tune(fd);
        fds[p] = fd;
    }
    for (; accepts > 0; accepts--) {
        char who = -1;
        int fd = accept(lfds[rank], NULL, NULL);
        if (fd < 0)
            die("accept");
        struct timeval tv = {.tv_sec = WAIT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (recv(fd, &who, 1, MSG_WAITALL) != 1 || who <= rank || who >= n ||
            (who ^ rank) & ((who ^ rank) - 1))
            die("accept: a rank that is no partner");
        sock_tune(fd);
        fds[(int)who] = fd;
    }
}

static void run(int rank, bool tcp, const int *fds, shared_t *sh, const perf_sweep_t *sw)
{
    size_t min = sw->min, max = sw->max, factor = sw->factor;
    int iters = sw->iters, warmup = sw->warmup, rewrite = sw->rewrite;
    size_t cap = max / 4 + 16;
    float *in = malloc(cap * 4), *out = malloc(cap * 4), *tmp = malloc((max + PIECE) + 64);
    if (!in || !out || !tmp)
        die("malloc");
    memset(out, 0, cap * 4);
    memset(tmp, 0, max + PIECE + 64);
    for (size_t i = 0; i < cap; i++)
        in[i] = (float)((i + (size_t)rank) % 1000);
    sh->in[rank] = (uint64_t)(uintptr_t)in;
    sh->out[rank] = (uint64_t)(uintptr_t)out;
    sh->pid[rank] = getpid();
    uint64_t op = 0;
    bool oversubscribed = sysconf(_SC_NPROCESSORS_ONLN) < sh->n;
    for (size_t size = min; size <= max; size *= factor) {
        size_t count = size / 4;
        double t0 = 0, busy = 0, t1 = 0;
        for (int it = 0; it < warmup + iters; it++) {
            if (rewrite)
                memset(in, it & 0x3f, count * 4);
            if (it == warmup || rewrite)
                t1 = perf_now_s();
            if (it == warmup)
                t0 = t1;
            if (tcp && sh->n == 2)
                op_tcp(fds[rank ^ 1], rank, in, out, tmp, count);
            else if (tcp)
                op_tcp_halving(fds, rank, sh->n, in, out, tmp, count, oversubscribed);
            else
                op_cma(sh, rank, ++op, in, out, tmp, count);
            if (rewrite && it >= warmup)
                busy += perf_now_s() - t1;
        }
        double t = (rewrite ? busy : perf_now_s() - t0) / iters;
        /* every rank's figure, then the slowest, as the other benchmarks */
        sh->t[rank] = t;
        __atomic_store_n(&sh->arrived[rank], ++op, __ATOMIC_RELEASE);
        wait_all(sh, sh->arrived, op, "did not enter");
        __atomic_store_n(&sh->done[rank], op, __ATOMIC_RELEASE);
        wait_all(sh, sh->done, op, "did not finish");
        double tmax = 0;
        for (int r = 0; r < sh->n; r++)
            tmax = sh->t[r] > tmax ? sh->t[r] : tmax;
        size_t wrong = 0;
        for (size_t i = 0; i < count && !rewrite; i++) {
            float want = 0;
            for (int r = 0; r < sh->n; r++)
                want += (float)((i + (size_t)r) % 1000);
            wrong += out[i] != want;
        }
        double alg = (double)size / tmax / 1e9;
        if (rank == 0)
            printf("  %10zu %12zu %8s %6s %5d   %9.2f %7.3f %7.3f %6zu\n", size, count, "float",
                   "sum", -1, tmax * 1e6, alg, alg * 2 * (sh->n - 1) / sh->n, wrong);
        fflush(stdout);
    }
    free(in);
    free(out);
    free(tmp);
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "tcp") != 0 && strcmp(argv[1], "cma") != 0)) {
        fprintf(stderr, "usage: bound_allreduce tcp|cma [-p RANKS] [-b MIN] [-e MAX] [-f F] "
                        "[-n ITERS] [-w WARMUP] [-W 0|1]\n");
        return 2;
    }
    bool tcp = strcmp(argv[1], "tcp") == 0;
    perf_sweep_t sw = PERF_SWEEP_DEFAULTS;
    int nranks = 2, c;
    while ((c = getopt(argc - 1, argv + 1, "p:" PERF_SWEEP_OPTS)) != -1) {
        if (c == 'p')
            nranks = atoi(optarg);
        else if (!perf_sweep_opt(&sw, c, optarg))
            return 2;
    }
    if (!perf_sweep_ok(&sw, 8, (size_t)1 << 31) || nranks < 2 || nranks > MAXR ||
        (tcp && (nranks & (nranks - 1)))) {
        fprintf(stderr, "bound_allreduce: bad option value (tcp: 2, 4 or 8 ranks; cma: 2-%d)\n",
                MAXR);
        return 2;
    }
    shared_t *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    memset(sh, 0, sizeof(*sh));
    sh->n = nranks;
    int lfds[MAXR], fds[MAXR];
    struct sockaddr_in a[MAXR];
    for (int r = 0; tcp && r < nranks; r++) { /* every rank's listening socket, before fork */
        socklen_t alen = sizeof(a[r]);
        a[r] =
            (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        lfds[r] = socket(AF_INET, SOCK_STREAM, 0);
        if (lfds[r] < 0 || bind(lfds[r], (struct sockaddr *)&a[r], sizeof(a[r])) != 0 ||
            listen(lfds[r], MAXR) != 0 ||
            getsockname(lfds[r], (struct sockaddr *)&a[r], &alen) != 0)
            die("listen");
    }
    printf("# bound_allreduce %s: %d ranks, float, %d iterations (%d warmup)%s\n", argv[1], nranks,
           sw.iters, sw.warmup, sw.rewrite ? ", inputs rewritten" : "");
    fflush(stdout);
    int rank = 0;
    pid_t pids[MAXR];
    for (int r = 1; r < nranks; r++) {
        pids[r] = fork();
        if (pids[r] < 0)
            die("fork");
        if (pids[r] == 0) {
            rank = r;
            break;
        }
    }
    if (tcp)
        connect_partners(rank, nranks, lfds, a, fds);
    run(rank, tcp, fds, sh, &sw);
    if (rank > 0)
        _exit(0);
    int ok = 1;
    for (int r = 1; r < nranks; r++) {
        int status;
        ok &= waitpid(pids[r], &status, 0) == pids[r] && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0;
    }
    return ok ? 0 : 1;
}
