/*
 * Collective correctness matrix, run by every rank (public API only):
 *
 *   mp_coll [quick]
 *
 * Every collective with counts 0, 1, 7, primes and a size that crosses
 * chunk boundaries; every dtype x op (reductions); in place and out of
 * place; roots 0, n/2 and n-1; nonblocking operations several at a time;
 * send/recv around a ring; invalid arguments. Inputs are small integers
 * (and, for products, +-powers of two), so sums, products, min and max are
 * exact in every type and the expected result is computed independently on
 * every rank; AVG is checked with a stated tolerance (1e-6 relative for
 * float/double, 1e-2 for fp16/bf16; integers exact, truncated).
 * MP_COLL_MEM=all (or mixed: even ranks only) allocates the buffers of
 * allreduce, allgather and broadcast with tide_mem_alloc, which peers on
 * this host map.
 * Prints "rank r: N checks, M wrong" and exits non-zero if M > 0.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"

static int rank, nranks;
static long checks, wrong;

#define CHECK(call)                                                                                \
    do {                                                                                           \
        tide_status_t st_ = (call);                                                                \
        if (st_ != TIDE_SUCCESS) {                                                                 \
            fprintf(stderr, "rank %d: %s: %s\n", rank, #call, tide_status_str(st_));               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------- value encoding */

static uint16_t f2h(float f)
{
    /* exact for the small values used here (integers, powers of two) */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (!exp)
        return (uint16_t)sign;
    return (uint16_t)(sign | ((exp - 112) << 10) | (man >> 13));
}

static float h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t u = exp ? sign | ((exp + 112) << 23) | (man << 13) : sign;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f2b(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static float b2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static const tide_dtype_t all_dtypes[] = {TIDE_INT8,    TIDE_UINT8,  TIDE_INT32,   TIDE_UINT32,
                                          TIDE_INT64,   TIDE_UINT64, TIDE_FLOAT16, TIDE_BFLOAT16,
                                          TIDE_FLOAT32, TIDE_FLOAT64};

static bool is_float(tide_dtype_t d)
{
    return d >= TIDE_FLOAT16;
}

/* Input element i of rank r, as a double (exactly representable). */
static double input(tide_dtype_t d, tide_redop_t op, int r, size_t i)
{
    if (op == TIDE_PROD) {
        static const double f[] = {1, -1, 2, 0.5};
        double v = f[(r * 3 + i) % 4];
        return is_float(d) ? v : (double)((r + i) % 3 + 1); /* ints: 1..3 */
    }
    bool unsig = d == TIDE_UINT8 || d == TIDE_UINT32 || d == TIDE_UINT64;
    long v = (long)((r * 7 + i * 3) % 23) - (unsig ? 0 : 11);
    return (double)v;
}

/* Store v in element i. Integers go through 64 bits first: converting a
 * double that is out of a narrow type's range straight to it is undefined
 * (wrapped products, e.g. 216 for int8), 64-bit to narrow is not. */
static void store(tide_dtype_t d, void *p, size_t i, double v)
{
    int64_t s64 = (v >= -9.2e18 && v <= 9.2e18) ? (int64_t)v : 0;
    uint64_t u64 = v >= 0 && v < 1.8e19 ? (uint64_t)v : (uint64_t)s64;
    switch (d) {
    case TIDE_INT8:
        ((int8_t *)p)[i] = (int8_t)(uint8_t)u64;
        break;
    case TIDE_UINT8:
        ((uint8_t *)p)[i] = (uint8_t)u64;
        break;
    case TIDE_INT32:
        ((int32_t *)p)[i] = (int32_t)(uint32_t)u64;
        break;
    case TIDE_UINT32:
        ((uint32_t *)p)[i] = (uint32_t)u64;
        break;
    case TIDE_INT64:
        ((int64_t *)p)[i] = (int64_t)u64;
        break;
    case TIDE_UINT64:
        ((uint64_t *)p)[i] = u64;
        break;
    case TIDE_FLOAT16:
        ((uint16_t *)p)[i] = f2h((float)v);
        break;
    case TIDE_BFLOAT16:
        ((uint16_t *)p)[i] = f2b((float)v);
        break;
    case TIDE_FLOAT32:
        ((float *)p)[i] = (float)v;
        break;
    default:
        ((double *)p)[i] = v;
    }
}

static double load(tide_dtype_t d, const void *p, size_t i)
{
    switch (d) {
    case TIDE_INT8:
        return ((const int8_t *)p)[i];
    case TIDE_UINT8:
        return ((const uint8_t *)p)[i];
    case TIDE_INT32:
        return ((const int32_t *)p)[i];
    case TIDE_UINT32:
        return ((const uint32_t *)p)[i];
    case TIDE_INT64:
        return (double)((const int64_t *)p)[i];
    case TIDE_UINT64:
        return (double)((const uint64_t *)p)[i];
    case TIDE_FLOAT16:
        return h2f(((const uint16_t *)p)[i]);
    case TIDE_BFLOAT16:
        return b2f(((const uint16_t *)p)[i]);
    case TIDE_FLOAT32:
        return ((const float *)p)[i];
    default:
        return ((const double *)p)[i];
    }
}

/* The reduction over ranks [0, n) of element i, with the type's rules
 * (integer sums and products wrap: compared modulo the type's width). */
static double expect_reduced(tide_dtype_t d, tide_redop_t op, size_t i)
{
    double acc = input(d, op, 0, i);
    for (int r = 1; r < nranks; r++) {
        double v = input(d, op, r, i);
        if (op == TIDE_SUM || op == TIDE_AVG)
            acc += v;
        else if (op == TIDE_PROD)
            acc *= v;
        else if (op == TIDE_MIN)
            acc = v < acc ? v : acc;
        else
            acc = v > acc ? v : acc;
    }
    if (op == TIDE_AVG)
        acc = is_float(d) ? acc / nranks : trunc(acc / nranks);
    return acc;
}

static void expect_eq(tide_dtype_t d, tide_redop_t op, double got, double want, const char *what,
                      size_t i)
{
    checks++;
    bool ok;
    if (!is_float(d)) {
        /* compare modulo the width: store both and compare the stored bits */
        char a[8] = {0}, b[8] = {0};
        store(d, a, 0, got);
        store(d, b, 0, fmod(want, 18446744073709551616.0));
        ok = memcmp(a, b, tide_dtype_size(d)) == 0;
    } else if (op == TIDE_AVG) {
        double tol = d == TIDE_FLOAT16 || d == TIDE_BFLOAT16 ? 1e-2 : 1e-6;
        ok = fabs(got - want) <= tol * fmax(1.0, fabs(want));
    } else {
        ok = got == want;
    }
    if (!ok && wrong++ < 10)
        fprintf(stderr, "rank %d: %s: element %zu is %.9g, expected %.9g\n", rank, what, i, got,
                want);
}

static void fill(tide_dtype_t d, tide_redop_t op, void *p, size_t count, int r)
{
    for (size_t i = 0; i < count; i++)
        store(d, p, i, input(d, op, r, i));
}

/* ------------------------------------------------------------ collectives */

/* Buffers of allreduce, allgather and broadcast: Tide memory where
 * MP_COLL_MEM says so (all: every rank's; mixed: even ranks'), else
 * malloc'd. */
static bool tide_mem;

static void *buf_alloc(size_t len)
{
    void *p = NULL;
    if (tide_mem)
        CHECK(tide_mem_alloc(len, &p));
    else
        p = malloc(len);
    return p;
}

static void buf_free(void *p)
{
    if (tide_mem)
        CHECK(tide_mem_free(p));
    else
        free(p);
}

static void t_allreduce(tide_comm_t *comm, size_t count, bool in_place)
{
    /* one pair of buffers for every type and op, as programs reuse theirs */
    char *s = buf_alloc(count * 8 + 16), *r = buf_alloc(count * 8 + 16);
    for (size_t di = 0; di < sizeof(all_dtypes) / sizeof(all_dtypes[0]); di++) {
        tide_dtype_t d = all_dtypes[di];
        size_t es = tide_dtype_size(d);
        for (int op = 0; op < TIDE_REDOP_COUNT; op++) {
            fill(d, (tide_redop_t)op, s, count, rank);
            if (in_place)
                memcpy(r, s, count * es);
            CHECK(tide_allreduce(in_place ? r : s, r, count, d, (tide_redop_t)op, comm));
            for (size_t i = 0; i < count; i++)
                expect_eq(d, (tide_redop_t)op, load(d, r, i),
                          expect_reduced(d, (tide_redop_t)op, i), "allreduce", i);
        }
    }
    buf_free(s);
    buf_free(r);
}

static void t_reduce(tide_comm_t *comm, size_t count, int root)
{
    tide_dtype_t dts[] = {TIDE_INT32, TIDE_FLOAT16, TIDE_FLOAT64};
    for (int di = 0; di < 3; di++) {
        tide_dtype_t d = dts[di];
        size_t es = tide_dtype_size(d);
        for (int op = 0; op < TIDE_REDOP_COUNT; op++) {
            char *s = malloc(count * es + 16), *r = malloc(count * es + 16);
            fill(d, (tide_redop_t)op, s, count, rank);
            CHECK(tide_reduce(s, r, count, d, (tide_redop_t)op, root, comm));
            for (size_t i = 0; rank == root && i < count; i++)
                expect_eq(d, (tide_redop_t)op, load(d, r, i),
                          expect_reduced(d, (tide_redop_t)op, i), "reduce", i);
            free(s);
            free(r);
        }
    }
}

static void t_reduce_scatter(tide_comm_t *comm, size_t count)
{
    tide_dtype_t dts[] = {TIDE_UINT8, TIDE_BFLOAT16, TIDE_FLOAT32};
    for (int di = 0; di < 3; di++) {
        tide_dtype_t d = dts[di];
        size_t es = tide_dtype_size(d), total = count * (size_t)nranks;
        /* out of place; in place (recvbuf == sendbuf); recvbuf at this
         * rank's own block of sendbuf */
        for (int op = 0; op < TIDE_REDOP_COUNT * 3; op++) {
            int where = op / TIDE_REDOP_COUNT;
            tide_redop_t ro = (tide_redop_t)(op % TIDE_REDOP_COUNT);
            char *s = malloc(total * es + 16), *r = malloc(count * es + 16);
            char *out = where == 0 ? r : where == 1 ? s : s + (size_t)rank * count * es;
            fill(d, ro, s, total, rank);
            CHECK(tide_reduce_scatter(s, out, count, d, ro, comm));
            for (size_t i = 0; i < count; i++)
                expect_eq(d, ro, load(d, out, i), expect_reduced(d, ro, (size_t)rank * count + i),
                          where == 0 ? "reduce_scatter" : "reduce_scatter in place", i);
            free(s);
            free(r);
        }
    }
}

static void t_allgather(tide_comm_t *comm, size_t count, bool in_place)
{
    tide_dtype_t d = TIDE_INT64;
    size_t es = 8, total = count * (size_t)nranks;
    char *s = buf_alloc(count * es + 16), *r = buf_alloc(total * es + 16);
    fill(d, TIDE_SUM, s, count, rank * 100);
    if (in_place)
        memcpy(r + (size_t)rank * count * es, s, count * es);
    CHECK(tide_allgather(in_place ? r + (size_t)rank * count * es : s, r, count, d, comm));
    for (int q = 0; q < nranks; q++)
        for (size_t i = 0; i < count; i++)
            expect_eq(d, TIDE_SUM, load(d, r, (size_t)q * count + i),
                      input(d, TIDE_SUM, q * 100, i), "allgather", i);
    buf_free(s);
    buf_free(r);
}

static void t_broadcast(tide_comm_t *comm, size_t count, int root, bool in_place)
{
    tide_dtype_t d = TIDE_UINT32;
    size_t es = 4;
    char *s = buf_alloc(count * es + 16), *r = buf_alloc(count * es + 16);
    fill(d, TIDE_SUM, s, count, 1000 + root);
    memset(r, 0xee, count * es);
    if (in_place && rank == root)
        memcpy(r, s, count * es);
    CHECK(tide_broadcast(in_place ? r : s, r, count, d, root, comm));
    for (size_t i = 0; i < count; i++)
        expect_eq(d, TIDE_SUM, load(d, r, i), input(d, TIDE_SUM, 1000 + root, i), "broadcast", i);
    buf_free(s);
    buf_free(r);
}

static void t_alltoall(tide_comm_t *comm, size_t count, bool in_place)
{
    tide_dtype_t d = TIDE_INT32;
    size_t es = 4, total = count * (size_t)nranks;
    char *s = malloc(total * es + 16), *r = malloc(total * es + 16);
    /* block j of rank q holds values of "q*64 + j" */
    for (int j = 0; j < nranks; j++)
        fill(d, TIDE_SUM, s + (size_t)j * count * es, count, rank * 64 + j);
    if (in_place)
        memcpy(r, s, total * es);
    CHECK(tide_alltoall(in_place ? r : s, r, count, d, comm));
    for (int q = 0; q < nranks; q++)
        for (size_t i = 0; i < count; i++)
            expect_eq(d, TIDE_SUM, load(d, r, (size_t)q * count + i),
                      input(d, TIDE_SUM, q * 64 + rank, i), "alltoall", i);
    free(s);
    free(r);
}

static void t_sendrecv(tide_comm_t *comm, size_t count)
{
    if (nranks < 2)
        return;
    tide_dtype_t d = TIDE_FLOAT64;
    double *s = malloc(count * 8 + 16), *r = malloc(count * 8 + 16);
    fill(d, TIDE_SUM, s, count, rank + 500);
    int to = (rank + 1) % nranks, from = (rank + nranks - 1) % nranks;
    tide_work_t *w;
    /* Operations run in issue order: even ranks send first, odd ones receive
     * first, so the ring exchange never waits in a cycle. */
    if (rank % 2 == 0) {
        CHECK(tide_isend(s, count, d, to, comm, &w));
        CHECK(tide_recv(r, count, d, from, comm));
        CHECK(tide_wait(w, -1));
    } else {
        CHECK(tide_irecv(r, count, d, from, comm, &w));
        CHECK(tide_send(s, count, d, to, comm));
        CHECK(tide_wait(w, -1));
    }
    for (size_t i = 0; i < count; i++)
        expect_eq(d, TIDE_SUM, r[i], input(d, TIDE_SUM, from + 500, i), "send/recv", i);
    free(s);
    free(r);
}

static void t_nonblocking(tide_comm_t *comm)
{
    enum { K = 6, N = 3001 };
    float *buf[K];
    tide_work_t *w[K];
    for (int k = 0; k < K; k++) {
        buf[k] = malloc(N * sizeof(float));
        fill(TIDE_FLOAT32, TIDE_SUM, buf[k], N, rank + k);
        CHECK(tide_iallreduce(buf[k], buf[k], N, TIDE_FLOAT32, TIDE_SUM, comm, &w[k]));
    }
    CHECK(tide_barrier(comm)); /* a blocking call queues behind them */
    for (int k = K - 1; k >= 0; k--) {
        tide_status_t st;
        while ((st = tide_test(w[k])) == TIDE_IN_PROGRESS)
            ;
        CHECK(st);
        for (size_t i = 0; i < N; i++) {
            double want = 0;
            for (int r = 0; r < nranks; r++)
                want += input(TIDE_FLOAT32, TIDE_SUM, r + k, i);
            expect_eq(TIDE_FLOAT32, TIDE_SUM, buf[k][i], want, "iallreduce", i);
        }
        free(buf[k]);
    }
}

static void t_invalid(tide_comm_t *comm)
{
    int x = 0;
    tide_work_t *w;
    struct {
        tide_status_t got;
        const char *what;
    } cases[] = {
        {tide_allreduce(NULL, &x, 1, TIDE_INT32, TIDE_SUM, comm), "NULL sendbuf"},
        {tide_allreduce(&x, &x, 1, (tide_dtype_t)99, TIDE_SUM, comm), "unknown dtype"},
        {tide_allreduce(&x, &x, 1, TIDE_INT32, (tide_redop_t)99, comm), "unknown op"},
        {tide_allreduce(&x, &x, 1, TIDE_INT32, TIDE_SUM, NULL), "NULL comm"},
        {tide_broadcast(&x, &x, 1, TIDE_INT32, nranks, comm), "root out of range"},
        {tide_reduce(&x, &x, 1, TIDE_INT32, TIDE_SUM, -1, comm), "negative root"},
        {tide_send(&x, 1, TIDE_INT32, rank, comm), "send to self"},
        {tide_recv(&x, 1, TIDE_INT32, nranks + 3, comm), "recv from nowhere"},
        {tide_iallreduce(&x, &x, 1, TIDE_INT32, TIDE_SUM, comm, NULL), "NULL work"},
        {tide_allgather(&x, NULL, 1, TIDE_INT32, comm), "NULL recvbuf"},
        {tide_wait(NULL, 0), "NULL wait"},
        {tide_ibarrier(comm, NULL), "NULL work for ibarrier"},
        {tide_test(NULL), "NULL test"},
        {tide_iallreduce(&x, &x, SIZE_MAX / 2, TIDE_INT32, TIDE_SUM, comm, &w), "huge count"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        checks++;
        if (cases[i].got != TIDE_ERR_INVALID && wrong++ < 10)
            fprintf(stderr, "rank %d: invalid case '%s' returned %s\n", rank, cases[i].what,
                    tide_status_str(cases[i].got));
    }
}

/* Direct broadcast with readers expecting fewer elements than the root
 * has: the root writes into the readers' memory, so both sides must see
 * the lengths differ, refuse, and leave what follows the readers' buffers
 * alone. Only where the direct broadcast is forced (all local). */
static void t_bcast_mismatch(tide_comm_t *comm)
{
    const char *algo = getenv("TIDE_ALGO");
    if (!algo || strcmp(algo, "direct") != 0 || nranks < 2)
        return;
    size_t full = 65536, count = rank == 0 ? full : full / 2;
    unsigned char *buf = malloc(full * 4);
    memset(buf, rank == 0 ? 0x11 : 0x5a, full * 4); /* the guard differs from the root's data */
    tide_status_t st = tide_broadcast(buf, buf, count, TIDE_FLOAT32, 0, comm);
    checks++;
    if (st != TIDE_ERR_INVALID && wrong++ < 10)
        fprintf(stderr, "rank %d: mismatched broadcast returned %s\n", rank, tide_status_str(st));
    for (size_t i = count * 4; rank != 0 && i < full * 4; i++) {
        checks++;
        if (buf[i] != 0x5a && wrong++ < 10) {
            fprintf(stderr, "rank %d: byte %zu past the buffer was written\n", rank, i);
            break;
        }
    }
    free(buf);
}

/* A tiny allreduce whose counts differ between ranks, where it goes over
 * the board (all local, one-shot chosen or forced): every rank sees a
 * peer's length differ from its own and refuses; the next allreduce works. */
static void t_allreduce_mismatch(tide_comm_t *comm)
{
    const char *algo = getenv("TIDE_ALGO"), *tr = getenv("TIDE_TRANSPORTS");
    if ((algo && strcmp(algo, "allreduce=oneshot") != 0) || (tr && !strstr(tr, "shm")) ||
        nranks < 2)
        return;
    int32_t v[4] = {1, 2, 3, 4};
    tide_status_t st = tide_allreduce(v, v, rank == 0 ? 4 : 2, TIDE_INT32, TIDE_SUM, comm);
    checks++;
    if (st != TIDE_ERR_INVALID && wrong++ < 10)
        fprintf(stderr, "rank %d: allreduce with mismatched counts returned %s\n", rank,
                tide_status_str(st));
    int32_t one = 1;
    CHECK(tide_allreduce(&one, &one, 1, TIDE_INT32, TIDE_SUM, comm));
    checks++;
    if (one != nranks && wrong++ < 10)
        fprintf(stderr, "rank %d: allreduce after the mismatch gave %d\n", rank, (int)one);
}

/* No rank leaves a barrier before every rank has entered it: in turn, one
 * rank dawdles, then leaves a mark in the file system (the ranks share a
 * host and a launcher) and enters; every rank must see the mark after the
 * barrier. */
static void t_barrier_order(tide_comm_t *comm)
{
    char path[96];
    for (int k = 0; k < 4 && k < nranks; k++) {
        int late = (k * 3) % nranks;
        snprintf(path, sizeof(path), "/tmp/tide-mp-coll-%d-barrier-%d", (int)getppid(), k);
        if (rank == late) {
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
            FILE *f = fopen(path, "w");
            if (f)
                fclose(f);
        }
        CHECK(tide_barrier(comm));
        FILE *f = fopen(path, "r");
        checks++;
        if (!f && wrong++ < 10)
            fprintf(stderr, "rank %d: left barrier %d before rank %d entered it\n", rank, k, late);
        if (f)
            fclose(f);
        CHECK(tide_barrier(comm)); /* everyone looked */
        if (rank == late)
            remove(path);
    }
}

/* A root that broadcasts and then leaves at once (tide_comm_destroy is
 * local): what it sent must still reach every rank whole, while their
 * answers to it (pipe credits, acknowledgements) find nobody there. On a
 * duplicate, so that the others go on with `comm` afterwards. */
static void t_root_leaves(tide_comm_t *comm)
{
    enum { OPS = 200, COUNT = 16 * 1024 };
    tide_comm_t *dup;
    CHECK(tide_comm_dup(comm, &dup));
    uint32_t *b = malloc(COUNT * sizeof(*b));
    for (int k = 0; k < OPS; k++) {
        for (size_t i = 0; i < COUNT; i++)
            b[i] = rank == 0 ? (uint32_t)(k * 100003u + i) : 0xeeeeeeeeu;
        CHECK(tide_broadcast(b, b, COUNT, TIDE_UINT32, 0, dup));
        for (size_t i = 0; i < COUNT; i++) {
            checks++;
            if (b[i] != (uint32_t)(k * 100003u + i) && wrong++ < 10)
                fprintf(stderr, "rank %d: broadcast %d from a leaving root: [%zu] = %u\n", rank, k,
                        i, b[i]);
        }
    }
    CHECK(tide_comm_destroy(dup)); /* the root first: it waits for nobody */
    free(b);
    CHECK(tide_barrier(comm));
}

/* Min and max where ranks hold NaNs and zeros of both signs: every rank
 * must end with the same bits (an algorithm that lets two ranks combine
 * the same values in different orders would not). */
static void t_agree(tide_comm_t *comm)
{
    enum { N = 64 };
    static const tide_dtype_t dts[] = {TIDE_FLOAT32, TIDE_FLOAT16};
    for (size_t d = 0; d < 2; d++)
        for (int op = TIDE_MIN; op <= TIDE_MAX; op++)
            for (int in_place = 0; in_place < 2; in_place++) {
                size_t es = tide_dtype_size(dts[d]);
                unsigned char in[N * 4], out[N * 4], *all = malloc((size_t)nranks * N * 4);
                for (size_t i = 0; i < N; i++) {
                    float v = (float)rank;
                    if (i % 4 == 0 && (int)(i / 4) % nranks == rank)
                        v = NAN;
                    else if (i % 4 == 1)
                        v = rank % 2 ? -0.0f : 0.0f;
                    else if (i % 4 == 2)
                        v = rank % 2 ? -NAN : NAN;
                    store(dts[d], in, i, v);
                }
                if (in_place)
                    memcpy(out, in, N * es);
                CHECK(tide_allreduce(in_place ? out : in, out, N, dts[d], (tide_redop_t)op, comm));
                CHECK(tide_allgather(out, all, N * es, TIDE_UINT8, comm));
                for (int r = 1; r < nranks; r++) {
                    checks++;
                    if (memcmp(all, all + (size_t)r * N * es, N * es) != 0 && wrong++ < 10)
                        fprintf(stderr, "rank %d: %s %s%s: ranks 0 and %d hold different bits\n",
                                rank, is_float(dts[d]) && es == 4 ? "float" : "half",
                                op == TIDE_MIN ? "min" : "max", in_place ? " in place" : "", r);
                }
                free(all);
            }
}

/* -------------------------------------------- split, dup, concurrency */

typedef struct thread_arg {
    tide_comm_t *comm;
    int base; /* keeps the threads' data apart */
    long bad;
} thread_arg_t;

/* 40 allreduces on one communicator; the expected sum is computed from
 * the world ranks of its members. */
static void *allreduce_loop(void *p)
{
    thread_arg_t *a = p;
    int n, me;
    uint32_t ids[64];
    tide_comm_size(a->comm, &n);
    tide_comm_rank(a->comm, &me);
    for (int r = 0; r < n && r < 64; r++)
        tide_comm_member_id(a->comm, r, &ids[r]); /* stable id = world rank here */
    enum { N = 5000 };
    int64_t *buf = malloc(N * sizeof(*buf));
    for (int it = 0; it < 40; it++) {
        for (size_t i = 0; i < N; i++)
            buf[i] = (int64_t)ids[me] * 1000 + a->base + it + (int64_t)i;
        if (tide_allreduce(buf, buf, N, TIDE_INT64, TIDE_SUM, a->comm) != TIDE_SUCCESS) {
            a->bad++;
            break;
        }
        for (size_t i = 0; i < N; i++) {
            int64_t want = 0;
            for (int r = 0; r < n; r++)
                want += (int64_t)ids[r] * 1000 + a->base + it + (int64_t)i;
            if (buf[i] != want && a->bad++ < 3)
                fprintf(stderr,
                        "rank %d (comm rank %d of %d): iteration %d element %zu is %lld, "
                        "expected %lld\n",
                        rank, me, n, it, i, (long long)buf[i], (long long)want);
        }
    }
    free(buf);
    return NULL;
}

static void t_split_concurrent(tide_comm_t *world)
{
    tide_comm_t *half, *dup, *solo;
    int hn, hr;
    CHECK(tide_comm_split(world, rank % 2, -rank, &half)); /* reversed order */
    CHECK(tide_comm_dup(world, &dup));
    CHECK(tide_comm_split(world, rank == 0 ? 7 : TIDE_COLOR_NONE, 0, &solo));
    CHECK(tide_comm_size(half, &hn));
    CHECK(tide_comm_rank(half, &hr));
    int want_n = (nranks + (rank % 2 ? 0 : 1)) / 2, want_r = 0;
    for (int r = rank + 2; r < nranks; r += 2)
        want_r++; /* higher world ranks of my parity come first */
    checks += 3;
    if (hn != want_n || hr != want_r || (rank == 0) != (solo != NULL)) {
        wrong++;
        fprintf(stderr, "rank %d: split gave rank %d of %d (expected %d of %d), solo %p\n", rank,
                hr, hn, want_r, want_n, (void *)solo);
    }
    pthread_t t[3];
    thread_arg_t arg[3] = {{world, 1, 0}, {half, 2, 0}, {dup, 3, 0}};
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, allreduce_loop, &arg[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        checks += 40;
        if (arg[i].bad && wrong++ < 10)
            fprintf(stderr, "rank %d: concurrent allreduce on communicator %d: %ld wrong\n", rank,
                    i, arg[i].bad);
    }
    if (solo) {
        int64_t x = 5;
        CHECK(tide_allreduce(&x, &x, 1, TIDE_INT64, TIDE_SUM, solo));
        checks++;
        wrong += x != 5;
        CHECK(tide_comm_destroy(solo));
    }
    CHECK(tide_comm_destroy(half));
    CHECK(tide_comm_destroy(dup));
    checks++;
    if (tide_comm_split(world, -5, 0, &half) != TIDE_ERR_INVALID)
        wrong++;
}

/* `soak N`: N allreduces of 2 MiB, each checked, while a test harness
 * breaks and restores links underneath. */
static void t_soak(tide_comm_t *comm, int iters)
{
    enum { N = 1 << 18 };
    int64_t *buf = malloc(N * sizeof(*buf));
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < N; i++)
            buf[i] = (int64_t)(i * 7 + (size_t)rank * 1000003 + (size_t)it);
        CHECK(tide_allreduce(buf, buf, N, TIDE_INT64, TIDE_SUM, comm));
        const char *marker = getenv("MP_COLL_SOAK_MARKER");
        if (it == 0 && rank == 0 && marker) { /* connected and moving: the harness may cut */
            FILE *f = fopen(marker, "w");
            if (f)
                fclose(f);
        }
        long bad = 0;
        for (size_t i = 0; i < N; i++) {
            int64_t want = (int64_t)nranks * (int64_t)(i * 7 + (size_t)it) +
                           (int64_t)1000003 * nranks * (nranks - 1) / 2;
            if (buf[i] != want && bad++ < 3)
                fprintf(stderr, "rank %d: soak iteration %d element %zu is %lld, expected %lld\n",
                        rank, it, i, (long long)buf[i], (long long)want);
        }
        checks += N;
        wrong += bad;
    }
    free(buf);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "quick") == 0; /* else "full" */
    tide_comm_t *comm;
    CHECK(tide_comm_init(&comm, NULL));
    CHECK(tide_comm_rank(comm, &rank));
    CHECK(tide_comm_size(comm, &nranks));
    const char *mem = getenv("MP_COLL_MEM");
    tide_mem = mem && (strcmp(mem, "all") == 0 || (strcmp(mem, "mixed") == 0 && rank % 2 == 0));
    if (argc > 2 && strcmp(argv[1], "soak") == 0) {
        t_soak(comm, atoi(argv[2]));
        CHECK(tide_barrier(comm));
        printf("rank %d: %ld checks, %ld wrong\n", rank, checks, wrong);
        CHECK(tide_comm_destroy(comm));
        return wrong ? 1 : 0;
    }

    static const size_t counts[] = {0, 1, 7, 61, 1031, 70001};
    size_t ncounts = quick ? 4 : sizeof(counts) / sizeof(counts[0]);
    int roots[3] = {0, nranks / 2, nranks - 1};
    for (size_t ci = 0; ci < ncounts; ci++) {
        size_t n = counts[ci];
        t_allreduce(comm, n, false);
        t_allreduce(comm, n, true);
        for (int ri = 0; ri < 3; ri++) {
            t_reduce(comm, n, roots[ri]);
            t_broadcast(comm, n, roots[ri], ri == 1);
        }
        t_reduce_scatter(comm, n > 2000 ? n / 8 : n);
        t_allgather(comm, n, false);
        t_allgather(comm, n, true);
        t_alltoall(comm, n > 2000 ? n / 8 : n, false);
        t_alltoall(comm, n > 2000 ? n / 8 : n, true);
        t_sendrecv(comm, n);
        CHECK(tide_barrier(comm));
    }
    t_nonblocking(comm);
    t_split_concurrent(comm);
    t_invalid(comm);
    t_bcast_mismatch(comm);
    t_allreduce_mismatch(comm);
    t_barrier_order(comm);
    t_agree(comm);
    t_root_leaves(comm);
    CHECK(tide_barrier(comm));
    printf("rank %d: %ld checks, %ld wrong\n", rank, checks, wrong);
    CHECK(tide_comm_destroy(comm));
    return wrong ? 1 : 0;
}
