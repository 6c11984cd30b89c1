/*
 * Recursive-doubling allreduce, for small buffers: log2(n) exchanges of the
 * whole buffer, each with the partner whose rank differs in one bit.
 *
 *   n = 4:   step 1 (bit 0)   0 <-> 1    2 <-> 3
 *            step 2 (bit 1)   0 <-> 2    1 <-> 3     every rank holds the sum
 *
 * Rank counts that are not a power of two: with p the largest power of two
 * <= n and rem = n - p, the first 2*rem ranks pair up first: each even one
 * hands its buffer to the odd one above it and sits out; the p remaining
 * ranks do the exchanges; the odd ones then hand the result back.
 *
 *   n = 6 (p = 4, rem = 2):   0 -> 1, 2 -> 3;  {1, 3, 4, 5} exchange;  1 -> 0, 3 -> 2
 *
 * A rank must not combine into the bytes it is still sending, so each
 * exchange sends one buffer and writes mine op partner's into the other
 * (one pass, as the data arrives): input -> output -> scratch -> output
 * ..., with one copy at the end when the result is in scratch. Over shared
 * memory a send whose value fits in the partner's ring is pushed whole
 * first; then the value is combined in place where it is writable (not
 * the caller's input), which saves that copy in place (np=2: one exchange,
 * in place). The lower rank's value always goes first, so both partners
 * compute the same bits (min and max of a NaN, signed zeros).
 */
#include <string.h>
#include "coll_ctx.h"

/* Push all of send step s now, without waiting: true when it is complete
 * (its bytes are in the partner's ring), false when the ring had no room
 * for all of it or *st failed. */
static bool pushed_whole(coll_ctx_t *c, coll_step_t *s, tide_status_t *st)
{
    while (!coll_step_complete(c, s)) {
        int64_t k = coll_step_move(c, s);
        if (k <= 0) {
            if (k < 0)
                *st = (tide_status_t)k;
            return false;
        }
    }
    return true;
}

tide_status_t coll_allreduce_rd(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, p = 1;
    size_t es = op->esize, bytes = op->count * es;
    char *buf = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    while (p * 2 <= n)
        p *= 2;
    int rem = n - p, vr;
    char *tmp = coll_scratch(c, bytes);
    if (!tmp)
        return TIDE_ERR_NOMEM;
    const char *cur = op->sbuf; /* my value so far */
#define OTHER(x) ((x) == buf ? tmp : buf)

    if (r < 2 * rem) { /* fold the extra ranks in */
        if (r % 2 == 0) {
            st = coll_sendrecv(c, r + 1, cur, bytes, -1, NULL, 0, NULL, es, "fold-in");
            vr = -1;
        } else {
            char *dst = OTHER(cur);
            coll_step_t s =
                coll_recv_combine_step(r - 1, dst, cur, bytes, op->dtype, op->redop, es, true);
            st = coll_xfer(c, &s, 1, "fold-in");
            cur = dst;
            vr = r / 2;
        }
    } else {
        vr = r - rem;
    }
    for (int mask = 1; vr >= 0 && mask < p && st == TIDE_SUCCESS; mask <<= 1) {
        int vp = vr ^ mask, partner = vp < rem ? vp * 2 + 1 : vp + rem;
        char *dst = OTHER(cur);
        coll_step_t s[2] = {
            coll_send_step(partner, cur, bytes),
            coll_recv_combine_step(partner, dst, cur, bytes, op->dtype, op->redop, es, vp < vr)};
        if ((cur != op->sbuf || op->sbuf == op->rbuf) && c->pipe[partner] == &coll_shm_pipe &&
            pushed_whole(c, &s[0], &st)) {
            /* sent: combine into cur itself, the lower rank's value first */
            s[1] = coll_recv_step(partner, (char *)cur, bytes,
                                  vp < vr ? coll_reduce_fn_swapped(op->dtype, op->redop)
                                          : coll_reduce_fn(op->dtype, op->redop),
                                  es);
            st = coll_xfer(c, &s[1], 1, "exchange");
            continue;
        }
        if (st == TIDE_SUCCESS)
            st = coll_xfer(c, s, 2, "exchange");
        cur = dst;
    }
#undef OTHER
    if (st == TIDE_SUCCESS && r < 2 * rem) { /* hand the result back */
        if (r % 2) {
            st = coll_sendrecv(c, r - 1, cur, bytes, -1, NULL, 0, NULL, es, "fold-out");
        } else {
            st = coll_sendrecv(c, -1, NULL, 0, r + 1, buf, bytes, NULL, es, "fold-out");
            cur = buf;
        }
    }
    if (st == TIDE_SUCCESS && cur != buf)
        memcpy(buf, cur, bytes);
    if (st == TIDE_SUCCESS && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(buf, op->count, op->dtype, n);
    return st;
}
