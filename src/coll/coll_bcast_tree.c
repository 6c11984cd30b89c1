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
 * log2(n) rounds. Large buffers go down the tree in chunks of
 * TIDE_CHUNK_SIZE, so an inner rank forwards chunk i while chunk i+1 is
 * still arriving (a pipelined tree); a rank sends to all its children at
 * once.
 */
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_bcast_tree(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, v = (c->rank - op->root + n) % n;
    size_t es = op->esize, bytes = op->count * es;
    size_t chunk = TIDE_MAX(es, c->chunk / es * es);
    char *buf = op->rbuf;
    int parent = -1, children[32], nchildren = 0, mask = 1;
    tide_status_t st = TIDE_SUCCESS;

    if (v == 0 && op->sbuf != op->rbuf)
        memcpy(buf, op->sbuf, bytes);
    while (mask < n) {
        if (v & mask) {
            parent = (v - mask + op->root) % n;
            break;
        }
        mask <<= 1;
    }
    for (mask >>= 1; mask > 0; mask >>= 1)
        if (v + mask < n)
            children[nchildren++] = (v + mask + op->root) % n;
    for (size_t off = 0; off < bytes && st == TIDE_SUCCESS; off += chunk) {
        size_t len = TIDE_MIN(chunk, bytes - off);
        coll_step_t steps[33];
        int k = 0;
        if (parent >= 0) {
            steps[0] = coll_recv_step(parent, buf + off, len, NULL, es);
            if ((st = coll_xfer(c, steps, 1, "receive")) != TIDE_SUCCESS)
                break;
        }
        for (int i = 0; i < nchildren; i++)
            steps[k++] = coll_send_step(children[i], buf + off, len);
        st = coll_xfer(c, steps, k, "forward");
    }
    return st;
}
