/*
 * Communicator: the ranks of a group, their hosts, the membership epoch
 * and stable member ids, and the store namespace they rendezvous in.
 * Transports and collectives attach here in later layers.
 */
#ifndef TIDE_COLL_COMM_H
#define TIDE_COLL_COMM_H

#include <stdbool.h>
#include <stdint.h>
#include "tide.h"

#define COLL_HOST_MAX    64
#define COLL_BOOT_ID_MAX 40

typedef struct coll_peer {
    uint32_t pid;
    int32_t node; /* the launcher's node id, -1 when it gave none */
    char host[COLL_HOST_MAX];
    char boot_id[COLL_BOOT_ID_MAX]; /* same boot id: same host and kernel */
} coll_peer_t;

struct boot_server;
struct coll_ctx;

struct tide_comm {
    int rank, nranks;
    int local_rank, local_size;
    uint64_t epoch;
    uint32_t *member_ids;   /* rank -> stable id */
    coll_peer_t *peers;     /* rank -> where it runs */
    tide_store_t *sys;      /* Tide's own keys of this communicator */
    tide_store_t *user;     /* tide_comm_store(): the user's namespace */
    struct comm_host *host; /* store hosted by this rank (shared with split/dup children) */
    bool uid_attached;
    uint64_t uid_nonce;
    int timeout_ms;
    int launcher_node;     /* this rank's node id from the launcher, or -1 */
    struct coll_ctx *coll; /* collectives, created by the first one */
    uint32_t nsplits;      /* split/dup calls so far: names the children's namespaces */
};

/* A store server hosted by this process for a communicator and the
 * communicators split from it: the last one to go drains and stops it. */
typedef struct comm_host {
    int refs;
    struct boot_server *server;
} comm_host_t;

#endif
