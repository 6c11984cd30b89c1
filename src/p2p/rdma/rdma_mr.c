/*
 * Memory registration: every local segment on every device (its lkey and
 * rkey per device travel in the segment's descriptor), and the signal
 * area peers write their signals into.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "rdma.h"
#include "util_log.h"

#define MR_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

void rdma_mr_register(rdma_ctx_t *c, p2p_lseg_t *seg)
{
    for (int d = 0; d < c->ndev; d++) {
        struct ibv_mr *mr = ibv_reg_mr(c->devs[d].pd, seg->addr, seg->len, MR_ACCESS);
        if (!mr) {
            /* Slices to and from this segment take another transport. */
            tide_warn("rdma: cannot register segment %u (%llu bytes) on %s: %m; it will move "
                      "over tcp",
                      seg->id, (unsigned long long)seg->len, c->devs[d].name);
            rdma_mr_deregister(c, seg);
            return;
        }
        seg->mr[d] = mr;
        seg->lkey[d] = mr->lkey;
        seg->rkey[d] = mr->rkey;
    }
    seg->rkey_valid = (1u << c->ndev) - 1;
}

void rdma_mr_deregister(rdma_ctx_t *c, p2p_lseg_t *seg)
{
    (void)c;
    for (int d = 0; d < P2P_MAX_DEVS; d++) {
        if (seg->mr[d] && ibv_dereg_mr(seg->mr[d]) != 0)
            tide_warn("rdma: ibv_dereg_mr of segment %u: %m", seg->id);
        seg->mr[d] = NULL;
        seg->lkey[d] = seg->rkey[d] = 0;
    }
    seg->rkey_valid = 0;
}

tide_status_t rdma_sig_register(rdma_ctx_t *c)
{
    size_t len = (size_t)c->e->nranks * P2P_NCHAN * sizeof(uint64_t);
    c->sig_len = (len + 4095) & ~(size_t)4095;
    c->sig = mmap(NULL, c->sig_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->sig == MAP_FAILED) {
        c->sig = NULL;
        tide_error("rdma: signal area of %zu bytes: %m", c->sig_len);
        return TIDE_ERR_NOMEM;
    }
    for (int d = 0; d < c->ndev; d++) {
        c->devs[d].sig_mr = ibv_reg_mr(c->devs[d].pd, c->sig, c->sig_len,
                                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
        if (!c->devs[d].sig_mr) {
            tide_error("rdma: cannot register the signal area on %s: %m", c->devs[d].name);
            return TIDE_ERR_IO;
        }
    }
    return TIDE_SUCCESS;
}

void rdma_sig_deregister(rdma_ctx_t *c)
{
    for (int d = 0; d < c->ndev; d++)
        if (c->devs[d].sig_mr) {
            ibv_dereg_mr(c->devs[d].sig_mr);
            c->devs[d].sig_mr = NULL;
        }
    if (c->sig)
        munmap(c->sig, c->sig_len);
    c->sig = NULL;
}
