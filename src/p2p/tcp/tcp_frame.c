/* TCP transport frames: encode and check. */
#include "tcp_frame.h"

#include <stdbool.h>
#include <string.h>

static void put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void tcp_frame_encode(uint8_t out[TCP_HDR_LEN], const tcp_frame_t *f)
{
    put(out, TCP_FRAME_MAGIC, 2);
    out[2] = f->op;
    out[3] = f->flags;
    put(out + 4, f->seg, 4);
    put(out + 8, f->off, 8);
    put(out + 16, f->len, 4);
    put(out + 20, f->acks, 4);
    put(out + 24, f->tag, 8);
}

void tcp_frame_set_acks(uint8_t hdr[TCP_HDR_LEN], uint32_t acks)
{
    put(hdr + 20, acks, 4);
}

tide_status_t tcp_frame_decode(const uint8_t in[TCP_HDR_LEN], tcp_frame_t *f)
{
    if (get(in, 2) != TCP_FRAME_MAGIC)
        return TIDE_ERR_INVALID;
    f->op = in[2];
    f->flags = in[3];
    f->seg = (uint32_t)get(in + 4, 4);
    f->off = get(in + 8, 8);
    f->len = (uint32_t)get(in + 16, 4);
    f->acks = (uint32_t)get(in + 20, 4);
    f->tag = get(in + 24, 8);
    if (f->op == 0 || f->op >= TCP_OP_MAX_ || f->len > TCP_FRAME_MAX)
        return TIDE_ERR_INVALID;
    bool acked = f->op == TCP_OP_WRITE || f->op == TCP_OP_NOTIFY || f->op == TCP_OP_CTRL;
    if (f->flags & ~(acked ? TCP_FLAG_LAZY_ACK : 0u))
        return TIDE_ERR_INVALID;
    if (f->acks && (f->op == TCP_OP_ACK || f->op == TCP_OP_READ_RESP))
        return TIDE_ERR_INVALID;
    bool has_payload = f->op == TCP_OP_WRITE || f->op == TCP_OP_READ_RESP;
    if (f->op == TCP_OP_READ && f->len == 0)
        return TIDE_ERR_INVALID;
    if (!has_payload && f->op != TCP_OP_READ && f->len != 0)
        return TIDE_ERR_INVALID;
    return TIDE_SUCCESS;
}

void tcp_hello_encode(uint8_t out[TCP_HELLO_LEN], const tcp_hello_t *h)
{
    put(out, TCP_HELLO_MAGIC, 4);
    put(out + 4, h->rank, 4);
    put(out + 8, h->index, 4);
    put(out + 12, 0, 4);
    memcpy(out + 16, h->token, 16);
}

tide_status_t tcp_hello_decode(const uint8_t in[TCP_HELLO_LEN], tcp_hello_t *h)
{
    if (get(in, 4) != TCP_HELLO_MAGIC || get(in + 12, 4) != 0)
        return TIDE_ERR_INVALID;
    h->rank = (uint32_t)get(in + 4, 4);
    h->index = (uint32_t)get(in + 8, 4);
    memcpy(h->token, in + 16, 16);
    return TIDE_SUCCESS;
}
