/*
 * Ring allreduce: a reduce-scatter, then an allgather, around the ring
 * r -> r+1.
 *
 * The buffer is cut into n blocks. In reduce-scatter step k (0..n-2) rank r
 * sends block (r-k) to r+1 while it receives block (r-k-1) from r-1 and
 * reduces it into its own copy; after n-1 steps rank r holds the finished
 * block (r+1). The allgather then passes finished blocks on: in step k rank
 * r sends block (r+1-k) and receives block (r-k).
 *
 *   n = 3, blocks A B C, X_i = rank i's part of X
 *
 *            rank 0           rank 1           rank 2
 *   RS k=0   send A0   ->     A0+A1            ...
 *            C2+C0     <-     send B1 -> B1+B2  send C2 -> (rank 0)
 *   RS k=1   send C20 ->      C sums ...       A sums ...   rank 0: B done
 *   AG k=0,1 each rank forwards what it finished; everyone ends with A B C.
 *
 * Each rank sends and receives 2(n-1)/n of the buffer: bandwidth-optimal.
 * Buffers larger than n x TIDE_CHUNK_SIZE go round in segments of that
 * size, so blocks stay near the cache and the pipes keep every rank busy.
 * Sends and receives of a step run at once (coll_xfer), so pipes smaller
 * than a block cannot deadlock the ring. Out of place, the input is never
 * copied to the output: each reduce-scatter step writes input + received
 * into the output in one pass (the first sends from the input), and the
 * one block no step receives there, a rank's own, the allgather brings.
 */
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_allreduce_ring(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    size_t es = op->esize;
    char *buf = op->rbuf;
    tide_status_t st = TIDE_SUCCESS;

    const char *in = op->sbuf;
    if (n == 1 && in != buf)
        memcpy(buf, in, op->count * es);
    size_t seg = TIDE_MAX((size_t)n, c->chunk / es * (size_t)n);
    for (size_t off = 0; off < op->count && n > 1 && st == TIDE_SUCCESS; off += seg) {
        size_t m = TIDE_MIN(seg, op->count - off);
#define LO(b)  (off + m * (size_t)(b) / (size_t)n)
#define LEN(b) (m * ((size_t)(b) + 1) / (size_t)n - m * (size_t)(b) / (size_t)n)
        for (int k = 0; k < n - 1 && st == TIDE_SUCCESS; k++) {
            int sb = (r - k + n) % n, rb = (r - k - 1 + n) % n;
            /* what arrives is combined with my input into the output (one
             * pass); the first step sends my input itself */
            coll_step_t s[2] = {
                coll_send_step(next, (k == 0 ? in : buf) + LO(sb) * es, LEN(sb) * es),
                coll_recv_with_step(prev, buf + LO(rb) * es, in + LO(rb) * es, LEN(rb) * es,
                                    op->dtype, op->redop, es)};
            st = coll_xfer(c, s, 2, "reduce-scatter step");
        }
        for (int k = 0; k < n - 1 && st == TIDE_SUCCESS; k++) {
            int sb = (r + 1 - k + n) % n, rb = (r - k + n) % n;
            st = coll_sendrecv(c, next, buf + LO(sb) * es, LEN(sb) * es, prev, buf + LO(rb) * es,
                               LEN(rb) * es, NULL, es, "allgather step");
        }
#undef LO
#undef LEN
    }
    if (st == TIDE_SUCCESS && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(buf, op->count, op->dtype, n);
    return st;
}
