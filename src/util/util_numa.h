/*
 * NUMA placement (libnuma, when built in). Memory Tide allocates (shared
 * segments, collective inboxes, pipe buffers) and its progress threads go
 * to one node: the NIC's once there are NICs, the creating thread's until
 * then. Active only with more than one node and TIDE_NUMA=auto: on a
 * one-node machine, or with TIDE_NUMA=off, nothing changes.
 */
#ifndef TIDE_UTIL_NUMA_H
#define TIDE_UTIL_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include "tide.h"

/* Whether placement is on (decided once: libnuma, nodes, TIDE_NUMA). */
bool tide_numa_active(void);

/* The node of the CPU the calling thread runs on (0 without libnuma). */
int tide_numa_node_here(void);

/* Prefer `node` for the pages of [addr, addr+len) not yet touched.
 * No-op when placement is off. Returns TIDE_SUCCESS or TIDE_ERR_IO. */
tide_status_t tide_numa_place(void *addr, size_t len, int node);

/* Run the calling thread on the CPUs of `node` (no-op when off). */
void tide_numa_bind_thread(int node);

/* Test hook: apply a placement even when it is off (checks the mechanism
 * on one-node machines). */
tide_status_t tide_numa_place_always(void *addr, size_t len, int node);

#endif
