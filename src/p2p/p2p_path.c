/* Path health: the one function that changes a path's state. */
#define TIDE_LOG_THIS TIDE_SUBSYS_P2P
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
