/* Random bytes and job secrets. */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_random.h"

#include <errno.h>
#include <sys/random.h>
#include "util_log.h"

tide_status_t tide_random_bytes(void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom((char *)buf + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            tide_error("getrandom(%zu bytes): %m", len - done);
            return TIDE_ERR_IO;
        }
        done += (size_t)n;
    }
    return TIDE_SUCCESS;
}

tide_status_t tide_secret_new(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    tide_status_t st = tide_random_bytes(raw, sizeof(raw));
    if (st != TIDE_SUCCESS)
        return st;
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
    return TIDE_SUCCESS;
}

bool tide_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}
