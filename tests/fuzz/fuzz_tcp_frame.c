/*
 * libFuzzer target: what the TCP transport's receiver does with bytes from
 * the network before it touches memory: the stream hello, then frame
 * headers, each checked against a segment table (the bounds check is the
 * one the receiver uses, p2p_range_ok).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "p2p.h"
#include "tcp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t seg_len[3] = {1, 4096, 1u << 20};
    static uint8_t segment[1u << 20];
    tcp_hello_t h;

    if (size < TCP_HELLO_LEN || tcp_hello_decode(data, &h) != TIDE_SUCCESS)
        return 0;
    data += TCP_HELLO_LEN;
    size -= TCP_HELLO_LEN;
    while (size >= TCP_HDR_LEN) {
        tcp_frame_t f;
        if (tcp_frame_decode(data, &f) != TIDE_SUCCESS)
            return 0;
        data += TCP_HDR_LEN;
        size -= TCP_HDR_LEN;
        if (f.op == TCP_OP_WRITE || f.op == TCP_OP_READ) {
            if (f.seg >= 3 || !p2p_range_ok(f.off, f.len, seg_len[f.seg]))
                return 0; /* the receiver closes the stream here */
            if (f.op == TCP_OP_WRITE) {
                size_t n = f.len < size ? f.len : size;
                memcpy(segment + f.off, data, n); /* ASan: must stay inside */
                data += n;
                size -= n;
            }
        }
    }
    return 0;
}
