/*
 * RDMA devices: discovery (TIDE_IB_DEVICES selects and orders them; by
 * default every device with an active port), the port and GID each uses,
 * one protection domain per device, and port events.
 *
 * GID choice (RoCE): TIDE_IB_GID_INDEX when set, else the first RoCE v2
 * GID that holds an IPv4 address, else the first RoCE v2 GID, else 0.
 * InfiniBand ports use LIDs and GID 0.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rdma.h"
#include "util_log.h"

static bool gid_is_ipv4(const union ibv_gid *g)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(g->raw, prefix, sizeof(prefix)) == 0;
}

static bool gid_is_zero(const union ibv_gid *g)
{
    static const union ibv_gid zero;
    return memcmp(g, &zero, sizeof(zero)) == 0;
}

static int choose_gid(struct ibv_context *ctx, uint8_t port, int table_len, union ibv_gid *out)
{
    int first_v2 = -1;
    for (int i = 0; i < table_len; i++) {
        struct ibv_gid_entry ent;
        if (ibv_query_gid_ex(ctx, port, (uint32_t)i, &ent, 0) != 0)
            continue;
        if (ent.gid_type != IBV_GID_TYPE_ROCE_V2 || gid_is_zero(&ent.gid))
            continue;
        if (gid_is_ipv4(&ent.gid)) {
            *out = ent.gid;
            return i;
        }
        if (first_v2 < 0) {
            first_v2 = i;
            *out = ent.gid;
        }
    }
    if (first_v2 >= 0)
        return first_v2;
    return ibv_query_gid(ctx, port, 0, out) == 0 ? 0 : -1;
}

static void dev_close(rdma_dev_t *d)
{
    rdma_cq_destroy(d);
    if (d->pd)
        ibv_dealloc_pd(d->pd);
    if (d->ctx)
        ibv_close_device(d->ctx);
    memset(d, 0, sizeof(*d));
}

/* Open dev on its first active port; false (logged) if it cannot be used. */
static bool dev_open(rdma_ctx_t *c, struct ibv_device *dev, int gid_index, bool asked,
                     rdma_dev_t *d)
{
    struct ibv_device_attr da;
    const char *name = ibv_get_device_name(dev);
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->ctx = ibv_open_device(dev);
    if (!d->ctx || ibv_query_device(d->ctx, &da) != 0) {
        tide_log(asked ? TIDE_LOG_WARN : TIDE_LOG_INFO, "rdma: cannot open %s: %m", name);
        goto fail;
    }
    struct ibv_port_attr pa;
    for (uint8_t p = 1; p <= da.phys_port_cnt; p++)
        if (ibv_query_port(d->ctx, p, &pa) == 0 && pa.state == IBV_PORT_ACTIVE) {
            d->port = p;
            break;
        }
    if (!d->port) {
        tide_log(asked ? TIDE_LOG_WARN : TIDE_LOG_INFO, "rdma: %s has no active port", name);
        goto fail;
    }
    d->lid = pa.lid;
    d->mtu = pa.active_mtu;
    d->max_rd_atomic = TIDE_MIN(da.max_qp_rd_atom, 16);
    if (pa.link_layer == IBV_LINK_LAYER_ETHERNET) {
        if (gid_index >= 0) {
            d->gid_index = gid_index;
            if (gid_index >= pa.gid_tbl_len ||
                ibv_query_gid(d->ctx, d->port, gid_index, &d->gid) != 0 || gid_is_zero(&d->gid)) {
                tide_warn("rdma: %s port %u has no GID at TIDE_IB_GID_INDEX=%d", name, d->port,
                          gid_index);
                goto fail;
            }
        } else if ((d->gid_index = choose_gid(d->ctx, d->port, pa.gid_tbl_len, &d->gid)) < 0) {
            tide_warn("rdma: %s port %u: no usable GID", name, d->port);
            goto fail;
        }
    } else {
        d->gid_index = 0;
        ibv_query_gid(d->ctx, d->port, 0, &d->gid);
    }
    d->pd = ibv_alloc_pd(d->ctx);
    if (!d->pd) {
        tide_warn("rdma: %s: ibv_alloc_pd: %m", name);
        goto fail;
    }
    if (rdma_cq_create(c, d) != TIDE_SUCCESS)
        goto fail;
    int fl = fcntl(d->ctx->async_fd, F_GETFL);
    fcntl(d->ctx->async_fd, F_SETFL, fl | O_NONBLOCK);
    d->port_up = 1;
    d->index = (int)(d - c->devs);
    tide_info("rdma: using %s port %u, gid index %d, mtu %d, lid %u", name, d->port, d->gid_index,
              128 << d->mtu, d->lid);
    return true;
fail:
    dev_close(d);
    return false;
}

tide_status_t rdma_devices_open(rdma_ctx_t *c, const char *names, int gid_index)
{
    int n = 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        /* No RDMA here (ENOSYS: no kernel support): not an error. */
        if (names[0])
            tide_warn("rdma: TIDE_IB_DEVICES=%s, but there are no RDMA devices (%s)", names,
                      errno ? strerror(errno) : "none found");
        else
            tide_debug("rdma: no devices (%s)", errno ? strerror(errno) : "none found");
        if (list)
            ibv_free_device_list(list);
        return TIDE_SUCCESS;
    }
    if (names[0]) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", names);
        for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int i = 0;
            while (i < n && strcmp(ibv_get_device_name(list[i]), t) != 0)
                i++;
            if (i == n) {
                tide_warn("rdma: TIDE_IB_DEVICES names %s, which is not here", t);
                continue;
            }
            if (c->ndev == P2P_MAX_DEVS) {
                tide_warn("rdma: using the first %d devices of TIDE_IB_DEVICES", P2P_MAX_DEVS);
                break;
            }
            if (dev_open(c, list[i], gid_index, true, &c->devs[c->ndev]))
                c->ndev++;
        }
    } else {
        for (int i = 0; i < n && c->ndev < P2P_MAX_DEVS; i++)
            if (dev_open(c, list[i], gid_index, false, &c->devs[c->ndev]))
                c->ndev++;
    }
    ibv_free_device_list(list);
    return TIDE_SUCCESS;
}

void rdma_devices_close(rdma_ctx_t *c)
{
    for (int i = 0; i < c->ndev; i++)
        dev_close(&c->devs[i]);
    c->ndev = 0;
}

void rdma_dev_wire(const rdma_dev_t *d, rdma_dev_wire_t *w)
{
    memset(w, 0, sizeof(*w));
    memcpy(w->gid, d->gid.raw, sizeof(w->gid));
    w->lid = d->lid;
    w->mtu = (uint8_t)d->mtu;
    w->port = d->port;
    w->sig_rkey = d->sig_mr ? d->sig_mr->rkey : 0;
}

void rdma_dev_async(rdma_ctx_t *c, rdma_dev_t *d)
{
    struct ibv_async_event ev;
    while (ibv_get_async_event(d->ctx, &ev) == 0) {
        enum ibv_event_type t = ev.event_type;
        tide_debug("rdma: %s: async event %s", d->name, ibv_event_type_str(t));
        ibv_ack_async_event(&ev);
        if (t == IBV_EVENT_PORT_ERR || t == IBV_EVENT_DEVICE_FATAL) {
            tide_warn("rdma: %s port %u: %s", d->name, d->port, ibv_event_type_str(t));
            __atomic_store_n(&d->port_up, 0, __ATOMIC_RELEASE);
            rdma_ep_port_event(c, d, false);
        } else if (t == IBV_EVENT_PORT_ACTIVE) {
            tide_info("rdma: %s port %u is active again", d->name, d->port);
            __atomic_store_n(&d->port_up, 1, __ATOMIC_RELEASE);
            rdma_ep_port_event(c, d, true);
        }
    }
}
