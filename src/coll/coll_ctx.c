/*
 * Collective context: creation (which pipe reaches which rank), the step
 * executor, and the order in which operations run.
 *
 * Order: operations of a communicator run one at a time, in the order they
 * were issued. A blocking call with nothing queued runs in its caller's
 * thread (no hand-off on the latency path); anything else goes through the
 * queue, which the worker thread runs, so nonblocking operations progress
 * without the caller polling.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include "coll_ctx.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "boot_store.h"
#include "p2p.h"
#include "util_log.h"
#include "util_param.h"
#include "util_time.h"

/* Spin this long without progress before sleeping on the doorbell: short
 * when every local rank has a core of its own, longer (yielding the core
 * meanwhile) when ranks outnumber cores, where a sleep costs a wake-up,
 * and longer too where peers are reached through the engine: a network
 * round trip is tens of microseconds, and a rank that sleeps through one
 * answers late, so that its peer sleeps too, and so on; a 1 MiB transfer
 * over TCP takes 150-400 us, and waking from a sleep costs more than the
 * spin (np=2, 1 MiB broadcasts over TCP, median: 400-435 us with a 200 us
 * spin, 190-230 with 1 ms; nothing more from 2-5 ms). */
#define SPIN_NS                (20 * 1000)
#define SPIN_NS_ENGINE         (1000 * 1000)
#define SPIN_NS_OVERSUBSCRIBED (300 * 1000)
/* After this long spinning, yield the core between polls. Even with a
 * core per rank, unbound ranks may be put on one core by the scheduler (a
 * wake-up pulls the woken task next to its waker) and left there for
 * milliseconds; a pure spin then holds the core the awaited peer needs
 * for the whole spin. Unbound, 3 of 30 launches of an 8-byte allreduce
 * at np=2 took 23 us per operation instead of 0.5 (440 us over TCP);
 * yielding brings such a launch to about 2 us. */
#define YIELD_AFTER_NS         (1 * 1000)
#define POLL_MAX_OVERSUB       (8 * 1024 * 1024)
/* Waiting only on ranks bound to other CPUs (coll_wait_t.remote), spin
 * without yielding this long: the ranks sharing this CPU wait for the same
 * ones, and yielding to them costs a context switch each way for nothing.
 * np=4 bound two to a core, 8-byte allreduce: 3.0 -> 2.0 switches and
 * 1.65-1.69 -> 1.34-1.39 us per operation. Bounded, since a rank of
 * another communicator may share this CPU and need it meanwhile. */
#define REMOTE_SPIN_NS         (20 * 1000)

/* ------------------------------------------------------------- executor */

static const char zeros[16];

/* Receive what the pipe from s->peer holds now, up to want bytes: copied,
 * combined into s->buf, or (discard) dropped. */
static int64_t step_take(coll_ctx_t *c, const coll_pipe_ops_t *p, coll_step_t *s, size_t want,
                         bool discard)
{
    const char *src;
    int64_t got = p->peek(c, s->peer, &src);
    if (got <= 0)
        return got;
    size_t n = TIDE_MIN(want, (size_t)got);
    if (!discard && s->fn)
        n -= n % s->esize; /* whole elements only */
    if (n == 0)
        return 0;
    if (!discard) { /* else padding, dropped */
        char *dst = s->buf + s->done;
        if (s->with) {
            const char *with = s->with + s->done;
            s->fn3(dst, s->with_last ? src : with, s->with_last ? with : src, n / s->esize);
        } else if (s->fn) {
            s->fn(dst, src, n / s->esize);
        } else if (src != dst) { /* else it landed in place (expect) */
            memcpy(dst, src, n);
        }
    }
    p->consume(c, s->peer, n);
    return (int64_t)n;
}

int64_t coll_step_move(coll_ctx_t *c, coll_step_t *s)
{
    const coll_pipe_ops_t *p = c->pipe[s->peer];
    size_t padded = (s->len + 15) & ~(size_t)15;
    int64_t n;
    if (s->send && s->done == 0 && s->len < padded && padded <= 256) {
        /* a small message and its padding in one push: the receiver sees
         * it whole at once */
        char m[256];
        memcpy(m, s->buf, s->len);
        memset(m + s->len, 0, padded - s->len);
        n = p->push(c, s->peer, m, padded);
    } else if (s->done < s->len) {
        if (!s->send && s->done == 0 && !s->fn && !s->with && p->expect)
            p->expect(c, s->peer, s->buf, s->len);
        n = s->send ? p->push(c, s->peer, s->buf + s->done, s->len - s->done)
                    : step_take(c, p, s, s->len - s->done, false);
    } else if (s->done < padded) {
        size_t k = padded - s->done;
        n = s->send ? p->push(c, s->peer, zeros, k) : step_take(c, p, s, k, true);
    } else {
        return 0;
    }
    if (n > 0) {
        s->done += (size_t)n;
        if (!s->send && s->done == padded && p->pulled)
            p->pulled(c, s->peer);
    }
    return n;
}

bool coll_step_complete(coll_ctx_t *c, const coll_step_t *s)
{
    size_t padded = (s->len + 15) & ~(size_t)15;
    if (s->done < padded)
        return false;
    return !s->send || c->pipe[s->peer]->flushed(c, s->peer);
}

/*
 * Waiting without a doorbell write per message: a sender rings a rank's
 * doorbell only while that rank has announced that it may sleep
 * (`sleeping`). The waiter announces it, then polls every step once more
 * before it sleeps; each side stores (data, or the announcement) before it
 * loads the other's (the flag, or the pipe), with a full fence between, so
 * either the waiter's last poll sees the data or the sender sees the flag
 * and rings.
 */
bool coll_idle(coll_ctx_t *c, coll_wait_t *w)
{
    int64_t now = tide_time_ns();
    if (now >= c->deadline) {
        coll_busy(c, w);
        return false;
    }
    if (!w->idle_since)
        w->idle_since = now;
    if (now - w->idle_since < c->spin_ns) {
        /* Receive what engine peers send ourselves while spinning. */
        if (c->poll_engine && !c->polling)
            c->polling = p2p_poll_begin(c->engine);
        if (c->polling && p2p_poll(c->engine, c->polling))
            return true;
        if (w->remote && now - w->idle_since < REMOTE_SPIN_NS)
            __builtin_ia32_pause(); /* no rank on this core can help */
        else if (c->oversubscribed || now - w->idle_since >= YIELD_AFTER_NS)
            sched_yield(); /* the peer we wait for may need this core */
        else
            __builtin_ia32_pause();
        return true;
    }
    if (!w->armed) {          /* announce, then let the caller poll once more */
        coll_poll_release(c); /* the progress thread rings us from now on */
        w->seen = __atomic_load_n(c->doorbell, __ATOMIC_SEQ_CST);
        __atomic_store_n(c->sleeping, 1, __ATOMIC_SEQ_CST);
        w->armed = true;
        return true;
    }
    int64_t left = TIDE_MIN(c->deadline - now, 100 * TIDE_NS_PER_MS); /* re-check now and then */
    struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
    syscall(SYS_futex, c->doorbell, FUTEX_WAIT, w->seen, &ts, NULL, 0);
    w->seen = __atomic_load_n(c->doorbell, __ATOMIC_SEQ_CST); /* before the next poll */
    return true;
}

void coll_busy(coll_ctx_t *c, coll_wait_t *w)
{
    w->idle_since = 0;
    if (w->armed) {
        __atomic_store_n(c->sleeping, 0, __ATOMIC_RELAXED);
        w->armed = false;
    }
}

void coll_poll_end(coll_ctx_t *c, bool now)
{
    if (c->polling) {
        p2p_poll_end(c->engine, c->polling, now);
        c->lent = !now;
        c->polling = 0;
    }
}

void coll_poll_release(coll_ctx_t *c)
{
    if (c->polling) {
        coll_poll_end(c, true);
    } else if (c->lent) { /* an earlier operation left progress with us */
        unsigned taken = p2p_poll_begin(c->engine);
        p2p_poll_end(c->engine, taken, true);
        c->lent = false;
    }
}

void coll_step_report(coll_ctx_t *c, const coll_step_t *s, const char *what)
{
    tide_error("%s %s: %s %zu of %zu bytes %s rank %d (over %s) within %d ms", c->op_name, what,
               s->send ? "sent" : "received", s->done, s->len, s->send ? "to" : "from", s->peer,
               c->pipe[s->peer]->name, c->timeout_ms);
}

tide_status_t coll_xfer(coll_ctx_t *c, coll_step_t *steps, int n, const char *what)
{
    coll_wait_t w = {0};
    for (;;) {
        bool moved = false, all = true;
        for (int i = 0; i < n; i++) {
            coll_step_t *s = &steps[i];
            if (coll_step_complete(c, s))
                continue;
            int64_t k = coll_step_move(c, s);
            if (k < 0) {
                coll_busy(c, &w);
                return (tide_status_t)k;
            }
            moved |= k > 0;
            all &= coll_step_complete(c, s);
        }
        if (all || moved)
            coll_busy(c, &w);
        if (all)
            return TIDE_SUCCESS;
        if (!moved && !coll_idle(c, &w)) {
            for (int i = 0; i < n; i++)
                if (!coll_step_complete(c, &steps[i]))
                    coll_step_report(c, &steps[i], what);
            return TIDE_ERR_TIMEOUT;
        }
    }
}

tide_status_t coll_sendrecv(coll_ctx_t *c, int to, const void *sbuf, size_t slen, int from,
                            void *rbuf, size_t rlen, coll_reduce_fn_t fn, size_t esize,
                            const char *what)
{
    coll_step_t s[2];
    int n = 0;
    if (to >= 0)
        s[n++] = coll_send_step(to, sbuf, slen);
    if (from >= 0)
        s[n++] = coll_recv_step(from, rbuf, rlen, fn, esize);
    return coll_xfer(c, s, n, what);
}

/* --------------------------------------------------------------- create */

static void *worker_main(void *arg);

tide_status_t coll_ctx_create(tide_comm_t *comm, coll_ctx_t **out)
{
    int64_t chunk;
    unsigned transports = 0;
    char tbuf[64];
    tide_store_t *store = NULL;
    tide_status_t st;
    coll_ctx_t *c = calloc(1, sizeof(*c));
    if (!c)
        return TIDE_ERR_NOMEM;
    c->comm = comm;
    c->rank = comm->rank;
    c->nranks = comm->nranks;
    c->timeout_ms = comm->timeout_ms;
    c->doorbell = &c->private_bell[0];
    c->sleeping = &c->private_bell[1];
    pthread_mutex_init(&c->qlock, NULL);
    pthread_cond_init(&c->qcond, NULL);
    int64_t trace, depth;
    if ((st = tide_param_int(TIDE_PARAM_CHUNK_SIZE, &chunk)) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_PIPELINE_DEPTH, &depth)) != TIDE_SUCCESS ||
        (st = tide_param_str(TIDE_PARAM_TRANSPORTS, tbuf, sizeof(tbuf))) != TIDE_SUCCESS ||
        (st = tide_param_str(TIDE_PARAM_ALGO, c->algo, sizeof(c->algo))) != TIDE_SUCCESS ||
        (st = tide_param_int(TIDE_PARAM_TRACE, &trace)) != TIDE_SUCCESS ||
        (st = coll_reduce_setup()) != TIDE_SUCCESS)
        goto err;
    c->trace = trace != 0;
    c->chunk = (size_t)chunk;
    c->chunk_forced = tide_param_is_set(TIDE_PARAM_CHUNK_SIZE);
    c->depth = (int)depth;
    c->direct_ok = c->nranks == 1; /* else decided by coll_shm_setup */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->oversubscribed = cores > 0 && comm->local_size > cores;
    c->spin_ns = c->oversubscribed ? SPIN_NS_OVERSUBSCRIBED : SPIN_NS;
    transports |= strstr(tbuf, "shm") ? TIDE_TRANSPORT_SHM : 0;
    transports |= strstr(tbuf, "tcp") ? TIDE_TRANSPORT_TCP : 0;
    c->pipe = calloc((size_t)c->nranks, sizeof(*c->pipe));
    if (!c->pipe) {
        st = TIDE_ERR_NOMEM;
        goto err;
    }
    bool any_shm = false, any_engine = false;
    for (int r = 0; r < c->nranks; r++) {
        if (r == c->rank)
            continue;
        bool local = strcmp(comm->peers[r].boot_id, comm->peers[c->rank].boot_id) == 0;
        if (local && (transports & TIDE_TRANSPORT_SHM)) {
            c->pipe[r] = &coll_shm_pipe;
            any_shm = true;
        } else {
            c->pipe[r] = &coll_engine_pipe;
            any_engine = true;
        }
    }
    if ((st = boot_store_sub(comm->sys, "coll/", &store)) != TIDE_SUCCESS)
        goto err;
    if (any_shm && (st = coll_shm_setup(c, store)) != TIDE_SUCCESS)
        goto err;
    c->any_engine = any_engine;
    if (any_engine && !c->oversubscribed)
        c->spin_ns = SPIN_NS_ENGINE;
    if (any_engine && (st = coll_engine_setup(c)) != TIDE_SUCCESS)
        goto err;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->worker, NULL, worker_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        st = TIDE_ERR_NOMEM;
        goto err;
    }
    c->worker_started = true;
    boot_store_free(store);
    tide_info("collectives ready on rank %d of %d: %s%s", c->rank, c->nranks,
              any_shm ? "shm pipes " : "", any_engine ? "engine pipes" : "");
    *out = c;
    return TIDE_SUCCESS;
err:
    tide_error("collectives setup on rank %d of %d failed: %s", c->rank, c->nranks,
               tide_status_str(st));
    boot_store_free(store);
    coll_ctx_destroy(c);
    return st;
}

void coll_ctx_destroy(coll_ctx_t *c)
{
    if (!c)
        return;
    if (c->worker_started) {
        pthread_mutex_lock(&c->qlock);
        c->stop = true;
        pthread_cond_broadcast(&c->qcond);
        pthread_mutex_unlock(&c->qlock);
        pthread_join(c->worker, NULL);
    }
    coll_engine_teardown(c);
    coll_maps_release(c);
    coll_shm_teardown(c);
    free(c->pipe);
    free(c->scratch);
    pthread_mutex_destroy(&c->qlock);
    pthread_cond_destroy(&c->qcond);
    free(c);
}

void *coll_scratch(coll_ctx_t *c, size_t len)
{
    if (len > c->scratch_len) {
        char *p = realloc(c->scratch, len);
        if (!p)
            return NULL;
        c->scratch = p;
        c->scratch_len = len;
    }
    return c->scratch ? c->scratch : (c->scratch = malloc(1));
}

/* -------------------------------------------------------------- running */

static tide_status_t run_op(coll_ctx_t *c, const coll_op_t *op)
{
    const coll_algo_t *algo;
    tide_status_t st = coll_select(c, op, &algo);
    if (st != TIDE_SUCCESS)
        return st;
    c->op_name = coll_kind_name(op->kind);
    /* Waits receive from engine peers themselves, except large operations
     * where ranks outnumber cores: there the progress thread's share of a
     * core keeps data moving while this thread is off its core (np=4 on 2
     * cores over TCP, from 16 MiB: allgather 1.02-1.26 GB/s against
     * 0.90-1.12 polled). Below, polling is faster (1-8 MiB: allreduce
     * 1.17-2.0 against 1.11-1.38, allgather 1.24-1.69 against 1.16-1.45).
     * The size is the whole buffer, also where count is per rank. (Until
     * the TCP progress thread stopped spinning on the poller's lock, the
     * line lay at 512 KiB.) */
    size_t bytes = op->count * op->esize;
    if (op->kind == COLL_ALLGATHER || op->kind == COLL_REDUCE_SCATTER || op->kind == COLL_ALLTOALL)
        bytes *= (size_t)c->nranks; /* the whole buffer */
    c->poll_engine = c->engine && (!c->oversubscribed || bytes <= POLL_MAX_OVERSUB);
    if (!c->poll_engine)
        coll_poll_release(c);
    c->deadline = tide_deadline_ms(c->timeout_ms);
    /* Ranks outnumber cores and peers are reached through the engine: in
     * an operation where a rank may only feed others (broadcast, reduce,
     * send), let a rank that shares our core run first. A rank whose
     * operations need nothing from its peers (a broadcast's root)
     * otherwise runs ahead for a whole time slice while the rank beside
     * it, which it feeds, waits (in the others every rank waits anyway):
     * np=4 over TCP, 8 KiB broadcasts (tide_perf -p 1) had 1 in 50 take
     * 3-8 ms, and 76-113 us on average; now the 99th percentile is
     * 0.07-0.10 ms. Over shared memory the yield only costs (8-byte
     * allreduce np=4: 1.7 -> 3.1 us), and nothing stalls there. */
    bool feeds = op->kind == COLL_BROADCAST || op->kind == COLL_REDUCE || op->kind == COLL_SEND;
    if (c->oversubscribed && c->any_engine && feeds)
        sched_yield();
    st = algo->fn(c, op);
    if (c->eng)
        coll_engine_op_end(c);
    coll_poll_end(c, false);
    if (st != TIDE_SUCCESS)
        tide_error("%s (%zu x %s, algorithm %s) failed on rank %d: %s", c->op_name, op->count,
                   coll_dtype_name(op->dtype), algo->name, c->rank, tide_status_str(st));
    c->nops++;
    return st;
}

static void work_finish(struct tide_work *w, tide_status_t st)
{
    w->status = st;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&w->waiters, __ATOMIC_ACQUIRE))
        syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    __atomic_store_n(&w->retired, 1, __ATOMIC_RELEASE); /* last access */
}

static void *worker_main(void *arg)
{
    coll_ctx_t *c = arg;
    pthread_mutex_lock(&c->qlock);
    for (;;) {
        while (!c->stop && (!c->qhead || c->inline_busy))
            pthread_cond_wait(&c->qcond, &c->qlock);
        if (c->stop)
            break;
        struct tide_work *w = c->qhead;
        c->qhead = w->next;
        if (!c->qhead)
            c->qtail = NULL;
        pthread_mutex_unlock(&c->qlock);
        tide_log_set_thread_rank(c->rank);
        tide_status_t st = run_op(c, &w->op);
        pthread_mutex_lock(&c->qlock);
        c->pending--;
        pthread_cond_broadcast(&c->qcond);
        work_finish(w, st); /* its waiter may free w once it is retired */
    }
    /* Operations still queued at destroy fail. */
    for (struct tide_work *w = c->qhead, *next; w; w = next) {
        next = w->next;
        work_finish(w, TIDE_ERR_REVOKED);
    }
    c->qhead = c->qtail = NULL;
    pthread_mutex_unlock(&c->qlock);
    return NULL;
}

void coll_enqueue(coll_ctx_t *c, struct tide_work *w)
{
    w->ctx = c;
    w->next = NULL;
    pthread_mutex_lock(&c->qlock);
    if (c->qtail)
        c->qtail->next = w;
    else
        c->qhead = w;
    c->qtail = w;
    c->pending++;
    pthread_cond_broadcast(&c->qcond);
    pthread_mutex_unlock(&c->qlock);
}

tide_status_t coll_run_blocking(coll_ctx_t *c, const coll_op_t *op)
{
    pthread_mutex_lock(&c->qlock);
    if (c->pending == 0 && !c->inline_busy) {
        c->inline_busy = true;
        pthread_mutex_unlock(&c->qlock);
        tide_status_t st = run_op(c, op);
        pthread_mutex_lock(&c->qlock);
        c->inline_busy = false;
        if (c->qhead) /* the worker waits for this call to start the queue */
            pthread_cond_broadcast(&c->qcond);
        pthread_mutex_unlock(&c->qlock);
        return st;
    }
    pthread_mutex_unlock(&c->qlock);
    /* Operations are ahead of this one: queue it behind them and wait. No
     * timeout here: every queued operation ends by its own deadline (each
     * of its transfers waits at most TIDE_BOOTSTRAP_TIMEOUT), and this one
     * as well. */
    struct tide_work w = {.op = *op};
    coll_enqueue(c, &w);
    __atomic_add_fetch(&w.waiters, 1, __ATOMIC_ACQ_REL);
    while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE))
        syscall(SYS_futex, &w.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    coll_work_settle(&w);
    return w.status;
}

tide_status_t coll_ctx_get(tide_comm_t *comm, coll_ctx_t **out)
{
    if (!comm->coll) {
        tide_status_t st = coll_ctx_create(comm, &comm->coll);
        if (st != TIDE_SUCCESS)
            return st;
    }
    *out = comm->coll;
    return TIDE_SUCCESS;
}
