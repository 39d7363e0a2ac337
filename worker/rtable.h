/* rtable.h - the robots cache's table of origins: a hash of nodes the caller embeds in
 * its entries, with a least-recently-used list, bounded by entries and by bytes.
 *
 * The table never allocates or frees an entry itself: the owner says through idle() which
 * nodes may go (never one in use: a fetch or a Redis call in flight, tasks waiting on it)
 * and frees them in drop(). Over either bound, the least recently used idle nodes are
 * dropped; the node used last (just added or found) never is, so the caller can go on
 * using it. If every other node is in use the table stays over its bound until they are
 * not: what is in use is bounded by the tasks the worker holds. Buckets are sized to
 * the entry bound (a power of two, at least that many), so chains stay about one long. */
#ifndef FP_RTABLE_H
#define FP_RTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fp_rtable_node {
    struct fp_rtable_node *hnext; /* hash chain */
    struct fp_rtable_node *newer; /* LRU list: towards the most recently used */
    struct fp_rtable_node *older; /* ... and towards the least */
    const char *key;              /* the owner's, lives as long as the node */
    uint32_t hash;
    size_t bytes; /* what the entry costs; set with fp_rtable_resize */
} fp_rtable_node;

enum { FP_RTABLE_BUSY, FP_RTABLE_IDLE, FP_RTABLE_EXPIRED };

/* FP_RTABLE_BUSY (never dropped), FP_RTABLE_IDLE (may be evicted) or FP_RTABLE_EXPIRED
 * (dropped by fp_rtable_sweep too). */
typedef int (*fp_rtable_idle_fn)(const fp_rtable_node *n, void *arg);
/* Frees the entry of n, which is out of the table already. */
typedef void (*fp_rtable_drop_fn)(fp_rtable_node *n, void *arg);

typedef struct fp_rtable {
    fp_rtable_node **bucket;
    size_t mask;             /* buckets - 1 */
    size_t n, bytes;         /* what is in the table */
    size_t max_n, max_bytes; /* the bounds */
    fp_rtable_node *newest, *oldest;
    fp_rtable_idle_fn idle;
    fp_rtable_drop_fn drop;
    void *arg;
    uint64_t evicted, expired; /* dropped for the bounds, dropped by a sweep */
} fp_rtable;

/* 0, or -1 out of memory. max_n >= 1. */
int fp_rtable_init(fp_rtable *t, size_t max_n, size_t max_bytes, fp_rtable_idle_fn idle,
                   fp_rtable_drop_fn drop, void *arg);
/* The node of key, made the most recently used; NULL if none. */
fp_rtable_node *fp_rtable_get(fp_rtable *t, const char *key);
/* Adds n (key set, not in the table) as the most recently used, then keeps the bounds. */
void fp_rtable_add(fp_rtable *t, fp_rtable_node *n, size_t bytes);
/* n's entry now costs bytes; n becomes the most recently used, and the bounds are kept. */
void fp_rtable_resize(fp_rtable *t, fp_rtable_node *n, size_t bytes);
/* Drops every expired idle node; returns how many. */
size_t fp_rtable_sweep(fp_rtable *t);
/* Drops every node, busy or not, and frees the buckets (shutdown). */
void fp_rtable_clear(fp_rtable *t);

#endif
