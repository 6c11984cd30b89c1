/*
 * Pipelined chain broadcast: the ranks form a chain from the root,
 * v = (r - root) mod n; rank v receives from v-1 and passes every chunk
 * on to v+1 as soon as it has arrived (coll_pipeline).
 *
 *   root -> 1 -> 2 -> 3         chunks c0..c3
 *
 *   step   root->1   1->2   2->3
 *    0       c0
 *    1       c1       c0
 *    2       c2       c1     c0
 *    3       c3       c2     c1
 *    4                c3     c2
 *    5                       c3
 *
 * Every link carries the buffer once, all links at once: for large
 * buffers the time tends to one buffer's transfer, whatever n is, where a
 * binomial tree's root sends it log2(n) times. The price is n-1 chunk
 * times to fill the chain, so small buffers go down the tree instead.
 */
#include "coll_ctx.h"

tide_status_t coll_bcast_chain(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    int prev = (c->rank + n - 1) % n, next = (c->rank + 1) % n;
    size_t bytes = op->count * op->esize;
    coll_pipeline_t p = {
        .from = &prev,
        .nfrom = v > 0,
        .to = &next,
        .nto = v < n - 1,
        .buf = op->rbuf,
        .init = v == 0 ? op->sbuf : NULL,
        .bytes = bytes,
        .chunk = coll_pipeline_chunk(c, bytes, op->esize, n),
        .esize = op->esize,
        .depth = c->depth,
    };
    return coll_pipeline(c, &p, "chain");
}
