/*
 * TCP store wire protocol. Every message is a 12-byte header
 *
 *     u32 magic "TDS1" | u8 op | u8 status | u16 zero | u32 body length
 *
 * and a body of fields: u8, u32, i64 (little-endian) and bytes (u32 length
 * + data). A client sends requests and reads one reply each, in order. The
 * first request must be HELLO {u32 version, bytes secret}. Requests:
 *
 *     SET  {bytes key, bytes value}                 -> OK
 *     GET  {bytes key, u32 timeout_ms}              -> OK {bytes value} | TIMEOUT | NOT_FOUND
 *     WAIT {u32 timeout_ms, u32 n, n x bytes key}   -> OK | TIMEOUT | NOT_FOUND
 *     ADD  {bytes key, i64 delta}                   -> OK {i64 value}
 *     CAS  {bytes key, u8 has_expected, bytes expected, bytes desired}
 *                                                   -> OK {u8 swapped}
 *     DEL  {bytes key}                              -> OK {u8 existed}
 *     PING {}                                       -> OK
 *
 * A timeout of 0 does not wait (absent: NOT_FOUND). The server answers
 * TIMEOUT itself when a wait expires, so replies never get out of step.
 * Bounds: keys 1..BOOT_KEY_MAX bytes without NUL; values up to the server's
 * TIDE_STORE_MAX_VALUE; WAIT up to BOOT_WAIT_KEYS_MAX keys. Anything else is
 * malformed and ends that connection.
 */
#ifndef TIDE_BOOT_PROTO_H
#define TIDE_BOOT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tide.h"

#define BOOT_PROTO_MAGIC   0x31534454u /* "TDS1" as little-endian bytes */
#define BOOT_PROTO_VERSION 1u
#define BOOT_HDR_LEN       12u
#define BOOT_KEY_MAX       1024u
#define BOOT_WAIT_KEYS_MAX 4096u
#define BOOT_TIMEOUT_MAX   (24u * 3600u * 1000u)

typedef enum boot_op {
    BOOT_OP_HELLO = 1,
    BOOT_OP_SET,
    BOOT_OP_GET,
    BOOT_OP_WAIT,
    BOOT_OP_ADD,
    BOOT_OP_CAS,
    BOOT_OP_DEL,
    BOOT_OP_PING,
    BOOT_OP_MAX_
} boot_op_t;

typedef enum boot_reply {
    BOOT_R_OK = 0,
    BOOT_R_TIMEOUT,
    BOOT_R_NOT_FOUND,
    BOOT_R_INVALID,
    BOOT_R_AUTH,
    BOOT_R_NOMEM,
    BOOT_R_MAX_
} boot_reply_t;

typedef struct boot_hdr {
    uint8_t op;
    uint8_t status;
    uint32_t len;
} boot_hdr_t;

/* Largest body a peer may send for a given value limit. */
static inline size_t boot_body_max(size_t max_value)
{
    return 2 * max_value + 2 * BOOT_KEY_MAX + 64;
}

void boot_hdr_encode(uint8_t out[BOOT_HDR_LEN], uint8_t op, uint8_t status, uint32_t len);

/* Checks magic, the zero field and len <= max_body. */
tide_status_t boot_hdr_decode(const uint8_t in[BOOT_HDR_LEN], size_t max_body, boot_hdr_t *h);

/* Bounded reader: any overrun sets bad and yields zeros. */
typedef struct boot_rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} boot_rd_t;

uint8_t boot_rd_u8(boot_rd_t *rd);
uint32_t boot_rd_u32(boot_rd_t *rd);
int64_t boot_rd_i64(boot_rd_t *rd);
/* bytes field of at most max bytes; *data points into the message. */
void boot_rd_bytes(boot_rd_t *rd, size_t max, const uint8_t **data, size_t *len);

/* Growable writer; oom is sticky. The header is reserved up front. */
typedef struct boot_wr {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} boot_wr_t;

void boot_wr_init(boot_wr_t *wr, uint8_t op, uint8_t status);
void boot_wr_u8(boot_wr_t *wr, uint8_t v);
void boot_wr_u32(boot_wr_t *wr, uint32_t v);
void boot_wr_i64(boot_wr_t *wr, int64_t v);
void boot_wr_bytes(boot_wr_t *wr, const void *data, size_t len);
/* Writes the header's length; TIDE_ERR_NOMEM if any append failed. */
tide_status_t boot_wr_finish(boot_wr_t *wr);
void boot_wr_free(boot_wr_t *wr);

/* A decoded request; pointers point into the body. */
typedef struct boot_req {
    uint8_t op;
    uint32_t version;   /* HELLO */
    const uint8_t *key; /* SET GET ADD CAS DEL */
    size_t key_len;
    const uint8_t *value; /* SET value, CAS desired, HELLO secret */
    size_t value_len;
    bool has_expected; /* CAS */
    const uint8_t *expected;
    size_t expected_len;
    int64_t delta;       /* ADD */
    uint32_t timeout_ms; /* GET WAIT */
    uint32_t nkeys;      /* WAIT: keys are encoded from `keys` on */
    const uint8_t *keys;
    size_t keys_len;
} boot_req_t;

/* Fully validate and decode a request body. */
tide_status_t boot_req_decode(uint8_t op, const uint8_t *body, size_t len, size_t max_value,
                              boot_req_t *req);

/* Iterate the keys of a decoded WAIT (already validated). */
void boot_req_key_at(const boot_req_t *req, boot_rd_t *it, const uint8_t **key, size_t *len);

#endif
