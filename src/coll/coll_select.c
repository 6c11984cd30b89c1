/*
 * Algorithm selection: a table by collective, where the ranks are, rank
 * count and message size, and the TIDE_ALGO override ("ring", or per collective:
 * "allreduce=rd,broadcast=tree"). TIDE_TRACE=1 logs, for every operation, what was chosen and over
 * what.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <stdio.h>
#include <string.h>
#include "coll_ctx.h"
#include "util_log.h"

static const coll_algo_t algos[] = {
    {"ring", COLL_ALLREDUCE, coll_allreduce_ring},
    {"rd", COLL_ALLREDUCE, coll_allreduce_rd},
    {"rabenseifner", COLL_ALLREDUCE, coll_allreduce_rabenseifner},
    {"direct", COLL_ALLREDUCE, coll_allreduce_direct},
    {"oneshot", COLL_ALLREDUCE, coll_allreduce_oneshot},
    {"ring", COLL_ALLGATHER, coll_allgather_ring},
    {"bruck", COLL_ALLGATHER, coll_allgather_bruck},
    {"rd", COLL_ALLGATHER, coll_allgather_rd},
    {"direct", COLL_ALLGATHER, coll_allgather_direct},
    {"tree", COLL_BROADCAST, coll_bcast_tree},
    {"chain", COLL_BROADCAST, coll_bcast_chain},
    {"direct", COLL_BROADCAST, coll_bcast_direct},
    {"ring", COLL_REDUCE_SCATTER, coll_reduce_scatter_ring},
    {"tree", COLL_REDUCE, coll_reduce_tree},
    {"chain", COLL_REDUCE, coll_reduce_chain},
    {"pairwise", COLL_ALLTOALL, coll_alltoall_pairwise},
    {"dissemination", COLL_BARRIER, coll_barrier_dissemination},
    {"board", COLL_BARRIER, coll_barrier_board},
    {"p2p", COLL_SEND, coll_sendrecv_p2p},
    {"p2p", COLL_RECV, coll_sendrecv_p2p},
};

/*
 * The default table. A row applies to a collective where the ranks are
 * (`on`), at a rank count (`min_ranks` .. `max_ranks`, 0: no limit; `pow2`:
 * powers of two only) and below a message size (`below` bytes, 0: any; the
 * size is the whole buffer, or one rank's block for allgather). The first
 * row that applies wins; a collective with no row takes its first
 * algorithm.
 *
 * The figures behind the rows: each algorithm forced in turn, three
 * rounds interleaved, the median (tide_perf -n 200-300; docs/performance.md
 * has the commands). On this project's 2-core machine:
 * - allreduce, all local: one-shot through the board for the smallest
 *   buffers (np=2 below 1 KiB: 8 B in 0.26-0.29 us against recursive
 *   doubling's 0.44-0.49, even at 1 KiB; np=3-8 to 2 KiB, the board's
 *   size: 8 B at np=4 1.5-1.9 us against 2.4-2.6, np=8 4.3 against 8.8,
 *   np=3 even at 2 KiB; over TCP it lost, 35 us against 25 at np=4).
 * - allreduce, all local with CMA: recursive doubling while latency rules
 *   (np=2 to 32 KiB, where it beat the ring by 1.2-1.4x; np=4 to 4 KiB),
 *   and at np=2 to 256 KiB, since its one exchange combines in place
 *   when the value fits in the partner's ring (medians of five
 *   interleaved rounds, out of place / in place, GB/s: 64 KiB 7.49 / 7.17
 *   against the ring's 7.32 / 6.53, 128 KiB 8.13 / 8.39 against 7.57 /
 *   7.59, 256 KiB 8.36 / 7.67 against 7.67 / 7.86; inputs rewritten
 *   alike; below 128 KiB since the direct algorithm's pushes);
 *   then Rabenseifner at np >= 3 (np=4, 8-128 KiB: 1.1-1.3x the ring);
 *   the direct algorithm for large buffers, which moves
 *   about 2.5 buffers per rank through memory, the ring 4.5: np=2 from
 *   128 KiB since it pushes finished pieces into the peer's output
 *   (inputs rewritten, two rounds, out of place, GB/s: 128 KiB 8.6-8.9
 *   against recursive doubling's 7.7-8.0 and the ring's 7.0-8.3;
 *   256 KiB-2 MiB 8.4-12.2 against 6.0-9.7; even at 64 KiB). At np >= 3,
 *   where direct leads with its pushes (each forced against Rabenseifner,
 *   two or three rounds, inputs rewritten and unchanged, out of place /
 *   in place, GB/s): np=3 from 128 KiB (128 KiB 4.2-4.3 against
 *   3.7-4.2 rewritten, 5.3 against 4.2-5.2 unchanged; 512 KiB 5.0-5.1
 *   against 3.1-4.0); np=4 from 512 KiB (512 KiB unchanged 5.5-5.7
 *   against 4.3, rewritten 4.3-4.5 / 4.6-5.0 against 4.2-4.3 / 5.1-5.2;
 *   1 MiB rewritten 4.1-4.3 against 3.7; at 256 KiB Rabenseifner leads
 *   rewritten, 4.8-5.1 against 4.3-4.5); np=5-7 from 256 KiB (np=6
 *   rewritten 2.0-2.5 against 1.9, unchanged 3.1-3.2 against 2.2-2.3);
 *   np >= 8 from 512 KiB (256 KiB rewritten: 1.7 against 2.0-2.1).
 * - allreduce over the engine (TCP, RDMA): recursive doubling to 64 KiB
 *   (np=2: below 512 KiB, one exchange where Rabenseifner makes two; TCP,
 *   three rounds, out of place / in place: 64-256 KiB 1.95-3.9 / 2.3-3.7
 *   GB/s against 1.65-3.4 / 1.9-3.4; from 512 KiB its in-place form,
 *   which combines into scratch and copies back, falls behind);
 *   then Rabenseifner (2 log2 n steps, the ring's bytes), except for large
 *   buffers on rank counts that are not a power of two, where its fold
 *   costs a whole extra buffer and the ring is as fast.
 * - allgather (size: one rank's block): Bruck up to 128 KiB blocks at
 *   np >= 3 (np=4, 16-64 KiB blocks: 1.3x the ring), up to 512 KiB where
 *   peers cannot be read directly; direct reads above (np=4, 128 KiB
 *   blocks: 1.15x Bruck, four interleaved rounds of full sweeps; two
 *   rounds later, GB/s, inputs rewritten: 128 KiB-1 MiB blocks 3.6-4.7
 *   against the ring's 3.2-4.0 and Bruck's 2.8-4.5; unchanged 4.6-7.6
 *   against 3.0-4.6; np=3 even with the ring at 128 KiB blocks, 1.1x it
 *   from 256 KiB; np=8 1.2x at 128-512 KiB). At np=2 the ring below
 *   32 KiB blocks, then direct, which copies the own block first (three
 *   rounds, inputs rewritten: 128-512 KiB blocks 7.9-9.2 against the
 *   ring's 7.0-8.0; at 32-64 KiB blocks the ring leads, 6.0-7.1 against
 *   4.8-6.3, but direct still moves 1.3x what Open MPI does there, and
 *   with inputs unchanged it leads from 32 KiB blocks, 8.6-16.2 against
 *   6.5-8.1, where the ring was 0.66-0.81x Open MPI). Where Bruck is
 *   chosen, power-of-two rank counts run recursive doubling instead: the
 *   same steps, but no run of blocks wraps past the last rank, so each
 *   step is one message each way (three interleaved rounds, GB/s, out of
 *   place / in place: TCP np=4, 256 KiB-1 MiB in all, 1.23-1.68 /
 *   1.62-1.68 against 1.43-1.48 / 1.39-1.58 at 256 KiB, 1.79-1.92 /
 *   1.83-1.95 against 1.59-1.68 / 1.70-1.77 at 512 KiB, 1.83-1.86 /
 *   1.93-2.01 against 1.66-1.80 / 1.55-1.81 at 1 MiB; 2-8 MiB, 100
 *   iterations: 1.59-1.80 / 1.66-1.84 against 1.53-1.68 / 1.65-1.82);
 *   shared memory np=4 even, np=8 1.0-1.25x.
 * - broadcast: the binomial tree, streamed in chunks, below 512 KiB at
 *   np=2, 512 KiB at np=3-4 and 64 KiB at np >= 5; above, the direct broadcast,
 *   whose root copies alongside the readers. Measured with the root's
 *   input rewritten before every call (tide_perf -W 1), as applications
 *   do, two rounds: np=2 tree 11.5-14.7 GB/s at 64 KiB-1 MiB against
 *   direct 4.9-14.8, direct 11.5-11.7 against 8.1-8.7 from 2 MiB; np=4
 *   tree 4.9-5.3 against 2.5-4.8 at 64-256 KiB, even at 512 KiB, direct
 *   4.0-4.2 against 3.0-3.2 from 1 MiB; np=3 alike; np=8 direct 1.3-1.4x
 *   from 64 KiB. With an input left unchanged between calls the direct
 *   readers find the root's lines clean in their own caches and lead from
 *   64 KiB (np=2 1.3-2x, np=4 from 128 KiB), which is not what a program
 *   broadcasting new data sees. Twelfth session, np=2, three rounds, out
 *   of place / in place, GB/s: with -W 1 the two even from 512 KiB (tree
 *   14.3-14.6 / 17.0-17.8, direct 13.7-15.1 / 17.5-18.0; at 1 MiB
 *   12.5-12.6 / 16.4-17.2 against 11.9-13.3 / 17.5-18.3), the tree ahead
 *   at 256 KiB (12.8-13.1 against 10.6-12.0 out of place); unchanged,
 *   direct 22.4-25.2 / 24.5-25.8 against 13.4-13.6 / 16.7-17.7 at
 *   512 KiB: np=2 now goes direct from 512 KiB. The pipelined
 *   chain (each link carries the data once, where the tree's root sends
 *   it log2 n times) goes over the engine from 128 KiB at np >= 4, for
 *   broadcast and reduce: over TCP, in place, GB/s (broadcast three
 *   rounds, reduce two),
 *   broadcast np=4 512 KiB 2.33-2.39 against the tree's 2.06-2.09, 2 MiB
 *   2.23-2.36 against 1.6-1.9, np=6 1.3-1.7x, np=8 1.3-1.6x; reduce
 *   np=4 1.2-1.5x, np=8 1.4-1.8x from 32 KiB; np=3 even or behind. Over
 *   shared memory (every hop a memory copy on the same 2 cores) it never
 *   beat the tree, np 3-8.
 */
enum { ON_DIRECT = 1, ON_SHM = 2, ON_NET = 4, ON_ANY = 7 };

typedef struct rule {
    coll_kind_t kind;
    unsigned on;
    int min_ranks, max_ranks;
    bool pow2;
    size_t below;
    const char *algo;
} rule_t;

#define KiB 1024
#define MiB (1024 * 1024)
static const rule_t table[] = {
    {COLL_ALLREDUCE, ON_DIRECT | ON_SHM, 2, 2, false, 1 * KiB, "oneshot"},
    {COLL_ALLREDUCE, ON_DIRECT | ON_SHM, 3, 0, false, 2 * KiB + 1, "oneshot"},
    {COLL_ALLREDUCE, ON_DIRECT, 2, 2, false, 128 * KiB, "rd"},
    {COLL_ALLREDUCE, ON_DIRECT, 3, 0, false, 8 * KiB, "rd"},
    {COLL_ALLREDUCE, ON_DIRECT, 3, 3, false, 128 * KiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_DIRECT, 4, 4, false, 512 * KiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_DIRECT, 5, 7, false, 256 * KiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_DIRECT, 8, 0, false, 512 * KiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_DIRECT, 0, 0, false, 0, "direct"},
    {COLL_ALLREDUCE, ON_SHM, 0, 0, false, 16 * KiB, "rd"},
    {COLL_ALLREDUCE, ON_SHM, 3, 0, false, 512 * KiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_SHM, 0, 0, false, 0, "ring"},
    {COLL_ALLREDUCE, ON_NET, 2, 2, false, 512 * KiB, "rd"},
    {COLL_ALLREDUCE, ON_NET, 0, 0, false, 64 * KiB, "rd"},
    {COLL_ALLREDUCE, ON_NET, 0, 0, true, 0, "rabenseifner"},
    {COLL_ALLREDUCE, ON_NET, 0, 0, false, 1 * MiB, "rabenseifner"},
    {COLL_ALLREDUCE, ON_NET, 0, 0, false, 0, "ring"},
    {COLL_ALLGATHER, ON_DIRECT, 4, 0, true, 128 * KiB, "rd"},
    {COLL_ALLGATHER, ON_DIRECT, 3, 0, false, 128 * KiB, "bruck"},
    {COLL_ALLGATHER, ON_SHM, 4, 0, true, 512 * KiB, "rd"},
    {COLL_ALLGATHER, ON_SHM, 3, 0, false, 512 * KiB, "bruck"},
    {COLL_ALLGATHER, ON_DIRECT, 2, 2, false, 32 * KiB, "ring"},
    {COLL_ALLGATHER, ON_DIRECT, 0, 0, false, 0, "direct"},
    {COLL_ALLGATHER, ON_NET, 4, 0, true, 0, "rd"},
    {COLL_ALLGATHER, ON_NET, 3, 0, false, 0, "bruck"},
    {COLL_ALLGATHER, ON_ANY, 0, 0, false, 0, "ring"},
    {COLL_BROADCAST, ON_DIRECT, 2, 2, false, 512 * KiB, "tree"},
    {COLL_BROADCAST, ON_DIRECT, 3, 4, false, 512 * KiB, "tree"},
    {COLL_BROADCAST, ON_DIRECT, 0, 0, false, 64 * KiB, "tree"},
    {COLL_BROADCAST, ON_DIRECT, 0, 0, false, 0, "direct"},
    {COLL_BROADCAST, ON_NET, 4, 0, false, 128 * KiB, "tree"},
    {COLL_BROADCAST, ON_NET, 4, 0, false, 0, "chain"},
    {COLL_BROADCAST, ON_ANY, 0, 0, false, 0, "tree"},
    {COLL_REDUCE, ON_NET, 4, 0, false, 128 * KiB, "tree"},
    {COLL_REDUCE, ON_NET, 4, 0, false, 0, "chain"},
    {COLL_BARRIER, ON_DIRECT | ON_SHM, 0, 0, false, 0, "board"},
};
#undef KiB
#undef MiB

const char *coll_kind_name(coll_kind_t kind)
{
    static const char *const names[COLL_KIND_COUNT] = {"allreduce",      "allgather", "broadcast",
                                                       "reduce_scatter", "reduce",    "alltoall",
                                                       "barrier",        "send",      "recv"};
    return (unsigned)kind < COLL_KIND_COUNT ? names[kind] : "?";
}

static const coll_algo_t *find_n(coll_kind_t kind, const char *name, size_t len)
{
    for (size_t i = 0; i < TIDE_ARRAY_SIZE(algos); i++)
        if (algos[i].kind == kind && strlen(algos[i].name) == len &&
            strncmp(algos[i].name, name, len) == 0)
            return &algos[i];
    return NULL;
}

static const coll_algo_t *find(coll_kind_t kind, const char *name)
{
    return find_n(kind, name, strlen(name));
}

/* The TIDE_ALGO entry for kind: NULL if none applies; *bad if the entry
 * names no algorithm of that kind. */
static const coll_algo_t * override(coll_kind_t kind, const char *spec, bool *bad)
{
    const char *kname = coll_kind_name(kind);
    *bad = false;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (!eq) { /* a bare name applies wherever it exists */
            const coll_algo_t *a = find_n(kind, p, len);
            if (a)
                return a;
        } else if ((size_t)(eq - p) == strlen(kname) && strncmp(p, kname, (size_t)(eq - p)) == 0) {
            const coll_algo_t *a = find_n(kind, eq + 1, len - (size_t)(eq - p) - 1);
            *bad = !a;
            return a;
        }
        p += len + (p[len] == ',');
    }
    return NULL;
}

/*
 * Buffers in Tide memory (tide_mem_alloc): the direct algorithms read
 * (the allreduce also pushes to) peers' buffers in place, with no system
 * call, and lead below the sizes where the table turns to them (inputs
 * rewritten every call, two rounds, docs/performance.md):
 * - allreduce from 64 KiB: np=2 1.4x the table's choice at 64 KiB, 2-3x
 *   at 256 KiB-1 MiB; np=3-4 1.2-2.4x at 64 KiB-1 MiB;
 * - allgather from 128 KiB blocks at np=2 (1.1-1.9x the ring; even at
 *   64 KiB), 64 KiB blocks at np >= 3 (np=4: 1.1-1.7x Bruck);
 * - broadcast from 256 KiB at np=2 (1.1-1.9x the tree; at np=4 even).
 * Where buffers are is known to each rank alone, but the choice must be
 * the same everywhere: the direct algorithm's cards tell every rank
 * whether the operation's buffers were Tide memory (every rank's input;
 * for broadcast the root's), c->mem_all, alike on every rank, and while
 * they were, the next ones of that collective go direct too. Otherwise
 * every MEM_PROBE_EVERY-th operation that could goes direct to look
 * again (the direct algorithms are correct on any memory: that operation
 * runs with CMA at worst, up to about 3x slower, so the cost is about
 * 1%).
 */
#define MEM_PROBE_EVERY 256

static size_t tide_memory_min(coll_kind_t kind, int n)
{
    switch (kind) {
    case COLL_ALLREDUCE:
        return 64 * 1024;
    case COLL_ALLGATHER:
        return n == 2 ? 128 * 1024 : 64 * 1024;
    case COLL_BROADCAST:
        return n == 2 ? 256 * 1024 : 0;
    default:
        return 0;
    }
}

static const coll_algo_t *tide_memory_direct(coll_ctx_t *c, const coll_op_t *op,
                                             const coll_algo_t *a)
{
    size_t min = tide_memory_min(op->kind, c->nranks);
    if (!min || !c->direct_ok || c->nranks > 64 || op->count * op->esize < min ||
        strcmp(a->name, "direct") == 0)
        return a;
    uint64_t k = c->mem_eligible[op->kind]++; /* counted alike on every rank */
    return c->mem_all[op->kind] || k % MEM_PROBE_EVERY == 0 ? find(op->kind, "direct") : a;
}

tide_status_t coll_select(coll_ctx_t *c, const coll_op_t *op, const coll_algo_t **out)
{
    const char *spec = c->algo;
    const coll_algo_t *a = NULL;
    bool bad;
    if (spec[0]) {
        a = override(op->kind, spec, &bad);
        if (a && strcmp(a->name, "direct") == 0 && !c->direct_ok) {
            tide_error("TIDE_ALGO: 'direct' needs every rank on one host with direct memory "
                       "access (CMA) to every other");
            return TIDE_ERR_UNSUPPORTED;
        }
        if (bad) {
            tide_error("TIDE_ALGO='%s' names no %s algorithm", spec, coll_kind_name(op->kind));
            return TIDE_ERR_INVALID;
        }
    }
    if (!a) {
        size_t bytes = op->count * op->esize;
        unsigned on = c->direct_ok ? ON_DIRECT : c->any_engine ? ON_NET : ON_SHM;
        int n = c->nranks;
        for (size_t i = 0; !a && i < TIDE_ARRAY_SIZE(table); i++) {
            const rule_t *t = &table[i];
            if (t->kind == op->kind && (t->on & on) && n >= t->min_ranks &&
                (!t->max_ranks || n <= t->max_ranks) && (!t->pow2 || (n & (n - 1)) == 0) &&
                (!t->below || bytes < t->below) && !(a = find(op->kind, t->algo))) {
                tide_error("selection table row %zu names no %s algorithm '%s'", i,
                           coll_kind_name(op->kind), t->algo);
                return TIDE_ERR_INTERNAL;
            }
        }
        for (size_t i = 0; !a && i < TIDE_ARRAY_SIZE(algos); i++)
            if (algos[i].kind == op->kind)
                a = &algos[i];
        a = tide_memory_direct(c, op, a);
    }
    if (c->trace) {
        int shm = 0, eng = 0;
        for (int r = 0; r < c->nranks; r++) {
            shm += c->pipe[r] == &coll_shm_pipe;
            eng += c->pipe[r] == &coll_engine_pipe;
        }
        tide_log_emit(
            TIDE_LOG_INFO, TIDE_SUBSYS_COLL,
            "trace: op %llu %s count %zu %s %s root %d: algorithm %s, chunk %zu, kernels %s, "
            "pipes shm %d engine %d",
            (unsigned long long)c->nops, coll_kind_name(op->kind), op->count,
            coll_dtype_name(op->dtype), coll_redop_name(op->redop), op->root, a->name, c->chunk,
            coll_reduce_isa(), shm, eng);
    }
    *out = a;
    return TIDE_SUCCESS;
}
