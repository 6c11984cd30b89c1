/*
 * TCP transport. Each engine listens on one socket; to reach a peer it
 * opens TIDE_TCP_STREAMS streams to it (lazily, on first use), each
 * starting with a hello that carries the peer's token (learnt through the
 * store, so only members of the job can write into its segments).
 *
 * Streams are duplex: a connection carries the requests of both ends, and
 * each end's answers to the other's. The end that accepts a stream adopts
 * it as its own stream `index` to the connecting rank when that slot is
 * down and nobody is connecting it, so that a pair exchanging messages
 * uses one connection per index, not one per direction: the kernel's
 * acknowledgement of each message then rides on the next message going
 * back, where two connections cost a pure ACK per message (1.1-1.9 us
 * per exchange in a plain socket program, docs/performance.md). Where
 * both ends connect at once, each first keeps its own and answers on the
 * other's; the higher rank then lets the lower rank's connection take
 * the place of its own once its own is idle (adopt, succeed). Where ranks
 * outnumber cores, nothing is adopted (TIDE_TCP_DUPLEX, tcp_connect).
 *
 * Initiator role: slices are queued (q) by the posting thread, which also
 * writes them out (writev of headers and payloads, no copy); written
 * slices wait in flight (f) for the target's answer: ACK n completes the
 * n oldest WRITE/NOTIFY slices, READ_RESP the oldest READ, whose payload
 * is received straight into local memory.
 *
 * Target role (whoever runs progress, see Threads): the hello is checked,
 * then every request header: segment, offset and length are checked
 * against the local segment table before a byte of payload touches
 * memory. A bad hello or header costs that stream its connection, nothing
 * else. Answers are queued (o) and written by progress only; one frame is
 * never begun on a socket while another is partly written. The target
 * answers after each read, one ACK for what the read brought,
 * except frames flagged TCP_FLAG_LAZY_ACK (batches with
 * P2P_BATCH_LAZY_ACK, whose completion nobody waits on closely): those
 * are answered once LAZY_ACK_FRAMES are owed, or LAZY_ACK_NS after the
 * first, or with the next eager answer, so that a stream of small
 * messages costs no ACK per message.
 *
 * Failure of a stream (error, reset, end of stream, protocol violation):
 * its path goes FAILED and its queued and in-flight slices move to another
 * stream to the same peer (slices are idempotent); with none left, the
 * streams are reconnected once; if that fails too, the slices fail with
 * TIDE_ERR_PEER.
 *
 * Threads: posting threads write under the stream's lock. Reading,
 * writing what could not be written at once and tearing streams down is
 * progress, done under the progress lock by one thread at a time: the
 * engine's progress thread, or a thread that waits on the engine and took
 * progress over (tcp_poll_begin .. tcp_poll_end), so that a waiter spinning
 * on a result receives it itself instead of waiting for a thread to wake.
 *
 * The progress thread sleeps on `outer`, an epoll set holding the wake
 * eventfd and `epfd` (the streams' and the listening socket's set). A
 * thread taking progress over removes epfd's interest from outer, so that
 * arrivals no longer wake the progress thread, and restores it when it
 * gives progress back (what arrived meanwhile then wakes it at once).
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "tcp_frame.h"
#include "transport.h"
#include "util_list.h"
#include "util_log.h"
#include "util_numa.h"
#include "util_random.h"
#include "util_time.h"

#define RBUF_SIZE       (16 * 1024)
#define RX_AHEAD        4096
#define IOV_BATCH       64
#define RECONNECT_MS    500
#define FRAMES_PER_WAKE 4096
#define LEND_MS         1            /* progress lent to a polling thread comes back after this */
#define LAZY_ACK_FRAMES 32           /* lazily acked frames answered at once from this many */
#define LAZY_ACK_NS     (100 * 1000) /* ... or once the oldest waited this long */

typedef struct tcp_out {
    struct tcp_out *next;
    uint8_t hdr[TCP_HDR_LEN];
    const char *payload;
    uint32_t len;
    p2p_lseg_t *seg; /* held while payload is being sent */
} tcp_out_t;

typedef struct tcp_stream {
    struct tcp_ctx *ctx;
    int fd;
    int peer;     /* the rank at the other end (accepted: after the hello) */
    char who[32]; /* "tcp from rank N", for what logs refusals of its requests */
    int index;
    bool target;    /* accepted and not adopted: answers only, freed when it ends */
    bool successor; /* ... and to take over our stream `index` once that is idle */
    bool dead, hello_done;
    uint32_t events;
    p2p_path_t path; /* ours (slots) */
    pthread_mutex_t lock;
    /* initiator: queued and in-flight slices (under lock) */
    p2p_slice_t *q_head, *q_tail, *f_head, *f_tail;
    size_t q_off;
    /* receiving (progress thread) */
    uint8_t *rbuf;
    size_t rpos, rlen;
    bool drained; /* a recv came back short: the socket was empty (until epoll says) */
    bool in_payload;
    p2p_slice_t *rx_read; /* the payload arriving answers this READ of ours */
    char *dst;
    uint32_t left;
    p2p_lseg_t *cur_seg;
    /* target: the WRITE arriving lands in this zone (dst went from seg_dst
     * to zone_dst; the frame covers [f_off, f_off + f_len) of its segment) */
    p2p_zone_t *zone;
    char *seg_dst, *zone_dst;
    uint64_t f_off;
    uint32_t f_len;
    /* target role: answers to send (progress; the queue under lock too) */
    uint32_t acks;     /* frames done, not acknowledged yet (atomic: a request
                          written takes them along, see flush_slices) */
    bool ack_eager;    /* ... one of them without TCP_FLAG_LAZY_ACK: answer now */
    bool cur_lazy;     /* the WRITE whose payload is arriving has the flag */
    int64_t ack_since; /* > 0: acks owed lazily since then (counted in lazy_owed) */
    tcp_out_t *o_head, *o_tail;
    size_t o_off;
    tide_list_t link; /* on targets while it answers (accepted: from the accept;
                         a slot: from its first request); accepted: then on dead */
} tcp_stream_t;

typedef struct tcp_peer {
    pthread_mutex_t lock;       /* connecting */
    pthread_mutex_t order_lock; /* ordered sends; moving a failed stream's slices */
    tcp_stream_t **streams;
    int *route; /* under order_lock: the stream ordered sends preferring
                   stream i went to last (-1: none yet) */
    bool connected;
    unsigned rr;
    int64_t retry_at; /* under lock: no reconnect before then (the last failed) */
} tcp_peer_t;

typedef struct tcp_ctx {
    tide_engine_t *e;
    int listen_fd, epfd, wake_fd, outer;
    pthread_mutex_t plock; /* progress: held by whoever runs it */
    bool lent;             /* under plock: epfd is out of outer (a thread took progress) */
    int64_t last_poll;     /* atomic: when a taker last gave progress back */
    int backlog;           /* atomic: streams with output waiting for room */
    int lazy_owed;         /* under plock (read unlocked as a hint): streams owing lazy acks */
    tcp_stream_t *hot;     /* under plock: the slot that last brought a request (tcp_poll) */
    int successors;        /* under plock: accepted streams waiting to take over a slot */
    bool long_wait;        /* atomic: the progress thread may sleep long */
    pthread_t thread;
    int stop;
    bool started;
    uint8_t token[16];
    tcp_peer_t *peers;
    tide_list_t targets, dead;
    pthread_mutex_t zlock; /* zones: membership and reservations */
    tide_list_t zones;
    int nzones; /* atomic: zones open (0: frames skip the lookup) */
    tcp_out_t *free_outs;
    int numa_node;  /* the creating thread's: the progress thread runs there */
    bool cc_warned; /* atomic: TIDE_TCP_CONGESTION's algorithm was refused once */
    bool duplex;    /* atomic: adopt streams peers open (TIDE_TCP_DUPLEX, from tcp_connect) */
} tcp_ctx_t;

static void tcp_send(tcp_ctx_t *c, p2p_peer_t *peer, p2p_slice_t **s, size_t n, int ordered);
static void tcp_send_locked(tcp_ctx_t *c, p2p_peer_t *peer, p2p_slice_t **s, size_t n, int ordered);

/* Options of a connected stream socket: no Nagle delay, the configured
 * buffer sizes, and the congestion control TIDE_TCP_CONGESTION asks for
 * (auto: reno within one host, where there is no network to share and
 * bbr's pacing made 1 MiB transfers 1.3-2x slower in some runs, as fast in
 * others, depending on the connection's history; docs/performance.md). */
static void sock_tune(tcp_ctx_t *c, int fd)
{
    int one = 1, buf = (int)c->e->sockbuf;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (buf) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    }
    const char *cc = c->e->tcp_cc;
    if (strcmp(cc, "system") == 0)
        return;
    if (strcmp(cc, "auto") == 0) {
        if (!tide_sock_same_host(fd))
            return;
        cc = "reno"; /* always allowed, unprivileged too */
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) != 0 &&
        !__atomic_exchange_n(&c->cc_warned, true, __ATOMIC_RELAXED))
        tide_warn("tcp: congestion control '%s' refused (%m; see "
                  "net.ipv4.tcp_allowed_congestion_control): streams keep the system's",
                  cc);
}

static void set_events(tcp_stream_t *st, uint32_t ev)
{
    if (ev == st->events || st->fd < 0)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = st};
    epoll_ctl(st->ctx->epfd, EPOLL_CTL_MOD, st->fd, &e);
    if ((ev ^ st->events) & EPOLLOUT)
        __atomic_add_fetch(&st->ctx->backlog, (ev & EPOLLOUT) ? 1 : -1, __ATOMIC_RELEASE);
    st->events = ev;
}

/* Before the stream's socket is closed. */
static void clear_events(tcp_stream_t *st)
{
    if (st->events & EPOLLOUT)
        __atomic_sub_fetch(&st->ctx->backlog, 1, __ATOMIC_RELEASE);
    st->events = 0;
}

static void reset_rx(tcp_stream_t *st)
{
    st->rpos = st->rlen = 0;
    st->drained = false;
    st->in_payload = false;
    st->rx_read = NULL;
    st->dst = NULL;
    st->left = 0;
}

/* ------------------------------------------------------ initiator: send */

static size_t frame_bytes(const p2p_slice_t *s)
{
    return TCP_HDR_LEN + (s->op == TIDE_OP_WRITE ? s->len : 0);
}

/* Send iov[0..n) minus its first `skip` bytes without blocking. Returns
 * the bytes sent (>= 0), -EAGAIN when the socket is full, or -1 (errno). */
static ssize_t send_iov(int fd, struct iovec *iov, int n, size_t skip)
{
    int first = 0;
    while (skip > 0) {
        if (skip >= iov[first].iov_len) {
            skip -= iov[first++].iov_len;
        } else {
            iov[first].iov_base = (char *)iov[first].iov_base + skip;
            iov[first].iov_len -= skip;
            skip = 0;
        }
    }
    struct msghdr mh = {.msg_iov = iov + first, .msg_iovlen = (size_t)(n - first)};
    for (;;) {
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -EAGAIN;
        if (errno != EINTR)
            return -1;
    }
}

static void out_release(struct tcp_ctx *c, tcp_out_t *o);

/* One non-blocking write of nf frames held in iov[0..n), frame i being
 * lens[i] bytes, the first *off of which went out before. Returns the
 * frames now out whole (*off: what went out of the next one), -EAGAIN when
 * the socket is full, or -1 (errno). */
static int write_frames(int fd, struct iovec *iov, int n, const size_t *lens, int nf, size_t *off)
{
    ssize_t w = send_iov(fd, iov, n, *off);
    if (w < 0)
        return (int)w;
    size_t left = (size_t)w + *off;
    int done = 0;
    while (done < nf && left >= lens[done])
        left -= lens[done++];
    *off = left;
    return done;
}

/* Write queued slices until done or the socket is full: 1 all written, 0
 * full, -1 a socket error (errno). Lock held.
 *
 * The first frame each write begins carries the ACKs this end owes for
 * the peer's requests on this stream (where the peer sends on it too):
 * a pair exchanging messages then sends no ACK frames at all. Frames
 * begun here have their acks field set anew (a slice moved off a failed
 * stream may carry that stream's); what a write did not begin to send
 * is owed again. */
static int flush_slices(tcp_stream_t *st)
{
    while (st->q_head) {
        struct iovec iov[IOV_BATCH];
        size_t lens[IOV_BATCH];
        int n = 0, nf = 0, carrier = -1;
        uint32_t acks = __atomic_exchange_n(&st->acks, 0, __ATOMIC_RELAXED);
        for (p2p_slice_t *s = st->q_head; s && n + 2 <= IOV_BATCH; s = s->next) {
            if (nf > 0 || st->q_off == 0) { /* begun by this write, if at all */
                tcp_frame_set_acks(s->hdr, carrier < 0 ? acks : 0);
                if (carrier < 0)
                    carrier = nf;
            }
            iov[n++] = (struct iovec){s->hdr, TCP_HDR_LEN};
            if (s->op == TIDE_OP_WRITE)
                iov[n++] = (struct iovec){s->local, s->len};
            lens[nf++] = frame_bytes(s);
        }
        int done = write_frames(st->fd, iov, n, lens, nf, &st->q_off);
        if (acks) {
            if (done > carrier || (done == carrier && st->q_off > 0))
                __atomic_add_fetch(&st->ctx->e->counters.tcp_acks_carried, 1, __ATOMIC_RELAXED);
            else
                __atomic_add_fetch(&st->acks, acks, __ATOMIC_RELAXED);
        }
        if (done < 0)
            return done == -EAGAIN ? 0 : -1;
        while (done-- > 0) { /* written: in flight until answered */
            p2p_slice_t *s = st->q_head;
            st->q_head = s->next;
            if (!st->q_head)
                st->q_tail = NULL;
            s->next = NULL;
            if (st->f_tail)
                st->f_tail->next = s;
            else
                st->f_head = s;
            st->f_tail = s;
            st->path.slices++;
            st->path.bytes += s->len;
        }
    }
    return 1;
}

/* Write queued answers, as flush_slices. Lock and progress held. */
static int flush_answers(tcp_stream_t *st)
{
    while (st->o_head) {
        struct iovec iov[IOV_BATCH];
        size_t lens[IOV_BATCH];
        int n = 0, nf = 0;
        for (tcp_out_t *o = st->o_head; o && n + 2 <= IOV_BATCH; o = o->next) {
            iov[n++] = (struct iovec){o->hdr, TCP_HDR_LEN};
            if (o->len)
                iov[n++] = (struct iovec){(void *)o->payload, o->len};
            lens[nf++] = TCP_HDR_LEN + o->len;
        }
        int done = write_frames(st->fd, iov, n, lens, nf, &st->o_off);
        if (done < 0)
            return done == -EAGAIN ? 0 : -1;
        while (done-- > 0) {
            tcp_out_t *o = st->o_head;
            st->o_head = o->next;
            if (!st->o_head)
                st->o_tail = NULL;
            out_release(st->ctx, o);
        }
    }
    return 1;
}

/* Write what st has queued without blocking, and watch for room where
 * some is left. Answers are written by progress only (`answers`), and a
 * frame is begun only between frames: a slice partly out is finished
 * first, and slices wait while an answer is partly out. Lock held.
 * Returns 0, or -1 with errno on a socket error. */
static int stream_flush(tcp_stream_t *st, bool answers)
{
    int rc = 1;
    if (st->q_off > 0)
        rc = flush_slices(st);
    if (rc > 0 && answers)
        rc = flush_answers(st);
    if (rc > 0 && st->o_off == 0)
        rc = flush_slices(st);
    if (rc < 0)
        return -1;
    set_events(st, st->q_head || st->o_head ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

/* Slices queued or in flight on st. */
static bool stream_busy(tcp_stream_t *st)
{
    pthread_mutex_lock(&st->lock);
    bool busy = st->q_head || st->f_head;
    pthread_mutex_unlock(&st->lock);
    return busy;
}

/* Queue a chain on st and write what fits; false if st is dead. */
static bool stream_enqueue(tcp_stream_t *st, p2p_slice_t *head, p2p_slice_t *tail)
{
    pthread_mutex_lock(&st->lock);
    if (st->dead) {
        pthread_mutex_unlock(&st->lock);
        return false;
    }
    if (st->q_tail)
        st->q_tail->next = head;
    else
        st->q_head = head;
    st->q_tail = tail;
    if (stream_flush(st, false) != 0) {
        /* The progress thread sees the hang-up and fails the stream. */
        tide_info("path %s: send: %m", st->path.name);
        shutdown(st->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&st->lock);
    return true;
}

/* --------------------------------------------------------- connections */

static tcp_stream_t *stream_new(tcp_ctx_t *c, int peer, int index, bool target)
{
    tcp_stream_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->rbuf = malloc(RBUF_SIZE);
    if (!st->rbuf) {
        free(st);
        return NULL;
    }
    st->ctx = c;
    st->fd = -1;
    st->peer = peer;
    st->index = index;
    st->target = target;
    st->dead = true;
    pthread_mutex_init(&st->lock, NULL);
    tide_list_init(&st->link);
    snprintf(st->path.name, sizeof(st->path.name), "tcp->%d#%d", peer, index);
    snprintf(st->who, sizeof(st->who), "tcp from rank %d", peer);
    st->path.state = P2P_PATH_FAILED;
    return st;
}

static void peer_addr(const p2p_ep_info_t *info, tide_sockaddr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (info->family == 4) {
        struct sockaddr_in *in = (void *)&a->ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(info->port);
        memcpy(&in->sin_addr, info->addr, 4);
        a->len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (void *)&a->ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(info->port);
        memcpy(&in6->sin6_addr, info->addr, 16);
        a->len = sizeof(*in6);
    }
}

/* (Re)connect a dead stream. Lock held. */
static bool stream_connect(tcp_ctx_t *c, p2p_peer_t *peer, tcp_stream_t *st, int timeout_ms,
                           bool again)
{
    tide_sockaddr_t a;
    uint8_t hello[TCP_HELLO_LEN];
    tcp_hello_t h = {.rank = (uint32_t)c->e->rank, .index = (uint32_t)st->index};
    int fd;
    char why[96];

    peer_addr(&peer->info, &a);
    p2p_path_set_state(&st->path, P2P_PATH_PROBING, "connecting", false);
    memcpy(h.token, peer->info.token, sizeof(h.token));
    tcp_hello_encode(hello, &h);
    if (tide_sock_try_connect(&a, tide_deadline_ms(timeout_ms), !again, &fd) != TIDE_SUCCESS) {
        /* The path's state says why; what this costs (slices failing) is
         * reported where they fail. */
        snprintf(why, sizeof(why), "connect failed: %s", strerror(errno));
        p2p_path_set_state(&st->path, P2P_PATH_FAILED, why, false);
        return false;
    }
    sock_tune(c, fd);
    if (tide_sock_send_all(fd, hello, sizeof(hello), tide_deadline_ms(timeout_ms),
                           "tcp stream hello") != TIDE_SUCCESS ||
        tide_sock_set_nonblock(fd) != TIDE_SUCCESS) {
        close(fd);
        p2p_path_set_state(&st->path, P2P_PATH_FAILED, "hello not sent", true);
        return false;
    }
    st->fd = fd;
    st->q_off = 0;
    reset_rx(st);
    st->events = EPOLLIN;
    st->dead = false;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = st};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
        tide_error("path %s: epoll_ctl: %m", st->path.name);
        close(fd);
        st->fd = -1;
        st->dead = true;
        p2p_path_set_state(&st->path, P2P_PATH_FAILED, "epoll_ctl failed", true);
        return false;
    }
    p2p_path_set_state(&st->path, P2P_PATH_OK, "connected", false);
    return true;
}

/* Connect every dead stream to peer; true if one or more work. A
 * reconnect (again) takes a refusal as final (the peer listened before:
 * it has gone), stops at the first stream that fails, and is not tried
 * again for RECONNECT_MS: a peer that has left (its engine destroyed)
 * would otherwise cost every later send to it 0.5 s per stream of
 * retries (signals to a broadcast's root that had returned and left:
 * 1 s each, on every rank that still received from it). */
static bool peer_connect(tcp_ctx_t *c, p2p_peer_t *peer, int timeout_ms, bool again)
{
    tcp_peer_t *tp = &c->peers[peer->rank];
    bool any = false;
    pthread_mutex_lock(&tp->lock);
    if (again && tide_time_ns() < tp->retry_at) {
        pthread_mutex_unlock(&tp->lock);
        return false;
    }
    for (int i = 0; i < c->e->tcp_streams; i++) {
        tcp_stream_t *st = tp->streams[i];
        pthread_mutex_lock(&st->lock);
        if (st->dead)
            stream_connect(c, peer, st, timeout_ms, again);
        bool dead = st->dead;
        any |= !dead;
        pthread_mutex_unlock(&st->lock);
        if (again && dead && !any)
            break; /* the next stream goes to the same listener */
    }
    __atomic_store_n(&tp->connected, true, __ATOMIC_RELEASE);
    if (again && !any)
        tp->retry_at = tide_time_ns() + RECONNECT_MS * TIDE_NS_PER_MS;
    pthread_mutex_unlock(&tp->lock);
    return any;
}

/* -------------------------------------------------------------- posting */

static void fail_slices(tide_engine_t *e, p2p_slice_t **s, size_t n, tide_status_t st)
{
    for (size_t i = 0; i < n; i++)
        p2p_slice_done(e, s[i], st);
}

/* Spread s[0..n) over peer's usable streams (contiguous shares, rotating
 * start), or, with ordered >= 0, keep them in order on one stream: stream
 * `ordered` if usable, else the first usable one. Reconnect once if none
 * is usable.
 *
 * Ordered sends hold the peer's order lock, as does a failing stream
 * while it moves its slices: so what was ordered before a failure stays
 * ahead of what is ordered after it (a signal never overtakes the data of
 * an earlier batch, whose slices were moving to another stream). */
static void tcp_send(tcp_ctx_t *c, p2p_peer_t *peer, p2p_slice_t **s, size_t n, int ordered)
{
    if (ordered < 0) {
        tcp_send_locked(c, peer, s, n, ordered);
        return;
    }
    tcp_peer_t *tp = &c->peers[peer->rank];
    pthread_mutex_lock(&tp->order_lock);
    tcp_send_locked(c, peer, s, n, ordered);
    pthread_mutex_unlock(&tp->order_lock);
}

/* tcp_send, the order lock held for ordered sends. */
static void tcp_send_locked(tcp_ctx_t *c, p2p_peer_t *peer, p2p_slice_t **s, size_t n, int ordered)
{
    tcp_peer_t *tp = &c->peers[peer->rank];
    tcp_stream_t *use[64];
    int k = 0;

    if (!__atomic_load_n(&tp->connected, __ATOMIC_ACQUIRE))
        peer_connect(c, peer, c->e->timeout_ms, false);
    for (int i = 0; i < c->e->tcp_streams; i++)
        if (p2p_path_usable(&tp->streams[i]->path))
            use[k++] = tp->streams[i];
    if (k == 0 && peer_connect(c, peer, RECONNECT_MS, true))
        for (int i = 0; i < c->e->tcp_streams; i++)
            if (p2p_path_usable(&tp->streams[i]->path))
                use[k++] = tp->streams[i];
    if (k == 0) {
        bool data = false;
        for (size_t i = 0; i < n && !data; i++)
            data = s[i]->batch != NULL;
        if (data)
            tide_error("tcp: no stream to rank %d is left (%zu slices fail)", peer->rank, n);
        else /* signals only: to a peer that has left, harmless */
            tide_info("tcp: no stream to rank %d is left; %zu signals dropped", peer->rank, n);
        fail_slices(c->e, s, n, TIDE_ERR_PEER);
        return;
    }
    if (ordered >= 0) {
        /* Where this order went before, while that stream lives and has
         * slices queued or in flight: a stream that comes up later
         * (adopted, see adopt) must not take over an order whose earlier
         * batches may still be in flight on another. Once that stream is
         * idle the order goes back to its own, where the peer's order on
         * the same channel travels (its ACKs then ride on our requests). */
        int pref = ordered % c->e->tcp_streams, was = tp->route[pref];
        tcp_stream_t *one = use[0];
        for (int i = 0; i < k; i++)
            if (use[i]->index == pref)
                one = use[i];
        for (int i = 0; i < k && was != one->index; i++)
            if (use[i]->index == was && (one->index != pref || stream_busy(use[i])))
                one = use[i];
        tp->route[pref] = one->index;
        for (size_t i = 0; i < n; i++)
            s[i]->next = i + 1 < n ? s[i + 1] : NULL;
        if (!stream_enqueue(one, s[0], s[n - 1]))
            tcp_send_locked(c, peer, s, n, ordered); /* it died meanwhile */
        return;
    }
    unsigned start = __atomic_fetch_add(&tp->rr, 1, __ATOMIC_RELAXED);
    size_t share = (n + (size_t)k - 1) / (size_t)k;
    for (int j = 0; j < k; j++) {
        size_t lo = (size_t)j * share, hi = TIDE_MIN(n, lo + share);
        if (lo >= hi)
            break;
        for (size_t i = lo; i < hi; i++)
            s[i]->next = i + 1 < hi ? s[i + 1] : NULL;
        if (!stream_enqueue(use[(start + (unsigned)j) % (unsigned)k], s[lo], s[hi - 1]))
            tcp_send_locked(c, peer, s + lo, hi - lo, -1); /* it died meanwhile */
    }
}

/* lazy: the batch allows a late ACK (P2P_BATCH_LAZY_ACK) */
static void encode_slice(p2p_slice_t *s, bool lazy)
{
    tcp_frame_t f = {0};
    if (lazy && s->op != TIDE_OP_READ)
        f.flags = TCP_FLAG_LAZY_ACK;
    if (s->op == P2P_OP_NOTIFY) {
        f.op = TCP_OP_NOTIFY;
        f.seg = s->chan;
        f.tag = s->tag;
    } else if (s->op == P2P_OP_CTRL) {
        f.op = TCP_OP_CTRL;
        f.seg = s->chan;
        f.off = s->roff;
        f.tag = s->tag;
    } else {
        f.op = s->op == TIDE_OP_WRITE ? TCP_OP_WRITE : TCP_OP_READ;
        f.seg = s->rseg->desc.id;
        f.off = s->roff;
        f.len = s->len;
    }
    tcp_frame_encode(s->hdr, &f);
}

/* A signalling batch whose slices all go to this peer: send its signal
 * behind the data on the same stream, so the target applies it once the
 * data has landed, with no round trip to us first. The data frames then
 * ask for no ACK of their own: the signal's answers them all, one ACK per
 * batch where the target would answer every read (np=2 over TCP, 1 MiB
 * broadcasts: 3-5 ACK frames per message, each a system call on both
 * sides). */
static bool signal_inband(tcp_ctx_t *c, p2p_peer_t *peer, p2p_slice_t **s, size_t n)
{
    tide_batch_t *b = s[0]->batch;
    if (!b || b->signal_peer != peer->rank || n != b->nslices || n + 1 > 64)
        return false;
    p2p_slice_t *sig = calloc(1, sizeof(*sig));
    if (!sig)
        return false;
    for (size_t i = 0; i < n; i++)
        encode_slice(s[i], true);
    sig->op = P2P_OP_NOTIFY;
    sig->peer = peer->rank;
    sig->chan = b->signal_chan;
    sig->tag = b->signal_value;
    encode_slice(sig, b->flags & P2P_BATCH_LAZY_ACK);
    p2p_slice_t *all[64];
    memcpy(all, s, n * sizeof(*s));
    all[n] = sig;
    b->signal_inband = true;
    tcp_send(c, peer, all, n + 1, (int)b->signal_chan);
    return true;
}

/* Slices of no batch (signals, control messages) are acknowledged at once,
 * though nobody waits on them: acknowledged lazily, the credits a
 * collective's receiver returns made np=4 allreduce over TCP (two ranks a
 * core) 15-30% slower at 512 KiB-4 MiB, three interleaved rounds. */
static size_t tcp_post(void *ctx, p2p_peer_t *peer, p2p_slice_t **s, size_t n)
{
    if (signal_inband(ctx, peer, s, n)) /* which encoded them */
        return n;
    for (size_t i = 0; i < n; i++)
        encode_slice(s[i], s[i]->batch && (s[i]->batch->flags & P2P_BATCH_LAZY_ACK));
    tcp_send(ctx, peer, s, n, -1);
    return n;
}

/* ------------------------------------------------------ stream failure */

static void stream_fail_locked(tcp_stream_t *st, const char *why, tide_status_t fail_with);
static void answers_drop(tcp_stream_t *st);

/* Whether a slice queued or in flight on st belongs to a batch (someone
 * may wait on it): a stream that fails with only signals of no batch on
 * it (a collective's last credits to a rank that has just left) is worth
 * no warning. Lock held. */
static bool stream_awaited(const tcp_stream_t *st)
{
    for (const p2p_slice_t *s = st->f_head; s; s = s->next)
        if (s->batch)
            return true;
    for (const p2p_slice_t *s = st->q_head; s; s = s->next)
        if (s->batch)
            return true;
    return false;
}

/* Tear a stream of ours (a slot) down and move its slices elsewhere (or
 * fail them with `fail_with` when it is not TIDE_SUCCESS); what it owed
 * the peer goes too (the peer resends what it did not hear answered).
 * Progress or fini. */
static void stream_fail(tcp_stream_t *st, const char *why, tide_status_t fail_with)
{
    tcp_ctx_t *c = st->ctx;
    tcp_peer_t *tp = &c->peers[st->peer];
    pthread_mutex_lock(&tp->order_lock);
    stream_fail_locked(st, why, fail_with);
    pthread_mutex_unlock(&tp->order_lock);
}

static void stream_fail_locked(tcp_stream_t *st, const char *why, tide_status_t fail_with)
{
    tcp_ctx_t *c = st->ctx;
    p2p_slice_t *chain;
    size_t n = 0;

    pthread_mutex_lock(&st->lock);
    if (st->dead) {
        pthread_mutex_unlock(&st->lock);
        return;
    }
    st->dead = true;
    if (fail_with == TIDE_ERR_REVOKED) { /* engine teardown: not a failure to report */
        __atomic_store_n(&st->path.state, P2P_PATH_FAILED, __ATOMIC_RELEASE);
    } else {
        st->path.errors++;
        p2p_path_set_state(&st->path, P2P_PATH_FAILED, why, stream_awaited(st));
    }
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, st->fd, NULL);
    clear_events(st);
    close(st->fd);
    st->fd = -1;
    answers_drop(st);
    tide_list_remove(&st->link);
    if (st->f_tail) {
        st->f_tail->next = st->q_head;
        chain = st->f_head;
    } else {
        chain = st->q_head;
    }
    st->f_head = st->f_tail = st->q_head = st->q_tail = NULL;
    st->q_off = 0;
    reset_rx(st);
    pthread_mutex_unlock(&st->lock);

    for (p2p_slice_t *s = chain; s; s = s->next)
        n++;
    if (!n)
        return;
    p2p_slice_t **arr = malloc(n * sizeof(*arr)); /* failover: rare, not the data path */
    size_t i = 0;
    for (p2p_slice_t *s = chain, *next; s; s = next) {
        next = s->next;
        s->next = NULL;
        if (arr)
            arr[i++] = s;
        else
            p2p_slice_done(c->e, s, TIDE_ERR_NOMEM);
    }
    if (!arr)
        return;
    if (fail_with != TIDE_SUCCESS) {
        fail_slices(c->e, arr, n, fail_with);
    } else {
        st->path.failovers += n;
        tide_info("path %s: moving %zu slices to another path to rank %d", st->path.name, n,
                  st->peer);
        /* In their order, on one stream: a signal stays behind its data;
         * and the orders that went to st go on where these went. */
        tcp_peer_t *tp = &c->peers[st->peer];
        tcp_send_locked(c, &c->e->peers[st->peer], arr, n, st->index);
        for (int r = 0; r < c->e->tcp_streams; r++)
            if (tp->route[r] == st->index)
                tp->route[r] = tp->route[st->index];
    }
    free(arr);
}

/* ------------------------------------------------------------ receiving */

/* One non-blocking read into iov[0..n): the bytes received (> 0), 0 when
 * it would block, or -1 when the stream ended (why set). */
static ssize_t rx_recv(int fd, struct iovec *iov, size_t n, const char **why)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
    for (;;) {
        ssize_t k = recvmsg(fd, &m, MSG_DONTWAIT);
        if (k > 0)
            return k;
        if (k == 0) {
            *why = "closed by the peer";
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR) {
            *why = strerror(errno);
            return -1;
        }
    }
}

/* Make at least `want` unread bytes available in rbuf, or report why not:
 * 1 ready, 0 would block, -1 the stream ended (why set). */
static int rx_fill(tcp_stream_t *st, size_t want, const char **why)
{
    while (st->rlen - st->rpos < want) {
        if (st->drained)
            return 0;
        if (st->rpos > 0) {
            memmove(st->rbuf, st->rbuf + st->rpos, st->rlen - st->rpos);
            st->rlen -= st->rpos;
            st->rpos = 0;
        }
        /* Read ahead a little only: payload bytes read here are copied
         * once more, those left in the socket go straight to memory. */
        size_t room = TIDE_MIN(RBUF_SIZE - st->rlen, TIDE_MAX(want, (size_t)RX_AHEAD));
        struct iovec iov = {st->rbuf + st->rlen, room};
        ssize_t n = rx_recv(st->fd, &iov, 1, why);
        if (n <= 0)
            return (int)n;
        st->rlen += (size_t)n;
        st->drained = (size_t)n < room;
    }
    return 1;
}

/* Continue receiving a payload into st->dst: 1 complete, 0 would block,
 * -1 ended. Each read also asks for a little of what follows (the next
 * frame's header) into rbuf, so that a stream of frames costs one system
 * call per frame, not two. */
static int rx_payload(tcp_stream_t *st, const char **why)
{
    size_t take = TIDE_MIN((size_t)st->left, st->rlen - st->rpos);
    memcpy(st->dst, st->rbuf + st->rpos, take);
    st->rpos += take;
    st->dst += take;
    st->left -= (uint32_t)take;
    while (st->left > 0) {
        if (st->drained)
            return 0;
        st->rpos = st->rlen = 0; /* every buffered byte was payload */
        struct iovec iov[2] = {{st->dst, st->left}, {st->rbuf, RX_AHEAD}};
        ssize_t n = rx_recv(st->fd, iov, 2, why);
        if (n <= 0)
            return (int)n;
        st->drained = (size_t)n < st->left + RX_AHEAD;
        if ((size_t)n >= st->left) {
            st->rlen = (size_t)n - st->left;
            st->dst += st->left;
            st->left = 0;
            break;
        }
        st->dst += n;
        st->left -= (uint32_t)n;
    }
    return 1;
}

/* ---------------------------------------------------------- landing zones */

/* A WRITE frame f begins: land it in an open zone that holds it whole and
 * has a run left for it. Progress held. */
static void zone_take(tcp_stream_t *st, const tcp_frame_t *f)
{
    tcp_ctx_t *c = st->ctx;
    pthread_mutex_lock(&c->zlock);
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->zones)
    {
        p2p_zone_t *z = tide_list_entry(pos, p2p_zone_t, link);
        if (z->seg != f->seg || f->len == 0 || f->off < z->off ||
            !p2p_range_ok(f->off - z->off, f->len, z->len) || z->reserved == P2P_ZONE_RUNS)
            continue;
        z->reserved++;
        st->zone = z;
        st->seg_dst = st->dst;
        st->dst = st->zone_dst = z->dst + (f->off - z->off);
        st->f_off = f->off;
        st->f_len = f->len;
        break;
    }
    pthread_mutex_unlock(&c->zlock);
}

/* The frame landed whole in its zone: record it. Progress held. */
static void zone_land(tcp_stream_t *st)
{
    p2p_zone_t *z = st->zone;
    pthread_mutex_lock(&st->ctx->zlock);
    uint32_t k = z->n;
    z->runs[k].off = st->f_off;
    z->runs[k].len = st->f_len;
    __atomic_store_n(&z->n, k + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&st->ctx->zlock);
    st->zone = NULL;
}

static tide_status_t tcp_zone_open(void *ctx, p2p_zone_t *z)
{
    tcp_ctx_t *c = ctx;
    pthread_mutex_lock(&c->zlock);
    tide_list_push_back(&c->zones, &z->link);
    __atomic_add_fetch(&c->nzones, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->zlock);
    return TIDE_SUCCESS;
}

/* Frames still arriving into z finish in their segment, where they were
 * headed (what arrived so far is moved there): the zone's owner no longer
 * looks for them in dst. */
static void tcp_zone_close(void *ctx, p2p_zone_t *z)
{
    tcp_ctx_t *c = ctx;
    pthread_mutex_lock(&c->plock);
    pthread_mutex_lock(&c->zlock);
    tide_list_remove(&z->link);
    __atomic_sub_fetch(&c->nzones, 1, __ATOMIC_RELEASE);
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->targets)
    {
        tcp_stream_t *st = tide_list_entry(pos, tcp_stream_t, link);
        if (st->zone != z)
            continue;
        size_t done = (size_t)(st->dst - st->zone_dst);
        memcpy(st->seg_dst, st->zone_dst, done); /* the frame lands whole in its segment */
        st->dst = st->seg_dst + done;
        st->zone = NULL;
    }
    pthread_mutex_unlock(&c->zlock);
    pthread_mutex_unlock(&c->plock);
}

/* Queue an answer. Progress held. */
static bool out_push(tcp_stream_t *st, const tcp_frame_t *f, const char *payload, p2p_lseg_t *seg)
{
    tcp_ctx_t *c = st->ctx;
    tcp_out_t *o = c->free_outs;
    if (o)
        c->free_outs = o->next;
    else if (!(o = malloc(sizeof(*o))))
        return false;
    o->next = NULL;
    tcp_frame_encode(o->hdr, f);
    o->payload = payload;
    o->len = payload ? f->len : 0;
    o->seg = seg;
    pthread_mutex_lock(&st->lock);
    if (st->o_tail)
        st->o_tail->next = o;
    else
        st->o_head = o;
    st->o_tail = o;
    pthread_mutex_unlock(&st->lock);
    return true;
}

static void out_release(tcp_ctx_t *c, tcp_out_t *o)
{
    if (o->seg)
        p2p_lseg_put(o->seg);
    o->next = c->free_outs;
    c->free_outs = o;
}

static void ack_owed_clear(tcp_stream_t *st)
{
    if (st->ack_since) {
        st->ack_since = 0;
        __atomic_store_n(&st->ctx->lazy_owed, st->ctx->lazy_owed - 1, __ATOMIC_RELAXED);
    }
    st->ack_eager = false;
}

static bool push_acks(tcp_stream_t *st)
{
    ack_owed_clear(st);
    uint32_t acks = __atomic_exchange_n(&st->acks, 0, __ATOMIC_RELAXED);
    if (!acks)
        return true; /* none, or a request took them along */
    tcp_frame_t f = {.op = TCP_OP_ACK, .tag = acks};
    __atomic_add_fetch(&st->ctx->e->counters.tcp_acks_out, 1, __ATOMIC_RELAXED);
    return out_push(st, &f, NULL, NULL);
}

/* After a read: answer now, or leave lazily acked frames owed (answered
 * with later frames, by count, or by time in flush_lazy_acks). The
 * initiator does not wait on these: its batches finish late, that is
 * all, and it keeps their slices to resend until then. */
static bool answer(tcp_stream_t *st)
{
    uint32_t acks = __atomic_load_n(&st->acks, __ATOMIC_RELAXED);
    if (acks && !st->ack_eager && acks < LAZY_ACK_FRAMES) {
        if (!st->ack_since) {
            st->ack_since = tide_time_ns();
            __atomic_store_n(&st->ctx->lazy_owed, st->ctx->lazy_owed + 1, __ATOMIC_RELAXED);
        }
        return true;
    }
    return push_acks(st);
}

/* A stream ended: forget what it was receiving and what it owed the
 * peer. Progress held (or fini); st's lock held unless it is accepted. */
static void answers_drop(tcp_stream_t *st)
{
    tcp_ctx_t *c = st->ctx;
    ack_owed_clear(st);
    __atomic_store_n(&st->acks, 0, __ATOMIC_RELAXED);
    if (st->cur_seg)
        p2p_lseg_put(st->cur_seg);
    st->cur_seg = NULL;
    st->zone = NULL; /* its run stays unrecorded: what it covers is resent */
    for (tcp_out_t *o = st->o_head, *next; o; o = next) {
        next = o->next;
        out_release(c, o);
    }
    st->o_head = st->o_tail = NULL;
    st->o_off = 0;
}

/* End an accepted stream (it is freed after this round of progress). */
static void target_kill(tcp_stream_t *st, const char *why)
{
    tcp_ctx_t *c = st->ctx;
    if (st->dead)
        return;
    if (why)
        tide_warn("tcp: closing stream %d from rank %d (%s)", st->index, st->peer, why);
    st->dead = true;
    if (st->successor) {
        st->successor = false;
        c->successors--;
    }
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, st->fd, NULL);
    clear_events(st);
    close(st->fd);
    st->fd = -1;
    answers_drop(st);
    tide_list_remove(&st->link);
    tide_list_push_back(&c->dead, &st->link);
}

/* End a stream, with a warning unless `quiet` (its peer left: its
 * business); one of ours moves its slices to another stream. Progress. */
static void stream_end(tcp_stream_t *st, const char *why, bool quiet)
{
    if (st->target) {
        if (quiet)
            tide_info("tcp: stream %d from rank %d ended (%s)", st->index, st->peer, why);
        target_kill(st, quiet ? NULL : why);
    } else {
        if (!quiet)
            tide_warn("tcp: closing stream %d with rank %d (%s)", st->index, st->peer, why);
        stream_fail(st, why, TIDE_SUCCESS);
    }
}

/* Send the answers just queued (`queued`: false when queueing failed); on
 * a failure end the stream, quietly where the peer has left (a reset or
 * broken pipe: an engine destroyed right after its last operation, whose
 * answers no longer matter to anyone). Progress held. */
static void stream_answer(tcp_stream_t *st, bool queued)
{
    if (!queued) {
        stream_end(st, "out of memory for an answer", false);
        return;
    }
    pthread_mutex_lock(&st->lock);
    int rc = st->dead ? 0 : stream_flush(st, true);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0)
        return;
    if (errno == EPIPE || errno == ECONNRESET)
        stream_end(st, "the peer left before our answers", true);
    else
        stream_end(st, "cannot answer", false);
}

static bool target_hello(tcp_stream_t *st)
{
    tcp_ctx_t *c = st->ctx;
    tcp_hello_t h;
    const char *why = NULL;
    int rc = rx_fill(st, TCP_HELLO_LEN, &why);
    if (rc == 0)
        return false;
    if (rc < 0) {
        target_kill(st, NULL);
        return false;
    }
    if (tcp_hello_decode(st->rbuf + st->rpos, &h) != TIDE_SUCCESS) {
        target_kill(st, "not a Tide stream hello");
        return false;
    }
    if (h.rank >= (uint32_t)c->e->nranks || h.rank == (uint32_t)c->e->rank ||
        !tide_secret_equal(h.token, sizeof(h.token), c->token, sizeof(c->token))) {
        target_kill(st, "wrong token or rank in the hello");
        return false;
    }
    st->rpos += TCP_HELLO_LEN;
    st->peer = (int)h.rank;
    st->index = (int)h.index;
    snprintf(st->who, sizeof(st->who), "tcp from rank %d", st->peer);
    st->hello_done = true;
    tide_debug("tcp: stream %u from rank %u accepted", h.index, h.rank);
    return true;
}

/* Slot st takes accepted stream t's connection (t ends); st's own, if it
 * had one, is closed first. Progress, tp->lock and st's lock held. */
static void slot_take(tcp_ctx_t *c, tcp_stream_t *st, tcp_stream_t *t)
{
    if (st->fd >= 0) {
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, st->fd, NULL);
        clear_events(st);
        close(st->fd);
    }
    uint8_t *spare = st->rbuf;
    st->fd = t->fd;
    st->rbuf = t->rbuf;
    st->rpos = t->rpos;
    st->rlen = t->rlen;
    st->drained = t->drained;
    st->in_payload = false;
    st->events = t->events;
    st->q_off = 0;
    st->hello_done = true;
    st->dead = false;
    /* what t owes the peer, st owes now */
    __atomic_add_fetch(&st->acks, __atomic_exchange_n(&t->acks, 0, __ATOMIC_RELAXED),
                       __ATOMIC_RELAXED);
    st->ack_eager |= t->ack_eager;
    if (t->ack_since && !st->ack_since)
        st->ack_since = t->ack_since;
    else if (t->ack_since) /* both counted in lazy_owed: st stays */
        __atomic_store_n(&c->lazy_owed, c->lazy_owed - 1, __ATOMIC_RELAXED);
    t->ack_since = 0;
    t->ack_eager = false;
    t->rbuf = spare;
    t->fd = -1;
    t->events = 0;
    t->dead = true;
    if (t->successor) {
        t->successor = false;
        c->successors--;
    }
    tide_list_remove(&t->link);
    tide_list_push_back(&c->dead, &t->link);
    if (tide_list_empty(&st->link))
        tide_list_push_back(&c->targets, &st->link);
}

/* An accepted stream t has said hello: make it our stream t->index to its
 * rank where that one is down and nobody is connecting it, so that our
 * requests to the rank travel on it too. Returns the stream to go on
 * reading: the slot, or t where it stays answers only.
 *
 * Where both ranks connected at once, each has a connection of its own
 * and answers on the other's. The one of the lower rank wins: the higher
 * rank marks t to take over its slot once that is idle (succeed), so
 * that the pair ends with one connection per index. Progress held. */
static tcp_stream_t *adopt(tcp_stream_t *t)
{
    tcp_ctx_t *c = t->ctx;
    if (!__atomic_load_n(&c->duplex, __ATOMIC_ACQUIRE) || t->index < 0 ||
        t->index >= c->e->tcp_streams)
        return t;
    tcp_peer_t *tp = &c->peers[t->peer];
    tcp_stream_t *st = tp->streams[t->index];
    bool take = false;
    if (pthread_mutex_trylock(&tp->lock) == 0) {
        pthread_mutex_lock(&st->lock);
        struct epoll_event e = {.events = t->events, .data.ptr = st};
        take = st->dead && epoll_ctl(c->epfd, EPOLL_CTL_MOD, t->fd, &e) == 0;
        if (take) {
            slot_take(c, st, t);
            p2p_path_set_state(&st->path, P2P_PATH_OK, "accepted", false);
            /* The peer opens all its streams at once: the others arrive
             * too, and we open none ourselves. */
            __atomic_store_n(&tp->connected, true, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&st->lock);
        pthread_mutex_unlock(&tp->lock);
    }
    if (!take && t->peer < c->e->rank) {
        t->successor = true;
        c->successors++;
    }
    return take ? st : t;
}

/* Accepted streams marked to take over a slot do so where the slot has
 * nothing queued, in flight or half received, and neither has an answer
 * half written: nothing of ours is then on the old connection, which
 * closes (the peer sees it end). Progress held. */
static void succeed(tcp_ctx_t *c)
{
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->targets)
    {
        tcp_stream_t *t = tide_list_entry(pos, tcp_stream_t, link);
        if (!t->successor || t->dead || t->in_payload || t->o_head || t->cur_seg)
            continue;
        tcp_peer_t *tp = &c->peers[t->peer];
        tcp_stream_t *st = tp->streams[t->index];
        if (pthread_mutex_trylock(&tp->lock) != 0)
            continue;
        pthread_mutex_lock(&st->lock);
        bool idle = !st->q_head && !st->f_head && !st->o_head && !st->in_payload &&
                    st->rpos == st->rlen && !st->cur_seg &&
                    !__atomic_load_n(&st->acks, __ATOMIC_RELAXED) && !st->ack_since;
        struct epoll_event e = {.events = t->events, .data.ptr = st};
        if ((st->dead || idle) && epoll_ctl(c->epfd, EPOLL_CTL_MOD, t->fd, &e) == 0) {
            tide_debug("tcp: stream %d with rank %d goes over the rank's connection", t->index,
                       t->peer);
            slot_take(c, st, t);
            p2p_path_set_state(&st->path, P2P_PATH_OK, "the peer's connection", false);
        }
        pthread_mutex_unlock(&st->lock);
        pthread_mutex_unlock(&tp->lock);
    }
}

/* Take s, which follows prev (NULL: the head), off the in-flight list.
 * Lock held. */
static void inflight_unlink(tcp_stream_t *st, p2p_slice_t *prev, p2p_slice_t *s)
{
    *(prev ? &prev->next : &st->f_head) = s->next;
    if (st->f_tail == s)
        st->f_tail = prev;
    s->next = NULL;
}

/* n more of our WRITE/NOTIFY/CTRL frames on st are done, oldest first
 * (an ACK frame, or one riding on a request). READs are answered apart,
 * in order among themselves: answers written by progress and requests
 * carrying ACKs may pass each other. NULL, or why n is wrong. */
static const char *got_acks(tcp_stream_t *st, uint64_t n)
{
    p2p_slice_t *done = NULL, **tail = &done, *prev = NULL;
    uint64_t k = 0;
    pthread_mutex_lock(&st->lock);
    for (p2p_slice_t *s = st->f_head, *next; s && k < n; s = next) {
        next = s->next;
        if (s->op == TIDE_OP_READ) {
            prev = s;
            continue;
        }
        inflight_unlink(st, prev, s);
        *tail = s;
        tail = &s->next;
        k++;
    }
    pthread_mutex_unlock(&st->lock);
    for (p2p_slice_t *s = done, *next; s; s = next) {
        next = s->next;
        p2p_slice_done(st->ctx->e, s, TIDE_SUCCESS);
    }
    return k == n ? NULL : "ACK for more frames than were in flight";
}

/* An answer to our requests (ACK, READ_RESP): NULL, or why it is wrong. */
static const char *got_answer(tcp_stream_t *st, const tcp_frame_t *f)
{
    if (f->op == TCP_OP_ACK)
        return got_acks(st, f->tag);
    pthread_mutex_lock(&st->lock);
    p2p_slice_t *s = st->f_head;
    while (s && s->op != TIDE_OP_READ)
        s = s->next;
    bool ok = s && s->len == f->len;
    pthread_mutex_unlock(&st->lock);
    if (!ok)
        return "READ_RESP that answers no READ in flight";
    st->in_payload = true;
    st->rx_read = s;
    st->dst = s->local;
    st->left = f->len;
    return NULL;
}

/* A request (WRITE, READ, NOTIFY, CTRL): NULL, or why it is refused. */
static const char *got_request(tcp_stream_t *st, const tcp_frame_t *f)
{
    tcp_ctx_t *c = st->ctx;
    __atomic_add_fetch(&c->e->counters.tcp_frames_in, 1, __ATOMIC_RELAXED);
    if (!st->target && tide_list_empty(&st->link))
        tide_list_push_back(&c->targets, &st->link); /* one of ours now answers too */
    if (!st->target)
        c->hot = st; /* slots live until fini */
    if (f->op == TCP_OP_WRITE || f->op == TCP_OP_READ) {
        p2p_lseg_t *seg = p2p_lseg_get(c->e, f->seg, f->off, f->len, st->who);
        if (!seg)
            return "request outside our segments";
        if (f->op == TCP_OP_READ) {
            tcp_frame_t r = {.op = TCP_OP_READ_RESP, .len = f->len, .tag = f->tag};
            if (!push_acks(st) || !out_push(st, &r, seg->addr + f->off, seg)) {
                p2p_lseg_put(seg);
                return "out of memory";
            }
            return NULL;
        }
        st->cur_seg = seg;
        st->dst = seg->addr + f->off;
        st->left = f->len;
        if (__atomic_load_n(&c->nzones, __ATOMIC_ACQUIRE) > 0)
            zone_take(st, f);
        st->in_payload = true;
        st->cur_lazy = f->flags & TCP_FLAG_LAZY_ACK;
        return NULL;
    }
    if (f->op == TCP_OP_NOTIFY) {
        if (f->seg >= P2P_NCHAN)
            return "signal on an unknown channel";
        p2p_signal_received(c->e, st->peer, f->seg, f->tag);
    } else {
        p2p_ctrl_received(c->e, st->peer, f->seg, f->off, f->tag);
    }
    __atomic_add_fetch(&st->acks, 1, __ATOMIC_RELAXED);
    st->ack_eager |= !(f->flags & TCP_FLAG_LAZY_ACK);
    return NULL;
}

/* Read what arrived on a stream: the hello of an accepted one, then
 * frames of both roles. Progress held. */
static int stream_read(tcp_stream_t *st)
{
    tide_engine_t *e = st->ctx->e;
    const char *why = NULL;
    int rc = 1, frames = 0;

    if (st->target && !st->hello_done) {
        if (!target_hello(st))
            return 1;
        st = adopt(st);
    }
    for (; frames < FRAMES_PER_WAKE && rc > 0; frames++) {
        if (st->in_payload) {
            if ((rc = rx_payload(st, &why)) <= 0)
                break;
            st->in_payload = false;
            if (st->rx_read) {
                p2p_slice_t *s = st->rx_read, *prev = NULL;
                st->rx_read = NULL;
                pthread_mutex_lock(&st->lock);
                for (p2p_slice_t *i = st->f_head; i != s; i = i->next)
                    prev = i;
                inflight_unlink(st, prev, s);
                pthread_mutex_unlock(&st->lock);
                p2p_slice_done(e, s, TIDE_SUCCESS);
                continue;
            }
            if (st->zone)
                zone_land(st);
            p2p_lseg_put(st->cur_seg);
            st->cur_seg = NULL;
            __atomic_add_fetch(&st->acks, 1, __ATOMIC_RELAXED);
            st->ack_eager |= !st->cur_lazy;
            continue;
        }
        if ((rc = rx_fill(st, TCP_HDR_LEN, &why)) <= 0)
            break;
        tcp_frame_t f;
        if (tcp_frame_decode(st->rbuf + st->rpos, &f) != TIDE_SUCCESS) {
            stream_end(st, "malformed frame header", false);
            return 1;
        }
        st->rpos += TCP_HDR_LEN;
        if (f.op == TCP_OP_ACK || f.op == TCP_OP_READ_RESP)
            why = got_answer(st, &f);
        else if (!f.acks || !(why = got_acks(st, f.acks)))
            why = got_request(st, &f);
        if (why) {
            stream_end(st, why, false);
            return 1;
        }
    }
    if (rc < 0) {
        stream_end(st, why, true); /* the peer went away: its business */
        return 1;
    }
    bool queued = answer(st);
    if (!queued || st->o_head) /* o_head: progress's own (nothing to write: no lock) */
        stream_answer(st, queued);
    return frames;
}

/* Answer lazily acked frames that waited LAZY_ACK_NS (all of them where
 * `all`); plock held. */
static void flush_lazy_acks(tcp_ctx_t *c, bool all)
{
    int64_t now = tide_time_ns();
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->targets)
    {
        tcp_stream_t *st = tide_list_entry(pos, tcp_stream_t, link);
        if (st->dead || !st->ack_since || (!all && now - st->ack_since < LAZY_ACK_NS))
            continue;
        stream_answer(st, push_acks(st));
    }
}

/* -------------------------------------------------------------- progress */

static void accept_all(tcp_ctx_t *c)
{
    for (;;) {
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                tide_warn("tcp: accept: %m");
            return;
        }
        sock_tune(c, fd);
        tcp_stream_t *st = stream_new(c, -1, -1, true);
        if (!st) {
            tide_error("tcp: out of memory accepting a stream");
            close(fd);
            continue;
        }
        st->fd = fd;
        st->dead = false;
        st->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = st};
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            free(st->rbuf);
            free(st);
            continue;
        }
        tide_list_push_back(&c->targets, &st->link);
    }
}

static void free_stream(tcp_stream_t *st)
{
    pthread_mutex_destroy(&st->lock);
    free(st->rbuf);
    free(st);
}

/* Handle what is ready on the streams and the listening socket; plock
 * held. Returns the number of events handled. */
static int tcp_dispatch(tcp_ctx_t *c)
{
    struct epoll_event ev[64];
    int n = epoll_wait(c->epfd, ev, 64, 0);
    for (int i = 0; i < n; i++) {
        void *p = ev[i].data.ptr;
        if (p == &c->listen_fd) {
            accept_all(c);
            continue;
        }
        tcp_stream_t *st = p;
        st->drained = false;
        if (!st->dead && (ev[i].events & EPOLLOUT))
            stream_answer(st, true);
        if (!st->dead && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            stream_read(st);
    }
    if (c->lazy_owed)
        flush_lazy_acks(c, false);
    if (c->successors)
        succeed(c);
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->dead)
    {
        tide_list_remove(pos);
        free_stream(tide_list_entry(pos, tcp_stream_t, link));
    }
    return n > 0 ? n : 0;
}

static void outer_watch(tcp_ctx_t *c, bool on)
{
    struct epoll_event e = {.events = on ? EPOLLIN : 0, .data.ptr = &c->epfd};
    epoll_ctl(c->outer, EPOLL_CTL_MOD, c->epfd, &e);
    __atomic_store_n(&c->lent, !on, __ATOMIC_SEQ_CST);
}

static void *progress_main(void *arg)
{
    tcp_ctx_t *c = arg;
    struct epoll_event ev[2];

    tide_numa_bind_thread(c->numa_node);
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        /* Announce a long sleep before looking at `lent`: a taker that
         * leaves progress lent then wakes us (tcp_poll_end). */
        __atomic_store_n(&c->long_wait, true, __ATOMIC_SEQ_CST);
        bool lent = __atomic_load_n(&c->lent, __ATOMIC_SEQ_CST);
        if (lent)
            __atomic_store_n(&c->long_wait, false, __ATOMIC_RELAXED);
        bool owed = __atomic_load_n(&c->lazy_owed, __ATOMIC_RELAXED) > 0;
        int n = epoll_wait(c->outer, ev, 2, lent || owed ? LEND_MS : 200);
        __atomic_store_n(&c->long_wait, false, __ATOMIC_RELAXED);
        for (int i = 0; i < n; i++)
            if (ev[i].data.ptr == &c->wake_fd)
                tide_wake_drain(c->wake_fd);
        /* Wait for a thread that polls to finish its turn, rather than
         * try again: the streams' set may stay ready meanwhile, and this
         * loop then spun on the poller's own core (np=2 over TCP, 1 MiB
         * broadcasts: 400 000 turns in 0.45 s; tide_perf -n 1000 -p 1:
         * the 99th percentile 2.6-4.5 -> 0.56 ms). */
        pthread_mutex_lock(&c->plock);
        if (c->lent) { /* lent out: take it back once nobody polled for a while */
            int64_t idle = tide_time_ns() - __atomic_load_n(&c->last_poll, __ATOMIC_RELAXED);
            if (idle < LEND_MS * TIDE_NS_PER_MS) {
                pthread_mutex_unlock(&c->plock);
                continue;
            }
            outer_watch(c, true);
        }
        tcp_dispatch(c);
        pthread_mutex_unlock(&c->plock);
    }
    return NULL;
}

/* ------------------------------------------------- caller-driven progress */

static bool tcp_poll_begin(void *ctx)
{
    tcp_ctx_t *c = ctx;
    if (pthread_mutex_trylock(&c->plock) != 0)
        return false; /* the progress thread is at it: it will be done soon */
    if (!c->lent)
        outer_watch(c, false);
    return true;
}

/* A thread waiting on the engine reads the slot that last brought a
 * request before asking epoll: where a pair takes turns on one duplex
 * stream, the next message is found without an epoll_wait on the way
 * (one system call fewer per message received). */
static bool tcp_poll(void *ctx)
{
    tcp_ctx_t *c = ctx;
    tcp_stream_t *hot = c->hot;
    int got = 0;
    if (hot && !hot->dead) {
        hot->drained = false;
        got = stream_read(hot);
    }
    return tcp_dispatch(c) + got > 0;
}

/* Give progress back. Lazily where nothing waits to be written: a thread
 * that polls again soon (the next operation) takes it over without a
 * system call, and the progress thread takes it back after LEND_MS
 * otherwise. At once where the taker goes to sleep or output is pending. */
static void tcp_poll_end(void *ctx, bool now)
{
    tcp_ctx_t *c = ctx;
    __atomic_store_n(&c->last_poll, tide_time_ns(), __ATOMIC_RELAXED);
    if (now || __atomic_load_n(&c->backlog, __ATOMIC_ACQUIRE) > 0)
        outer_watch(c, true);
    else if (__atomic_load_n(&c->long_wait, __ATOMIC_SEQ_CST))
        tide_wake_post(c->wake_fd); /* to wait LEND_MS, not its long timeout */
    pthread_mutex_unlock(&c->plock);
}

/* ------------------------------------------------------------ lifecycle */

static void tcp_stop(void *ctx)
{
    tcp_ctx_t *c = ctx;
    if (!c || !c->started)
        return;
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
    tide_wake_post(c->wake_fd);
    pthread_join(c->thread, NULL);
    c->started = false;
}

static void tcp_fini(void *ctx)
{
    tcp_ctx_t *c = ctx;
    if (!c)
        return;
    tcp_stop(c);
    /* Answer what we owe before leaving: a peer waits for these ACKs to
     * finish its batches, whose data has landed here. */
    flush_lazy_acks(c, true);
    for (int p = 0; c->peers && p < c->e->nranks; p++) {
        tcp_peer_t *tp = &c->peers[p];
        for (int i = 0; tp->streams && i < c->e->tcp_streams; i++) {
            if (!tp->streams[i])
                continue;
            stream_fail(tp->streams[i], "engine destroyed", TIDE_ERR_REVOKED);
            free_stream(tp->streams[i]);
        }
        free(tp->streams);
        free(tp->route);
        pthread_mutex_destroy(&tp->lock);
        pthread_mutex_destroy(&tp->order_lock);
    }
    free(c->peers);
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->targets)
    {
        target_kill(tide_list_entry(pos, tcp_stream_t, link), NULL);
    }
    tide_list_for_each_safe(pos, tmp, &c->dead)
    {
        tide_list_remove(pos);
        free_stream(tide_list_entry(pos, tcp_stream_t, link));
    }
    for (tcp_out_t *o = c->free_outs, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->outer >= 0)
        close(c->outer);
    pthread_mutex_destroy(&c->plock);
    pthread_mutex_destroy(&c->zlock);
    free(c);
}

static tide_status_t tcp_listen(tcp_ctx_t *c)
{
    tide_engine_t *e = c->e;
    tide_sockaddr_t a;
    tide_status_t st;
    if ((st = tide_sock_resolve(e->tcp_host, 0, &a)) != TIDE_SUCCESS ||
        (st = tide_sock_listen(&a, 1024, &c->listen_fd)) != TIDE_SUCCESS)
        return st;
    tide_sock_set_nonblock(c->listen_fd);
    if (a.ss.ss_family == AF_INET) {
        e->self.family = 4;
        memcpy(e->self.addr, &((struct sockaddr_in *)(void *)&a.ss)->sin_addr, 4);
    } else {
        e->self.family = 6;
        memcpy(e->self.addr, &((struct sockaddr_in6 *)(void *)&a.ss)->sin6_addr, 16);
    }
    e->self.port = tide_sock_port(&a);
    return TIDE_SUCCESS;
}

static tide_status_t tcp_init(tide_engine_t *e, void **ctx)
{
    tide_status_t st = TIDE_ERR_NOMEM;
    sigset_t all, old;
    tcp_ctx_t *c = calloc(1, sizeof(*c));
    if (!c)
        goto err_nomem;
    c->e = e;
    c->listen_fd = c->epfd = c->wake_fd = c->outer = -1;
    pthread_mutex_init(&c->plock, NULL);
    pthread_mutex_init(&c->zlock, NULL);
    tide_list_init(&c->zones);
    c->numa_node = tide_numa_node_here();
    tide_list_init(&c->targets);
    tide_list_init(&c->dead);
    c->peers = calloc((size_t)e->nranks, sizeof(*c->peers));
    if (!c->peers)
        goto err;
    for (int p = 0; p < e->nranks; p++) {
        tcp_peer_t *tp = &c->peers[p];
        pthread_mutex_init(&tp->lock, NULL);
        pthread_mutex_init(&tp->order_lock, NULL);
        tp->streams = calloc((size_t)e->tcp_streams, sizeof(*tp->streams));
        tp->route = malloc((size_t)e->tcp_streams * sizeof(*tp->route));
        if (!tp->streams || !tp->route)
            goto err;
        for (int i = 0; i < e->tcp_streams; i++)
            tp->route[i] = -1;
        for (int i = 0; i < e->tcp_streams; i++)
            if (!(tp->streams[i] = stream_new(c, p, i, false)))
                goto err;
        e->peers[p].tcp = tp;
    }
    if ((st = tide_random_bytes(c->token, sizeof(c->token))) != TIDE_SUCCESS ||
        (st = tcp_listen(c)) != TIDE_SUCCESS)
        goto err;
    memcpy(e->self.token, c->token, sizeof(c->token));
    st = TIDE_ERR_IO;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->outer = epoll_create1(EPOLL_CLOEXEC);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &c->listen_fd};
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &c->wake_fd};
    struct epoll_event ie = {.events = EPOLLIN, .data.ptr = &c->epfd};
    if (c->epfd < 0 || c->outer < 0 || c->wake_fd < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->listen_fd, &le) != 0 ||
        epoll_ctl(c->outer, EPOLL_CTL_ADD, c->wake_fd, &we) != 0 ||
        epoll_ctl(c->outer, EPOLL_CTL_ADD, c->epfd, &ie) != 0) {
        tide_error("tcp transport: epoll setup: %m");
        goto err;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, progress_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        tide_error("tcp transport: pthread_create: %m");
        goto err;
    }
    c->started = true;
    *ctx = c;
    return TIDE_SUCCESS;
err:
    tcp_fini(c);
    return st;
err_nomem:
    tide_error("tcp transport: out of memory");
    return TIDE_ERR_NOMEM;
}

/* Once every rank's endpoint is known: whether to adopt streams. Not
 * where this host runs more of the job's ranks than it has cores: a rank
 * preempted in a send on a shared connection holds its socket, and what
 * its peer sends it waits in the socket's backlog meanwhile (np=4 on 2
 * cores over TCP, allreduce 512 KiB-1 MiB: 1.1-1.3 GB/s shared against
 * 1.6-1.8 with a connection per direction; np=2 and np=3 lose nothing,
 * docs/performance.md). */
static void tcp_connect(void *ctx)
{
    tcp_ctx_t *c = ctx;
    tide_engine_t *e = c->e;
    bool on = e->tcp_duplex == P2P_DUPLEX_ON;
    if (e->tcp_duplex == P2P_DUPLEX_AUTO) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int here = 0;
        for (int r = 0; r < e->nranks; r++)
            here += r == e->rank || e->peers[r].same_host;
        on = cores <= 0 || here <= cores;
    }
    __atomic_store_n(&c->duplex, on, __ATOMIC_RELEASE);
    tide_debug("tcp: streams peers open are %s", on ? "adopted" : "answered only");
}

static bool tcp_reaches(void *ctx, const p2p_peer_t *peer)
{
    tcp_ctx_t *c = ctx;
    return peer->rank != c->e->rank;
}

static size_t tcp_paths(void *ctx, p2p_peer_t *peer, tide_path_stats_t *out, size_t max)
{
    tcp_ctx_t *c = ctx;
    if (peer->rank == c->e->rank)
        return 0;
    tcp_peer_t *tp = peer->tcp;
    for (int i = 0; i < c->e->tcp_streams && (size_t)i < max; i++) {
        pthread_mutex_lock(&tp->streams[i]->lock);
        p2p_path_stats(&tp->streams[i]->path, TIDE_TRANSPORT_TCP, &out[i]);
        pthread_mutex_unlock(&tp->streams[i]->lock);
    }
    return (size_t)c->e->tcp_streams;
}

const p2p_transport_ops_t p2p_tcp_transport = {
    .name = "tcp",
    .bit = TIDE_TRANSPORT_TCP,
    .init = tcp_init,
    .connect = tcp_connect,
    .reaches = tcp_reaches,
    .post = tcp_post,
    .paths = tcp_paths,
    .poll_begin = tcp_poll_begin,
    .poll = tcp_poll,
    .poll_end = tcp_poll_end,
    .zone_open = tcp_zone_open,
    .zone_close = tcp_zone_close,
    .stop = tcp_stop,
    .fini = tcp_fini,
};

void p2p_tcp_break_stream(tide_engine_t *e, int peer, int index)
{
    tcp_peer_t *tp = e->peers[peer].tcp;
    tcp_stream_t *st = tp->streams[index];
    pthread_mutex_lock(&st->lock);
    if (!st->dead)
        shutdown(st->fd, SHUT_RDWR);
    pthread_mutex_unlock(&st->lock);
}

uint64_t p2p_tcp_slices(tide_engine_t *e, int peer)
{
    tcp_peer_t *tp = e->peers[peer].tcp;
    uint64_t n = 0;
    for (int i = 0; i < e->tcp_streams; i++) {
        pthread_mutex_lock(&tp->streams[i]->lock);
        n += tp->streams[i]->path.slices;
        pthread_mutex_unlock(&tp->streams[i]->lock);
    }
    return n;
}

bool p2p_tcp_duplex(tide_engine_t *e)
{
    for (int i = 0; i < e->ntr; i++)
        if (e->tr[i] == &p2p_tcp_transport)
            return __atomic_load_n(&((tcp_ctx_t *)e->tr_ctx[i])->duplex, __ATOMIC_ACQUIRE);
    return false;
}

int p2p_tcp_sockets(tide_engine_t *e, int peer)
{
    tcp_peer_t *tp = e->peers[peer].tcp;
    tcp_ctx_t *c = tp->streams[0]->ctx;
    int n = 0;
    pthread_mutex_lock(&c->plock);
    for (int i = 0; i < e->tcp_streams; i++) {
        pthread_mutex_lock(&tp->streams[i]->lock);
        n += !tp->streams[i]->dead;
        pthread_mutex_unlock(&tp->streams[i]->lock);
    }
    tide_list_t *pos, *tmp;
    tide_list_for_each_safe(pos, tmp, &c->targets)
    {
        tcp_stream_t *t = tide_list_entry(pos, tcp_stream_t, link);
        n += t->target && !t->dead && t->peer == peer;
    }
    pthread_mutex_unlock(&c->plock);
    return n;
}

bool p2p_tcp_stream_cc(tide_engine_t *e, int peer, int index, bool target, char *buf, size_t cap)
{
    tcp_peer_t *tp = e->peers[peer].tcp;
    tcp_stream_t *mine = tp->streams[index], *st = NULL;
    tcp_ctx_t *c = mine->ctx;
    bool ok = false;
    pthread_mutex_lock(&c->plock);
    if (!target) {
        st = mine;
    } else {
        tide_list_t *pos, *tmp;
        tide_list_for_each_safe(pos, tmp, &c->targets)
        {
            tcp_stream_t *t = tide_list_entry(pos, tcp_stream_t, link);
            if (t->hello_done && t->peer == peer && t->index == index && !t->dead)
                st = t;
        }
    }
    if (st) {
        pthread_mutex_lock(&st->lock);
        socklen_t len = (socklen_t)cap;
        ok = !st->dead && st->fd >= 0 &&
             getsockopt(st->fd, IPPROTO_TCP, TCP_CONGESTION, buf, &len) == 0;
        if (ok)
            buf[TIDE_MIN((size_t)len, cap - 1)] = '\0';
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&c->plock);
    return ok;
}
