/* Job detection: config, launcher, environment, singleton. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_detect.h"

#include <stdio.h>
#include <string.h>
#include "boot_store.h"
#include "util_log.h"
#include "util_param.h"

const char *boot_source_name(boot_source_t src)
{
    static const char *const names[] = {"config", "pmix", "env", "torchrun", "singleton"};
    return (unsigned)src <= BOOT_SRC_SINGLETON ? names[src] : "?";
}

void boot_config_read(const tide_config_t *cfg, tide_config_t *out)
{
    tide_config_t def = TIDE_CONFIG_INIT;
    *out = def;
    if (cfg && cfg->size >= sizeof(size_t)) {
        size_t n = cfg->size < sizeof(*out) ? cfg->size : sizeof(*out);
        memcpy(out, cfg, n);
        out->size = sizeof(*out);
    }
}

static tide_status_t check_ranks(const char *what, int rank, int nranks)
{
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        tide_error("%s: rank %d of %d is not a valid rank (need 0 <= rank < nranks)", what, rank,
                   nranks);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_status_t env_int(tide_param_id_t id, int *out)
{
    int64_t v;
    tide_status_t st = tide_param_int(id, &v);
    if (st == TIDE_SUCCESS)
        *out = (int)v;
    return st;
}

static tide_status_t env_str(tide_param_id_t id, char *buf, size_t cap)
{
    return tide_param_str(id, buf, cap);
}

static tide_status_t from_config(const tide_config_t *c, boot_job_t *job)
{
    tide_status_t st;
    job->source = BOOT_SRC_CONFIG;
    job->rank = c->rank;
    job->nranks = c->nranks;
    if ((st = check_ranks("tide_config_t", c->rank, c->nranks)) != TIDE_SUCCESS)
        return st;
    if (job->nranks > 1 && !c->store_addr) {
        tide_error("tide_config_t: %d ranks need store_addr", c->nranks);
        return TIDE_ERR_INVALID;
    }
    if (c->store_addr && strlen(c->store_addr) >= sizeof(job->store)) {
        tide_error("tide_config_t: store_addr is too long");
        return TIDE_ERR_INVALID;
    }
    snprintf(job->store, sizeof(job->store), "%s", c->store_addr ? c->store_addr : "");
    if (c->secret) {
        if (strlen(c->secret) >= sizeof(job->secret)) {
            tide_error("tide_config_t: secret is longer than %d bytes", TIDE_SECRET_MAX);
            return TIDE_ERR_INVALID;
        }
        snprintf(job->secret, sizeof(job->secret), "%s", c->secret);
        return TIDE_SUCCESS;
    }
    return env_str(TIDE_PARAM_SECRET, job->secret, sizeof(job->secret));
}

static tide_status_t from_tide_env(boot_job_t *job)
{
    tide_status_t st;
    job->source = BOOT_SRC_ENV;
    if ((st = env_int(TIDE_PARAM_RANK, &job->rank)) != TIDE_SUCCESS ||
        (st = env_int(TIDE_PARAM_SIZE, &job->nranks)) != TIDE_SUCCESS ||
        (st = env_str(TIDE_PARAM_STORE, job->store, sizeof(job->store))) != TIDE_SUCCESS ||
        (st = env_str(TIDE_PARAM_SECRET, job->secret, sizeof(job->secret))) != TIDE_SUCCESS)
        return st;
    if ((st = check_ranks("TIDE_RANK/TIDE_SIZE", job->rank, job->nranks)) != TIDE_SUCCESS)
        return st;
    if (job->nranks > 1 && !job->store[0]) {
        tide_error("TIDE_SIZE=%d but TIDE_STORE (host:port of the store) is not set", job->nranks);
        return TIDE_ERR_INVALID;
    }
    return TIDE_SUCCESS;
}

static tide_status_t from_torch_env(boot_job_t *job)
{
    char host[TIDE_HOST_MAX];
    int port;
    tide_status_t st;
    job->source = BOOT_SRC_TORCH;
    if ((st = env_int(TIDE_PARAM_TORCH_RANK, &job->rank)) != TIDE_SUCCESS ||
        (st = env_int(TIDE_PARAM_TORCH_WORLD_SIZE, &job->nranks)) != TIDE_SUCCESS ||
        (st = env_str(TIDE_PARAM_TORCH_MASTER_ADDR, host, sizeof(host))) != TIDE_SUCCESS ||
        (st = env_int(TIDE_PARAM_TORCH_MASTER_PORT, &port)) != TIDE_SUCCESS ||
        (st = env_str(TIDE_PARAM_SECRET, job->secret, sizeof(job->secret))) != TIDE_SUCCESS)
        return st;
    if ((st = check_ranks("RANK/WORLD_SIZE", job->rank, job->nranks)) != TIDE_SUCCESS)
        return st;
    if (job->nranks == 1)
        return TIDE_SUCCESS;
    if (!host[0] || port < 1) {
        tide_error("RANK/WORLD_SIZE are set but MASTER_ADDR/MASTER_PORT are not");
        return TIDE_ERR_INVALID;
    }
    snprintf(job->store, sizeof(job->store), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    job->host_store = job->rank == 0;
    if (!job->secret[0]) {
        /* Every rank knows these; the store is then as private as its port. */
        snprintf(job->secret, sizeof(job->secret), "torch:%.100s:%d", job->store, job->nranks);
        tide_info("TIDE_SECRET is not set: the store on %s uses a secret derived from "
                  "MASTER_ADDR/MASTER_PORT/WORLD_SIZE",
                  job->store);
    }
    return TIDE_SUCCESS;
}

#ifndef TIDE_HAVE_PMIX
tide_status_t boot_pmix_detect(boot_job_t *job, bool *found)
{
    (void)job;
    *found = false;
    return TIDE_SUCCESS;
}
#endif

bool boot_pmix_built(void)
{
#ifdef TIDE_HAVE_PMIX
    return true;
#else
    return false;
#endif
}

/* A launcher started several processes, but nothing tells us how to reach
 * the others: refuse rather than run N unrelated 1-rank jobs. */
static tide_status_t check_launcher(void)
{
    static const tide_param_id_t vars[] = {TIDE_PARAM_LAUNCHER_OMPI_SIZE,
                                           TIDE_PARAM_LAUNCHER_PMI_SIZE,
                                           TIDE_PARAM_LAUNCHER_SLURM_NTASKS};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        int n = -1;
        if (env_int(vars[i], &n) == TIDE_SUCCESS && n > 1) {
            tide_error("started by a launcher with %d processes (%s=%d), but %s and no "
                       "TIDE_RANK/TIDE_SIZE/TIDE_STORE or RANK/WORLD_SIZE/MASTER_ADDR are set; "
                       "refusing to run as %d unrelated 1-rank jobs (a launcher without PMIx, "
                       "such as MPICH's mpirun, needs the rendezvous variables or tiderun)",
                       n, tide_param_desc(vars[i])->name, n,
                       boot_pmix_built() ? "PMIx found no launcher to talk to"
                                         : "this Tide was built without PMIx",
                       n);
            return TIDE_ERR_UNSUPPORTED;
        }
    }
    return TIDE_SUCCESS;
}

tide_status_t boot_detect(const tide_config_t *cfg, boot_job_t *job)
{
    tide_config_t c;
    tide_status_t st;

    memset(job, 0, sizeof(*job));
    job->local_rank = job->local_size = job->node = -1;
    boot_config_read(cfg, &c);
    if (c.timeout_ms > 0)
        job->timeout_ms = c.timeout_ms;
    else if ((st = boot_default_timeout(&job->timeout_ms)) != TIDE_SUCCESS)
        return st;

    bool pmix = false;
    if (c.rank >= 0 || c.nranks >= 0 || c.store_addr)
        st = from_config(&c, job);
    else if ((st = boot_pmix_detect(job, &pmix)) != TIDE_SUCCESS || pmix)
        ; /* the launcher told us (or failed to) */
    else if (tide_param_is_set(TIDE_PARAM_RANK) || tide_param_is_set(TIDE_PARAM_SIZE))
        st = from_tide_env(job);
    else if (tide_param_is_set(TIDE_PARAM_TORCH_RANK) ||
             tide_param_is_set(TIDE_PARAM_TORCH_WORLD_SIZE))
        st = from_torch_env(job);
    else if ((st = check_launcher()) == TIDE_SUCCESS) {
        job->source = BOOT_SRC_SINGLETON;
        job->rank = 0;
        job->nranks = 1;
    }
    if (st != TIDE_SUCCESS)
        return st;
    if (job->nranks > 1 && !job->secret[0] && job->source != BOOT_SRC_PMIX) {
        tide_error("%s rendezvous of %d ranks: no store secret (TIDE_SECRET) is set",
                   boot_source_name(job->source), job->nranks);
        return TIDE_ERR_INVALID;
    }
    tide_debug("job from %s: rank %d of %d, store '%s'%s", boot_source_name(job->source), job->rank,
               job->nranks, job->store, job->host_store ? " (hosted here)" : "");
    return TIDE_SUCCESS;
}
