/*
 * Pipelined chain reduce: the broadcast chain run backwards. With
 * v = (r - root) mod n, rank v receives partial results from v+1, combines
 * them chunk by chunk with its own input and passes each finished chunk on
 * to v-1 at once (coll_pipeline); the root ends with the result.
 *
 *   3 -> 2 -> 1 -> root          chunk i: (x3 + x2) + x1 + x0
 *
 *   step   3->2   2->1   1->root
 *    0      c0
 *    1      c1     c0
 *    2      c2     c1     c0
 *
 * Every link carries the buffer once, all at once, and every element is
 * combined in the same order (v = n-1 first) on every run. Non-root ranks
 * combine into a scratch copy of their input, taken chunk by chunk just
 * before each chunk is needed; the last rank of the chain sends its input
 * as it is.
 */
#include "coll_ctx.h"

tide_status_t coll_reduce_chain(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    int prev = (c->rank + n - 1) % n, next = (c->rank + 1) % n;
    size_t bytes = op->count * op->esize;
    char *acc;

    if (v == 0)
        acc = op->rbuf;
    else if (v == n - 1)
        acc = (char *)(uintptr_t)op->sbuf; /* only sent from */
    else if (!(acc = coll_scratch(c, bytes)))
        return TIDE_ERR_NOMEM;
    coll_pipeline_t p = {
        .from = &next,
        .nfrom = (v < n - 1),
        .to = &prev,
        .nto = (v > 0),
        .buf = acc,
        .init = op->sbuf,
        .bytes = bytes,
        .chunk = coll_pipeline_chunk(c, bytes, op->esize, n),
        .esize = op->esize,
        .fn = coll_reduce_fn(op->dtype, op->redop),
        .depth = c->depth,
    };
    tide_status_t st = coll_pipeline(c, &p, "chain");
    if (st == TIDE_SUCCESS && v == 0 && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(op->rbuf, op->count, op->dtype, n);
    return st;
}
