/* tide_status_str and the version query. */
#include "tide.h"

const char *tide_status_str(tide_status_t status)
{
    switch (status) {
#define TIDE_STATUS_CASE_(name, value, text)                                                       \
    case name:                                                                                     \
        return text;
        TIDE_STATUS_LIST(TIDE_STATUS_CASE_)
#undef TIDE_STATUS_CASE_
    }
    return "unknown status";
}

#define TIDE_STR_(x) #x
#define TIDE_STR(x)  TIDE_STR_(x)

const char *tide_version_string(void)
{
    return TIDE_STR(TIDE_VERSION_MAJOR) "." TIDE_STR(TIDE_VERSION_MINOR) "." TIDE_STR(
        TIDE_VERSION_PATCH);
}

tide_status_t tide_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = TIDE_VERSION_MAJOR;
    if (minor)
        *minor = TIDE_VERSION_MINOR;
    if (patch)
        *patch = TIDE_VERSION_PATCH;
    return TIDE_SUCCESS;
}
