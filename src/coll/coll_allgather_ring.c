/*
 * Ring allgather: rank r's block starts at its place in the output; in step
 * k (0..n-2) each rank sends block (r-k) to r+1 and receives block (r-k-1)
 * from r-1, straight into its place.
 *
 *   n = 4    step 0: r sends its own block     step 1: the one it just got ...
 *            after n-1 steps every rank has all n blocks.
 *
 * In place when sbuf is the rank's own block of rbuf (rbuf + r*count).
 */
#include <string.h>
#include "coll_ctx.h"

void coll_allgather_own(const coll_ctx_t *c, const coll_op_t *op)
{
    size_t block = op->count * op->esize;
    char *mine = (char *)op->rbuf + (size_t)c->rank * block;
    if (op->sbuf != mine)
        memcpy(mine, op->sbuf, block);
}

tide_status_t coll_allgather_ring(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    size_t block = op->count * op->esize;
    char *buf = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    coll_allgather_own(c, op);
    for (int k = 0; k < n - 1 && st == TIDE_SUCCESS; k++) {
        int sb = (r - k + n) % n, rb = (r - k - 1 + n) % n;
        st = coll_sendrecv(c, next, buf + (size_t)sb * block, block, prev, buf + (size_t)rb * block,
                           block, NULL, op->esize, "step");
    }
    return st;
}
