/* rtable.c - a bounded hash with an LRU list for the robots cache (see rtable.h). */
#include "rtable.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash(const char *s)
{
    uint32_t v = 2166136261u; /* FNV-1a */

    while (*s)
        v = (v ^ (unsigned char)*s++) * 16777619u;
    return v;
}

int fp_rtable_init(fp_rtable *t, size_t max_n, size_t max_bytes, fp_rtable_idle_fn idle,
                   fp_rtable_drop_fn drop, void *arg)
{
    size_t nb = 16;

    memset(t, 0, sizeof(*t));
    while (nb < max_n)
        nb *= 2;
    if ((t->bucket = calloc(nb, sizeof(*t->bucket))) == NULL)
        return -1;
    t->mask = nb - 1;
    t->max_n = max_n ? max_n : 1;
    t->max_bytes = max_bytes;
    t->idle = idle;
    t->drop = drop;
    t->arg = arg;
    return 0;
}

static void lru_unlink(fp_rtable *t, fp_rtable_node *n)
{
    if (n->newer)
        n->newer->older = n->older;
    else
        t->newest = n->older;
    if (n->older)
        n->older->newer = n->newer;
    else
        t->oldest = n->newer;
    n->newer = n->older = NULL;
}

static void lru_push(fp_rtable *t, fp_rtable_node *n)
{
    n->older = t->newest;
    n->newer = NULL;
    if (t->newest)
        t->newest->newer = n;
    else
        t->oldest = n;
    t->newest = n;
}

/* Takes n out of the table and hands it to drop(). */
static void remove_node(fp_rtable *t, fp_rtable_node *n)
{
    fp_rtable_node **pp = &t->bucket[n->hash & t->mask];

    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    lru_unlink(t, n);
    t->n--;
    t->bytes -= n->bytes;
    t->drop(n, t->arg);
}

fp_rtable_node *fp_rtable_get(fp_rtable *t, const char *key)
{
    uint32_t h = hash(key);
    fp_rtable_node *n;

    for (n = t->bucket[h & t->mask]; n; n = n->hnext)
        if (n->hash == h && strcmp(n->key, key) == 0) {
            if (t->newest != n) {
                lru_unlink(t, n);
                lru_push(t, n);
            }
            return n;
        }
    return NULL;
}

static int over(const fp_rtable *t)
{
    return t->n > t->max_n || (t->max_bytes && t->bytes > t->max_bytes);
}

/* From the least recently used on, drops idle nodes until the bounds hold; never the
 * newest. */
static void trim(fp_rtable *t)
{
    fp_rtable_node *n = t->oldest, *next;

    while (n && n != t->newest && over(t)) {
        next = n->newer;
        if (t->idle(n, t->arg) != FP_RTABLE_BUSY) {
            remove_node(t, n);
            t->evicted++;
        }
        n = next;
    }
}

void fp_rtable_add(fp_rtable *t, fp_rtable_node *n, size_t bytes)
{
    size_t b;

    n->hash = hash(n->key);
    b = n->hash & t->mask;
    n->hnext = t->bucket[b];
    t->bucket[b] = n;
    n->bytes = bytes;
    t->n++;
    t->bytes += bytes;
    lru_push(t, n);
    trim(t);
}

void fp_rtable_resize(fp_rtable *t, fp_rtable_node *n, size_t bytes)
{
    t->bytes = t->bytes - n->bytes + bytes;
    n->bytes = bytes;
    if (t->newest != n) { /* rules loaded are a use */
        lru_unlink(t, n);
        lru_push(t, n);
    }
    trim(t);
}

size_t fp_rtable_sweep(fp_rtable *t)
{
    fp_rtable_node *n = t->oldest, *next;
    size_t k = 0;

    for (; n; n = next) {
        next = n->newer;
        if (t->idle(n, t->arg) == FP_RTABLE_EXPIRED) {
            remove_node(t, n);
            k++;
        }
    }
    t->expired += k;
    return k;
}

void fp_rtable_clear(fp_rtable *t)
{
    while (t->oldest)
        remove_node(t, t->oldest);
    free(t->bucket);
    t->bucket = NULL;
}
