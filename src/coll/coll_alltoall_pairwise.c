/*
 * Pairwise-exchange alltoall: block j of rank r's input goes to rank j,
 * into block r of its output. In step k (1..n-1) rank r sends to r+k and
 * receives from r-k, so every step is a permutation and no rank is ever
 * the target of two senders at once.
 *
 *   n = 4, step 1: 0->1 1->2 2->3 3->0   step 2: 0->2 1->3 2->0 3->1   step 3: ...
 *
 * In place (sbuf == rbuf) works from a scratch copy of the input.
 */
#include <stdlib.h>
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_alltoall_pairwise(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank;
    size_t block = op->count * op->esize;
    const char *in = op->sbuf;
    char *out = op->rbuf, *copy = NULL;
    tide_status_t st = TIDE_SUCCESS;

    if (op->sbuf == op->rbuf) {
        copy = malloc(block * (size_t)n + 1);
        if (!copy)
            return TIDE_ERR_NOMEM;
        memcpy(copy, op->sbuf, block * (size_t)n);
        in = copy;
    }
    memmove(out + (size_t)r * block, in + (size_t)r * block, block);
    for (int k = 1; k < n && st == TIDE_SUCCESS; k++) {
        int to = (r + k) % n, from = (r - k + n) % n;
        st = coll_sendrecv(c, to, in + (size_t)to * block, block, from, out + (size_t)from * block,
                           block, NULL, op->esize, "step");
    }
    free(copy);
    return st;
}
