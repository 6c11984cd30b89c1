/* Unique ids and the registry of process-hosted store servers. */
#define TIDE_LOG_THIS TIDE_SUBSYS_BOOT
#include "boot_uid.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "boot_server.h"
#include "util_log.h"
#include "util_param.h"

#define UID_MAGIC   0x44495554u /* "TUID" */
#define UID_VERSION 1

/* Layout inside tide_unique_id_t (little-endian): magic u32, version u16,
 * port u16, family u8 (4 or 6), address 16 bytes, secret 32 hex chars,
 * nonce u64. */
enum {
    UID_OFF_MAGIC = 0,
    UID_OFF_VERSION = 4,
    UID_OFF_PORT = 6,
    UID_OFF_FAMILY = 8,
    UID_OFF_ADDR = 9,
    UID_OFF_SECRET = 25,
    UID_OFF_NONCE = 57,
    UID_LEN = 65
};

typedef struct uid_server {
    struct uid_server *next;
    uint64_t nonce;
    int refs;
    boot_server_t *server;
} uid_server_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static uid_server_t *registry;

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

tide_status_t boot_uid_create(tide_unique_id_t *id)
{
    char secret[33];
    unsigned char *p = (unsigned char *)id->internal;
    uint64_t nonce;
    boot_server_t *server;
    uid_server_t *entry;
    tide_status_t st;

    if ((st = tide_random_bytes(&nonce, sizeof(nonce))) != TIDE_SUCCESS)
        return st;
    entry = calloc(1, sizeof(*entry));
    if (!entry) {
        tide_error("tide_get_unique_id: out of memory");
        return TIDE_ERR_NOMEM;
    }
    if ((st = boot_server_start_hosted(secret, &server)) != TIDE_SUCCESS) {
        free(entry);
        return st;
    }
    const tide_sockaddr_t *a = boot_server_addr(server);
    memset(id, 0, sizeof(*id));
    put_le(p + UID_OFF_MAGIC, UID_MAGIC, 4);
    put_le(p + UID_OFF_VERSION, UID_VERSION, 2);
    put_le(p + UID_OFF_PORT, tide_sock_port(a), 2);
    if (a->ss.ss_family == AF_INET) {
        p[UID_OFF_FAMILY] = 4;
        memcpy(p + UID_OFF_ADDR, &((const struct sockaddr_in *)(const void *)&a->ss)->sin_addr, 4);
    } else {
        p[UID_OFF_FAMILY] = 6;
        memcpy(p + UID_OFF_ADDR, &((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_addr,
               16);
    }
    memcpy(p + UID_OFF_SECRET, secret, 32);
    put_le(p + UID_OFF_NONCE, nonce, 8);

    entry->nonce = nonce;
    entry->server = server;
    pthread_mutex_lock(&registry_lock);
    entry->next = registry;
    registry = entry;
    pthread_mutex_unlock(&registry_lock);
    return TIDE_SUCCESS;
}

tide_status_t boot_uid_decode(const tide_unique_id_t *id, boot_uid_t *uid)
{
    const unsigned char *p = (const unsigned char *)id->internal;
    char ip[INET6_ADDRSTRLEN];
    unsigned port = (unsigned)get_le(p + UID_OFF_PORT, 2);
    int family = p[UID_OFF_FAMILY];

    if (get_le(p + UID_OFF_MAGIC, 4) != UID_MAGIC ||
        get_le(p + UID_OFF_VERSION, 2) != UID_VERSION || (family != 4 && family != 6) || port == 0)
        goto err;
    for (int i = 0; i < 32; i++) {
        char c = (char)p[UID_OFF_SECRET + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            goto err;
        uid->secret[i] = c;
    }
    uid->secret[32] = '\0';
    if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, p + UID_OFF_ADDR, ip, sizeof(ip)))
        goto err;
    snprintf(uid->addr, sizeof(uid->addr), family == 4 ? "%s:%u" : "[%s]:%u", ip, port);
    uid->nonce = get_le(p + UID_OFF_NONCE, 8);
    return TIDE_SUCCESS;
err:
    tide_error("unique id is not one made by tide_get_unique_id (corrupt or uninitialised)");
    return TIDE_ERR_INVALID;
}

void boot_uid_acquire(uint64_t nonce)
{
    pthread_mutex_lock(&registry_lock);
    for (uid_server_t *e = registry; e; e = e->next)
        if (e->nonce == nonce)
            e->refs++;
    pthread_mutex_unlock(&registry_lock);
}

void boot_uid_release(uint64_t nonce, int drain_ms)
{
    uid_server_t *gone = NULL;
    pthread_mutex_lock(&registry_lock);
    for (uid_server_t **pp = &registry; *pp; pp = &(*pp)->next) {
        if ((*pp)->nonce == nonce && --(*pp)->refs == 0) {
            gone = *pp;
            *pp = gone->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (gone) {
        boot_server_drain(gone->server, drain_ms);
        free(gone);
    }
}
