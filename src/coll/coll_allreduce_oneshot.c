/*
 * One-shot allreduce, for tiny buffers: every rank gets every other rank's
 * whole buffer and reduces all n values itself. (n-1) buffers reach each
 * rank instead of recursive doubling's log2(n), but in one exchange
 * instead of log2(n) in a row: a rank waits for its peers once, not once
 * per step. That is what counts where ranks take turns on a core (np=4 on
 * 2 cores), and where a step costs a round trip.
 *
 *   n = 4:   0, 1, 2, 3 each show their value to the three others at once
 *            each rank: v0 op v1 op v2 op v3, in rank order
 *
 * On one host the values go on the board (coll_board_exchange): each rank
 * writes its value once into its own shared inbox and reads its peers'
 * in place, COLL_BOARD_BYTES at a time; no pipe, no copy in between.
 * Elsewhere each rank sends its buffer to every other through the pipes.
 *
 * Every rank combines the values in the same order (rank 0's first), so
 * every rank ends with the same bits, floating point included.
 */
#include <string.h>
#include "coll_ctx.h"

/* vals[p]: rank p's value; out = vals[0] op vals[1] op ... */
static void combine(const coll_op_t *op, int n, const char *const *vals, void *out, size_t count)
{
    if (n == 1) {
        memmove(out, vals[0], count * op->esize);
        return;
    }
    coll_reduce3_fn(op->dtype, op->redop)(out, vals[0], vals[1], count);
    coll_reduce_fn_t fn = coll_reduce_fn(op->dtype, op->redop);
    for (int p = 2; p < n; p++)
        fn(out, vals[p], count);
}

static tide_status_t on_board(coll_ctx_t *c, const coll_op_t *op, const char **vals)
{
    size_t es = op->esize, per = COLL_BOARD_BYTES / es;
    for (size_t off = 0; off < op->count; off += per) {
        size_t m = TIDE_MIN(per, op->count - off);
        tide_status_t st = coll_board_exchange(c, (const char *)op->sbuf + off * es, m * es, vals);
        if (st != TIDE_SUCCESS)
            return st;
        combine(op, c->nranks, vals, (char *)op->rbuf + off * es, m);
    }
    return TIDE_SUCCESS;
}

static tide_status_t by_pipes(coll_ctx_t *c, const coll_op_t *op, char *scratch, size_t head,
                              const char **vals)
{
    int n = c->nranks, r = c->rank, k = 0;
    size_t es = op->esize, bytes = op->count * es, slot = (bytes + 15) & ~(size_t)15;
    coll_step_t *steps = (coll_step_t *)(void *)scratch;
    char *in = scratch + head;
    for (int p = 0; p < n; p++) {
        vals[p] = in + (size_t)p * slot;
        if (p == r)
            continue;
        steps[k++] = coll_send_step(p, op->sbuf, bytes);
        steps[k++] = coll_recv_step(p, in + (size_t)p * slot, bytes, NULL, es);
    }
    memcpy(in + (size_t)r * slot, op->sbuf, bytes); /* the output may be the input */
    tide_status_t st = coll_xfer(c, steps, k, "exchange");
    if (st == TIDE_SUCCESS)
        combine(op, n, vals, op->rbuf, op->count);
    return st;
}

tide_status_t coll_allreduce_oneshot(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks;
    bool board = coll_board_ok(c);
    size_t bytes = op->count * op->esize, slot = (bytes + 15) & ~(size_t)15;
    /* the values' addresses; by pipes, the steps and a slot per rank */
    size_t ptrs = ((size_t)n * sizeof(char *) + 63) & ~(size_t)63;
    size_t head = ((size_t)(2 * n) * sizeof(coll_step_t) + 63) & ~(size_t)63;
    char *scratch = coll_scratch(c, ptrs + (board ? 0 : head + slot * (size_t)n));
    if (!scratch)
        return TIDE_ERR_NOMEM;
    const char **vals = (const char **)(void *)scratch;
    tide_status_t st = board ? on_board(c, op, vals) : by_pipes(c, op, scratch + ptrs, head, vals);
    if (st == TIDE_SUCCESS && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(op->rbuf, op->count, op->dtype, n);
    return st;
}
