/*
 * The collective API: argument checks, then the operation runs in order on
 * the communicator's context, in the caller's thread (blocking) or on its
 * worker (tide_i*: a tide_work_t to test or wait on).
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "coll_ctx.h"
#include "util_log.h"
#include "util_time.h"

static tide_status_t check(const coll_op_t *op, tide_comm_t *comm, bool reduce, bool rooted)
{
    const char *name = coll_kind_name(op->kind);
    if (!comm) {
        tide_error("tide_%s: comm must not be NULL", name);
        return TIDE_ERR_INVALID;
    }
    if (op->kind != COLL_BARRIER && !coll_dtype_valid(op->dtype)) {
        tide_error("tide_%s: unknown dtype %d", name, (int)op->dtype);
        return TIDE_ERR_INVALID;
    }
    if (reduce && !coll_redop_valid(op->redop)) {
        tide_error("tide_%s: unknown reduction op %d", name, (int)op->redop);
        return TIDE_ERR_INVALID;
    }
    if (rooted && (op->root < 0 || op->root >= comm->nranks)) {
        tide_error("tide_%s: %s %d is not in 0..%d", name,
                   op->kind == COLL_SEND || op->kind == COLL_RECV ? "peer" : "root", op->root,
                   comm->nranks - 1);
        return TIDE_ERR_INVALID;
    }
    if ((op->kind == COLL_SEND || op->kind == COLL_RECV) && op->root == comm->rank) {
        tide_error("tide_%s: a rank cannot send to or receive from itself", name);
        return TIDE_ERR_INVALID;
    }
    if (op->count > (SIZE_MAX / 2) / (op->esize ? op->esize : 1) / (size_t)comm->nranks) {
        tide_error("tide_%s: count %zu is too large", name, op->count);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_status_t need_buf(const coll_op_t *op, const void *buf, const char *which)
{
    if (op->count > 0 && !buf) {
        tide_error("tide_%s: %s is NULL with count %zu", coll_kind_name(op->kind), which,
                   op->count);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_status_t no_work(const char *call)
{
    tide_error("%s: work must not be NULL", call);
    return TIDE_ERR_INVALID;
}

/* Run op now (work == NULL) or queue it for the worker. */
static tide_status_t submit(tide_comm_t *comm, coll_op_t *op, tide_work_t **work)
{
    coll_ctx_t *c;
    tide_status_t st = coll_ctx_get(comm, &c);
    if (st != TIDE_SUCCESS)
        return st;
    if (!work)
        return coll_run_blocking(c, op);
    struct tide_work *w = calloc(1, sizeof(*w));
    if (!w) {
        tide_error("tide_i%s: out of memory", coll_kind_name(op->kind));
        return TIDE_ERR_NOMEM;
    }
    w->op = *op;
    coll_enqueue(c, w);
    *work = w;
    return TIDE_SUCCESS;
}

#define OP(k, s, r, n, dt, ro, rt)                                                                 \
    {                                                                                              \
        .kind = (k), .sbuf = (s), .rbuf = (r), .count = (n), .dtype = (dt), .redop = (ro),         \
        .root = (rt), .esize = tide_dtype_size(dt)                                                 \
    }

static tide_status_t do_allreduce(const void *s, void *r, size_t n, tide_dtype_t dt,
                                  tide_redop_t ro, tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_ALLREDUCE, s, r, n, dt, ro, 0);
    tide_status_t st;
    if ((st = check(&op, comm, true, false)) || (st = need_buf(&op, s, "sendbuf")) ||
        (st = need_buf(&op, r, "recvbuf")))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_allreduce(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                             tide_redop_t op, tide_comm_t *comm)
{
    return do_allreduce(sendbuf, recvbuf, count, dtype, op, comm, NULL);
}

tide_status_t tide_iallreduce(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                              tide_redop_t op, tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_allreduce(sendbuf, recvbuf, count, dtype, op, comm, work);
}

static tide_status_t do_allgather(const void *s, void *r, size_t n, tide_dtype_t dt,
                                  tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_ALLGATHER, s, r, n, dt, TIDE_SUM, 0);
    tide_status_t st;
    if ((st = check(&op, comm, false, false)) || (st = need_buf(&op, s, "sendbuf")) ||
        (st = need_buf(&op, r, "recvbuf")))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_allgather(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                             tide_comm_t *comm)
{
    return do_allgather(sendbuf, recvbuf, count, dtype, comm, NULL);
}

tide_status_t tide_iallgather(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                              tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_allgather(sendbuf, recvbuf, count, dtype, comm, work);
}

static tide_status_t do_broadcast(const void *s, void *r, size_t n, tide_dtype_t dt, int root,
                                  tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_BROADCAST, s, r, n, dt, TIDE_SUM, root);
    tide_status_t st;
    if ((st = check(&op, comm, false, true)) || (st = need_buf(&op, r, "recvbuf")) ||
        (comm->rank == root && (st = need_buf(&op, s, "sendbuf"))))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_broadcast(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                             int root, tide_comm_t *comm)
{
    return do_broadcast(sendbuf, recvbuf, count, dtype, root, comm, NULL);
}

tide_status_t tide_ibroadcast(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                              int root, tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_broadcast(sendbuf, recvbuf, count, dtype, root, comm, work);
}

static tide_status_t do_reduce_scatter(const void *s, void *r, size_t n, tide_dtype_t dt,
                                       tide_redop_t ro, tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_REDUCE_SCATTER, s, r, n, dt, ro, 0);
    tide_status_t st;
    if ((st = check(&op, comm, true, false)) || (st = need_buf(&op, s, "sendbuf")) ||
        (st = need_buf(&op, r, "recvbuf")))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                  tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm)
{
    return do_reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op, comm, NULL);
}

tide_status_t tide_ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                   tide_dtype_t dtype, tide_redop_t op, tide_comm_t *comm,
                                   tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op, comm, work);
}

static tide_status_t do_reduce(const void *s, void *r, size_t n, tide_dtype_t dt, tide_redop_t ro,
                               int root, tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_REDUCE, s, r, n, dt, ro, root);
    tide_status_t st;
    if ((st = check(&op, comm, true, true)) || (st = need_buf(&op, s, "sendbuf")) ||
        (comm->rank == root && (st = need_buf(&op, r, "recvbuf"))))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_reduce(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                          tide_redop_t op, int root, tide_comm_t *comm)
{
    return do_reduce(sendbuf, recvbuf, count, dtype, op, root, comm, NULL);
}

tide_status_t tide_ireduce(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                           tide_redop_t op, int root, tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_reduce(sendbuf, recvbuf, count, dtype, op, root, comm, work);
}

static tide_status_t do_alltoall(const void *s, void *r, size_t n, tide_dtype_t dt,
                                 tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_ALLTOALL, s, r, n, dt, TIDE_SUM, 0);
    tide_status_t st;
    if ((st = check(&op, comm, false, false)) || (st = need_buf(&op, s, "sendbuf")) ||
        (st = need_buf(&op, r, "recvbuf")))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_alltoall(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                            tide_comm_t *comm)
{
    return do_alltoall(sendbuf, recvbuf, count, dtype, comm, NULL);
}

tide_status_t tide_ialltoall(const void *sendbuf, void *recvbuf, size_t count, tide_dtype_t dtype,
                             tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_alltoall(sendbuf, recvbuf, count, dtype, comm, work);
}

static tide_status_t do_barrier(tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(COLL_BARRIER, NULL, NULL, 0, TIDE_UINT8, TIDE_SUM, 0);
    tide_status_t st = check(&op, comm, false, false);
    return st ? st : submit(comm, &op, w);
}

tide_status_t tide_barrier(tide_comm_t *comm)
{
    return do_barrier(comm, NULL);
}

tide_status_t tide_ibarrier(tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_barrier(comm, work);
}

static tide_status_t do_p2p(coll_kind_t kind, const void *s, void *r, size_t n, tide_dtype_t dt,
                            int peer, tide_comm_t *comm, tide_work_t **w)
{
    coll_op_t op = OP(kind, s, r, n, dt, TIDE_SUM, peer);
    tide_status_t st;
    if ((st = check(&op, comm, false, true)) ||
        (st = need_buf(&op, kind == COLL_SEND ? s : r, "buf")))
        return st;
    return submit(comm, &op, w);
}

tide_status_t tide_send(const void *buf, size_t count, tide_dtype_t dtype, int peer,
                        tide_comm_t *comm)
{
    return do_p2p(COLL_SEND, buf, NULL, count, dtype, peer, comm, NULL);
}

tide_status_t tide_recv(void *buf, size_t count, tide_dtype_t dtype, int peer, tide_comm_t *comm)
{
    return do_p2p(COLL_RECV, NULL, buf, count, dtype, peer, comm, NULL);
}

tide_status_t tide_isend(const void *buf, size_t count, tide_dtype_t dtype, int peer,
                         tide_comm_t *comm, tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_p2p(COLL_SEND, buf, NULL, count, dtype, peer, comm, work);
}

tide_status_t tide_irecv(void *buf, size_t count, tide_dtype_t dtype, int peer, tide_comm_t *comm,
                         tide_work_t **work)
{
    if (!work)
        return no_work(__func__);
    return do_p2p(COLL_RECV, NULL, buf, count, dtype, peer, comm, work);
}

/* ------------------------------------------------------------ test, wait */

tide_status_t tide_test(tide_work_t *w)
{
    if (!w) {
        tide_error("tide_test: work must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
        return TIDE_IN_PROGRESS;
    coll_work_settle(w);
    tide_status_t st = w->status;
    free(w);
    return st;
}

tide_status_t tide_wait(tide_work_t *w, int timeout_ms)
{
    if (!w) {
        tide_error("tide_wait: work must not be NULL");
        return TIDE_ERR_INVALID;
    }
    if (timeout_ms < 0)
        timeout_ms = w->ctx->timeout_ms;
    int64_t deadline = tide_deadline_ms(timeout_ms);
    __atomic_add_fetch(&w->waiters, 1, __ATOMIC_ACQ_REL);
    while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
        int64_t left = deadline - tide_time_ns();
        if (left <= 0)
            break;
        struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
        syscall(SYS_futex, &w->done, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    }
    __atomic_sub_fetch(&w->waiters, 1, __ATOMIC_ACQ_REL);
    if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
        tide_error("tide_wait: %s not finished after %d ms", coll_kind_name(w->op.kind),
                   timeout_ms);
        return TIDE_ERR_TIMEOUT;
    }
    coll_work_settle(w);
    tide_status_t st = w->status;
    free(w);
    return st;
}
