/*
 * Direct allreduce, for ranks that all share one host and may read each
 * other's memory (CMA, checked when the context is set up): every rank
 * reduces its own slice straight out of its peers' input buffers, then
 * reads the finished slices straight out of their output buffers. No data
 * goes through the pipes; they carry only the buffer addresses and two
 * "done" tokens.
 *
 *   n = 3, slices 0 1 2 of every buffer:
 *
 *   1. cards     each rank sends every peer (send address, recv address,
 *                and where either lies in Tide memory, which allocation)
 *   2. reduce    rank r: out[r] = in_0[r] + in_1[r] + in_2[r], reading
 *                peers' in_p[r] in cache-sized pieces (process_vm_readv),
 *                or in place where in_p is Tide memory mapped here; each
 *                finished piece is also written into the outputs of peers
 *                whose out_p is mapped here (pushed)
 *   3. token     "my slice is final", and to which outputs it was pushed
 *   4. gather    rank r: out[p] = out_p[p] for every peer p that did not
 *                push its slice to r (one read each; a copy from the
 *                mapping where out_p is mapped)
 *   5. token     "I no longer read your buffers": only now may a rank
 *                return and let its caller touch the buffers again
 *
 * Each rank moves about 2.5 buffers through memory (the ring: about 4.5),
 * which is what counts on a host where copies, not links, are the limit.
 * Tide memory saves the copy of peers' inputs into a piece, the pinning
 * of every page that process_vm_readv costs, and, pushed, the gather's
 * reads of lines another core just wrote (np=2, 16 MiB: 40-50% faster,
 * docs/performance.md). Each rank decides for itself how it reads and
 * pushes; the tokens say what it did.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "coll_ctx.h"
#include "util_log.h"

#define PIECE (256 * 1024) /* stays in cache between the read and the reduce */

typedef struct card {
    uint64_t in, out;
    coll_mem_ref_t in_ref, out_ref;
} card_t;

tide_status_t coll_allreduce_direct(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    size_t es = op->esize;
    coll_reduce_fn_t fn = coll_reduce_fn(op->dtype, op->redop);
    size_t bytes = op->count * es;
    card_t mine = {.in = (uint64_t)(uintptr_t)op->sbuf, .out = (uint64_t)(uintptr_t)op->rbuf};
    card_t cards[64];
    const char *pin[64];
    char *pout[64];                             /* peers' buffers mapped here, or NULL */
    uint64_t pushed = 0, tokens[64], token = 1; /* pushed: bit p, my slice is in out_p */
    char *out = op->rbuf;
    tide_status_t st;

    if (n > 64)
        return coll_allreduce_ring(c, op);
    coll_mem_ref(op->sbuf, bytes, &mine.in_ref);
    coll_mem_ref(op->rbuf, bytes, &mine.out_ref);
    if ((st = coll_direct_exchange(c, &mine, cards, sizeof(card_t), "cards")) != TIDE_SUCCESS)
        return st;
    int mapped = 0;
    c->mem_all[COLL_ALLREDUCE] =
        coll_cards_tide(c, &mine, cards, sizeof(card_t), offsetof(card_t, in_ref)) &&
        coll_cards_tide(c, &mine, cards, sizeof(card_t), offsetof(card_t, out_ref));
    for (int p = 0; p < n; p++) {
        pin[p] = pout[p] = NULL;
        if (p == r)
            continue;
        pin[p] = coll_map_peer(c, p, &cards[p].in_ref, cards[p].in, bytes);
        pout[p] = coll_map_peer(c, p, &cards[p].out_ref, cards[p].out, bytes);
        mapped += pin[p] != NULL;
        pushed |= pout[p] ? (uint64_t)1 << p : 0;
    }
    if (c->trace)
        tide_log_emit(TIDE_LOG_INFO, TIDE_SUBSYS_COLL,
                      "trace: op %llu direct: %d of %d peers' inputs read in place, %d outputs "
                      "pushed to (Tide memory)",
                      (unsigned long long)c->nops, mapped, n - 1, __builtin_popcountll(pushed));
        /* my slice: [lo, lo+cnt) elements */
#define SLICE_LO(q)  (op->count * (size_t)(q) / (size_t)n)
#define SLICE_CNT(q) (SLICE_LO((q) + 1) - SLICE_LO(q))
    size_t lo = SLICE_LO(r), cnt = SLICE_CNT(r);
    const char *in = op->sbuf;
    char *piece = coll_scratch(c, PIECE);
    if (!piece)
        return TIDE_ERR_NOMEM;
    size_t per = TIDE_MAX((size_t)1, PIECE / es);
    if (n == 1 && op->sbuf != op->rbuf)
        memcpy(out, in, op->count * es);
    for (size_t off = 0; off < cnt && st == TIDE_SUCCESS; off += per) {
        size_t m = TIDE_MIN(per, cnt - off);
        char *dst = out + (lo + off) * es;
        bool first = true; /* the first peer combines with my input into dst */
        for (int p = 0; p < n && st == TIDE_SUCCESS; p++) {
            if (p == r)
                continue;
            const char *src = piece;
            if (pin[p])
                src = pin[p] + (lo + off) * es;
            else if ((st = coll_direct_read(c, p, piece, cards[p].in + (lo + off) * es, m * es)) !=
                     TIDE_SUCCESS)
                break;
            if (first)
                coll_reduce3(dst, in + (lo + off) * es, src, m, op->dtype, op->redop);
            else
                fn(dst, src, m);
            first = false;
        }
        if (st != TIDE_SUCCESS)
            break;
        if (op->redop == TIDE_AVG)
            coll_reduce_finish_avg(dst, m, op->dtype, n);
        for (int p = 0; p < n; p++) /* the piece is still in cache */
            if (pushed & ((uint64_t)1 << p))
                memcpy(pout[p] + (lo + off) * es, dst, m * es);
    }
    if (st != TIDE_SUCCESS)
        return st;
    if ((st = coll_direct_exchange(c, &pushed, tokens, sizeof(pushed), "slices done")) !=
        TIDE_SUCCESS)
        return st;
    for (int p = 0; p < n && st == TIDE_SUCCESS; p++) {
        if (p == r || !SLICE_CNT(p) || (tokens[p] & ((uint64_t)1 << r)))
            continue; /* p pushed its slice here */
        if (pout[p])
            memcpy(out + SLICE_LO(p) * es, pout[p] + SLICE_LO(p) * es, SLICE_CNT(p) * es);
        else
            st = coll_direct_read(c, p, out + SLICE_LO(p) * es, cards[p].out + SLICE_LO(p) * es,
                                  SLICE_CNT(p) * es);
    }
#undef SLICE_LO
#undef SLICE_CNT
    tide_status_t st2 = coll_direct_exchange(c, &token, tokens, sizeof(token), "reads done");
    return st != TIDE_SUCCESS ? st : st2;
}
