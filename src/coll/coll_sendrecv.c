/*
 * Point-to-point send and receive: a message on the pipe to (from) the
 * peer. Matching is by order: the k-th send from A to B meets the k-th
 * receive on B from A, counting the traffic of collectives between them
 * too, as every rank issues operations in the same order.
 */
#include "coll_ctx.h"

tide_status_t coll_sendrecv_p2p(coll_ctx_t *c, const coll_op_t *op)
{
    size_t bytes = op->count * op->esize;
    coll_step_t s = op->kind == COLL_SEND ? coll_send_step(op->root, op->sbuf, bytes)
                                          : coll_recv_step(op->root, op->rbuf, bytes, NULL, 1);
    return coll_xfer(c, &s, 1, op->kind == COLL_SEND ? "message" : "message");
}
