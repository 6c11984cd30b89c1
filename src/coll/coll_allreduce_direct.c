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
 *   1. cards     each rank sends every peer (send address, recv address)
 *   2. reduce    rank r: out[r] = in_0[r] + in_1[r] + in_2[r], reading
 *                peers' in_p[r] in cache-sized pieces (process_vm_readv)
 *   3. token     "my slice is final"
 *   4. gather    rank r: out[p] = out_p[p] for every peer p (one read each)
 *   5. token     "I no longer read your buffers": only now may a rank
 *                return and let its caller touch the buffers again
 *
 * Each rank moves about 2.5 buffers through memory (the ring: about 4.5),
 * which is what counts on a host where copies, not links, are the limit.
 */
#include <stdbool.h>
#include <string.h>
#include "coll_ctx.h"

#define PIECE (256 * 1024) /* stays in cache between the read and the reduce */

typedef struct card {
    uint64_t in, out;
} card_t;

tide_status_t coll_allreduce_direct(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    size_t es = op->esize;
    coll_reduce_fn_t fn = coll_reduce_fn(op->dtype, op->redop);
    card_t mine = {(uint64_t)(uintptr_t)op->sbuf, (uint64_t)(uintptr_t)op->rbuf};
    card_t cards[64];
    char token = 1, tokens[64];
    char *out = op->rbuf;
    tide_status_t st;

    if (n > 64)
        return coll_allreduce_ring(c, op);
    if ((st = coll_direct_exchange(c, &mine, cards, sizeof(card_t), "cards")) != TIDE_SUCCESS)
        return st;
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
            st = coll_direct_read(c, p, piece, cards[p].in + (lo + off) * es, m * es);
            if (st != TIDE_SUCCESS)
                break;
            if (first)
                coll_reduce3(dst, in + (lo + off) * es, piece, m, op->dtype, op->redop);
            else
                fn(dst, piece, m);
            first = false;
        }
    }
    if (st != TIDE_SUCCESS)
        return st;
    if (op->redop == TIDE_AVG)
        coll_reduce_finish_avg(out + lo * es, cnt, op->dtype, n);
    if ((st = coll_direct_exchange(c, &token, tokens, 1, "slices done")) != TIDE_SUCCESS)
        return st;
    for (int p = 0; p < n && st == TIDE_SUCCESS; p++)
        if (p != r && SLICE_CNT(p))
            st = coll_direct_read(c, p, out + SLICE_LO(p) * es, cards[p].out + SLICE_LO(p) * es,
                                  SLICE_CNT(p) * es);
#undef SLICE_LO
#undef SLICE_CNT
    tide_status_t st2 = coll_direct_exchange(c, &token, tokens, 1, "reads done");
    return st != TIDE_SUCCESS ? st : st2;
}
