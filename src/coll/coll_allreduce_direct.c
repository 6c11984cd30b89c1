/*
 * Direct allreduce, for ranks that all share one host and may read and
 * write each other's memory (CMA, checked when the context is set up):
 * every rank reduces its own slice straight out of its peers' input
 * buffers and writes each finished piece, while it is in cache, into
 * every output. No data goes through the pipes; they carry only the
 * buffer addresses and two tokens.
 *
 *   n = 3, slices 0 1 2 of every buffer:
 *
 *   1. cards     each rank sends every peer (send address, recv address,
 *                and where either lies in Tide memory, which allocation)
 *   2. reduce    rank r: out[r] = in_0[r] + in_1[r] + in_2[r], reading
 *                peers' in_p[r] in cache-sized pieces (process_vm_readv),
 *                or in place where in_p is Tide memory mapped here; each
 *                finished piece is then pushed into every peer's out_p[r]
 *                (memcpy where out_p is mapped here, else
 *                process_vm_writev)
 *   3. token     "my slice is final", and to which outputs it was pushed
 *   4. gather    rank r: out[p] = out_p[p] for every peer p that did not
 *                push its slice to r (a write failed: one read each)
 *   5. token     "I no longer read your buffers": only now may a rank
 *                return and let its caller touch the buffers again. Where
 *                every push arrived (the tokens of step 3 say so, alike
 *                on every rank), nobody reads any more after step 3 and
 *                this round is skipped (np=2-4, 64-128 KiB: +3-10%)
 *
 * Each rank moves about 2.5 buffers through memory (the ring: about 4.5),
 * which is what counts on a host where copies, not links, are the limit.
 * Pushing saves the gather's reads of lines another core has just written
 * (np=2, malloc'd, inputs rewritten: 256 KiB 7.6 -> 11.2 GB/s, 1 MiB
 * 7.2 -> 9.5; 16 MiB in place 9.0 -> 12.0). Tide memory saves besides the
 * copy of peers' inputs into a piece and the pinning of every page that
 * CMA costs (np=2, 16 MiB: 6.4-7.9 -> 13.1-13.9 GB/s,
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
    uint64_t cma_push = 0; /* outputs pushed with process_vm_writev (a failed write clears
                              its bit: that peer then reads the slice) */
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
        if (pout[p])
            pushed |= (uint64_t)1 << p;
        else
            cma_push |= (uint64_t)1 << p;
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
            else if ((cma_push & ((uint64_t)1 << p)) &&
                     coll_direct_write(c, p, cards[p].out + (lo + off) * es, dst, m * es) !=
                         TIDE_SUCCESS)
                cma_push &= ~((uint64_t)1 << p);
    }
    if (st != TIDE_SUCCESS)
        return st;
    pushed |= cma_push;
    if ((st = coll_direct_exchange(c, &pushed, tokens, sizeof(pushed), "slices done")) !=
        TIDE_SUCCESS)
        return st;
    /* Does anyone still read another's buffers (a slice some push did not
     * reach)? Every rank has every token, so all answer alike; where nobody
     * does, the "reads done" round is skipped. */
    tokens[r] = pushed;
    bool reads = false;
    for (int p = 0; p < n; p++)
        for (int q = 0; q < n; q++)
            reads |= p != q && SLICE_CNT(p) && !(tokens[p] & ((uint64_t)1 << q));
    if (!reads)
        return TIDE_SUCCESS;
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
