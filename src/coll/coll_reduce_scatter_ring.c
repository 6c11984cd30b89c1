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
 * The input is the caller's and stays untouched: what arrives is combined
 * with the input's block in one pass into one of two scratch blocks, used
 * in turn (step k sends what step k-1 wrote), and in the last step into
 * the output itself. Only where the output overlaps the input elsewhere
 * than at block r (in place: output == input) does the last step go to
 * scratch too, and the result is moved.
 */
#include <stdint.h>
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_reduce_scatter_ring(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    size_t es = op->esize, block = op->count * es;
    const char *in = op->sbuf;
    char *out = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    uintptr_t o = (uintptr_t)out, i0 = (uintptr_t)in, i1 = i0 + block * (size_t)n;
    bool overlaps = out != in + (size_t)r * block && o < i1 && o + block > i0;
    char *tmp = NULL;
    if (n > 1 && !(tmp = coll_scratch(c, 2 * block)))
        return TIDE_ERR_NOMEM;
    if (n == 1)
        memmove(out, in, block);
    for (int k = 0; k < n - 1 && st == TIDE_SUCCESS; k++) {
        int sb = (r - k - 1 + 2 * n) % n, rb = (r - k - 2 + 2 * n) % n;
        const char *from = k == 0 ? in + (size_t)sb * block : tmp + (size_t)((k - 1) & 1) * block;
        char *to = k == n - 2 && !overlaps ? out : tmp + (size_t)(k & 1) * block;
        coll_step_t s[2] = {coll_send_step(next, from, block),
                            coll_recv_with_step(prev, to, in + (size_t)rb * block, block, op->dtype,
                                                op->redop, es)};
        st = coll_xfer(c, s, 2, "step");
    }
    if (st == TIDE_SUCCESS) {
        if (n > 1 && overlaps)
            memmove(out, tmp + (size_t)((n - 2) & 1) * block, block);
        if (op->redop == TIDE_AVG)
            coll_reduce_finish_avg(out, op->count, op->dtype, n);
    }
    return st;
}
