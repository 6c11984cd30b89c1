/*
 * Binomial-tree reduce: the broadcast tree run upwards. With v = (r - root)
 * mod n, rank v first receives from each child v + 2^j (for 2^j below its
 * lowest set bit), reducing as the data arrives, then sends the partial
 * result to its parent v minus that bit.
 *
 *   n = 8, root 0:   7 -> 6;  6,5 -> 4;  3 -> 2;  4,2,1 -> 0
 *
 * Chunked like the broadcast (coll_pipeline): an inner rank passes chunk i
 * up while it still receives chunk i+1; children are combined in a fixed
 * order, so results do not depend on timing. Non-root ranks with children
 * combine into a scratch copy of their input, taken chunk by chunk; leaves
 * send their input as it is.
 */
#include "coll_ctx.h"

tide_status_t coll_reduce_tree(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    size_t bytes = op->count * op->esize;
    int parent, children[32], levels;
    int nchildren = coll_binomial_tree(n, c->rank, op->root, &parent, children, &levels);
    for (int i = 0; i < nchildren / 2; i++) { /* smallest subtree first: it is ready first */
        int t = children[i];
        children[i] = children[nchildren - 1 - i];
        children[nchildren - 1 - i] = t;
    }
    char *acc;
    if (v == 0)
        acc = op->rbuf;
    else if (nchildren == 0)
        acc = (char *)(uintptr_t)op->sbuf; /* only sent from */
    else if (!(acc = coll_scratch(c, bytes)))
        return TIDE_ERR_NOMEM;
    coll_pipeline_t p = {
        .from = children,
        .nfrom = nchildren,
        .to = &parent,
        .nto = parent >= 0,
        .buf = acc,
        .init = op->sbuf,
        .bytes = bytes,
        .chunk = coll_pipeline_chunk(c, bytes, op->esize, levels),
        .esize = op->esize,
        .fn = coll_reduce_fn(op->dtype, op->redop),
        .depth = c->depth,
    };
    tide_status_t st = coll_pipeline(c, &p, "tree");
    if (st == TIDE_SUCCESS && v == 0 && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(op->rbuf, op->count, op->dtype, n);
    return st;
}
