/* Parameter table lookup and parsing. */
#define TIDE_LOG_THIS TIDE_SUBSYS_UTIL
#include "util_param.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "util_compiler.h"
#include "util_log.h"

static const tide_param_desc_t params[TIDE_PARAM_COUNT] = {
#define TIDE_PARAM_DESC_(id, name, type, def, range, help)                                         \
    [TIDE_PARAM_##id] = {name, TIDE_PARAM_TYPE_##type, def, range, help},
    TIDE_PARAM_LIST(TIDE_PARAM_DESC_)
#undef TIDE_PARAM_DESC_
};

static const char *const type_names[] = {"int", "size", "bool", "string", "enum"};

const tide_param_desc_t *tide_param_desc(tide_param_id_t id)
{
    return (unsigned)id < TIDE_PARAM_COUNT ? &params[id] : NULL;
}

bool tide_param_is_set(tide_param_id_t id)
{
    return (unsigned)id < TIDE_PARAM_COUNT && getenv(params[id].name) != NULL;
}

static bool parse_i64(const char *text, int64_t *value, const char **end)
{
    char *e;
    errno = 0;
    long long v = strtoll(text, &e, 0);
    if (errno != 0 || e == text)
        return false;
    *value = v;
    *end = e;
    return true;
}

static bool parse_size(const char *text, int64_t *value)
{
    const char *end;
    int64_t v;
    if (!parse_i64(text, &v, &end) || v < 0)
        return false;
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    default:
        return false;
    }
    if (shift) {
        end++;
        if (strcasecmp(end, "") != 0 && strcasecmp(end, "B") != 0 && strcasecmp(end, "iB") != 0)
            return false;
    } else if (*end != '\0') {
        return false;
    }
    if (v > (INT64_MAX >> shift))
        return false;
    *value = v << shift;
    return true;
}

static bool parse_bool(const char *text, int64_t *value)
{
    static const char *const yes[] = {"1", "y", "yes", "true", "on"};
    static const char *const no[] = {"0", "n", "no", "false", "off"};
    for (size_t i = 0; i < TIDE_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value = 1;
            return true;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value = 0;
            return true;
        }
    }
    return false;
}

static bool parse_enum(const char *choices, const char *text, int64_t *value)
{
    size_t len = strlen(text);
    int64_t index = 0;
    for (const char *p = choices; *p; index++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncasecmp(p, text, n) == 0) {
            *value = index;
            return true;
        }
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static bool in_range(const char *range, tide_param_type_t type, int64_t v)
{
    int64_t lo, hi;
    char lo_s[32], hi_s[32];
    if (!range || !*range)
        return true;
    if (sscanf(range, "%31[^:]:%31s", lo_s, hi_s) != 2)
        return true;
    if (type == TIDE_PARAM_TYPE_SIZE) {
        if (!parse_size(lo_s, &lo) || !parse_size(hi_s, &hi))
            return true;
    } else {
        const char *end;
        if (!parse_i64(lo_s, &lo, &end) || !parse_i64(hi_s, &hi, &end))
            return true;
    }
    return v >= lo && v <= hi;
}

tide_status_t tide_param_parse(tide_param_id_t id, const char *text, int64_t *value)
{
    const tide_param_desc_t *d = tide_param_desc(id);
    int64_t v = 0;
    const char *end;
    bool ok;

    if (!d || !text || !value)
        return TIDE_ERR_INVALID;
    while (isspace((unsigned char)*text))
        text++;
    switch (d->type) {
    case TIDE_PARAM_TYPE_INT:
        ok = parse_i64(text, &v, &end) && *end == '\0';
        break;
    case TIDE_PARAM_TYPE_SIZE:
        ok = parse_size(text, &v);
        break;
    case TIDE_PARAM_TYPE_BOOL:
        ok = parse_bool(text, &v);
        break;
    case TIDE_PARAM_TYPE_ENUM:
        ok = parse_enum(d->range, text, &v);
        break;
    default:
        tide_error("%s is a string parameter, not a number", d->name);
        return TIDE_ERR_INVALID;
    }
    if (!ok) {
        bool e = d->type == TIDE_PARAM_TYPE_ENUM;
        tide_error("%s='%s' is not a valid %s%s%s%s", d->name, text, type_names[d->type],
                   e ? " (one of " : "", e ? d->range : "", e ? ")" : "");
        return TIDE_ERR_INVALID;
    }
    if (d->type != TIDE_PARAM_TYPE_ENUM && !in_range(d->range, d->type, v)) {
        tide_error("%s='%s' is out of range [%s]", d->name, text, d->range);
        return TIDE_ERR_INVALID;
    }
    *value = v;
    return TIDE_SUCCESS;
}

tide_status_t tide_param_int(tide_param_id_t id, int64_t *value)
{
    const tide_param_desc_t *d = tide_param_desc(id);
    if (!d || !value || d->type == TIDE_PARAM_TYPE_STR)
        return TIDE_ERR_INVALID;
    const char *env = getenv(d->name);
    return tide_param_parse(id, env ? env : d->def, value);
}

tide_status_t tide_param_str(tide_param_id_t id, char *buf, size_t cap)
{
    const tide_param_desc_t *d = tide_param_desc(id);
    if (!d || !buf || cap == 0 || d->type != TIDE_PARAM_TYPE_STR)
        return TIDE_ERR_INVALID;
    const char *env = getenv(d->name);
    const char *v = env ? env : d->def;
    size_t len = strlen(v);
    if (len >= cap) {
        tide_error("%s is too long (%zu bytes, at most %zu)", d->name, len, cap - 1);
        return TIDE_ERR_INVALID;
    }
    memcpy(buf, v, len + 1);
    return TIDE_SUCCESS;
}

void tide_param_print(FILE *out, bool markdown)
{
    if (markdown) {
        fprintf(out, "# Tide parameters\n\n"
                     "Generated by `tide_info --params-md` from src/util/util_param_list.h; "
                     "do not edit.\n"
                     "All are read from the environment.\n\n"
                     "| variable | type | default | range | meaning |\n"
                     "|---|---|---|---|---|\n");
    }
    for (int i = 0; i < TIDE_PARAM_COUNT; i++) {
        const tide_param_desc_t *d = &params[i];
        if (markdown) {
            fprintf(out, "| `%s` | %s | `%s` | %s | %s |\n", d->name, type_names[d->type],
                    d->def[0] ? d->def : "(empty)", d->range[0] ? d->range : "", d->help);
        } else {
            const char *env = getenv(d->name);
            fprintf(out, "%-24s %-6s default=%-8s %s%s%s\n    %s\n", d->name, type_names[d->type],
                    d->def[0] ? d->def : "\"\"", env ? "value=" : "", env ? env : "",
                    env ? "" : "(unset)", d->help);
        }
    }
}
