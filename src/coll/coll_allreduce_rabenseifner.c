/*
 * Rabenseifner's allreduce: a reduce-scatter by recursive halving, then an
 * allgather by recursive doubling. Each rank sends and receives 2(p-1)/p of
 * the buffer, as in the ring, but in 2 log2(p) steps instead of 2(p-1).
 *
 * The buffer is cut into p blocks. Halving: at distance d = p/2, p/4, ..,
 * 1, rank v and its partner v^d share a window of 2d blocks; each keeps the
 * half on its side of bit d, sends the other half and combines the
 * partner's copy of its half into its own. After log2(p) steps rank v
 * holds block v, finished. Doubling replays the steps backwards: partners
 * swap their finished windows until every rank has every block.
 *
 *   p = 4, blocks A B C D                 (sum of 4 = A, ..)
 *   halving d=2:  0<->2  1<->3   0,1 keep A B; 2,3 keep C D   (sums of 2)
 *   halving d=1:  0<->1  2<->3   0:A 1:B 2:C 3:D              (sums of 4)
 *   doubling d=1: 0<->1  2<->3   0,1: A B    2,3: C D
 *   doubling d=2: 0<->2  1<->3   everyone: A B C D
 *
 * Rank counts that are not a power of two fold in first as in recursive
 * doubling (coll_allreduce_rd.c): with p the largest power of two <= n and
 * rem = n - p, each even rank below 2*rem hands its buffer to the odd rank
 * above it and waits; the p others run the steps; the result goes back.
 *
 * Buffers larger than p x TIDE_CHUNK_SIZE go through in segments of that
 * size, each one a whole run of the above, so blocks stay near the cache.
 * Out of place, the input is never copied to the output: the fold-in and
 * the first halving step send from the input and write input + received
 * into the output in one pass; the blocks that step sends away come back
 * finished in the doubling.
 */
#include <string.h>
#include "coll_ctx.h"

tide_status_t coll_allreduce_rabenseifner(coll_ctx_t *c, const coll_op_t *op)
{
    int n = c->nranks, r = c->rank, p = 1;
    size_t es = op->esize;
    char *buf = op->rbuf;
    const char *in = op->sbuf;
    tide_status_t st = TIDE_SUCCESS;

    if (n == 1 && in != buf)
        memcpy(buf, in, op->count * es);
    while (p * 2 <= n)
        p *= 2;
    int rem = n - p;
    int vr = r < 2 * rem ? (r % 2 ? r / 2 : -1) : r - rem;
#define REAL(v) ((v) < rem ? (v)*2 + 1 : (v) + rem)
    size_t seg = TIDE_MAX((size_t)p, c->chunk / es * (size_t)p);
    for (size_t off = 0; off < op->count && n > 1 && st == TIDE_SUCCESS; off += seg) {
        size_t m = TIDE_MIN(seg, op->count - off);
        char *base = buf + off * es;
        const char *src = in + off * es; /* where this rank's values are: input, then output */
#define OFS(b)     (m * (size_t)(b) / (size_t)p * es)
#define SPAN(a, b) (OFS(b) - OFS(a))
        if (r < 2 * rem) {
            coll_step_t s =
                vr < 0 ? coll_send_step(r + 1, src, m * es)
                       : coll_recv_with_step(r - 1, base, src, m * es, op->dtype, op->redop, es);
            st = coll_xfer(c, &s, 1, "fold-in");
            src = base;
        }
        int lo = 0, hi = p;
        for (int d = p / 2; vr >= 0 && d >= 1 && st == TIDE_SUCCESS; d /= 2) {
            int partner = REAL(vr ^ d), mid = lo + d;
            int klo = vr & d ? mid : lo, khi = vr & d ? hi : mid;
            int slo = vr & d ? lo : mid, shi = vr & d ? mid : hi;
            coll_step_t s[2] = {coll_send_step(partner, src + OFS(slo), SPAN(slo, shi)),
                                coll_recv_with_step(partner, base + OFS(klo), src + OFS(klo),
                                                    SPAN(klo, khi), op->dtype, op->redop, es)};
            st = coll_xfer(c, s, 2, "reduce-scatter (halving) step");
            src = base;
            lo = klo;
            hi = khi;
        }
        for (int d = 1; vr >= 0 && d < p && st == TIDE_SUCCESS; d *= 2) {
            int partner = REAL(vr ^ d);
            int plo = vr & d ? lo - d : hi, phi = plo + d;
            st = coll_sendrecv(c, partner, base + OFS(lo), SPAN(lo, hi), partner, base + OFS(plo),
                               SPAN(plo, phi), NULL, es, "allgather (doubling) step");
            lo = TIDE_MIN(lo, plo);
            hi = TIDE_MAX(hi, phi);
        }
        if (st == TIDE_SUCCESS && r < 2 * rem) {
            if (vr >= 0)
                st = coll_sendrecv(c, r - 1, base, m * es, -1, NULL, 0, NULL, es, "fold-out");
            else
                st = coll_sendrecv(c, -1, NULL, 0, r + 1, base, m * es, NULL, es, "fold-out");
        }
#undef OFS
#undef SPAN
    }
#undef REAL
    if (st == TIDE_SUCCESS && op->redop == TIDE_AVG)
        coll_reduce_finish_avg(buf, op->count, op->dtype, n);
    return st;
}
