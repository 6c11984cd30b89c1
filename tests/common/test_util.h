/* Helpers shared by Tide's tests. cmocka must be included by the test. */
#ifndef TIDE_TEST_UTIL_H
#define TIDE_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capture Tide's log messages (all levels that pass the filter). */
void test_log_capture_start(void);
void test_log_capture_stop(void);
void test_log_clear(void);
bool test_log_contains(const char *needle);
/* A copy of everything captured so far (static buffer, for messages). */
const char *test_log_text(void);

/* Run argv with the environment plus `env` (NULL-terminated VAR=VAL list,
 * may be NULL); capture stdout+stderr into out (NUL-terminated, cut at
 * cap). Kills the process group at timeout_ms. Returns the wait status
 * (or -1 if it could not start), and the seconds it took in *elapsed. */
int test_run(char *const argv[], char *const env[], int timeout_ms, char *out, size_t cap,
             double *elapsed);

/* Lines "rank R: C checks, W wrong" in a job's output: how many ranks
 * reported, and how many of them reported C == 0 or W != 0 (*bad). */
int test_count_rank_reports(const char *out, int *bad);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t test_free_port(void);

double test_now(void);

#endif
