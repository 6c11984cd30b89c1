/*
 * tiderun: start N local ranks of a program around a rendezvous store.
 *
 *   tiderun -n N [options] [--] program [args...]
 *
 * tiderun hosts the TCP store (on 127.0.0.1 unless --host says otherwise)
 * with a fresh secret, and starts each rank in its own process group with
 * TIDE_RANK, TIDE_SIZE, TIDE_LOCAL_RANK, TIDE_STORE and TIDE_SECRET set.
 * SIGINT, SIGTERM and SIGHUP are forwarded to every rank. When a rank
 * fails (non-zero exit or a signal) the others get SIGTERM, then SIGKILL
 * after --grace seconds, and tiderun exits with the failing rank's status
 * (128 + signal for a signal); --keep-going leaves them running instead.
 * --timeout ends a job that runs too long, names the ranks still running,
 * and exits 124.
 *
 * Where every CPU tiderun may use gets as many ranks (at most one each, or
 * the same number each), each rank is bound to one CPU, round robin
 * (--bind), the first hardware thread of every core before any second
 * one. Unbound, the scheduler tends to put two ranks that wake each other
 * on one CPU, next to an idle one, and keep them there for milliseconds:
 * every wait for the other then costs a scheduling round instead of a few
 * hundred nanoseconds. Where the CPUs would get unequal shares (3 ranks
 * on 2 CPUs), the scheduler balances better than a fixed placement.
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_TOOL
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "boot_server.h"
#include "util_log.h"
#include "util_random.h"
#include "util_time.h"

extern char **environ;

#define MAX_RANKS    4096
#define LINE_MAX_LEN 65536

typedef struct out_stream {
    int fd; /* read end of the rank's pipe, -1 when closed */
    int to; /* our fd it goes to (1 or 2) */
    char *buf;
    size_t len;
} out_stream_t;

typedef struct rank_proc {
    pid_t pid;
    bool running;
    int status;
    out_stream_t out[2];
} rank_proc_t;

enum { BIND_AUTO, BIND_CORE, BIND_NONE };

typedef struct job {
    int n;
    int bind;  /* BIND_* */
    int *cpus; /* the CPUs ranks are bound to, in order; NULL: unbound */
    int ncpus;
    bool label, keep_going, verbose;
    double timeout_s, grace_s;
    const char *host;
    char **extra_env;
    int nextra;
    char **argv;
    rank_proc_t *ranks;
    int running;
    int first_failed; /* rank, or -1 */
    bool timed_out, stopping;
    int64_t kill_at; /* SIGKILL deadline once stopping */
} job_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tiderun -n N [options] [--] program [args...]\n"
            "  -n, --np N          number of ranks to start (1..%d)\n"
            "  -l, --label         prefix each output line with [rank]\n"
            "  -t, --timeout SEC   stop the job after SEC seconds, name the ranks still\n"
            "                      running, exit 124\n"
            "  -k, --keep-going    when a rank fails, leave the others running\n"
            "  -g, --grace SEC     seconds between SIGTERM and SIGKILL when stopping (1)\n"
            "  -x, --env VAR=VAL   set VAR in every rank's environment (repeatable)\n"
            "      --host ADDR     address the store listens on (127.0.0.1)\n"
            "      --bind WHAT     core: bind each rank to a CPU of its own (round robin\n"
            "                      where ranks outnumber CPUs); none; auto (default):\n"
            "                      core where every CPU gets as many ranks, else none\n"
            "  -v, --verbose       say what tiderun does\n"
            "  -h, --help          this text\n",
            MAX_RANKS);
}

static int parse_args(job_t *job, int argc, char **argv)
{
    static const struct option opts[] = {{"np", required_argument, NULL, 'n'},
                                         {"label", no_argument, NULL, 'l'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"keep-going", no_argument, NULL, 'k'},
                                         {"grace", required_argument, NULL, 'g'},
                                         {"env", required_argument, NULL, 'x'},
                                         {"host", required_argument, NULL, 'H'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"bind", required_argument, NULL, 'B'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char *end;
    int c;

    job->grace_s = 1.0;
    job->host = "127.0.0.1";
    job->extra_env = calloc((size_t)argc, sizeof(char *));
    if (!job->extra_env)
        return -1;
    while ((c = getopt_long(argc, argv, "+n:lt:kg:x:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            job->n = (int)strtol(optarg, &end, 10);
            if (*end || job->n < 1 || job->n > MAX_RANKS) {
                fprintf(stderr, "tiderun: -n wants 1..%d, got '%s'\n", MAX_RANKS, optarg);
                return -1;
            }
            break;
        case 'l':
            job->label = true;
            break;
        case 't':
        case 'g': {
            double v = strtod(optarg, &end);
            if (*end || v < 0 || (c == 't' && v <= 0)) {
                fprintf(stderr, "tiderun: -%c wants a positive number of seconds, got '%s'\n", c,
                        optarg);
                return -1;
            }
            *(c == 't' ? &job->timeout_s : &job->grace_s) = v;
            break;
        }
        case 'k':
            job->keep_going = true;
            break;
        case 'x':
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                fprintf(stderr, "tiderun: -x wants VAR=VALUE, got '%s'\n", optarg);
                return -1;
            }
            job->extra_env[job->nextra++] = optarg;
            break;
        case 'H':
            job->host = optarg;
            break;
        case 'B':
            if (strcmp(optarg, "auto") == 0) {
                job->bind = BIND_AUTO;
            } else if (strcmp(optarg, "core") == 0) {
                job->bind = BIND_CORE;
            } else if (strcmp(optarg, "none") == 0) {
                job->bind = BIND_NONE;
            } else {
                fprintf(stderr, "tiderun: --bind wants core, none or auto, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'v':
            job->verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (job->n == 0 || optind >= argc) {
        fprintf(stderr, "tiderun: %s\n", job->n == 0 ? "-n N is required" : "no program given");
        usage(stderr);
        return -1;
    }
    job->argv = argv + optind;
    return 0;
}

/* ------------------------------------------------------------------ output */

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void emit_line(int rank, out_stream_t *s, const char *line, size_t len)
{
    char prefix[24];
    int n = snprintf(prefix, sizeof(prefix), "[%d] ", rank);
    /* One write per line keeps lines of different ranks whole. */
    char *buf = malloc((size_t)n + len + 1);
    if (!buf)
        return;
    memcpy(buf, prefix, (size_t)n);
    memcpy(buf + n, line, len);
    buf[(size_t)n + len] = '\n';
    write_all(s->to, buf, (size_t)n + len + 1);
    free(buf);
}

/* Read what a rank wrote; emit complete lines. At EOF, emit the rest. */
static void pump_output(job_t *job, int rank, out_stream_t *s)
{
    char chunk[16384];
    ssize_t n = read(s->fd, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (s->len)
            emit_line(rank, s, s->buf, s->len);
        s->len = 0;
        close(s->fd);
        s->fd = -1;
        return;
    }
    if (!job->label) {
        write_all(s->to, chunk, (size_t)n);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] == '\n' || s->len == LINE_MAX_LEN) {
            emit_line(rank, s, s->buf, s->len);
            s->len = 0;
            if (chunk[i] == '\n')
                continue;
        }
        s->buf[s->len++] = chunk[i];
    }
}

/* ---------------------------------------------------------------- binding */

/* 0 for the first hardware thread of a core, 1 for its other threads (as
 * far as sysfs tells; 0 where it does not). */
static int thread_of_core(int cpu)
{
    char path[96];
    snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
             cpu);
    FILE *f = fopen(path, "r");
    int first = cpu;
    if (f) {
        if (fscanf(f, "%d", &first) != 1)
            first = cpu;
        fclose(f);
    }
    return first < cpu ? 1 : 0;
}

/* Decide the CPUs the ranks go to: those tiderun may run on (`allowed`),
 * first threads of cores first, by number within each group. */
static int plan_binding(job_t *job, const cpu_set_t *allowed)
{
    if (job->bind == BIND_NONE)
        return 0;
    int n = CPU_COUNT(allowed);
    if (job->bind == BIND_AUTO && job->n > n && job->n % n != 0) {
        if (job->verbose)
            fprintf(stderr, "tiderun: %d ranks on %d CPUs, unevenly: not binding\n", job->n, n);
        return 0;
    }
    job->cpus = calloc((size_t)n, sizeof(int));
    if (!job->cpus)
        return -1;
    for (int pass = 0; pass < 2; pass++)
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, allowed) && thread_of_core(cpu) == pass)
                job->cpus[job->ncpus++] = cpu;
    return 0;
}

/* Run this thread where rank `rank` is to run, so that the rank inherits
 * it; -1 restores `orig`. */
static void bind_for(job_t *job, int rank, const cpu_set_t *orig)
{
    if (!job->cpus)
        return;
    cpu_set_t one;
    const cpu_set_t *set = orig;
    if (rank >= 0) {
        int cpu = job->cpus[rank % job->ncpus];
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        set = &one;
        if (job->verbose)
            fprintf(stderr, "tiderun: rank %d on CPU %d\n", rank, cpu);
    }
    if (sched_setaffinity(0, sizeof(*set), set) != 0)
        perror("tiderun: sched_setaffinity");
}

/* ------------------------------------------------------------------ ranks */

static char **rank_env(const job_t *job, int rank, const char *store, const char *secret)
{
    static const char *const ours[] = {
        "TIDE_RANK=", "TIDE_SIZE=", "TIDE_LOCAL_RANK=", "TIDE_STORE=", "TIDE_SECRET="};
    size_t n = 0, cap = 8 + (size_t)job->nextra;
    for (char **e = environ; *e; e++)
        cap++;
    char **env = calloc(cap, sizeof(char *));
    if (!env)
        return NULL;
    for (char **e = environ; *e; e++) {
        bool skip = false;
        for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
            skip |= strncmp(*e, ours[i], strlen(ours[i])) == 0;
        if (!skip)
            env[n++] = strdup(*e);
    }
    for (int i = 0; i < job->nextra; i++)
        env[n++] = strdup(job->extra_env[i]);
    if (asprintf(&env[n++], "TIDE_RANK=%d", rank) < 0 ||
        asprintf(&env[n++], "TIDE_SIZE=%d", job->n) < 0 ||
        asprintf(&env[n++], "TIDE_LOCAL_RANK=%d", rank) < 0 ||
        asprintf(&env[n++], "TIDE_STORE=%s", store) < 0 ||
        asprintf(&env[n++], "TIDE_SECRET=%s", secret) < 0)
        return NULL;
    env[n] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

static int spawn_rank(job_t *job, int rank, const char *store, const char *secret)
{
    rank_proc_t *r = &job->ranks[rank];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t empty, defaults;
    int pipes[2][2] = {{-1, -1}, {-1, -1}}, rc = -1;
    char **env = rank_env(job, rank, store, secret);

    if (!env) {
        fprintf(stderr, "tiderun: out of memory\n");
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    r->out[0].fd = r->out[1].fd = -1;
    if (job->label) {
        for (int i = 0; i < 2; i++) {
            if (pipe2(pipes[i], O_CLOEXEC) != 0) {
                perror("tiderun: pipe");
                goto out;
            }
            posix_spawn_file_actions_adddup2(&fa, pipes[i][1], i + 1);
            r->out[i].fd = pipes[i][0];
            r->out[i].to = i + 1;
            r->out[i].buf = malloc(LINE_MAX_LEN);
            if (!r->out[i].buf)
                goto out;
        }
    }
    rc = posix_spawnp(&r->pid, job->argv[0], &fa, &attr, job->argv, env);
    if (rc != 0) {
        fprintf(stderr, "tiderun: cannot start '%s' for rank %d: %s\n", job->argv[0], rank,
                strerror(rc));
        rc = -1;
        goto out;
    }
    r->running = true;
    job->running++;
    if (job->verbose)
        fprintf(stderr, "tiderun: rank %d is pid %d\n", rank, (int)r->pid);
out:
    for (int i = 0; i < 2; i++)
        if (pipes[i][1] >= 0)
            close(pipes[i][1]);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free_env(env);
    return rc;
}

static void signal_ranks(job_t *job, int sig)
{
    for (int i = 0; i < job->n; i++)
        if (job->ranks[i].running)
            kill(-job->ranks[i].pid, sig);
}

static void stop_ranks(job_t *job)
{
    if (job->stopping)
        return;
    job->stopping = true;
    job->kill_at = tide_time_ns() + (int64_t)(job->grace_s * 1e9);
    signal_ranks(job, SIGTERM);
}

static void list_running(const job_t *job, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < job->n && n + 16 < cap; i++)
        if (job->ranks[i].running)
            n += (size_t)snprintf(buf + n, cap - n, "%s%d", n ? " " : "", i);
}

static void reap(job_t *job)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < job->n; i++) {
            rank_proc_t *r = &job->ranks[i];
            if (!r->running || r->pid != pid)
                continue;
            r->running = false;
            r->status = status;
            job->running--;
            bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
            if (!failed)
                break;
            if (job->first_failed < 0)
                job->first_failed = i;
            if (job->stopping)
                break; /* stopped by us or by a forwarded signal */
            if (WIFEXITED(status))
                fprintf(stderr, "tiderun: rank %d (pid %d) exited with status %d\n", i, (int)pid,
                        WEXITSTATUS(status));
            else
                fprintf(stderr, "tiderun: rank %d (pid %d) was killed by signal %d (%s)\n", i,
                        (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
            if (!job->keep_going) {
                if (job->running)
                    fprintf(stderr, "tiderun: stopping the other ranks\n");
                stop_ranks(job);
            }
            break;
        }
    }
}

/* ------------------------------------------------------------------- loop */

static int poll_timeout(const job_t *job, int64_t deadline)
{
    int64_t next = tide_time_ns() + 1000 * TIDE_NS_PER_MS;
    if (deadline && !job->timed_out)
        next = TIDE_MIN(next, deadline);
    if (job->stopping)
        next = TIDE_MIN(next, job->kill_at);
    int64_t ms = (next - tide_time_ns() + TIDE_NS_PER_MS - 1) / TIDE_NS_PER_MS;
    return ms < 0 ? 0 : (int)ms;
}

static void handle_signal(job_t *job, int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            reap(job);
        } else {
            if (job->verbose)
                fprintf(stderr, "tiderun: forwarding %s to the ranks\n",
                        strsignal((int)si.ssi_signo));
            signal_ranks(job, (int)si.ssi_signo);
            if (!job->stopping) {
                job->stopping = true;
                job->kill_at =
                    tide_time_ns() + (int64_t)(job->grace_s * 1e9) + 2000 * TIDE_NS_PER_MS;
            }
        }
    }
}

static int run_loop(job_t *job, int sfd)
{
    int64_t deadline = job->timeout_s > 0 ? tide_time_ns() + (int64_t)(job->timeout_s * 1e9) : 0;
    struct pollfd *pfds = calloc((size_t)job->n * 2 + 1, sizeof(*pfds));
    int64_t drain_until = 0;

    if (!pfds)
        return -1;
    for (;;) {
        int np = 0;
        pfds[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        for (int i = 0; i < job->n; i++)
            for (int s = 0; s < 2; s++)
                if (job->ranks[i].out[s].fd >= 0)
                    pfds[np++] = (struct pollfd){.fd = job->ranks[i].out[s].fd, .events = POLLIN};
        if (job->running == 0) {
            /* Ranks are gone: drain their pipes briefly (a stray child of a
             * rank may hold one open forever). */
            if (np == 1)
                break;
            if (!drain_until)
                drain_until = tide_time_ns() + 500 * TIDE_NS_PER_MS;
            if (tide_time_ns() > drain_until)
                break;
        }
        int rc = poll(pfds, (nfds_t)np, job->running ? poll_timeout(job, deadline) : 50);
        if (rc < 0 && errno != EINTR) {
            perror("tiderun: poll");
            break;
        }
        for (int k = 1; rc > 0 && k < np; k++) {
            if (!pfds[k].revents)
                continue;
            for (int i = 0; i < job->n; i++)
                for (int s = 0; s < 2; s++)
                    if (job->ranks[i].out[s].fd == pfds[k].fd)
                        pump_output(job, i, &job->ranks[i].out[s]);
        }
        if (rc > 0 && pfds[0].revents)
            handle_signal(job, sfd);
        int64_t now = tide_time_ns();
        if (deadline && !job->timed_out && now >= deadline && job->running) {
            char list[1024];
            list_running(job, list, sizeof(list));
            fprintf(stderr, "tiderun: timeout after %g s; ranks still running: %s\n",
                    job->timeout_s, list);
            job->timed_out = true;
            stop_ranks(job);
        }
        if (job->stopping && job->running && now >= job->kill_at) {
            char list[1024];
            list_running(job, list, sizeof(list));
            fprintf(stderr, "tiderun: killing ranks that did not stop: %s\n", list);
            signal_ranks(job, SIGKILL);
            job->kill_at = INT64_MAX;
        }
    }
    free(pfds);
    return 0;
}

static int exit_code(const job_t *job)
{
    if (job->timed_out)
        return 124;
    if (job->first_failed < 0)
        return 0;
    int st = job->ranks[job->first_failed].status;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
    job_t job = {.first_failed = -1};
    char secret[33], store[TIDE_ADDR_STR_MAX];
    boot_server_t *server;
    sigset_t mask;
    int sfd, code = 1;

    if (parse_args(&job, argc, argv) != 0) {
        free(job.extra_env);
        return 2;
    }
    job.ranks = calloc((size_t)job.n, sizeof(*job.ranks));
    if (!job.ranks)
        return 1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGPIPE);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        perror("tiderun: signalfd");
        return 1;
    }
    if (tide_secret_new(secret) != TIDE_SUCCESS ||
        boot_server_start(job.host, 0, secret, &server) != TIDE_SUCCESS) {
        fprintf(stderr, "tiderun: cannot start the rendezvous store on %s\n", job.host);
        return 1;
    }
    tide_sock_str(boot_server_addr(server), store, sizeof(store));
    if (job.verbose)
        fprintf(stderr, "tiderun: store on %s, %d ranks of %s\n", store, job.n, job.argv[0]);

    cpu_set_t orig;
    if (sched_getaffinity(0, sizeof(orig), &orig) != 0)
        perror("tiderun: sched_getaffinity; the ranks stay unbound");
    else if (plan_binding(&job, &orig) != 0)
        fprintf(stderr, "tiderun: out of memory planning where the ranks run; unbound\n");
    for (int i = 0; i < job.n; i++) {
        bind_for(&job, i, &orig);
        int rc = spawn_rank(&job, i, store, secret);
        bind_for(&job, -1, &orig);
        if (rc != 0) {
            job.first_failed = -1;
            stop_ranks(&job);
            run_loop(&job, sfd);
            code = 127;
            goto out;
        }
    }
    run_loop(&job, sfd);
    code = exit_code(&job);
out:
    boot_server_stop(server);
    for (int i = 0; i < job.n; i++)
        for (int s = 0; s < 2; s++)
            free(job.ranks[i].out[s].buf);
    free(job.ranks);
    free(job.cpus);
    free(job.extra_env);
    close(sfd);
    return code;
}
