/*
 * Recursive-doubling allgather, for power-of-two rank counts: log2 n
 * steps, like Bruck's, but every step is one contiguous run of blocks each
 * way, exchanged with one partner, landing straight in its place.
 *
 * Before the step at distance d (1, 2, 4, ..) rank r holds the d blocks of
 * its group of d (ranks r & ~(d-1) ..); it swaps them with partner r ^ d,
 * which holds the neighbouring group; after the step both hold the 2d
 * blocks of their group of 2d.
 *
 *   n = 4            holds before d=1   d=2        after
 *   rank 0           0                  0 1        0 1 2 3
 *   rank 1           1                  0 1        0 1 2 3
 *   rank 2           2                  2 3        0 1 2 3
 *   rank 3           3                  2 3        0 1 2 3
 *          d=1: 0<->1 2<->3 swap one block; d=2: 0<->2 1<->3 swap two
 *
 * Bruck's runs wrap past rank n-1 for some ranks (two messages, one after
 * the other, at such a step); here none does. Other rank counts run
 * Bruck's schedule.
 */
#include "coll_ctx.h"

tide_status_t coll_allgather_rd(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    if (n & (n - 1))
        return coll_allgather_bruck(c, op);
    size_t block = op->count * op->esize;
    char *buf = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    coll_allgather_own(c, op);
    for (int d = 1; d < n && st == TIDE_SUCCESS; d *= 2) {
        int partner = r ^ d, mine = r & ~(d - 1), theirs = partner & ~(d - 1);
        st =
            coll_sendrecv(c, partner, buf + (size_t)mine * block, (size_t)d * block, partner,
                          buf + (size_t)theirs * block, (size_t)d * block, NULL, op->esize, "step");
    }
    return st;
}
