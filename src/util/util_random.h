/* Random bytes and job secrets. */
#ifndef TIDE_UTIL_RANDOM_H
#define TIDE_UTIL_RANDOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tide.h"

#define TIDE_SECRET_MAX 128 /* longest secret accepted, in bytes */

/* Fill buf from the kernel's CSPRNG. */
tide_status_t tide_random_bytes(void *buf, size_t len);

/* A new secret: 32 lowercase hex characters and a NUL (33 bytes). */
tide_status_t tide_secret_new(char out[33]);

/* Compare in time independent of where the inputs differ. */
bool tide_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
