/*
 * Reductions: acc[i] = acc[i] op in[i] for every dtype and op, vectorised
 * (plain loops over restrict pointers that the compiler turns into SIMD;
 * coll_reduce.c is built with -O3). fp16 and bf16 are widened to float,
 * combined, and rounded back to nearest even. AVG reduces as SUM;
 * coll_reduce_finish_avg divides by the number of ranks at the end.
 */
#ifndef TIDE_COLL_REDUCE_H
#define TIDE_COLL_REDUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tide.h"

typedef void (*coll_reduce_fn_t)(void *acc, const void *in, size_t count);

/* NULL for an unknown dtype or op. */
coll_reduce_fn_t coll_reduce_fn(tide_dtype_t dtype, tide_redop_t op);

/* dst[i] = a[i] op b[i] (dst may be a or b). */
void coll_reduce3(void *dst, const void *a, const void *b, size_t count, tide_dtype_t dtype,
                  tide_redop_t op);

/* For TIDE_AVG: divide the summed buffer by nranks. */
void coll_reduce_finish_avg(void *buf, size_t count, tide_dtype_t dtype, int nranks);

bool coll_dtype_valid(tide_dtype_t dtype);
bool coll_redop_valid(tide_redop_t op);
const char *coll_dtype_name(tide_dtype_t dtype);
const char *coll_redop_name(tide_redop_t op);

/* Half-precision conversions (round to nearest even; NaN stays NaN). */
float coll_half_to_float(uint16_t h);
uint16_t coll_float_to_half(float f);
float coll_bf16_to_float(uint16_t h);
uint16_t coll_float_to_bf16(float f);

#endif
