/*
 * TCP transport frames. Every frame starts with a 32-byte header
 *
 *   u16 magic 0x5444 | u8 op | u8 flags | u32 segment | u64 offset |
 *   u32 length | u32 acks | u64 tag                       (little-endian)
 *
 * flags: TCP_FLAG_LAZY_ACK on a WRITE, NOTIFY or CTRL lets the target
 * answer it late, with the ACK of later frames (nothing else is defined).
 * acks: on a request, an ACK riding on it (the count an ACK frame's tag
 * would carry, for requests that went the other way on the same stream);
 * zero on answers.
 *
 * initiator -> target: WRITE (length bytes of payload follow), READ,
 * NOTIFY (segment = signal channel, tag = value), CTRL (a transport's
 * control message: segment = transport bit << 24 | kind, offset, tag);
 * target -> initiator: ACK (tag = number of WRITE/NOTIFY/CTRL frames done,
 * oldest first; READs in between are not counted), READ_RESP (length bytes
 * follow, answering the oldest READ not yet answered). A stream opens with a 32-byte hello from the
 * initiator: u32 magic "TDH1" | u32 source rank | u32 stream index |
 * u32 zero | 16-byte token of the target engine.
 */
#ifndef TIDE_TCP_FRAME_H
#define TIDE_TCP_FRAME_H

#include <stdint.h>
#include "tide.h"

#define TCP_HDR_LEN     32u
#define TCP_HELLO_LEN   32u
#define TCP_FRAME_MAGIC 0x5444u
#define TCP_HELLO_MAGIC 0x31484454u
#define TCP_FRAME_MAX   (16u << 20) /* largest payload of one frame */

enum tcp_op {
    TCP_OP_WRITE = 1,
    TCP_OP_READ,
    TCP_OP_NOTIFY,
    TCP_OP_ACK,
    TCP_OP_READ_RESP,
    TCP_OP_CTRL,
    TCP_OP_MAX_
};

#define TCP_FLAG_LAZY_ACK 0x1u

typedef struct tcp_frame {
    uint8_t op;
    uint8_t flags;
    uint32_t seg;
    uint64_t off;
    uint32_t len;
    uint32_t acks;
    uint64_t tag;
} tcp_frame_t;

typedef struct tcp_hello {
    uint32_t rank;
    uint32_t index;
    uint8_t token[16];
} tcp_hello_t;

void tcp_frame_encode(uint8_t out[TCP_HDR_LEN], const tcp_frame_t *f);

/* Checks magic, op, flags, and length <= TCP_FRAME_MAX; ops without
 * payload must have length 0, answers no acks. */
tide_status_t tcp_frame_decode(const uint8_t in[TCP_HDR_LEN], tcp_frame_t *f);

/* Set the acks field of an encoded header. */
void tcp_frame_set_acks(uint8_t hdr[TCP_HDR_LEN], uint32_t acks);

void tcp_hello_encode(uint8_t out[TCP_HELLO_LEN], const tcp_hello_t *h);
tide_status_t tcp_hello_decode(const uint8_t in[TCP_HELLO_LEN], tcp_hello_t *h);

#endif
