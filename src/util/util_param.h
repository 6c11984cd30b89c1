/*
 * Parameters: every tunable is declared once in util_param_list.h and read
 * here. Values come from the environment; a value that does not parse or is
 * out of range is refused with TIDE_ERR_INVALID and a logged reason naming
 * the variable. Reads are cheap but not free: callers read at object
 * creation, never on the data path.
 */
#ifndef TIDE_UTIL_PARAM_H
#define TIDE_UTIL_PARAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "tide.h"
#include "util_param_list.h"

typedef enum tide_param_type {
    TIDE_PARAM_TYPE_INT,
    TIDE_PARAM_TYPE_SIZE,
    TIDE_PARAM_TYPE_BOOL,
    TIDE_PARAM_TYPE_STR,
    TIDE_PARAM_TYPE_ENUM
} tide_param_type_t;

typedef enum tide_param_id {
#define TIDE_PARAM_ENUM_(id, name, type, def, range, help) TIDE_PARAM_##id,
    TIDE_PARAM_LIST(TIDE_PARAM_ENUM_)
#undef TIDE_PARAM_ENUM_
        TIDE_PARAM_COUNT
} tide_param_id_t;

typedef struct tide_param_desc {
    const char *name;
    tide_param_type_t type;
    const char *def;
    const char *range;
    const char *help;
} tide_param_desc_t;

const tide_param_desc_t *tide_param_desc(tide_param_id_t id);

/* True when the variable is set in the environment (even to ""). */
bool tide_param_is_set(tide_param_id_t id);

/* INT, SIZE, BOOL (0/1) and ENUM (index into range) parameters. */
tide_status_t tide_param_int(tide_param_id_t id, int64_t *value);

/* STR parameters: copied into buf (cap bytes, NUL-terminated); a value
 * that does not fit is refused. */
tide_status_t tide_param_str(tide_param_id_t id, char *buf, size_t cap);

/* Parse text as a value of the parameter's type (used by tide_param_int and
 * by tests). */
tide_status_t tide_param_parse(tide_param_id_t id, const char *text, int64_t *value);

/* Print the table: markdown (docs/params.md) or plain text with current
 * values (tide_info --params). */
void tide_param_print(FILE *out, bool markdown);

#endif
