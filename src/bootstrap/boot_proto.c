/* TCP store wire protocol: header, bounded reader and writer, decoder. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_proto.h"

#include <stdlib.h>
#include <string.h>
#include "util_log.h"

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void boot_hdr_encode(uint8_t out[BOOT_HDR_LEN], uint8_t op, uint8_t status, uint32_t len)
{
    put_u32(out, BOOT_PROTO_MAGIC);
    out[4] = op;
    out[5] = status;
    out[6] = out[7] = 0;
    put_u32(out + 8, len);
}

tide_status_t boot_hdr_decode(const uint8_t in[BOOT_HDR_LEN], size_t max_body, boot_hdr_t *h)
{
    if (get_u32(in) != BOOT_PROTO_MAGIC || in[6] != 0 || in[7] != 0)
        return TIDE_ERR_INVALID;
    h->op = in[4];
    h->status = in[5];
    h->len = get_u32(in + 8);
    return h->len <= max_body ? TIDE_SUCCESS : TIDE_ERR_INVALID;
}

static const uint8_t *rd_take(boot_rd_t *rd, size_t n)
{
    if (rd->bad || rd->left < n) {
        rd->bad = true;
        return NULL;
    }
    const uint8_t *p = rd->p;
    rd->p += n;
    rd->left -= n;
    return p;
}

uint8_t boot_rd_u8(boot_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 1);
    return p ? p[0] : 0;
}

uint32_t boot_rd_u32(boot_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 4);
    return p ? get_u32(p) : 0;
}

int64_t boot_rd_i64(boot_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 8);
    if (!p)
        return 0;
    uint64_t v = (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
    return (int64_t)v;
}

void boot_rd_bytes(boot_rd_t *rd, size_t max, const uint8_t **data, size_t *len)
{
    uint32_t n = boot_rd_u32(rd);
    *data = NULL;
    *len = 0;
    if (n > max) {
        rd->bad = true;
        return;
    }
    *data = rd_take(rd, n);
    if (*data)
        *len = n;
}

static void wr_append(boot_wr_t *wr, const void *data, size_t n)
{
    if (wr->oom)
        return;
    if (wr->len + n > wr->cap) {
        size_t cap = wr->cap ? wr->cap : 256;
        while (cap < wr->len + n)
            cap *= 2;
        uint8_t *buf = realloc(wr->buf, cap);
        if (!buf) {
            wr->oom = true;
            return;
        }
        wr->buf = buf;
        wr->cap = cap;
    }
    memcpy(wr->buf + wr->len, data, n);
    wr->len += n;
}

void boot_wr_init(boot_wr_t *wr, uint8_t op, uint8_t status)
{
    uint8_t hdr[BOOT_HDR_LEN];
    memset(wr, 0, sizeof(*wr));
    boot_hdr_encode(hdr, op, status, 0);
    wr_append(wr, hdr, sizeof(hdr));
}

void boot_wr_u8(boot_wr_t *wr, uint8_t v)
{
    wr_append(wr, &v, 1);
}

void boot_wr_u32(boot_wr_t *wr, uint32_t v)
{
    uint8_t b[4];
    put_u32(b, v);
    wr_append(wr, b, 4);
}

void boot_wr_i64(boot_wr_t *wr, int64_t v)
{
    boot_wr_u32(wr, (uint32_t)(uint64_t)v);
    boot_wr_u32(wr, (uint32_t)((uint64_t)v >> 32));
}

void boot_wr_bytes(boot_wr_t *wr, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        wr->oom = true;
        return;
    }
    boot_wr_u32(wr, (uint32_t)len);
    wr_append(wr, data, len);
}

tide_status_t boot_wr_finish(boot_wr_t *wr)
{
    if (wr->oom || wr->len - BOOT_HDR_LEN > UINT32_MAX)
        return TIDE_ERR_NOMEM;
    put_u32(wr->buf + 8, (uint32_t)(wr->len - BOOT_HDR_LEN));
    return TIDE_SUCCESS;
}

void boot_wr_free(boot_wr_t *wr)
{
    free(wr->buf);
    memset(wr, 0, sizeof(*wr));
}

static bool key_ok(const uint8_t *key, size_t len)
{
    return key && len >= 1 && len <= BOOT_KEY_MAX && memchr(key, '\0', len) == NULL;
}

tide_status_t boot_req_decode(uint8_t op, const uint8_t *body, size_t len, size_t max_value,
                              boot_req_t *req)
{
    boot_rd_t rd = {.p = body, .left = len};
    bool ok = true;

    memset(req, 0, sizeof(*req));
    req->op = op;
    switch (op) {
    case BOOT_OP_HELLO:
        req->version = boot_rd_u32(&rd);
        boot_rd_bytes(&rd, 1024, &req->value, &req->value_len);
        break;
    case BOOT_OP_SET:
        boot_rd_bytes(&rd, BOOT_KEY_MAX, &req->key, &req->key_len);
        boot_rd_bytes(&rd, max_value, &req->value, &req->value_len);
        ok = key_ok(req->key, req->key_len);
        break;
    case BOOT_OP_GET:
        boot_rd_bytes(&rd, BOOT_KEY_MAX, &req->key, &req->key_len);
        req->timeout_ms = boot_rd_u32(&rd);
        ok = key_ok(req->key, req->key_len) && req->timeout_ms <= BOOT_TIMEOUT_MAX;
        break;
    case BOOT_OP_WAIT:
        req->timeout_ms = boot_rd_u32(&rd);
        req->nkeys = boot_rd_u32(&rd);
        req->keys = rd.p;
        req->keys_len = rd.left;
        ok = req->timeout_ms <= BOOT_TIMEOUT_MAX && req->nkeys >= 1 &&
             req->nkeys <= BOOT_WAIT_KEYS_MAX;
        for (uint32_t i = 0; ok && i < req->nkeys && !rd.bad; i++) {
            const uint8_t *k;
            size_t klen;
            boot_rd_bytes(&rd, BOOT_KEY_MAX, &k, &klen);
            ok = rd.bad || key_ok(k, klen);
        }
        break;
    case BOOT_OP_ADD:
        boot_rd_bytes(&rd, BOOT_KEY_MAX, &req->key, &req->key_len);
        req->delta = boot_rd_i64(&rd);
        ok = key_ok(req->key, req->key_len);
        break;
    case BOOT_OP_CAS:
        boot_rd_bytes(&rd, BOOT_KEY_MAX, &req->key, &req->key_len);
        req->has_expected = boot_rd_u8(&rd) != 0;
        boot_rd_bytes(&rd, max_value, &req->expected, &req->expected_len);
        boot_rd_bytes(&rd, max_value, &req->value, &req->value_len);
        ok = key_ok(req->key, req->key_len);
        break;
    case BOOT_OP_DEL:
        boot_rd_bytes(&rd, BOOT_KEY_MAX, &req->key, &req->key_len);
        ok = key_ok(req->key, req->key_len);
        break;
    case BOOT_OP_PING:
        break;
    default:
        return TIDE_ERR_INVALID;
    }
    if (!ok || rd.bad || rd.left != 0)
        return TIDE_ERR_INVALID;
    return TIDE_SUCCESS;
}

void boot_req_key_at(const boot_req_t *req, boot_rd_t *it, const uint8_t **key, size_t *len)
{
    if (!it->p) {
        it->p = req->keys;
        it->left = req->keys_len;
    }
    boot_rd_bytes(it, BOOT_KEY_MAX, key, len);
}
