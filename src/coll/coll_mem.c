/*
 * Tide memory: buffers that other ranks on this host can map.
 *
 * tide_mem_alloc backs each buffer with a memfd of its own, mapped shared.
 * A direct algorithm that finds a buffer of an operation inside such an
 * allocation tells its peers where (the allocation's serial, its file
 * descriptor number here, inode, base and length, on the rank's card). A
 * peer then takes a duplicate of the descriptor (pidfd_getfd, which needs
 * the same permission as reading the rank's memory with CMA), checks the
 * inode, and maps the allocation, once: later operations on buffers in it
 * find the mapping cached (coll_map_peer). Reading a peer's buffer in
 * place then costs no system call and no copy through the kernel, where
 * process_vm_readv pins every page of every read; and a rank may write
 * its share of a result straight into a peer's output, where the card
 * placed it in such memory (the direct allreduce's push).
 *
 * Vocabulary: an allocation (ours, in the registry); a reference (what a
 * card says of a peer's buffer: coll_mem_ref_t); a mapping (a peer's
 * allocation mapped here, in the context's cache).
 */
#define TIDE_LOG_THIS TIDE_SUBSYS_COLL
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "coll_ctx.h"
#include "util_log.h"

typedef struct mem_alloc {
    struct mem_alloc *next;
    char *base;
    size_t len;
    int fd;
    uint64_t ino, serial;
} mem_alloc_t;

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_alloc_t *mem_head;
static uint64_t mem_serial;

tide_status_t tide_mem_alloc(size_t size, void **ptr)
{
    if (!ptr || size == 0) {
        tide_error("tide_mem_alloc: need a size > 0 and somewhere to put the pointer");
        return TIDE_ERR_INVALID;
    }
    *ptr = NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (size - 1) / page * page + page;
    if (len < size) {
        tide_error("tide_mem_alloc: %zu bytes is more than can be mapped", size);
        return TIDE_ERR_INVALID;
    }
    mem_alloc_t *a = calloc(1, sizeof(*a));
    if (!a)
        return TIDE_ERR_NOMEM;
    struct stat sb;
    a->fd = memfd_create("tide-mem", MFD_CLOEXEC);
    if (a->fd < 0 || ftruncate(a->fd, (off_t)len) != 0 || fstat(a->fd, &sb) != 0) {
        tide_error("tide_mem_alloc: a memory file of %zu bytes: %s", len, strerror(errno));
        if (a->fd >= 0)
            close(a->fd);
        free(a);
        return TIDE_ERR_NOMEM;
    }
    a->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
    if (a->base == MAP_FAILED) {
        tide_error("tide_mem_alloc: mapping %zu bytes: %s", len, strerror(errno));
        close(a->fd);
        free(a);
        return TIDE_ERR_NOMEM;
    }
    a->len = len;
    a->ino = (uint64_t)sb.st_ino;
    pthread_mutex_lock(&mem_lock);
    a->serial = ++mem_serial;
    a->next = mem_head;
    mem_head = a;
    pthread_mutex_unlock(&mem_lock);
    *ptr = a->base;
    return TIDE_SUCCESS;
}

tide_status_t tide_mem_free(void *ptr)
{
    pthread_mutex_lock(&mem_lock);
    mem_alloc_t **pp = &mem_head;
    while (*pp && (*pp)->base != ptr)
        pp = &(*pp)->next;
    mem_alloc_t *a = *pp;
    if (a)
        *pp = a->next;
    pthread_mutex_unlock(&mem_lock);
    if (!a) {
        tide_error("tide_mem_free: %p is not memory from tide_mem_alloc (or was freed)", ptr);
        return TIDE_ERR_INVALID;
    }
    munmap(a->base, a->len);
    close(a->fd);
    free(a);
    return TIDE_SUCCESS;
}

void coll_mem_ref(const void *addr, size_t len, coll_mem_ref_t *ref)
{
    memset(ref, 0, sizeof(*ref));
    uintptr_t p = (uintptr_t)addr;
    pthread_mutex_lock(&mem_lock);
    for (mem_alloc_t *a = mem_head; a; a = a->next) {
        uintptr_t b = (uintptr_t)a->base;
        if (p >= b && p - b <= a->len && len <= a->len - (p - b)) {
            *ref = (coll_mem_ref_t){.serial = a->serial,
                                    .ino = a->ino,
                                    .base = (uint64_t)b,
                                    .len = a->len,
                                    .fd = a->fd};
            break;
        }
    }
    pthread_mutex_unlock(&mem_lock);
}

/* Map peer's allocation `ref`: its base here, or NULL. */
static char *map_allocation(coll_ctx_t *c, int peer, const coll_mem_ref_t *ref)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pidfd = (int)syscall(SYS_pidfd_open, coll_shm_pid(c, peer), 0);
    if (pidfd < 0) {
        tide_debug("coll: pidfd_open of rank %d: %s", peer, strerror(errno));
        return NULL;
    }
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, ref->fd, 0);
    int err = errno;
    close(pidfd);
    if (fd < 0) {
        tide_debug("coll: rank %d's memory file %d: %s", peer, ref->fd, strerror(err));
        return NULL;
    }
    struct stat sb;
    char *base = NULL, path[32], target[64] = "";
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t tl = readlink(path, target, sizeof(target) - 1);
    if (tl > 0)
        target[tl] = '\0';
    /* a memory file of tide_mem_alloc's, not any file the peer has open */
    if (strncmp(target, "/memfd:tide-mem", 15) == 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
        (uint64_t)sb.st_ino == ref->ino && (uint64_t)sb.st_size >= ref->len) {
        base = mmap(NULL, ref->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED)
            base = NULL;
    } else {
        tide_debug("coll: rank %d's descriptor %d is not the memory its card names", peer, ref->fd);
    }
    close(fd);
    return base;
#else
    (void)c;
    (void)peer;
    (void)ref;
    return NULL;
#endif
}

char *coll_map_peer(coll_ctx_t *c, int peer, const coll_mem_ref_t *ref, uint64_t addr, size_t len)
{
    /* What a peer says is checked: a buffer inside its allocation, an
     * allocation no larger than can be mapped. */
    if (!ref->serial || ref->len == 0 || ref->len > SIZE_MAX / 2 || addr < ref->base ||
        addr - ref->base > ref->len || len > ref->len - (addr - ref->base) || ref->fd < 0)
        return NULL;
    /* Evict the least recently used mapping, but none this operation
     * uses: its pointers are still in hand (more peers' allocations than
     * the cache holds go through CMA instead). */
    coll_map_t *m = NULL, *victim = NULL;
    for (int i = 0; i < COLL_MAPS; i++) {
        coll_map_t *e = &c->maps[i];
        if (e->used && e->peer == peer && e->serial == ref->serial) {
            m = e;
            break;
        }
        if (e->used && e->op == c->nops)
            continue;
        if (!victim || !e->used || (victim->used && e->used < victim->used))
            victim = e;
    }
    if (m && m->len != ref->len)
        return NULL; /* the same allocation, another length: not believed */
    if (!m && !victim)
        return NULL;
    if (!m) {
        if (victim->used && victim->base)
            munmap(victim->base, victim->len);
        m = victim;
        *m = (coll_map_t){.peer = peer, .serial = ref->serial, .len = ref->len};
        /* a failure is remembered too (base NULL): not tried every call */
        m->base = map_allocation(c, peer, ref);
        if (m->base)
            tide_info("coll: rank %d maps %llu bytes of rank %d's Tide memory, to use them in "
                      "place",
                      c->rank, (unsigned long long)ref->len, peer);
    }
    m->used = ++c->map_clock;
    m->op = c->nops;
    return m->base ? m->base + (addr - ref->base) : NULL;
}

void coll_maps_release(coll_ctx_t *c)
{
    for (int i = 0; i < COLL_MAPS; i++) {
        if (c->maps[i].used && c->maps[i].base)
            munmap(c->maps[i].base, c->maps[i].len);
        c->maps[i] = (coll_map_t){0};
    }
}

bool coll_cards_tide(const coll_ctx_t *c, const void *mine, const void *cards, size_t stride,
                     size_t ref_off)
{
    for (int p = 0; p < c->nranks; p++) {
        const char *card = p == c->rank ? mine : (const char *)cards + (size_t)p * stride;
        coll_mem_ref_t ref;
        memcpy(&ref, card + ref_off, sizeof(ref));
        if (!ref.serial)
            return false;
    }
    return true;
}
