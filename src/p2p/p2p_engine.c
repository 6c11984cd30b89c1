/*
 * Engine lifecycle: configuration, transports, the exchange of endpoint
 * information through the store, notifications, destroy.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "boot_store.h"
#include "p2p.h"
#include "transport.h"
#include "util_log.h"
#include "util_param.h"
#include "util_time.h"

#define EP_MAGIC 0x50455454u /* "TTEP" */

static uint64_t ns_inode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void self_info(tide_engine_t *e)
{
    p2p_ep_info_t *s = &e->self;
    s->magic = EP_MAGIC;
    s->rank = e->rank;
    s->pid = (int32_t)getpid();
    s->transports = e->transports;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f || !fgets(s->boot_id, sizeof(s->boot_id), f))
        gethostname(s->boot_id, sizeof(s->boot_id) - 1);
    if (f)
        fclose(f);
    s->boot_id[strcspn(s->boot_id, "\n")] = '\0';
    s->ipc_ns = ns_inode("/proc/self/ns/ipc");
    s->pid_ns = ns_inode("/proc/self/ns/pid");
}

/* TIDE_TRANSPORTS: a comma-separated subset of shm,rdma,tcp. */
static tide_status_t parse_transports(unsigned *mask)
{
    char buf[64];
    tide_status_t st = tide_param_str(TIDE_PARAM_TRANSPORTS, buf, sizeof(buf));
    if (st != TIDE_SUCCESS)
        return st;
    *mask = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "shm") == 0)
            *mask |= TIDE_TRANSPORT_SHM;
        else if (strcmp(t, "tcp") == 0)
            *mask |= TIDE_TRANSPORT_TCP;
        else if (strcmp(t, "rdma") == 0)
            *mask |= TIDE_TRANSPORT_RDMA;
        else {
            tide_error("TIDE_TRANSPORTS: unknown transport '%s' (known: shm, rdma, tcp)", t);
            return TIDE_ERR_INVALID;
        }
    }
    if (!*mask) {
        tide_error("TIDE_TRANSPORTS selects no transport");
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_status_t read_config(tide_engine_t *e, const tide_engine_config_t *cfg_in)
{
    tide_engine_config_t cfg = TIDE_ENGINE_CONFIG_INIT;
    int64_t v;
    tide_status_t st;

    if (cfg_in && cfg_in->size >= sizeof(size_t))
        memcpy(&cfg, cfg_in, TIDE_MIN(cfg_in->size, sizeof(cfg)));
    if (cfg.transports & ~(TIDE_TRANSPORT_SHM | TIDE_TRANSPORT_TCP | TIDE_TRANSPORT_RDMA)) {
        tide_error("tide_engine_config_t: unknown transport bits 0x%x", cfg.transports);
        return TIDE_ERR_INVALID;
    }
    if (cfg.transports)
        e->transports = cfg.transports;
    else if ((st = parse_transports(&e->transports)) != TIDE_SUCCESS)
        return st;
    if (cfg.tcp_streams < 0 || cfg.tcp_streams > 64) {
        tide_error("tide_engine_config_t: tcp_streams %d is not in 0..64", cfg.tcp_streams);
        return TIDE_ERR_INVALID;
    }
    if ((st = tide_param_int(TIDE_PARAM_TCP_STREAMS, &v)) != TIDE_SUCCESS)
        return st;
    e->tcp_streams = cfg.tcp_streams ? cfg.tcp_streams : (int)v;
    if (cfg.slice_size && (cfg.slice_size < 4096 || cfg.slice_size > (16u << 20))) {
        tide_error("tide_engine_config_t: slice_size %zu is not in 4K..16M", cfg.slice_size);
        return TIDE_ERR_INVALID;
    }
    if ((st = tide_param_int(TIDE_PARAM_SLICE_SIZE, &v)) != TIDE_SUCCESS)
        return st;
    e->slice_size = cfg.slice_size ? cfg.slice_size : (size_t)v;
    if ((st = tide_param_int(TIDE_PARAM_TCP_SOCKBUF, &v)) != TIDE_SUCCESS)
        return st;
    e->sockbuf = (size_t)v;
    if ((st = tide_param_int(TIDE_PARAM_TCP_DUPLEX, &v)) != TIDE_SUCCESS)
        return st;
    e->tcp_duplex = (int)v;
    if ((st = tide_param_str(TIDE_PARAM_TCP_CONGESTION, e->tcp_cc, sizeof(e->tcp_cc))) != 0)
        return st; /* too long for an algorithm's name (15 characters): logged */
    if (!e->tcp_cc[0] ||
        strspn(e->tcp_cc, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(e->tcp_cc)) {
        tide_error("TIDE_TCP_CONGESTION='%s': not auto, system or an algorithm's name", e->tcp_cc);
        return TIDE_ERR_INVALID;
    }
    e->timeout_ms = cfg.timeout_ms;
    if (e->timeout_ms <= 0 && (st = boot_default_timeout(&e->timeout_ms)) != TIDE_SUCCESS)
        return st;
    if ((st = tide_param_str(TIDE_PARAM_TCP_ADDR, e->tcp_host, sizeof(e->tcp_host))) != 0 ||
        (!e->tcp_host[0] &&
         (st = tide_param_str(TIDE_PARAM_BOOTSTRAP_ADDR, e->tcp_host, sizeof(e->tcp_host))) != 0))
        return st;
    if (!e->tcp_host[0])
        tide_sock_default_host(e->tcp_host, sizeof(e->tcp_host));
    if (cfg.ib_devices) { /* NULL from TIDE_ENGINE_CONFIG_INIT for an older, smaller config */
        if (strlen(cfg.ib_devices) >= sizeof(e->ib_devices)) {
            tide_error("tide_engine_config_t: ib_devices is longer than %zu characters",
                       sizeof(e->ib_devices) - 1);
            return TIDE_ERR_INVALID;
        }
        strcpy(e->ib_devices, cfg.ib_devices);
    } else if ((st = tide_param_str(TIDE_PARAM_IB_DEVICES, e->ib_devices, sizeof(e->ib_devices))) !=
               TIDE_SUCCESS)
        return st;
    return TIDE_SUCCESS;
}

static tide_status_t exchange_endpoints(tide_engine_t *e)
{
    char key[32];
    tide_status_t st;

    snprintf(key, sizeof(key), "ep/%d", e->rank);
    if ((st = tide_store_set(e->store, key, &e->self, sizeof(e->self))) != TIDE_SUCCESS)
        return st;
    for (int r = 0; r < e->nranks; r++) {
        void *val;
        size_t len;
        p2p_peer_t *p = &e->peers[r];
        snprintf(key, sizeof(key), "ep/%d", r);
        st = tide_store_get(e->store, key, e->timeout_ms, &val, &len);
        if (st != TIDE_SUCCESS) {
            tide_error("engine: rank %d did not publish its endpoint within %d ms", r,
                       e->timeout_ms);
            return st;
        }
        if (len != sizeof(p->info)) {
            free(val);
            tide_error("engine: rank %d's endpoint is %zu bytes, expected %zu", r, len,
                       sizeof(p->info));
            return TIDE_ERR_INVALID;
        }
        memcpy(&p->info, val, sizeof(p->info));
        free(val);
        p->info.boot_id[sizeof(p->info.boot_id) - 1] = '\0';
        if (p->info.magic != EP_MAGIC || p->info.rank != r ||
            (p->info.family != 4 && p->info.family != 6) || p->info.port == 0) {
            tide_error("engine: rank %d's endpoint record is not valid", r);
            return TIDE_ERR_INVALID;
        }
        p->same_host = strcmp(p->info.boot_id, e->self.boot_id) == 0 &&
                       p->info.ipc_ns == e->self.ipc_ns && p->info.pid_ns == e->self.pid_ns;
    }
    return TIDE_SUCCESS;
}

static void engine_free(tide_engine_t *e)
{
    /* No control message reaches a transport from here on; then every
     * transport's threads stop before any transport is freed, since they
     * call into each other (failover, control messages). */
    pthread_rwlock_wrlock(&e->ctrl_lock);
    e->closing = true;
    pthread_rwlock_unlock(&e->ctrl_lock);
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->stop)
            e->tr[i]->stop(e->tr_ctx[i]);
    for (int i = 0; i < e->ntr; i++)
        e->tr[i]->fini(e->tr_ctx[i]);
    if (e->peers)
        p2p_segments_fini(e);
    for (tide_batch_t *b = e->all_batches, *next; b; b = next) {
        next = b->next_all;
        free(b->slices);
        free(b->ptrs);
        free(b->notify_peers);
        free(b);
    }
    for (int r = 0; e->peers && r < e->nranks; r++)
        pthread_mutex_destroy(&e->peers[r].seg_lock);
    free(e->peers);
    boot_store_free(e->store);
    pthread_rwlock_destroy(&e->lseg_lock);
    pthread_rwlock_destroy(&e->ctrl_lock);
    pthread_mutex_destroy(&e->batch_lock);
    pthread_mutex_destroy(&e->notify_lock);
    pthread_cond_destroy(&e->notify_cond);
    free(e);
}

tide_status_t p2p_engine_create(tide_store_t *store, int rank, int nranks,
                                const tide_engine_config_t *cfg, tide_engine_t **out)
{
    char prefix[32];
    pthread_condattr_t ca;
    tide_status_t st;
    tide_engine_t *e = calloc(1, sizeof(*e));
    if (!e) {
        tide_error("engine: out of memory");
        return TIDE_ERR_NOMEM;
    }
    e->rank = rank;
    e->nranks = nranks;
    pthread_rwlock_init(&e->lseg_lock, NULL);
    pthread_rwlock_init(&e->ctrl_lock, NULL);
    pthread_mutex_init(&e->batch_lock, NULL);
    pthread_mutex_init(&e->notify_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->notify_cond, &ca);
    pthread_condattr_destroy(&ca);
    if ((st = read_config(e, cfg)) != TIDE_SUCCESS)
        goto err;
    snprintf(prefix, sizeof(prefix), "engine/%u/", boot_store_next_index(store));
    if ((st = boot_store_sub(store, prefix, &e->store)) != TIDE_SUCCESS)
        goto err;
    e->peers = calloc((size_t)nranks, sizeof(*e->peers));
    if (!e->peers) {
        st = TIDE_ERR_NOMEM;
        goto err;
    }
    for (int r = 0; r < nranks; r++) {
        e->peers[r].rank = r;
        pthread_mutex_init(&e->peers[r].seg_lock, NULL);
        snprintf(e->peers[r].shm_path.name, sizeof(e->peers[r].shm_path.name), "shm->%d", r);
    }
    self_info(e);
    /* In order of preference: shm where it reaches, then rdma (only when
     * asked for), then tcp, always (signals, control, every fallback). */
    const p2p_transport_ops_t *all[] = {&p2p_shm_transport, &p2p_rdma_transport,
                                        &p2p_tcp_transport};
    for (size_t i = 0; i < TIDE_ARRAY_SIZE(all); i++) {
        if (all[i]->bit == TIDE_TRANSPORT_RDMA && !(e->transports & TIDE_TRANSPORT_RDMA))
            continue;
        if ((st = all[i]->init(e, &e->tr_ctx[e->ntr])) != TIDE_SUCCESS)
            goto err;
        e->tr[e->ntr++] = all[i];
    }
    if ((st = exchange_endpoints(e)) != TIDE_SUCCESS)
        goto err;
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->connect)
            e->tr[i]->connect(e->tr_ctx[i]);
    tide_info("engine ready: rank %d of %d, transports 0x%x (this host: 0x%x), %d tcp streams "
              "per peer, slices of %zu bytes",
              rank, nranks, e->transports, e->self.transports, e->tcp_streams, e->slice_size);
    *out = e;
    return TIDE_SUCCESS;
err:
    tide_error("engine creation (rank %d of %d) failed: %s", rank, nranks, tide_status_str(st));
    engine_free(e);
    return st;
}

tide_status_t tide_engine_create_from_store(tide_store_t *store, int rank, int nranks,
                                            const tide_engine_config_t *cfg, tide_engine_t **engine)
{
    if (!store || !engine || nranks < 1 || rank < 0 || rank >= nranks) {
        tide_error("tide_engine_create_from_store: need a store, an output and 0 <= rank < "
                   "nranks (rank %d, nranks %d)",
                   rank, nranks);
        return TIDE_ERR_INVALID;
    }
    return p2p_engine_create(store, rank, nranks, cfg, engine);
}

tide_status_t tide_engine_destroy(tide_engine_t *e)
{
    if (!e) {
        tide_error("tide_engine_destroy: engine must not be NULL");
        return TIDE_ERR_INVALID;
    }
    engine_free(e);
    return TIDE_SUCCESS;
}

/* --------------------------------------------------------- notifications */

void p2p_signal_received(tide_engine_t *e, int from, uint32_t chan, uint64_t value)
{
    p2p_peer_t *p = &e->peers[from];
    pthread_mutex_lock(&e->notify_lock);
    /* Values may arrive out of order over several streams, and a re-posted
     * one twice: keep the highest. A notification is sent only after its
     * batch's writes landed, so the highest covers all before it. */
    if (value > p->signal[chan])
        __atomic_store_n(&p->signal[chan], value, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&e->notify_cond);
    p2p_signal_hook_t hook = e->signal_hook;
    void *arg = e->signal_hook_arg;
    pthread_mutex_unlock(&e->notify_lock);
    if (hook)
        hook(arg);
}

void p2p_set_signal_hook(tide_engine_t *e, p2p_signal_hook_t hook, void *arg)
{
    pthread_mutex_lock(&e->notify_lock);
    e->signal_hook = hook;
    e->signal_hook_arg = arg;
    pthread_mutex_unlock(&e->notify_lock);
}

tide_status_t tide_notify_count(tide_engine_t *e, int peer, uint64_t *count)
{
    if (!e || !count || peer < 0 || peer >= e->nranks) {
        tide_error("tide_notify_count: need an engine, a count and a peer in range (%d)", peer);
        return TIDE_ERR_INVALID;
    }
    *count = p2p_signal_value(e, peer, 0);
    return TIDE_SUCCESS;
}

tide_status_t tide_notify_wait(tide_engine_t *e, int peer, uint64_t count, int timeout_ms)
{
    struct timespec ts;
    if (!e || peer < 0 || peer >= e->nranks) {
        tide_error("tide_notify_wait: need an engine and a peer in range (%d)", peer);
        return TIDE_ERR_INVALID;
    }
    if (timeout_ms < 0)
        timeout_ms = e->timeout_ms;
    p2p_peer_t *p = &e->peers[peer];
    tide_deadline_timespec(tide_deadline_ms(timeout_ms), &ts);
    pthread_mutex_lock(&e->notify_lock);
    int rc = 0;
    while (p->signal[0] < count && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->notify_cond, &e->notify_lock, &ts);
    uint64_t have = p->signal[0];
    pthread_mutex_unlock(&e->notify_lock);
    if (have < count) {
        tide_error("tide_notify_wait: %llu of %llu notifications from rank %d after %d ms",
                   (unsigned long long)have, (unsigned long long)count, peer, timeout_ms);
        return TIDE_ERR_TIMEOUT;
    }
    return TIDE_SUCCESS;
}

/* ------------------------------------------------ caller-driven progress */

unsigned p2p_poll_begin(tide_engine_t *e)
{
    unsigned taken = 0;
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->poll_begin && e->tr[i]->poll_begin(e->tr_ctx[i]))
            taken |= 1u << i;
    return taken;
}

bool p2p_peer_tcp_only(tide_engine_t *e, int peer)
{
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->bit != TIDE_TRANSPORT_TCP && (e->transports & e->tr[i]->bit) &&
            e->tr[i]->reaches(e->tr_ctx[i], &e->peers[peer]))
            return false;
    return true;
}

tide_status_t p2p_zone_open(tide_engine_t *e, p2p_zone_t *z)
{
    if (!z || !z->dst || z->len == 0) {
        tide_error("p2p_zone_open: need a zone with a destination and a length");
        return TIDE_ERR_INVALID;
    }
    z->n = 0;
    z->reserved = 0;
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->zone_open)
            return e->tr[i]->zone_open(e->tr_ctx[i], z);
    return TIDE_ERR_UNSUPPORTED;
}

void p2p_zone_close(tide_engine_t *e, p2p_zone_t *z)
{
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->zone_close) {
            e->tr[i]->zone_close(e->tr_ctx[i], z);
            return;
        }
}

uint64_t p2p_zone_landed(const p2p_zone_t *z, uint64_t at, uint64_t *next)
{
    uint32_t n = __atomic_load_n(&z->n, __ATOMIC_ACQUIRE);
    uint64_t len = 0;
    *next = z->off + z->len;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = z->runs[i].off, b = a + z->runs[i].len;
        if (a <= at && at < b)
            len = TIDE_MAX(len, b - at);
        else if (a > at && a < *next)
            *next = a;
    }
    return len;
}

bool p2p_poll(tide_engine_t *e, unsigned taken)
{
    bool any = false;
    for (int i = 0; i < e->ntr; i++)
        if (taken & (1u << i))
            any |= e->tr[i]->poll(e->tr_ctx[i]);
    return any;
}

void p2p_poll_end(tide_engine_t *e, unsigned taken, bool now)
{
    for (int i = 0; i < e->ntr; i++)
        if (taken & (1u << i))
            e->tr[i]->poll_end(e->tr_ctx[i], now);
}

/* ------------------------------------------------------ control messages */

void p2p_ctrl_received(tide_engine_t *e, int from, uint32_t word, uint64_t a, uint64_t b)
{
    unsigned bit = word >> 24;
    pthread_rwlock_rdlock(&e->ctrl_lock);
    for (int i = 0; i < e->ntr && !e->closing; i++)
        if (e->tr[i]->bit == bit && e->tr[i]->ctrl) {
            e->tr[i]->ctrl(e->tr_ctx[i], from, word & 0xffffffu, a, b);
            pthread_rwlock_unlock(&e->ctrl_lock);
            return;
        }
    pthread_rwlock_unlock(&e->ctrl_lock);
    tide_debug("control message 0x%x from rank %d for a transport not here: dropped", word, from);
}

/* ------------------------------------------------------------ statistics */

tide_status_t tide_engine_paths(tide_engine_t *e, int peer, tide_path_stats_t *out, size_t max,
                                size_t *n)
{
    if (!e || !n || (max > 0 && !out) || peer < 0 || peer >= e->nranks) {
        tide_error("tide_engine_paths: need an engine, a count, room for max (%zu) paths and a "
                   "peer in range (%d)",
                   max, peer);
        return TIDE_ERR_INVALID;
    }
    size_t total = 0;
    for (int i = 0; i < e->ntr; i++) {
        if (!e->tr[i]->paths)
            continue;
        size_t room = total < max ? max - total : 0;
        total += e->tr[i]->paths(e->tr_ctx[i], &e->peers[peer], room ? out + total : NULL, room);
    }
    *n = total;
    return TIDE_SUCCESS;
}

tide_status_t tide_engine_counters(tide_engine_t *e, tide_engine_counters_t *out)
{
    if (!e || !out) {
        tide_error("tide_engine_counters: need an engine and an output");
        return TIDE_ERR_INVALID;
    }
    out->rdma_post_calls = __atomic_load_n(&e->counters.rdma_post_calls, __ATOMIC_RELAXED);
    out->rdma_wrs = __atomic_load_n(&e->counters.rdma_wrs, __ATOMIC_RELAXED);
    out->rdma_signaled = __atomic_load_n(&e->counters.rdma_signaled, __ATOMIC_RELAXED);
    out->rdma_cqes = __atomic_load_n(&e->counters.rdma_cqes, __ATOMIC_RELAXED);
    out->tcp_frames_in = __atomic_load_n(&e->counters.tcp_frames_in, __ATOMIC_RELAXED);
    out->tcp_acks_out = __atomic_load_n(&e->counters.tcp_acks_out, __ATOMIC_RELAXED);
    out->tcp_acks_carried = __atomic_load_n(&e->counters.tcp_acks_carried, __ATOMIC_RELAXED);
    return TIDE_SUCCESS;
}
