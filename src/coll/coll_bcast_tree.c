/*
 * Binomial-tree broadcast. With ranks renumbered so that the root is 0
 * (v = (r - root) mod n), rank v receives from v minus its lowest set bit
 * and sends to v + 2^j for every 2^j below that bit.
 *
 *   n = 8, root 0:      0
 *                     / | \
 *                    4  2  1          0 sends to 4, 2, 1
 *                   /|  |             4 sends to 6, 5;  2 sends to 3
 *                  6 5  3             6 sends to 7
 *                  |
 *                  7
 *
 * log2(n) rounds. The buffer goes down the tree in chunks (coll_pipeline):
 * an inner rank forwards chunk i to all its children while chunk i+1 is
 * still arriving (a pipelined tree).
 */
#include "coll_ctx.h"

tide_status_t coll_bcast_tree(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    size_t bytes = op->count * op->esize;
    int parent, children[32], levels;
    int nchildren = coll_binomial_tree(n, c->rank, op->root, &parent, children, &levels);
    coll_pipeline_t p = {
        .from = &parent,
        .nfrom = parent >= 0,
        .to = children,
        .nto = nchildren,
        .buf = op->rbuf,
        .init = v == 0 ? op->sbuf : NULL,
        .bytes = bytes,
        .chunk = coll_pipeline_chunk(c, bytes, op->esize, levels),
        .esize = op->esize,
        .depth = c->depth,
    };
    return coll_pipeline(c, &p, "tree");
}
