/*
 * Algorithm selection: a table by collective and message size, and the
 * TIDE_ALGO override ("ring", or per collective: "allreduce=rd,broadcast=tree").
 * TIDE_TRACE=1 logs, for every operation, what was chosen and over what.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <stdio.h>
#include <string.h>
#include "coll_ctx.h"
#include "util_log.h"

static const coll_algo_t algos[] = {
    {"ring", COLL_ALLREDUCE, coll_allreduce_ring},
    {"rd", COLL_ALLREDUCE, coll_allreduce_rd},
    {"rabenseifner", COLL_ALLREDUCE, coll_allreduce_rabenseifner},
    {"direct", COLL_ALLREDUCE, coll_allreduce_direct},
    {"ring", COLL_ALLGATHER, coll_allgather_ring},
    {"bruck", COLL_ALLGATHER, coll_allgather_bruck},
    {"direct", COLL_ALLGATHER, coll_allgather_direct},
    {"tree", COLL_BROADCAST, coll_bcast_tree},
    {"chain", COLL_BROADCAST, coll_bcast_chain},
    {"direct", COLL_BROADCAST, coll_bcast_direct},
    {"ring", COLL_REDUCE_SCATTER, coll_reduce_scatter_ring},
    {"tree", COLL_REDUCE, coll_reduce_tree},
    {"chain", COLL_REDUCE, coll_reduce_chain},
    {"pairwise", COLL_ALLTOALL, coll_alltoall_pairwise},
    {"dissemination", COLL_BARRIER, coll_barrier_dissemination},
    {"p2p", COLL_SEND, coll_sendrecv_p2p},
    {"p2p", COLL_RECV, coll_sendrecv_p2p},
};

/* Default choice: the first algorithm of the kind, except for allreduce,
 * where recursive doubling (log n latency) wins below this size and the
 * ring (bandwidth) above. */
#define ALLREDUCE_RD_MAX     16384
/* ... and, where every rank can read every other's memory (all local, CMA
 * allowed), the direct algorithm from this size on. */
#define ALLREDUCE_DIRECT_MIN (256 * 1024)
/* Broadcast and allgather go direct (one copy per rank) from these sizes
 * (measured at np=4 on this project's machine: allgather gains from 16 KiB,
 * broadcast only from 1 MiB; the tree wins below, where each read's page
 * pinning costs more than the pipe's second copy). */
#define ALLGATHER_DIRECT_MIN (16 * 1024)
#define BCAST_DIRECT_MIN     (1024 * 1024)

const char *coll_kind_name(coll_kind_t kind)
{
    static const char *const names[COLL_KIND_COUNT] = {"allreduce",      "allgather", "broadcast",
                                                       "reduce_scatter", "reduce",    "alltoall",
                                                       "barrier",        "send",      "recv"};
    return (unsigned)kind < COLL_KIND_COUNT ? names[kind] : "?";
}

static const coll_algo_t *find_n(coll_kind_t kind, const char *name, size_t len)
{
    for (size_t i = 0; i < TIDE_ARRAY_SIZE(algos); i++)
        if (algos[i].kind == kind && strlen(algos[i].name) == len &&
            strncmp(algos[i].name, name, len) == 0)
            return &algos[i];
    return NULL;
}

static const coll_algo_t *find(coll_kind_t kind, const char *name)
{
    return find_n(kind, name, strlen(name));
}

/* The TIDE_ALGO entry for kind: NULL if none applies; *bad if the entry
 * names no algorithm of that kind. */
static const coll_algo_t * override(coll_kind_t kind, const char *spec, bool *bad)
{
    const char *kname = coll_kind_name(kind);
    *bad = false;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (!eq) { /* a bare name applies wherever it exists */
            const coll_algo_t *a = find_n(kind, p, len);
            if (a)
                return a;
        } else if ((size_t)(eq - p) == strlen(kname) && strncmp(p, kname, (size_t)(eq - p)) == 0) {
            const coll_algo_t *a = find_n(kind, eq + 1, len - (size_t)(eq - p) - 1);
            *bad = !a;
            return a;
        }
        p += len + (p[len] == ',');
    }
    return NULL;
}

tide_status_t coll_select(coll_ctx_t *c, const coll_op_t *op, const coll_algo_t **out)
{
    const char *spec = c->algo;
    const coll_algo_t *a = NULL;
    bool bad;
    if (spec[0]) {
        a = override(op->kind, spec, &bad);
        if (a && strcmp(a->name, "direct") == 0 && !c->direct_ok) {
            tide_error("TIDE_ALGO: 'direct' needs every rank on one host with direct memory "
                       "access (CMA) to every other");
            return TIDE_ERR_UNSUPPORTED;
        }
        if (bad) {
            tide_error("TIDE_ALGO='%s' names no %s algorithm", spec, coll_kind_name(op->kind));
            return TIDE_ERR_INVALID;
        }
    }
    if (!a) {
        size_t bytes = op->count * op->esize;
        bool direct = c->direct_ok && bytes >= (op->kind == COLL_BROADCAST ? BCAST_DIRECT_MIN
                                                                           : ALLGATHER_DIRECT_MIN);
        if (op->kind == COLL_BROADCAST || op->kind == COLL_ALLGATHER)
            a = find(op->kind, direct ? "direct" : op->kind == COLL_BROADCAST ? "tree" : "ring");
        if (op->kind == COLL_ALLREDUCE) {
            const char *name = bytes <= ALLREDUCE_RD_MAX                       ? "rd"
                               : c->direct_ok && bytes >= ALLREDUCE_DIRECT_MIN ? "direct"
                                                                               : "ring";
            a = find(COLL_ALLREDUCE, name);
        }
        for (size_t i = 0; !a && i < TIDE_ARRAY_SIZE(algos); i++)
            if (algos[i].kind == op->kind)
                a = &algos[i];
    }
    if (c->trace) {
        int shm = 0, eng = 0;
        for (int r = 0; r < c->nranks; r++) {
            shm += c->pipe[r] == &coll_shm_pipe;
            eng += c->pipe[r] == &coll_engine_pipe;
        }
        tide_log_emit(TIDE_LOG_INFO, TIDE_SUBSYS_COLL,
                      "trace: op %llu %s count %zu %s %s root %d: algorithm %s, chunk %zu, "
                      "pipes shm %d engine %d",
                      (unsigned long long)c->nops, coll_kind_name(op->kind), op->count,
                      coll_dtype_name(op->dtype), coll_redop_name(op->redop), op->root, a->name,
                      c->chunk, shm, eng);
    }
    *out = a;
    return TIDE_SUCCESS;
}
