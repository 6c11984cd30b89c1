/*
 * Direct broadcast, for ranks that all share one host and may read each
 * other's memory: the root tells every rank where its buffer is; every
 * rank copies it straight into its own output (one copy per rank, all at
 * once); the root waits until all have read before it returns.
 *
 *   root ----(address)----> 1, 2, 3
 *   1, 2, 3: out <- root's buffer     (process_vm_readv)
 *   1, 2, 3 ----("read")---> root
 *
 * Through pipes each hop costs two copies (into the ring and out of it);
 * here every rank makes one.
 */
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_bcast_direct(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, root = op->root;
    size_t bytes = op->count * op->esize;
    tide_status_t st = TIDE_SUCCESS;

    if (r == root) {
        const void *src = op->sbuf;
        if (op->sbuf != op->rbuf)
            memcpy(op->rbuf, op->sbuf, bytes);
        else
            src = op->rbuf;
        uint64_t addr = (uint64_t)(uintptr_t)src;
        coll_step_t steps[2 * 64];
        char tokens[64];
        int k = 0;
        for (int p = 0; p < n && k < 128; p++) {
            if (p == r)
                continue;
            steps[k++] = coll_send_step(p, &addr, sizeof(addr));
            steps[k++] = coll_recv_step(p, &tokens[p], 1, NULL, 1);
        }
        return coll_xfer(c, steps, k, "address out, reads back");
    }
    uint64_t addr = 0;
    char token = 1;
    coll_step_t s = coll_recv_step(root, &addr, sizeof(addr), NULL, 1);
    if ((st = coll_xfer(c, &s, 1, "root's address")) != TIDE_SUCCESS)
        return st;
    st = coll_direct_read(c, root, op->rbuf, addr, bytes);
    s = coll_send_step(root, &token, 1); /* sent even after a failed read: no one waits in vain */
    tide_status_t st2 = coll_xfer(c, &s, 1, "done reading");
    return st != TIDE_SUCCESS ? st : st2;
}
