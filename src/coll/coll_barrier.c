/*
 * Dissemination barrier: in round k (distance d = 2^k) every rank signals
 * r + d and waits for r - d. After ceil(log2 n) rounds every rank has
 * heard, directly or through others, from every rank.
 *
 *   n = 5:  d=1: 0->1 1->2 2->3 3->4 4->0   d=2: 0->2 ... 4->1   d=4: 0->4 ... 4->3
 */
#include "coll_ctx.h"

tide_status_t coll_barrier_dissemination(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    char token = 1, got;
    tide_status_t st = TIDE_SUCCESS;
    (void)op;
    for (int d = 1; d < n && st == TIDE_SUCCESS; d <<= 1)
        st = coll_sendrecv(c, (r + d) % n, &token, 1, (r - d + n) % n, &got, 1, NULL, 1, "round");
    return st;
}
