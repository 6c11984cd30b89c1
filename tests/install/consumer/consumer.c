/* Links against an installed Tide and runs as a 1-rank job. */
#include <stdio.h>
#include "tide.h"

int main(void)
{
    tide_comm_t *comm;
    int n = 0;
    if (tide_comm_init(&comm, NULL) != TIDE_SUCCESS || tide_comm_size(comm, &n) != TIDE_SUCCESS)
        return 1;
    printf("consumer: Tide %s, %d rank\n", tide_version_string(), n);
    return tide_comm_destroy(comm) == TIDE_SUCCESS && n == 1 ? 0 : 1;
}
