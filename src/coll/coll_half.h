/*
 * fp16 and bf16 <-> float, inline for the reduction kernels (which are
 * built once per instruction set) and for coll_reduce.c. Rounding is to
 * nearest even; a NaN stays a quiet NaN.
 */
#ifndef TIDE_COLL_HALF_H
#define TIDE_COLL_HALF_H

#include <stdint.h>
#include <string.h>

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Every case is computed and one chosen, without branches, so that the
 * kernels built on these vectorise. */
static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    uint32_t normal = ((exp + 112) << 23) | (man << 13);
    uint32_t special = 0x7f800000u | (man << 13);        /* inf / nan */
    uint32_t sub = float_to_bits((float)man * 0x1p-24f); /* zero / subnormal: exact */
    return bits_to_float(sign | (exp == 0x1f ? special : exp == 0 ? sub : normal));
}

static inline uint16_t float_to_half(float f)
{
    uint32_t u = float_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    /* inf, or nan (stays a quiet nan) */
    uint32_t special = 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0);
    /* below the smallest normal: subnormal, round to nearest even by a float
     * add (0.5 = 2^-1 aligns 2^-24 units at the ulp) */
    uint32_t sub = float_to_bits(bits_to_float(abs) + 0.5f) - 0x3f000000u;
    /* normal: round to nearest even, rebias */
    uint32_t normal = (abs + 0xfffu + ((abs >> 13) & 1u) - 0x38000000u) >> 13;
    uint32_t mag = abs >= 0x7f800000u   ? special
                   : abs >= 0x477ff000u ? 0x7c00u /* rounds to >= 65520: inf */
                   : abs < 0x38800000u  ? sub
                                        : normal;
    return (uint16_t)(sign | mag);
}

static inline float bf16_to_float(uint16_t h)
{
    return bits_to_float((uint32_t)h << 16);
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t u = float_to_bits(f);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; /* nearest even */
    uint32_t quiet = (u >> 16) | 0x40;                         /* nan stays a quiet nan */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

#endif
