/*
 * Bruck's allgather: ceil(log2 n) steps for any n, where the ring takes
 * n-1, so it wins for small blocks, where each step's latency dominates.
 *
 * Before the step at distance d (1, 2, 4, ..) rank r holds the blocks of
 * ranks r .. r+d-1 (mod n). It sends the first min(d, n-d) of them to r-d
 * and receives as many, those of ranks r+d .., from r+d. After the last
 * step it holds all n.
 *
 *   n = 5            holds before d=1   d=2        d=4
 *   rank 0           0                  0 1        0 1 2 3    -> + 4
 *   rank 1           1                  1 2        1 2 3 4    -> + 0
 *   rank 4           4                  4 0        4 0 1 2    -> + 3
 *
 * Blocks land straight in their places in the output (no final rotation);
 * a run of blocks that wraps past rank n-1 moves as two messages, cut at
 * the same place on both sides.
 */
#include "coll_ctx.h"

tide_status_t coll_allgather_bruck(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    size_t block = op->count * op->esize;
    char *buf = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    coll_allgather_own(c, op);
    for (int d = 1; d < n && st == TIDE_SUCCESS; d *= 2) {
        int cnt = TIDE_MIN(d, n - d), to = (r - d + n) % n, from = (r + d) % n;
        int s1 = TIDE_MIN(cnt, n - r), r1 = TIDE_MIN(cnt, n - from);
        /* first part: up to rank n-1; second: the wrap from rank 0 */
        st = coll_sendrecv(c, to, buf + (size_t)r * block, (size_t)s1 * block, from,
                           buf + (size_t)from * block, (size_t)r1 * block, NULL, op->esize, "step");
        if (st == TIDE_SUCCESS && (s1 < cnt || r1 < cnt))
            st = coll_sendrecv(c, s1 < cnt ? to : -1, buf, (size_t)(cnt - s1) * block,
                               r1 < cnt ? from : -1, buf, (size_t)(cnt - r1) * block, NULL,
                               op->esize, "step (wrapped part)");
    }
    return st;
}
