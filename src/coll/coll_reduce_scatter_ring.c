/*
 * Ring reduce-scatter: the input holds n blocks of `count` elements; rank r
 * ends with block r reduced over all ranks.
 *
 * Like the first half of the ring allreduce, shifted so that each rank
 * finishes its own block: in step k (0..n-2) rank r sends block (r-k-1) to
 * r+1 and receives block (r-k-2) from r-1, reducing it in.
 *
 *   n = 3:   step 0: r sends block r-1, reduces block r-2 (= r+1)
 *            step 1: r sends block r+1 (now 2 parts), reduces block r  -> done
 *
 * The reduction happens in a scratch copy of the input (the input is the
 * caller's and stays untouched).
 */
#include <stdlib.h>
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_reduce_scatter_ring(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    size_t es = op->esize, block = op->count * es;
    coll_reduce_fn_t fn = coll_reduce_fn(op->dtype, op->redop);
    tide_status_t st = TIDE_SUCCESS;

    char *work = malloc(block * (size_t)n + 1);
    if (!work)
        return TIDE_ERR_NOMEM;
    memcpy(work, op->sbuf, block * (size_t)n);
    for (int k = 0; k < n - 1 && st == TIDE_SUCCESS; k++) {
        int sb = (r - k - 1 + 2 * n) % n, rb = (r - k - 2 + 2 * n) % n;
        st = coll_sendrecv(c, next, work + (size_t)sb * block, block, prev,
                           work + (size_t)rb * block, block, fn, es, "step");
    }
    if (st == TIDE_SUCCESS) {
        memmove(op->rbuf, work + (size_t)r * block, block);
        if (op->redop == TIDE_AVG)
            coll_reduce_finish_avg(op->rbuf, op->count, op->dtype, n);
    }
    free(work);
    return st;
}
