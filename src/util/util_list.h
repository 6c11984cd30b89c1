/* Intrusive doubly linked list (circular, with a head node). */
#ifndef TIDE_UTIL_LIST_H
#define TIDE_UTIL_LIST_H

#include <stdbool.h>
#include "util_compiler.h"

typedef struct tide_list {
    struct tide_list *prev, *next;
} tide_list_t;

static inline void tide_list_init(tide_list_t *head)
{
    head->prev = head->next = head;
}

static inline bool tide_list_empty(const tide_list_t *head)
{
    return head->next == head;
}

static inline void tide_list_push_back(tide_list_t *head, tide_list_t *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void tide_list_remove(tide_list_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

#define tide_list_entry(node, type, member) tide_container_of(node, type, member)

/* Safe against removal of the current node. */
#define tide_list_for_each_safe(pos, tmp, head)                                                    \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
