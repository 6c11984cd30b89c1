/* Helpers shared by Tide's tests. */
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tide.h"

extern char **environ;

/* Tests only ever advertise loopback, whoever runs them. */
__attribute__((constructor)) static void test_env_init(void)
{
    setenv("TIDE_BOOTSTRAP_ADDR", "127.0.0.1", 0);
}

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char cap_buf[1 << 16];
static size_t cap_len;
static char cap_copy[1 << 16];

static void capture(void *arg, tide_log_level_t level, const char *subsys, const char *msg)
{
    (void)arg;
    (void)level;
    (void)subsys;
    pthread_mutex_lock(&cap_lock);
    int n = snprintf(cap_buf + cap_len, sizeof(cap_buf) - cap_len, "%s\n", msg);
    if (n > 0)
        cap_len = cap_len + (size_t)n < sizeof(cap_buf) ? cap_len + (size_t)n : sizeof(cap_buf) - 1;
    pthread_mutex_unlock(&cap_lock);
    fprintf(stderr, "  log| %s\n", msg);
}

void test_log_capture_start(void)
{
    test_log_clear();
    tide_set_logger(capture, NULL);
}

void test_log_capture_stop(void)
{
    tide_set_logger(NULL, NULL);
}

void test_log_clear(void)
{
    pthread_mutex_lock(&cap_lock);
    cap_len = 0;
    cap_buf[0] = '\0';
    pthread_mutex_unlock(&cap_lock);
}

bool test_log_contains(const char *needle)
{
    pthread_mutex_lock(&cap_lock);
    bool found = strstr(cap_buf, needle) != NULL;
    pthread_mutex_unlock(&cap_lock);
    return found;
}

const char *test_log_text(void)
{
    pthread_mutex_lock(&cap_lock);
    memcpy(cap_copy, cap_buf, cap_len + 1);
    pthread_mutex_unlock(&cap_lock);
    return cap_copy;
}

double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char **merge_env(char *const extra[])
{
    size_t n = 0, k = 0;
    for (char **e = environ; *e; e++)
        n++;
    for (size_t i = 0; extra && extra[i]; i++)
        n++;
    char **env = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; extra && extra[i]; i++)
        env[k++] = extra[i];
    for (char **e = environ; *e; e++) {
        size_t len = strcspn(*e, "=");
        bool overridden = false;
        for (size_t i = 0; extra && extra[i]; i++)
            overridden |= strncmp(extra[i], *e, len + 1) == 0;
        if (!overridden)
            env[k++] = *e;
    }
    env[k] = NULL;
    return env;
}

int test_run(char *const argv[], char *const env[], int timeout_ms, char *out, size_t cap,
             double *elapsed)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fds[2], status = -1;
    size_t len = 0;
    pid_t pid;
    double t0 = test_now();
    char **full_env = merge_env(env);

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, full_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    free(full_env);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    bool open_ = true, killed = false;
    for (;;) {
        int left = timeout_ms - (int)((test_now() - t0) * 1000);
        if (left <= 0 && !killed) {
            fprintf(stderr, "test_run: %s timed out after %d ms; killing it\n", argv[0],
                    timeout_ms);
            kill(-pid, SIGKILL);
            killed = true;
        }
        if (open_) {
            struct pollfd p = {.fd = fds[0], .events = POLLIN};
            if (poll(&p, 1, left > 0 ? (left < 100 ? left : 100) : 100) > 0) {
                char tmp[4096];
                ssize_t n = read(fds[0], tmp, sizeof(tmp));
                if (n <= 0) {
                    open_ = false;
                } else {
                    size_t c = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
                    memcpy(out + len, tmp, c);
                    len += c;
                }
            }
        } else {
            usleep(10000);
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            /* collect what is left in the pipe */
            char tmp[4096];
            ssize_t n;
            fcntl(fds[0], F_SETFL, O_NONBLOCK);
            while (open_ && (n = read(fds[0], tmp, sizeof(tmp))) > 0) {
                size_t c = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
                memcpy(out + len, tmp, c);
                len += c;
            }
            break;
        }
    }
    close(fds[0]);
    out[len] = '\0';
    if (elapsed)
        *elapsed = test_now() - t0;
    fprintf(stderr, "test_run: %s -> status 0x%x in %.2f s; output:\n%s\n", argv[0], status,
            test_now() - t0, out);
    return status;
}

uint16_t test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

int test_count_rank_reports(const char *out, int *bad)
{
    int ranks = 0;
    *bad = 0;
    for (const char *p = out; (p = strstr(p, " wrong\n")); p++) {
        const char *line = p;
        while (line > out && line[-1] != '\n')
            line--;
        long c = 0, w = -1;
        int r;
        if (sscanf(line, "rank %d: %ld checks, %ld wrong", &r, &c, &w) != 3 || c <= 0 || w != 0)
            (*bad)++;
        ranks++;
    }
    return ranks;
}
