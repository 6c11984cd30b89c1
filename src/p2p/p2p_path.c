/* Path health: the one function that changes a path's state. */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
#include <string.h>
#include "p2p.h"
#include "util_log.h"

const char *p2p_path_state_str(p2p_path_state_t state)
{
    switch (state) {
    case P2P_PATH_OK:
        return "OK";
    case P2P_PATH_DEGRADED:
        return "DEGRADED";
    case P2P_PATH_FAILED:
        return "FAILED";
    case P2P_PATH_PROBING:
        return "PROBING";
    }
    return "?";
}

void p2p_path_set_state(p2p_path_t *path, p2p_path_state_t state, const char *why, bool with_work)
{
    int old = __atomic_exchange_n(&path->state, (int)state, __ATOMIC_ACQ_REL);
    if (old == (int)state)
        return;
    if ((state == P2P_PATH_FAILED || state == P2P_PATH_DEGRADED) && with_work)
        tide_warn("path %s: %s -> %s (%s)", path->name, p2p_path_state_str(old),
                  p2p_path_state_str(state), why);
    else
        tide_info("path %s: %s -> %s (%s)", path->name, p2p_path_state_str(old),
                  p2p_path_state_str(state), why);
}

bool p2p_path_usable(const p2p_path_t *path)
{
    int st = __atomic_load_n(&path->state, __ATOMIC_ACQUIRE);
    return st == P2P_PATH_OK || st == P2P_PATH_DEGRADED;
}

void p2p_path_stats(const p2p_path_t *path, unsigned transport, tide_path_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->name, path->name, sizeof(out->name));
    out->name[sizeof(out->name) - 1] = '\0';
    out->transport = transport;
    out->state = (tide_path_state_t)__atomic_load_n(&path->state, __ATOMIC_ACQUIRE);
    out->slices = __atomic_load_n(&path->slices, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&path->bytes, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&path->errors, __ATOMIC_RELAXED);
    out->failovers = __atomic_load_n(&path->failovers, __ATOMIC_RELAXED);
}
