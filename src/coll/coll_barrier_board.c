/*
 * Board barrier, for ranks that all share one host: every rank shows an
 * empty value on its board (coll_board_exchange) and waits until every
 * other has shown its own. One exchange, in which every rank waits for
 * the others once, against the dissemination barrier's ceil(log2 n)
 * rounds of pipe messages.
 *
 *   n = 4:   0, 1, 2, 3 post value k;   each waits until all four show k
 */
#include "coll_ctx.h"

tide_status_t coll_barrier_board(coll_ctx_t *c, const coll_op_t *op)
{
    if (!coll_board_ok(c)) /* forced where a peer is not local */
        return coll_barrier_dissemination(c, op);
    const char **vals = coll_scratch(c, (size_t)c->nranks * sizeof(*vals));
    return vals ? coll_board_exchange(c, NULL, 0, vals) : TIDE_ERR_NOMEM;
}
