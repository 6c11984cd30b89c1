/*
 * libFuzzer target: the TCP store's message parsing, as the server runs it
 * on bytes from the network (header, then the request body). Built with
 * -DTIDE_BUILD_FUZZ=ON and clang; CI runs it briefly.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "boot_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    boot_hdr_t h;
    boot_req_t req;
    const size_t max_value = 4096;

    if (size < BOOT_HDR_LEN)
        return 0;
    if (boot_hdr_decode(data, boot_body_max(max_value), &h) != TIDE_SUCCESS)
        return 0;
    size_t body = size - BOOT_HDR_LEN < h.len ? size - BOOT_HDR_LEN : h.len;
    if (boot_req_decode(h.op, data + BOOT_HDR_LEN, body, max_value, &req) != TIDE_SUCCESS)
        return 0;
    /* Touch every field the server would use. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < req.key_len; i++)
        sink ^= req.key[i];
    for (size_t i = 0; i < req.value_len; i++)
        sink ^= req.value[i];
    for (size_t i = 0; i < req.expected_len; i++)
        sink ^= req.expected[i];
    if (req.op == BOOT_OP_WAIT) {
        boot_rd_t it = {0};
        for (uint32_t k = 0; k < req.nkeys; k++) {
            const uint8_t *key;
            size_t len;
            boot_req_key_at(&req, &it, &key, &len);
            for (size_t i = 0; i < len; i++)
                sink ^= key[i];
        }
    }
    (void)sink;
    return 0;
}
