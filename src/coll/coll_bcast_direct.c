/*
 * Direct broadcast, for ranks that all share one host and may read each
 * other's memory. The root and every other rank (a reader) swap buffer
 * addresses; then each reader's output is filled chunk by chunk, straight
 * from the root's buffer (one copy per byte, no pipe in between), by two
 * hands at once: the reader reads chunks from the root (process_vm_readv)
 * and the root, which has nothing else to do, writes chunks into the
 * readers (process_vm_writev). Who copies which chunk is decided by a
 * claim counter in the reader's shared inbox: each hand takes the next
 * chunk with an atomic add, so the root ends up doing most for the
 * readers that get the least CPU (3 readers on 2 cores: one shares the
 * root's core and finishes early, the root helps the other two). The root
 * tells each reader when it has no chunk of it left in hand ("done
 * writing"); the readers tell the root when they no longer read its
 * buffer ("done reading"), and the root returns only then.
 *
 *   root <---(out address)--- 1, 2, 3;   root ---(root address)---> 1, 2, 3
 *   1, 2, 3: claim chunk i of own counter, out[i] <- root[i]    (readv)
 *   root:    claim chunk i of 1, 2, 3 in turn, out_p[i] <- root[i] (writev)
 *   root ---("done writing", ok?)---> 1, 2, 3 ---("done reading")---> root
 *
 * Buffers in Tide memory are named on the cards by allocation; a hand
 * whose other side's buffer is mapped here copies with memcpy instead of
 * the system call (no page pinning).
 *
 * Root and reader check that they agree on the length before either
 * copies (the root writes into the reader's memory); where they do not,
 * neither copies and both fail with TIDE_ERR_INVALID.
 *
 * A reader resets its counter before it sends its address, and the root
 * claims only after receiving it and never after its "done writing", so
 * one operation's claims never reach the next.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "coll_ctx.h"
#include "util_log.h"

#define CHUNK_MIN (64 * 1024)
#define CHUNK_MAX (512 * 1024)

/* What root and readers swap: a buffer and its length (the root writes
 * into a reader only where their lengths agree) */
typedef struct card {
    uint64_t addr, bytes;
    coll_mem_ref_t ref; /* where addr lies in Tide memory */
} card_t;

static size_t chunk_size(size_t bytes)
{
    size_t c = TIDE_MAX((size_t)CHUNK_MIN, TIDE_MIN((size_t)CHUNK_MAX, bytes / 16));
    return (c + 4095) & ~(size_t)4095;
}

static tide_status_t root_side(coll_ctx_t *c, const coll_op_t *op, size_t bytes)
{
    int n = c->nranks, r = c->rank;
    const void *src = op->sbuf; /* the rbuf itself in place */
    size_t chunk = chunk_size(bytes);
    uint64_t nchunks = (bytes + chunk - 1) / chunk;
    card_t mine = {.addr = (uint64_t)(uintptr_t)src, .bytes = bytes},
           *out = calloc((size_t)n, sizeof(*out));
    char **mapped = calloc((size_t)n, sizeof(*mapped));
    /* [p]: what we tell p when done writing (1 ok, 2 a write failed, 3 the
     * lengths differ); [n + p]: p still has chunks to claim */
    char *flags = calloc((size_t)n * 2, 1);
    coll_step_t *steps = calloc((size_t)n * 2, sizeof(*steps));
    tide_status_t st = TIDE_SUCCESS;
    if (!out || !flags || !steps || !mapped) {
        /* The readers wait for our messages: without memory they time out. */
        tide_error("broadcast: out of memory for %d ranks' addresses", n);
        st = TIDE_ERR_NOMEM;
        goto out;
    }
    coll_mem_ref(src, bytes, &mine.ref);
    c->mem_all[COLL_BROADCAST] = mine.ref.serial != 0; /* what every reader learns too */
    int k = 0;
    for (int p = 0; p < n; p++) {
        if (p == r)
            continue;
        steps[k++] = coll_send_step(p, &mine, sizeof(mine));
        steps[k++] = coll_recv_step(p, &out[p], sizeof(out[p]), NULL, 1);
    }
    if ((st = coll_xfer(c, steps, k, "addresses")) != TIDE_SUCCESS)
        goto out;
    /* Our own copy (out of place) only now, while the readers already
     * read: before the addresses went out, it delayed every reader by the
     * whole copy. */
    if (op->sbuf != op->rbuf)
        memcpy(op->rbuf, op->sbuf, bytes);
    /* Help: a chunk of each reader in turn, until every counter is spent. */
    char *open = flags + n;
    int left = 0;
    for (int p = 0; p < n; p++) {
        if (p != r && out[p].bytes != bytes) {
            tide_error("broadcast: rank %d expects %" PRIu64 " bytes, the root has %zu", p,
                       out[p].bytes, bytes);
            flags[p] = 3;
        }
        open[p] = p != r && !flags[p];
        left += open[p];
        if (open[p])
            mapped[p] = coll_map_peer(c, p, &out[p].ref, out[p].addr, bytes);
    }
    while (left > 0) {
        for (int p = 0; p < n; p++) {
            if (!open[p])
                continue;
            uint64_t i = __atomic_fetch_add(coll_shm_claim(c, p), 1, __ATOMIC_ACQ_REL);
            if (i >= nchunks) {
                open[p] = 0;
                left--;
                continue;
            }
            size_t off = (size_t)i * chunk, len = TIDE_MIN(chunk, bytes - off);
            struct iovec l = {(char *)(uintptr_t)src + off, len};
            struct iovec rv = {(void *)(uintptr_t)(out[p].addr + off), len};
            if (mapped[p])
                memcpy(mapped[p] + off, (const char *)src + off, len);
            else if (process_vm_writev(coll_shm_pid(c, p), &l, 1, &rv, 1, 0) != (ssize_t)len) {
                tide_error("broadcast: writing %zu bytes to rank %d: %m", len, p);
                flags[p] = 2;
            }
        }
    }
    k = 0;
    for (int p = 0; p < n; p++) {
        if (p == r)
            continue;
        flags[p] = flags[p] ? flags[p] : 1;
        steps[k++] = coll_send_step(p, &flags[p], 1);
        steps[k++] = coll_recv_step(p, &out[p], 1, NULL, 1); /* "done reading": any byte */
    }
    st = coll_xfer(c, steps, k, "done writing, done reading");
    for (int p = 0; p < n && st == TIDE_SUCCESS; p++)
        st = flags[p] == 3 ? TIDE_ERR_INVALID : flags[p] == 2 ? TIDE_ERR_IO : st;
out:
    free(out);
    free(flags);
    free(steps);
    free(mapped);
    return st;
}

static tide_status_t reader_side(coll_ctx_t *c, const coll_op_t *op, size_t bytes)
{
    int root = op->root;
    size_t chunk = chunk_size(bytes);
    uint64_t nchunks = (bytes + chunk - 1) / chunk;
    card_t mine = {.addr = (uint64_t)(uintptr_t)op->rbuf, .bytes = bytes}, src = {0};
    coll_mem_ref(op->rbuf, bytes, &mine.ref);
    uint64_t *claim = coll_shm_claim(c, c->rank);
    __atomic_store_n(claim, 0, __ATOMIC_RELEASE); /* before the root sees our address */
    coll_step_t s[2] = {coll_send_step(root, &mine, sizeof(mine)),
                        coll_recv_step(root, &src, sizeof(src), NULL, 1)};
    tide_status_t st = coll_xfer(c, s, 2, "addresses");
    if (st != TIDE_SUCCESS)
        return st;
    c->mem_all[COLL_BROADCAST] = src.ref.serial != 0; /* as the root has it */
    const char *from = NULL;
    if (src.bytes != bytes) {
        tide_error("broadcast: rank %d has %" PRIu64 " bytes, we expect %zu", root, src.bytes,
                   bytes);
        st = TIDE_ERR_INVALID;
        nchunks = 0; /* copy nothing; the root writes nothing either */
    } else {
        from = coll_map_peer(c, root, &src.ref, src.addr, bytes);
    }
    for (;;) {
        uint64_t i = __atomic_fetch_add(claim, 1, __ATOMIC_ACQ_REL);
        if (i >= nchunks)
            break;
        size_t off = (size_t)i * chunk, len = TIDE_MIN(chunk, bytes - off);
        if (from) {
            memcpy((char *)op->rbuf + off, from + off, len);
            continue;
        }
        if ((st = coll_direct_read(c, root, (char *)op->rbuf + off, src.addr + off, len)) !=
            TIDE_SUCCESS) {
            tide_error("broadcast: reading %zu bytes from rank %d failed", len, root);
            break; /* the root writes the chunks not claimed yet */
        }
    }
    char writing = 0, token = 1;
    s[0] = coll_recv_step(root, &writing, 1, NULL, 1);
    s[1] = coll_send_step(root, &token, 1);
    tide_status_t st2 = coll_xfer(c, &s[0], 1, "root's done writing");
    tide_status_t st3 = coll_xfer(c, &s[1], 1, "done reading"); /* even after a failure */
    if (st == TIDE_SUCCESS && st2 == TIDE_SUCCESS && writing != 1)
        st = TIDE_ERR_IO;
    return st != TIDE_SUCCESS ? st : st2 != TIDE_SUCCESS ? st2 : st3;
}

tide_status_t coll_bcast_direct(coll_ctx_t *c, const coll_op_t *op)
{
    size_t bytes = op->count * op->esize;
    return c->rank == op->root ? root_side(c, op, bytes) : reader_side(c, op, bytes);
}
