/*
 * The chunked pipeline executor. Data flows through a rank in chunks: the
 * rank receives chunk i from its sources and, as soon as chunk i has
 * arrived from all of them, sends it on to each of its destinations, while
 * chunk i+1 is still arriving. Chains and trees (broadcast, reduce) are
 * this executor with different sources and destinations.
 *
 *   chain broadcast 0 -> 1 -> 2, chunks c0 c1 c2:
 *
 *     time    rank 0      rank 1                rank 2
 *     t0      send c0     receive c0
 *     t1      send c1     receive c1, send c0   receive c0
 *     t2      send c2     receive c2, send c1   receive c1
 *     t3                  send c2               receive c2
 *
 * Rules:
 * - sources: chunk i is received from source j only after it arrived from
 *   source j-1, so every element is combined in the same order on every
 *   run (floating-point results do not depend on timing). One source with
 *   no combine function copies.
 * - depth: the first source runs at most `depth` chunks ahead of the
 *   slowest destination, so the chunks being forwarded are still in cache.
 * - init: when set, chunk i of buf is copied from init just before the
 *   first receive into it (or, with no source, before it is sent): the
 *   rank's own part of a reduce, the root's input of a broadcast.
 * - chunks are messages: both ends cut the buffer the same way, so sender
 *   and receiver agree on every message boundary.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <stdio.h>
#include <string.h>
#include "coll_ctx.h"
#include "util_log.h"

/* Per-chunk cost over shared memory, in bytes of copy time (about 1 us at
 * ~5 GB/s): the chunk that balances it against the pipeline's fill time.
 * Over the engine a chunk costs a write batch, its signal and a system
 * call or more at either end, and from 128 KiB a chunk goes out straight
 * from the caller's buffer (no staging copy): there the chunk is the
 * configured one (TIDE_CHUNK_SIZE). Broadcast over TCP with chunks of
 * sqrt(bytes x 4 KiB) against 1 MiB: np=2 3.5-4.6 -> 5.5-6.7 GB/s at
 * 1-16 MiB, np=4 0.75-0.87 -> 1.3-1.5. */
#define CHUNK_COST_BYTES 4096
#define CHUNK_MIN        4096

static uint64_t isqrt(uint64_t x)
{
    uint64_t r = x, y = (x + 1) / 2;
    while (y < r) {
        r = y;
        y = (r + x / r) / 2;
    }
    return r;
}

size_t coll_pipeline_chunk(coll_ctx_t *c, size_t bytes, size_t esize, int stages)
{
    size_t chunk;
    if (c->chunk_forced || stages <= 1 || c->any_engine) {
        chunk = c->chunk;
    } else {
        /* Time ~ (bytes/chunk + stages - 1) * (chunk + cost): smallest at
         * chunk = sqrt(bytes * cost / (stages - 1)). */
        size_t best = isqrt((uint64_t)bytes * CHUNK_COST_BYTES / (uint64_t)(stages - 1));
        chunk = TIDE_MIN(c->chunk, TIDE_MAX((size_t)CHUNK_MIN, best));
        chunk = (chunk + 63) & ~(size_t)63;
    }
    return TIDE_MAX(esize, chunk / esize * esize);
}

static void report(coll_ctx_t *c, const coll_step_t *s, size_t chunk_index, size_t nchunks,
                   const char *what)
{
    char w[128];
    snprintf(w, sizeof(w), "%s, chunk %zu of %zu", what, chunk_index, nchunks);
    coll_step_report(c, s, w);
}

/* Move a chunk's step; when it completes, the next chunk is due. */
static int64_t advance(coll_ctx_t *c, coll_step_t *s, bool *active, size_t *chunk, bool *moved)
{
    int64_t k = coll_step_move(c, s);
    if (k < 0)
        return k;
    *moved |= k > 0;
    if (coll_step_complete(c, s)) {
        (*chunk)++;
        *active = false;
        *moved = true;
    }
    return k;
}

tide_status_t coll_pipeline(coll_ctx_t *c, const coll_pipeline_t *p, const char *what)
{
    enum { MAXP = 32 };
    if (p->nfrom > MAXP || p->nto > MAXP || p->nfrom < 0 || p->nto < 0 || p->chunk == 0 ||
        (p->nfrom > 1 && !p->fn)) {
        tide_error("%s %s: pipeline of %d sources and %d destinations (at most %d), chunk %zu, "
                   "%s: not runnable",
                   c->op_name, what, p->nfrom, p->nto, MAXP, p->chunk,
                   p->fn ? "combining" : "copying");
        return TIDE_ERR_INTERNAL;
    }
    size_t nch = (p->bytes + p->chunk - 1) / p->chunk, inited = 0;
    size_t rcv[MAXP] = {0}, snd[MAXP] = {0};
    bool ract[MAXP] = {0}, sact[MAXP] = {0};
    coll_step_t rs[MAXP], ss[MAXP];
    size_t depth = (size_t)TIDE_MAX(1, p->depth);
    coll_wait_t w = {0};

#define OFF(i) ((i)*p->chunk)
#define LEN(i) TIDE_MIN(p->chunk, p->bytes - OFF(i))
#define INIT_UPTO(i)                                                                               \
    do {                                                                                           \
        for (; p->init && p->init != p->buf && inited <= (i); inited++)                            \
            memcpy(p->buf + OFF(inited), p->init + OFF(inited), LEN(inited));                      \
    } while (0)

    for (;;) {
        bool moved = false, done = true;
        size_t minsent = nch;
        for (int d = 0; d < p->nto; d++)
            minsent = TIDE_MIN(minsent, snd[d]);
        for (int j = 0; j < p->nfrom; j++) {
            if (rcv[j] == nch)
                continue;
            done = false;
            size_t limit = j ? rcv[j - 1] : p->nto ? TIDE_MIN(nch, minsent + depth) : nch;
            if (rcv[j] >= limit)
                continue;
            if (!ract[j]) {
                if (j == 0)
                    INIT_UPTO(rcv[j]);
                rs[j] =
                    coll_recv_step(p->from[j], p->buf + OFF(rcv[j]), LEN(rcv[j]), p->fn, p->esize);
                ract[j] = true;
            }
            int64_t k = advance(c, &rs[j], &ract[j], &rcv[j], &moved);
            if (k < 0) {
                coll_busy(c, &w);
                return (tide_status_t)k;
            }
        }
        size_t ready = p->nfrom ? rcv[p->nfrom - 1] : nch;
        for (int d = 0; d < p->nto; d++) {
            if (snd[d] == nch)
                continue;
            done = false;
            if (snd[d] >= ready)
                continue;
            if (!sact[d]) {
                if (!p->nfrom)
                    INIT_UPTO(snd[d]);
                ss[d] = coll_send_step(p->to[d], p->buf + OFF(snd[d]), LEN(snd[d]));
                sact[d] = true;
            }
            int64_t k = advance(c, &ss[d], &sact[d], &snd[d], &moved);
            if (k < 0) {
                coll_busy(c, &w);
                return (tide_status_t)k;
            }
        }
        if (done || moved)
            coll_busy(c, &w);
        if (done)
            break;
        if (!moved && !coll_idle(c, &w)) {
            for (int j = 0; j < p->nfrom; j++)
                if (ract[j])
                    report(c, &rs[j], rcv[j], nch, what);
            for (int d = 0; d < p->nto; d++)
                if (sact[d])
                    report(c, &ss[d], snd[d], nch, what);
            return TIDE_ERR_TIMEOUT;
        }
    }
    if (nch)
        INIT_UPTO(nch - 1); /* a rank with no source and no destination */
#undef OFF
#undef LEN
#undef INIT_UPTO
    return TIDE_SUCCESS;
}
