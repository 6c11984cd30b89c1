/*
 * Reductions: acc[i] = acc[i] op in[i] (and dst[i] = a[i] op b[i]) for
 * every dtype and op, vectorised (coll_reduce_kern.c, built at -O3 once per
 * instruction set; the widest the CPU runs is used, or the one TIDE_SIMD
 * names). fp16 and bf16 are widened to float, combined, and rounded back
 * to nearest even. AVG reduces as SUM; coll_reduce_finish_avg divides by
 * the number of ranks at the end.
 */
#ifndef TIDE_COLL_REDUCE_H
#define TIDE_COLL_REDUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tide.h"

typedef void (*coll_reduce_fn_t)(void *acc, const void *in, size_t count);
typedef void (*coll_reduce3_fn_t)(void *dst, const void *a, const void *b, size_t count);

/* One instruction set's kernels: fn2 in place (acc and in must not
 * overlap), fn2r in place with the operands swapped (acc = in op acc),
 * fn3 three-operand (dst must overlap neither a nor b). */
typedef struct coll_kernels {
    const char *isa;
    coll_reduce_fn_t fn2[TIDE_DTYPE_COUNT][TIDE_REDOP_COUNT];
    coll_reduce_fn_t fn2r[TIDE_DTYPE_COUNT][TIDE_REDOP_COUNT];
    coll_reduce3_fn_t fn3[TIDE_DTYPE_COUNT][TIDE_REDOP_COUNT];
} coll_kernels_t;

typedef enum coll_isa {
    COLL_ISA_BASELINE,
    COLL_ISA_AVX2,
    COLL_ISA_AVX512,
    COLL_ISA_COUNT
} coll_isa_t;

/* The kernels built for isa, or NULL where they were not built or this
 * CPU cannot run them. */
const coll_kernels_t *coll_kernels(coll_isa_t isa);

/* Choose the kernels every later call uses: TIDE_SIMD (auto: the widest
 * this CPU runs). Refuses a bad value, or a set the CPU cannot run.
 * Called when a collective context is created; until then the baseline
 * set is used. */
tide_status_t coll_reduce_setup(void);

/* The name of the set in use ("baseline", "avx2", "avx512"). */
const char *coll_reduce_isa(void);

/* NULL for an unknown dtype or op. */
coll_reduce_fn_t coll_reduce_fn(tide_dtype_t dtype, tide_redop_t op);

/* acc[i] = in[i] op acc[i] (the operands of coll_reduce_fn swapped); NULL
 * for an unknown dtype or op. */
coll_reduce_fn_t coll_reduce_fn_swapped(tide_dtype_t dtype, tide_redop_t op);

/* The three-operand kernel in use; NULL for an unknown dtype or op. */
coll_reduce3_fn_t coll_reduce3_fn(tide_dtype_t dtype, tide_redop_t op);

/* dst[i] = a[i] op b[i] in one pass. dst may be a or b, or overlap
 * neither. */
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
