/*
 * Binomial-tree reduce: the broadcast tree run upwards. With v = (r - root)
 * mod n, rank v first receives from each child v + 2^j (for 2^j below its
 * lowest set bit), reducing as the data arrives, then sends the partial
 * result to its parent v minus that bit.
 *
 *   n = 8, root 0:   7 -> 6;  6,5 -> 4;  3 -> 2;  4,2,1 -> 0
 *
 * Chunked like the broadcast, so an inner rank passes chunk i up while it
 * still receives chunk i+1. Non-root ranks reduce into a scratch copy of
 * their input.
 */
#include <stdlib.h>
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_reduce_tree(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    size_t es = op->esize, bytes = op->count * es;
    size_t chunk = TIDE_MAX(es, c->chunk / es * es);
    coll_reduce_fn_t fn = coll_reduce_fn(op->dtype, op->redop);
    int parent = -1, children[32], nchildren = 0, mask = 1;
    tide_status_t st = TIDE_SUCCESS;

    char *acc = v == 0 ? op->rbuf : malloc(bytes + 1);
    if (!acc)
        return TIDE_ERR_NOMEM;
    if (acc != op->sbuf)
        memcpy(acc, op->sbuf, bytes);
    while (mask < n) {
        if (v & mask) {
            parent = (v - mask + op->root) % n;
            break;
        }
        mask <<= 1;
    }
    for (int m = 1; m < mask && v + m < n; m <<= 1)
        children[nchildren++] = (v + m + op->root) % n;
    for (size_t off = 0; off < bytes && st == TIDE_SUCCESS; off += chunk) {
        size_t len = TIDE_MIN(chunk, bytes - off);
        for (int i = 0; i < nchildren && st == TIDE_SUCCESS; i++) {
            coll_step_t s = coll_recv_step(children[i], acc + off, len, fn, es);
            st = coll_xfer(c, &s, 1, "receive from child");
        }
        if (st == TIDE_SUCCESS && parent >= 0) {
            coll_step_t s = coll_send_step(parent, acc + off, len);
            st = coll_xfer(c, &s, 1, "send to parent");
        }
    }
    if (st == TIDE_SUCCESS && v == 0 && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(acc, op->count, op->dtype, n);
    if (v != 0)
        free(acc);
    return st;
}
