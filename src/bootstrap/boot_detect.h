/*
 * How this process finds its job: explicit config -> PMIx -> TIDE_* ->
 * torchrun variables -> singleton. A launcher environment (PMI_SIZE,
 * OMPI_COMM_WORLD_SIZE, SLURM_NTASKS > 1) that would end as a singleton is
 * refused, not silently run as a 1-rank job.
 */
#ifndef TIDE_BOOT_DETECT_H
#define TIDE_BOOT_DETECT_H

#include <stdbool.h>
#include "tide.h"
#include "util_random.h"
#include "util_sock.h"

typedef enum boot_source {
    BOOT_SRC_CONFIG,
    BOOT_SRC_PMIX,
    BOOT_SRC_ENV,
    BOOT_SRC_TORCH,
    BOOT_SRC_SINGLETON
} boot_source_t;

typedef struct boot_job {
    boot_source_t source;
    int rank, nranks;
    char store[TIDE_ADDR_STR_MAX]; /* host:port; "" for a singleton */
    char secret[TIDE_SECRET_MAX + 1];
    bool host_store;            /* this process starts the store server */
    struct boot_server *server; /* ... or has started it already (PMIx) */
    int timeout_ms;
    int local_rank, local_size, node; /* from the launcher; -1 when unknown */
} boot_job_t;

/* PMIx, when built in: *found says whether a PMIx launcher runs this job;
 * then *job describes it (rank 0 has started the job's store). */
tide_status_t boot_pmix_detect(boot_job_t *job, bool *found);
bool boot_pmix_built(void);

const char *boot_source_name(boot_source_t src);

/* Fill *job from cfg (may be NULL) and the environment. */
tide_status_t boot_detect(const tide_config_t *cfg, boot_job_t *job);

/* Read cfg (of any size up to ours) into a full config with defaults. */
void boot_config_read(const tide_config_t *cfg, tide_config_t *out);

#endif
