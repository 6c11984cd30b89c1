/* Logging: filter, prefix, sinks (stderr, TIDE_LOG_FILE, user callback). */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util_param.h"

int tide_log_level_ = TIDE_LOG_WARN;
unsigned tide_log_mask_ = ~0u;
int tide_log_ready_;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */
static tide_log_fn_t log_fn;
static void *log_fn_arg;
static int log_rank = -1;
static __thread int log_thread_rank = -1;
static char log_host[64];

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const char *const subsys_names[] = {
#define TIDE_SUBSYS_NAME_(id, name) name,
    TIDE_SUBSYS_LIST(TIDE_SUBSYS_NAME_)
#undef TIDE_SUBSYS_NAME_
};

/* Subsystem mask from "all", "boot,p2p" or "^p2p" (all but p2p). */
static unsigned parse_subsys(const char *spec)
{
    unsigned mask = 0;
    bool exclude = spec[0] == '^';
    char buf[256];
    if (exclude)
        spec++;
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "all") == 0)
            mask = ~0u;
        for (int i = 0; i < TIDE_SUBSYS_COUNT; i++)
            if (strcmp(tok, subsys_names[i]) == 0)
                mask |= 1u << i;
    }
    return exclude ? ~mask : mask;
}

/* Expand %h (host) and %p (pid) in a TIDE_LOG_FILE name. */
static void expand_path(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        if (in[0] == '%' && (in[1] == 'h' || in[1] == 'p')) {
            int w = in[1] == 'h' ? snprintf(out + n, cap - n, "%s", log_host)
                                 : snprintf(out + n, cap - n, "%d", (int)getpid());
            n = w > 0 && (size_t)w < cap - n ? n + (size_t)w : cap - 1;
            in++;
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
}

/* Apply TIDE_LOG_*; called with log_lock held. Problems are written into
 * complaint (to be logged once the lock is released). */
static void log_configure(char *complaint, size_t cap)
{
    int64_t level = TIDE_LOG_WARN;
    char subsys[256] = "all", file[512] = "", path[600];
    bool bad_level = false;

    gethostname(log_host, sizeof(log_host) - 1);
    /* The parameter reader logs through us: read quietly, report after. */
    __atomic_store_n(&tide_log_ready_, 1, __ATOMIC_RELEASE);
    tide_log_level_ = -1;
    if (tide_param_int(TIDE_PARAM_LOG_LEVEL, &level) != TIDE_SUCCESS) {
        level = TIDE_LOG_WARN;
        bad_level = true;
    }
    if (tide_param_str(TIDE_PARAM_LOG_SUBSYS, subsys, sizeof(subsys)) != TIDE_SUCCESS)
        snprintf(subsys, sizeof(subsys), "all");
    if (tide_param_str(TIDE_PARAM_LOG_FILE, file, sizeof(file)) != TIDE_SUCCESS)
        file[0] = '\0';

    if (log_file) {
        fclose(log_file);
        log_file = NULL;
    }
    if (file[0]) {
        expand_path(file, path, sizeof(path));
        log_file = fopen(path, "a");
        if (log_file)
            setvbuf(log_file, NULL, _IOLBF, 0);
    }
    tide_log_mask_ = parse_subsys(subsys);
    tide_log_level_ = (int)level;
    complaint[0] = '\0';
    if (bad_level)
        snprintf(complaint, cap,
                 "TIDE_LOG_LEVEL='%.64s' is not one of error|warn|info|debug|trace; using warn",
                 getenv("TIDE_LOG_LEVEL"));
    else if (file[0] && !log_file)
        snprintf(complaint, cap, "cannot open TIDE_LOG_FILE '%.256s': %s; logging to stderr", path,
                 strerror(errno));
}

static void log_apply(bool only_once)
{
    char complaint[512] = "";
    pthread_mutex_lock(&log_lock);
    if (!only_once || !__atomic_load_n(&tide_log_ready_, __ATOMIC_ACQUIRE))
        log_configure(complaint, sizeof(complaint));
    pthread_mutex_unlock(&log_lock);
    if (complaint[0])
        tide_warn("%s", complaint);
}

void tide_log_init(void)
{
    log_apply(true);
}

void tide_log_reinit(void)
{
    log_apply(false);
}

void tide_log_set_rank(int rank)
{
    __atomic_store_n(&log_rank, rank, __ATOMIC_RELAXED);
}

void tide_log_set_thread_rank(int rank)
{
    log_thread_rank = rank;
}

tide_status_t tide_set_logger(tide_log_fn_t fn, void *arg)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_fn_arg = arg;
    pthread_mutex_unlock(&log_lock);
    return TIDE_SUCCESS;
}

void tide_log_emit(tide_log_level_t level, tide_subsys_t subsys, const char *fmt, ...)
{
    int saved_errno = errno;
    char msg[1024];
    int rank =
        log_thread_rank >= 0 ? log_thread_rank : __atomic_load_n(&log_rank, __ATOMIC_RELAXED);
    char rank_s[16] = "-";
    va_list ap;

    if (rank >= 0)
        snprintf(rank_s, sizeof(rank_s), "%d", rank);
    int n = snprintf(msg, sizeof(msg), "%s:%d rank %s [%s] %s: ", log_host, (int)getpid(), rank_s,
                     subsys_names[subsys], level_names[level]);
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = 0;
    errno = saved_errno;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    if (log_fn) {
        log_fn(log_fn_arg, level, subsys_names[subsys], msg);
    } else {
        FILE *f = log_file ? log_file : stderr;
        fprintf(f, "%s\n", msg);
        fflush(f);
    }
    pthread_mutex_unlock(&log_lock);
    errno = saved_errno;
}
