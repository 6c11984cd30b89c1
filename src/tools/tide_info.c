/*
 * tide_info: what this Tide is and how it is configured.
 *   tide_info               version and parameters with their current values
 *   tide_info --params      the parameter table with current values
 *   tide_info --params-md   the parameter table as markdown (docs/params.md)
 *   tide_info --check       parse every parameter set in the environment;
 *                           exit 1 naming each bad one
 *   tide_info --version
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "tide.h"
#include "util_param.h"

static int check_params(void)
{
    int bad = 0;
    for (int i = 0; i < TIDE_PARAM_COUNT; i++) {
        const tide_param_desc_t *d = tide_param_desc((tide_param_id_t)i);
        char buf[4096];
        int64_t v;
        if (!tide_param_is_set((tide_param_id_t)i))
            continue;
        tide_status_t st = d->type == TIDE_PARAM_TYPE_STR
                               ? tide_param_str((tide_param_id_t)i, buf, sizeof(buf))
                               : tide_param_int((tide_param_id_t)i, &v);
        if (st != TIDE_SUCCESS) {
            fprintf(stderr, "tide_info: %s is not valid (see the message above)\n", d->name);
            bad++;
        }
    }
    if (!bad)
        printf("all parameters set in the environment are valid\n");
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: tide_info [--params|--params-md|--check|--version]\n");
        return 2;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", tide_version_string());
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--params-md") == 0) {
        tide_param_print(stdout, true);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--check") == 0)
        return check_params();
    if (argc == 2 && strcmp(argv[1], "--params") != 0) {
        fprintf(stderr, "usage: tide_info [--params|--params-md|--check|--version]\n");
        return 2;
    }
    if (argc == 1)
        printf("Tide %s\ntransports: (none yet: the transfer engine is not built in this "
               "version)\nbootstrap: tcp store, in-process store; pmix: not built\n\n",
               tide_version_string());
    tide_param_print(stdout, false);
    return 0;
}
