/* Reductions: which kernels run, AVG, names and conversions. The kernels
 * are in coll_reduce_kern.c. See coll_reduce.h. */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include "coll_reduce.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <string.h>
#include "coll_half.h"
#include "util_log.h"
#include "util_param.h"

float coll_half_to_float(uint16_t h)
{
    return half_to_float(h);
}
uint16_t coll_float_to_half(float f)
{
    return float_to_half(f);
}
float coll_bf16_to_float(uint16_t h)
{
    return bf16_to_float(h);
}
uint16_t coll_float_to_bf16(float f)
{
    return float_to_bf16(f);
}

/* ------------------------------------------------------------- dispatch */

extern const coll_kernels_t coll_kernels_baseline;
#ifdef TIDE_HAVE_AVX2_KERNELS
extern const coll_kernels_t coll_kernels_avx2;
#endif
#ifdef TIDE_HAVE_AVX512_KERNELS
extern const coll_kernels_t coll_kernels_avx512;
#endif

static const coll_kernels_t *active = &coll_kernels_baseline;

#if defined(TIDE_HAVE_AVX2_KERNELS) || defined(TIDE_HAVE_AVX512_KERNELS)
/* The wider sets use F16C for fp16 (not every compiler's
 * __builtin_cpu_supports knows it). */
static bool cpu_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

const coll_kernels_t *coll_kernels(coll_isa_t isa)
{
    switch (isa) {
    case COLL_ISA_BASELINE:
        return &coll_kernels_baseline;
#ifdef TIDE_HAVE_AVX2_KERNELS
    case COLL_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && cpu_f16c() ? &coll_kernels_avx2 : NULL;
#endif
#ifdef TIDE_HAVE_AVX512_KERNELS
    case COLL_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                       cpu_f16c()
                   ? &coll_kernels_avx512
                   : NULL;
#endif
    default:
        return NULL;
    }
}

/*
 * TIDE_SIMD=auto: fp16 and bf16 from the widest set this CPU runs, the
 * other types from the baseline set. The half types spend their time
 * converting, and wider vectors pay (fp16 allreduce, np=2, 1 MiB: 9.0
 * GB/s with F16C against 1.3 portable). The native types are limited by
 * memory, where wider vectors measured no faster, and AVX-512 5-10%
 * slower (float allreduce, np=2, 256-512 KiB; docs/performance.md).
 */
static coll_kernels_t mixed;
static char mixed_name[32];

static void build_mixed(void)
{
    const coll_kernels_t *wide = NULL;
    for (int isa = COLL_ISA_COUNT - 1; isa > COLL_ISA_BASELINE && !wide; isa--)
        wide = coll_kernels((coll_isa_t)isa);
    mixed = coll_kernels_baseline;
    if (!wide)
        return;
    static const tide_dtype_t halves[] = {TIDE_FLOAT16, TIDE_BFLOAT16};
    for (size_t i = 0; i < sizeof(halves) / sizeof(halves[0]); i++) {
        memcpy(mixed.fn2[halves[i]], wide->fn2[halves[i]], sizeof(mixed.fn2[0]));
        memcpy(mixed.fn3[halves[i]], wide->fn3[halves[i]], sizeof(mixed.fn3[0]));
    }
    snprintf(mixed_name, sizeof(mixed_name), "baseline, %s for fp16/bf16", wide->isa);
    mixed.isa = mixed_name;
}

static const coll_kernels_t *auto_kernels(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, build_mixed);
    return &mixed;
}

tide_status_t coll_reduce_setup(void)
{
    int64_t want;
    tide_status_t st = tide_param_int(TIDE_PARAM_SIMD, &want);
    if (st != TIDE_SUCCESS)
        return st;
    const coll_kernels_t *k = NULL;
    if (want == 0) {
        k = auto_kernels();
    } else if (!(k = coll_kernels((coll_isa_t)(want - 1)))) {
        static const char *const names[COLL_ISA_COUNT] = {"baseline", "avx2", "avx512"};
        tide_error("TIDE_SIMD=%s: this build or this CPU has no such reduction kernels",
                   (unsigned)(want - 1) < COLL_ISA_COUNT ? names[want - 1] : "?");
        return TIDE_ERR_UNSUPPORTED;
    }
    __atomic_store_n(&active, k, __ATOMIC_RELEASE);
    return TIDE_SUCCESS;
}

const char *coll_reduce_isa(void)
{
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE)->isa;
}

bool coll_dtype_valid(tide_dtype_t dtype)
{
    return (unsigned)dtype < TIDE_DTYPE_COUNT;
}

bool coll_redop_valid(tide_redop_t op)
{
    return (unsigned)op < TIDE_REDOP_COUNT;
}

coll_reduce_fn_t coll_reduce_fn(tide_dtype_t dtype, tide_redop_t op)
{
    if (!coll_dtype_valid(dtype) || !coll_redop_valid(op))
        return NULL;
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE)->fn2[dtype][op];
}

size_t tide_dtype_size(tide_dtype_t dtype)
{
    static const size_t sizes[TIDE_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return coll_dtype_valid(dtype) ? sizes[dtype] : 0;
}

const char *coll_dtype_name(tide_dtype_t dtype)
{
    static const char *const names[TIDE_DTYPE_COUNT] = {"int8",  "uint8",  "int32", "uint32",
                                                        "int64", "uint64", "half",  "bfloat16",
                                                        "float", "double"};
    return coll_dtype_valid(dtype) ? names[dtype] : "?";
}

const char *coll_redop_name(tide_redop_t op)
{
    static const char *const names[TIDE_REDOP_COUNT] = {"sum", "prod", "min", "max", "avg"};
    return coll_redop_valid(op) ? names[op] : "?";
}

coll_reduce_fn_t coll_reduce_fn_swapped(tide_dtype_t dtype, tide_redop_t op)
{
    if (!coll_dtype_valid(dtype) || !coll_redop_valid(op))
        return NULL;
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE)->fn2r[dtype][op];
}

coll_reduce3_fn_t coll_reduce3_fn(tide_dtype_t dtype, tide_redop_t op)
{
    if (!coll_dtype_valid(dtype) || !coll_redop_valid(op))
        return NULL;
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE)->fn3[dtype][op];
}

void coll_reduce3(void *dst, const void *a, const void *b, size_t count, tide_dtype_t dtype,
                  tide_redop_t op)
{
    const coll_kernels_t *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (dst == b) /* acc = a op acc */
        k->fn2r[dtype][op](dst, a, count);
    else if (dst == a)
        k->fn2[dtype][op](dst, b, count);
    else
        k->fn3[dtype][op](dst, a, b, count);
}

#define AVG_INT(T)                                                                                 \
    do {                                                                                           \
        T *p = buf;                                                                                \
        for (size_t i = 0; i < count; i++)                                                         \
            p[i] = (T)(p[i] / (T)nranks);                                                          \
    } while (0)

void coll_reduce_finish_avg(void *buf, size_t count, tide_dtype_t dtype, int nranks)
{
    switch (dtype) {
    case TIDE_INT8:
        AVG_INT(int8_t);
        break;
    case TIDE_UINT8:
        AVG_INT(uint8_t);
        break;
    case TIDE_INT32:
        AVG_INT(int32_t);
        break;
    case TIDE_UINT32:
        AVG_INT(uint32_t);
        break;
    case TIDE_INT64:
        AVG_INT(int64_t);
        break;
    case TIDE_UINT64:
        AVG_INT(uint64_t);
        break;
    case TIDE_FLOAT32: {
        float *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] /= (float)nranks;
        break;
    }
    case TIDE_FLOAT64: {
        double *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] /= (double)nranks;
        break;
    }
    case TIDE_FLOAT16: {
        uint16_t *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = float_to_half(half_to_float(p[i]) / (float)nranks);
        break;
    }
    case TIDE_BFLOAT16: {
        uint16_t *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = float_to_bf16(bf16_to_float(p[i]) / (float)nranks);
        break;
    }
    default:
        break;
    }
}
