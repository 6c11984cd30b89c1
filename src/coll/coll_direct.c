/*
 * What the direct algorithms share: ranks on one host that may read each
 * other's memory (CMA, checked at setup) exchange buffer addresses through
 * their pipes, read each other's buffers with process_vm_readv, and tell
 * each other when they are done with them.
 */
#include <sys/uio.h>
#include "coll_ctx.h"

tide_status_t coll_direct_exchange(coll_ctx_t *c, const void *mine, void *theirs, size_t len,
                                   const char *what)
{
    coll_step_t steps[2 * 64];
    int k = 0, n = c->nranks;
    if (n > 64)
        return TIDE_ERR_UNSUPPORTED;
    for (int p = 0; p < n; p++) {
        if (p == c->rank)
            continue;
        steps[k++] = coll_send_step(p, mine, len);
        steps[k++] = coll_recv_step(p, (char *)theirs + (size_t)p * len, len, NULL, 1);
    }
    return coll_xfer(c, steps, k, what);
}

tide_status_t coll_direct_read(coll_ctx_t *c, int peer, void *dst, uint64_t src, size_t len)
{
    struct iovec l = {dst, len}, r = {(void *)(uintptr_t)src, len};
    ssize_t got = len ? process_vm_readv(coll_shm_pid(c, peer), &l, 1, &r, 1, 0) : 0;
    return got == (ssize_t)len ? TIDE_SUCCESS : TIDE_ERR_IO;
}

bool (*coll_direct_write_hook)(coll_ctx_t *c, int peer);

tide_status_t coll_direct_write(coll_ctx_t *c, int peer, uint64_t dst, const void *src, size_t len)
{
    if (coll_direct_write_hook && !coll_direct_write_hook(c, peer))
        return TIDE_ERR_IO;
    struct iovec l = {(void *)(uintptr_t)src, len}, r = {(void *)(uintptr_t)dst, len};
    ssize_t put = len ? process_vm_writev(coll_shm_pid(c, peer), &l, 1, &r, 1, 0) : 0;
    return put == (ssize_t)len ? TIDE_SUCCESS : TIDE_ERR_IO;
}
