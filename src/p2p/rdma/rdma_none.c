/*
 * The RDMA transport of a build without libibverbs: reaches no peer, and
 * says so once when RDMA was asked for by name.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include "transport.h"
#include "util_log.h"

static tide_status_t none_init(tide_engine_t *e, void **ctx)
{
    if (e->ib_devices[0])
        tide_warn("rdma: TIDE_IB_DEVICES=%s, but this Tide was built without libibverbs",
                  e->ib_devices);
    e->self.transports &= ~TIDE_TRANSPORT_RDMA;
    *ctx = NULL;
    return TIDE_SUCCESS;
}

static bool none_reaches(void *ctx, const p2p_peer_t *peer)
{
    (void)ctx;
    (void)peer;
    return false;
}

static size_t none_post(void *ctx, p2p_peer_t *peer, p2p_slice_t **s, size_t n)
{
    (void)ctx;
    (void)peer;
    (void)s;
    (void)n;
    return 0;
}

static void none_fini(void *ctx)
{
    (void)ctx;
}

const p2p_transport_ops_t p2p_rdma_transport = {
    .name = "rdma",
    .bit = TIDE_TRANSPORT_RDMA,
    .init = none_init,
    .reaches = none_reaches,
    .post = none_post,
    .fini = none_fini,
};
