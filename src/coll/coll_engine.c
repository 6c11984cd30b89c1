/* tide_engine_create: a transfer engine over a communicator's ranks, in
 * the communicator's own store namespace. */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include "coll_comm.h"
#include "p2p.h"
#include "util_log.h"

tide_status_t tide_engine_create(tide_comm_t *comm, const tide_engine_config_t *cfg,
                                 tide_engine_t **engine)
{
    if (!comm || !engine) {
        tide_error("tide_engine_create: comm and engine must not be NULL");
        return TIDE_ERR_INVALID;
    }
    return p2p_engine_create(comm->sys, comm->rank, comm->nranks, cfg, engine);
}
