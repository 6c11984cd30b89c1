/*
 * Segments: local ones (registered user memory, or memfd memory peers on
 * the host can map), their descriptors in the store, and peers' segments
 * opened from those descriptors.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "boot_store.h"
#include "p2p.h"
#include "transport.h"
#include "util_log.h"
#include "util_numa.h"
#include "util_time.h"

#define SEG_MAGIC 0x47455354u /* "TSEG" */

static tide_status_t check_engine(tide_engine_t *e, const char *call)
{
    if (!e) {
        tide_error("%s: engine must not be NULL", call);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static void seg_describe(const tide_engine_t *e, const p2p_lseg_t *seg, p2p_seg_desc_t *d)
{
    memset(d, 0, sizeof(*d));
    d->magic = SEG_MAGIC;
    d->owner = (uint32_t)e->rank;
    d->id = seg->id;
    d->kind = seg->kind;
    d->base = (uint64_t)(uintptr_t)seg->addr;
    d->len = seg->len;
    d->pid = (int32_t)getpid();
    d->memfd = seg->memfd;
    memcpy(d->rkey, seg->rkey, sizeof(d->rkey));
    d->rkey_valid = seg->rkey_valid;
}

/* Add seg to the table and publish its descriptor. */
static tide_status_t lseg_add(tide_engine_t *e, p2p_lseg_t *seg, uint32_t *id)
{
    char key[48];
    p2p_seg_desc_t d = {0};
    tide_status_t st = TIDE_SUCCESS;

    pthread_rwlock_wrlock(&e->lseg_lock);
    if (e->nlsegs == e->lsegs_cap) {
        uint32_t cap = e->lsegs_cap ? e->lsegs_cap * 2 : 16;
        p2p_lseg_t **t = realloc(e->lsegs, cap * sizeof(*t));
        if (!t)
            st = TIDE_ERR_NOMEM;
        else {
            e->lsegs = t;
            e->lsegs_cap = cap;
        }
    }
    if (st == TIDE_SUCCESS) {
        seg->id = e->nlsegs;
        e->lsegs[e->nlsegs++] = seg;
    }
    pthread_rwlock_unlock(&e->lseg_lock);
    if (st != TIDE_SUCCESS) {
        tide_error("segment table: out of memory");
        return st;
    }
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->seg_register)
            e->tr[i]->seg_register(e->tr_ctx[i], seg);
    seg_describe(e, seg, &d);
    snprintf(key, sizeof(key), "seg/%d/%u", e->rank, seg->id);
    st = tide_store_set(e->store, key, &d, sizeof(d));
    if (st != TIDE_SUCCESS) {
        pthread_rwlock_wrlock(&e->lseg_lock);
        seg->dead = true;
        pthread_rwlock_unlock(&e->lseg_lock);
        return st;
    }
    *id = seg->id;
    return TIDE_SUCCESS;
}

tide_status_t tide_segment_register(tide_engine_t *e, void *addr, size_t len, uint32_t *id)
{
    tide_status_t st = check_engine(e, "tide_segment_register");
    if (st != TIDE_SUCCESS)
        return st;
    if (!addr || len == 0 || !id || (uintptr_t)addr + len < (uintptr_t)addr) {
        tide_error("tide_segment_register: need memory (addr %p, len %zu) and an id pointer", addr,
                   len);
        return TIDE_ERR_INVALID;
    }
    p2p_lseg_t *seg = calloc(1, sizeof(*seg));
    if (!seg) {
        tide_error("tide_segment_register: out of memory");
        return TIDE_ERR_NOMEM;
    }
    seg->kind = P2P_SEG_USER;
    seg->addr = addr;
    seg->len = len;
    seg->memfd = -1;
    return lseg_add(e, seg, id);
}

tide_status_t tide_segment_alloc(tide_engine_t *e, size_t len, void **addr, uint32_t *id)
{
    char name[32];
    tide_status_t st = check_engine(e, "tide_segment_alloc");
    if (st != TIDE_SUCCESS)
        return st;
    if (len == 0 || !addr || !id) {
        tide_error("tide_segment_alloc: need len > 0 (got %zu), addr and id", len);
        return TIDE_ERR_INVALID;
    }
    p2p_lseg_t *seg = calloc(1, sizeof(*seg));
    if (!seg)
        goto err_nomem;
    snprintf(name, sizeof(name), "tide-seg-%d", e->rank);
    seg->memfd = memfd_create(name, MFD_CLOEXEC);
    if (seg->memfd < 0) {
        tide_error("tide_segment_alloc: memfd_create: %m");
        goto err_free;
    }
    if (ftruncate(seg->memfd, (off_t)len) != 0) {
        tide_error("tide_segment_alloc: ftruncate(%zu): %m", len);
        goto err_close;
    }
    seg->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, seg->memfd, 0);
    if (seg->addr == MAP_FAILED) {
        tide_error("tide_segment_alloc: mmap(%zu): %m", len);
        goto err_close;
    }
    tide_numa_place(seg->addr, len, tide_numa_node_here()); /* before first touch */
    seg->kind = P2P_SEG_SHM;
    seg->len = len;
    st = lseg_add(e, seg, id);
    if (st == TIDE_SUCCESS)
        *addr = seg->addr;
    return st; /* on failure the dead segment stays in the table, freed at destroy */

err_close:
    close(seg->memfd);
err_free:
    free(seg);
    return TIDE_ERR_IO;
err_nomem:
    tide_error("tide_segment_alloc: out of memory");
    return TIDE_ERR_NOMEM;
}

static void lseg_release(p2p_lseg_t *seg)
{
    if (seg->kind == P2P_SEG_SHM) {
        munmap(seg->addr, seg->len);
        close(seg->memfd);
    }
    free(seg);
}

tide_status_t tide_segment_free(tide_engine_t *e, uint32_t id)
{
    char key[48];
    tide_status_t st = check_engine(e, "tide_segment_free");
    if (st != TIDE_SUCCESS)
        return st;
    pthread_rwlock_wrlock(&e->lseg_lock);
    p2p_lseg_t *seg = id < e->nlsegs ? e->lsegs[id] : NULL;
    if (!seg || seg->dead) {
        pthread_rwlock_unlock(&e->lseg_lock);
        tide_error("tide_segment_free: no local segment %u", id);
        return TIDE_ERR_INVALID;
    }
    seg->dead = true; /* no new transfer takes it */
    pthread_rwlock_unlock(&e->lseg_lock);

    int64_t deadline = tide_deadline_ms(e->timeout_ms);
    while (__atomic_load_n(&seg->busy, __ATOMIC_ACQUIRE) > 0 && tide_ms_left(deadline) > 0)
        usleep(200);
    if (__atomic_load_n(&seg->busy, __ATOMIC_ACQUIRE) > 0) {
        tide_error("tide_segment_free: segment %u is still in use by %d transfers after %d ms", id,
                   seg->busy, e->timeout_ms);
        return TIDE_ERR_TIMEOUT; /* stays dead and allocated; freed at destroy */
    }
    pthread_rwlock_wrlock(&e->lseg_lock);
    e->lsegs[id] = NULL;
    pthread_rwlock_unlock(&e->lseg_lock);
    snprintf(key, sizeof(key), "seg/%d/%u", e->rank, id);
    tide_store_delete(e->store, key, NULL);
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->seg_deregister)
            e->tr[i]->seg_deregister(e->tr_ctx[i], seg);
    lseg_release(seg);
    return TIDE_SUCCESS;
}

p2p_lseg_t *p2p_lseg_get(tide_engine_t *e, uint32_t id, uint64_t off, uint64_t len, const char *who)
{
    p2p_lseg_t *seg;
    pthread_rwlock_rdlock(&e->lseg_lock);
    seg = id < e->nlsegs ? e->lsegs[id] : NULL;
    if (seg && !seg->dead && p2p_range_ok(off, len, seg->len))
        __atomic_add_fetch(&seg->busy, 1, __ATOMIC_ACQ_REL);
    else {
        if (seg && !seg->dead)
            tide_error("%s: [%" PRIu64 ", +%" PRIu64 ") is outside local segment %u of %" PRIu64
                       " bytes",
                       who, off, len, id, seg->len);
        else
            tide_error("%s: no local segment %u", who, id);
        seg = NULL;
    }
    pthread_rwlock_unlock(&e->lseg_lock);
    return seg;
}

void p2p_lseg_put(p2p_lseg_t *seg)
{
    __atomic_sub_fetch(&seg->busy, 1, __ATOMIC_ACQ_REL);
}

p2p_rseg_t *p2p_rseg_find(p2p_peer_t *peer, uint32_t id)
{
    p2p_rseg_t *r = NULL;
    pthread_mutex_lock(&peer->seg_lock);
    if (id < peer->nrsegs)
        r = peer->rsegs[id];
    pthread_mutex_unlock(&peer->seg_lock);
    return r;
}

static tide_status_t desc_parse(int peer, uint32_t id, const void *val, size_t len,
                                p2p_seg_desc_t *d)
{
    if (len != sizeof(*d)) {
        tide_error("segment %u of rank %d: descriptor of %zu bytes, expected %zu", id, peer, len,
                   sizeof(*d));
        return TIDE_ERR_INVALID;
    }
    memcpy(d, val, sizeof(*d));
    if (d->magic != SEG_MAGIC || d->owner != (uint32_t)peer || d->id != id ||
        (d->kind != P2P_SEG_USER && d->kind != P2P_SEG_SHM) || d->len == 0) {
        tide_error("segment %u of rank %d: descriptor is not valid", id, peer);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

/* Parse a descriptor and make it peer's open segment (idempotent). */
static tide_status_t rseg_install(tide_engine_t *e, int peer, uint32_t id, const void *val,
                                  size_t len)
{
    p2p_peer_t *p = &e->peers[peer];
    p2p_rseg_t *r = calloc(1, sizeof(*r));
    if (!r)
        return TIDE_ERR_NOMEM;
    tide_status_t st = desc_parse(peer, id, val, len, &r->desc);
    if (st != TIDE_SUCCESS) {
        free(r);
        return st;
    }
    if (p2p_rseg_find(p, r->desc.id)) {
        free(r);
        return TIDE_SUCCESS;
    }
    id = r->desc.id;
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i]->seg_open)
            e->tr[i]->seg_open(e->tr_ctx[i], p, r);

    pthread_mutex_lock(&p->seg_lock);
    if (id >= p->nrsegs) {
        uint32_t n = TIDE_MAX(id + 1, p->nrsegs * 2);
        p2p_rseg_t **t = realloc(p->rsegs, n * sizeof(*t));
        if (t) {
            memset(t + p->nrsegs, 0, (n - p->nrsegs) * sizeof(*t));
            p->rsegs = t;
            p->nrsegs = n;
        }
    }
    bool stored = false;
    if (id < p->nrsegs && !p->rsegs[id]) {
        p->rsegs[id] = r;
        stored = true;
    }
    pthread_mutex_unlock(&p->seg_lock);
    if (!stored) { /* another thread opened it meanwhile, or no memory */
        for (int i = 0; i < e->ntr; i++)
            if (e->tr[i]->seg_close)
                e->tr[i]->seg_close(e->tr_ctx[i], r);
        free(r);
        return p2p_rseg_find(p, id) ? TIDE_SUCCESS : TIDE_ERR_NOMEM;
    }
    return TIDE_SUCCESS;
}

static tide_status_t check_peer(tide_engine_t *e, int peer, const char *call)
{
    tide_status_t st = check_engine(e, call);
    if (st == TIDE_SUCCESS && (peer < 0 || peer >= e->nranks)) {
        tide_error("%s: peer %d is not in 0..%d", call, peer, e->nranks - 1);
        st = TIDE_ERR_INVALID;
    }
    return st;
}

tide_status_t tide_segment_open(tide_engine_t *e, int peer, uint32_t id, int timeout_ms)
{
    char key[48];
    void *val;
    size_t len;
    tide_status_t st = check_peer(e, peer, "tide_segment_open");
    if (st != TIDE_SUCCESS)
        return st;
    if (p2p_rseg_find(&e->peers[peer], id))
        return TIDE_SUCCESS;
    snprintf(key, sizeof(key), "seg/%d/%u", peer, id);
    st = tide_store_get(e->store, key, timeout_ms, &val, &len);
    if (st != TIDE_SUCCESS) {
        tide_error("tide_segment_open: segment %u of rank %d: %s", id, peer,
                   st == TIDE_ERR_TIMEOUT ? "not published in time" : tide_status_str(st));
        return st;
    }
    st = rseg_install(e, peer, id, val, len);
    free(val);
    return st;
}

tide_status_t tide_segment_export(tide_engine_t *e, uint32_t id, void *desc, size_t *len)
{
    p2p_seg_desc_t d;
    tide_status_t st = check_engine(e, "tide_segment_export");
    if (st != TIDE_SUCCESS)
        return st;
    if (!desc || !len || *len < sizeof(d)) {
        tide_error("tide_segment_export: need a buffer of %zu bytes or more", sizeof(d));
        return TIDE_ERR_INVALID;
    }
    pthread_rwlock_rdlock(&e->lseg_lock);
    p2p_lseg_t *seg = id < e->nlsegs ? e->lsegs[id] : NULL;
    if (seg && !seg->dead)
        seg_describe(e, seg, &d);
    pthread_rwlock_unlock(&e->lseg_lock);
    if (!seg || seg->dead) {
        tide_error("tide_segment_export: no local segment %u", id);
        return TIDE_ERR_INVALID;
    }
    memcpy(desc, &d, sizeof(d));
    *len = sizeof(d);
    return TIDE_SUCCESS;
}

tide_status_t tide_segment_import(tide_engine_t *e, int peer, const void *desc, size_t len)
{
    tide_status_t st = check_peer(e, peer, "tide_segment_import");
    if (st != TIDE_SUCCESS)
        return st;
    if (!desc) {
        tide_error("tide_segment_import: desc must not be NULL");
        return TIDE_ERR_INVALID;
    }
    p2p_seg_desc_t d;
    if (len != sizeof(d)) {
        tide_error("tide_segment_import: descriptor of %zu bytes, expected %zu", len, sizeof(d));
        return TIDE_ERR_INVALID;
    }
    memcpy(&d, desc, sizeof(d));
    return rseg_install(e, peer, d.id, desc, len);
}

void p2p_segments_fini(tide_engine_t *e)
{
    for (int r = 0; r < e->nranks; r++) {
        p2p_peer_t *p = &e->peers[r];
        for (uint32_t i = 0; i < p->nrsegs; i++) {
            if (!p->rsegs[i])
                continue;
            for (int t = 0; t < e->ntr; t++)
                if (e->tr[t]->seg_close)
                    e->tr[t]->seg_close(e->tr_ctx[t], p->rsegs[i]);
            free(p->rsegs[i]);
        }
        free(p->rsegs);
        p->rsegs = NULL;
        p->nrsegs = 0;
    }
    for (uint32_t i = 0; i < e->nlsegs; i++)
        if (e->lsegs[i])
            lseg_release(e->lsegs[i]);
    free(e->lsegs);
    e->lsegs = NULL;
    e->nlsegs = 0;
}
