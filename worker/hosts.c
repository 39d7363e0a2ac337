/* hosts.c - per-host limits and wait queues (see hosts.h). */
#include "hosts.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void fp_hosts_init(fp_hosts *h, int cap)
{
    memset(h, 0, sizeof(*h));
    h->cap = cap;
}

static uint32_t hash(const char *s)
{
    uint32_t v = 2166136261u; /* FNV-1a */
    while (*s)
        v = (v ^ (unsigned char)*s++) * 16777619u;
    return v;
}

/* The authority of an already normalised URL: between "://" and the next '/', minus any
 * userinfo. Good enough for grouping; the URL was validated by libcurl at intake. */
static void host_of(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://"), *end, *at;
    size_t n = 0;

    p = p ? p + 3 : url;
    end = p + strcspn(p, "/?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    while (p < end && n + 1 < outlen)
        out[n++] = (char)tolower((unsigned char)*p++);
    out[n] = '\0';
}

static fp_host *get(fp_hosts *h, const char *url)
{
    char name[512];
    uint32_t b;
    fp_host *e;
    size_t n;

    host_of(url, name, sizeof(name));
    b = hash(name) % FP_HOSTS_BUCKETS;
    for (e = h->bucket[b]; e; e = e->hnext)
        if (strcmp(e->name, name) == 0)
            return e;
    n = strlen(name);
    if ((e = calloc(1, sizeof(*e) + n + 1)) == NULL)
        return NULL;
    memcpy(e->name, name, n + 1);
    e->hnext = h->bucket[b];
    h->bucket[b] = e;
    return e;
}

static void ring_add(fp_hosts *h, fp_host *e)
{
    if (e->on_ring)
        return;
    e->on_ring = 1;
    if (h->ring == NULL) {
        e->rprev = e->rnext = e;
        h->ring = e;
    } else {
        e->rnext = h->ring;
        e->rprev = h->ring->rprev;
        h->ring->rprev->rnext = e;
        h->ring->rprev = e;
    }
}

static void ring_del(fp_hosts *h, fp_host *e)
{
    if (!e->on_ring)
        return;
    e->on_ring = 0;
    if (e->rnext == e) {
        h->ring = NULL;
    } else {
        e->rprev->rnext = e->rnext;
        e->rnext->rprev = e->rprev;
        if (h->ring == e)
            h->ring = e->rnext;
    }
    e->rprev = e->rnext = NULL;
}

int fp_hosts_wait(fp_hosts *h, fp_hosts_item *it, const char *url)
{
    fp_host *e = get(h, url);

    if (e == NULL)
        return -1;
    it->host = e;
    it->next = NULL;
    if (e->wait_tail)
        e->wait_tail->next = it;
    else
        e->wait_head = it;
    e->wait_tail = it;
    h->waiting++;
    ring_add(h, e);
    return 0;
}

static fp_hosts_item *pop(fp_hosts *h, fp_host *e)
{
    fp_hosts_item *x = e->wait_head;

    e->wait_head = x->next;
    if (e->wait_head == NULL) {
        e->wait_tail = NULL;
        ring_del(h, e);
    }
    x->next = NULL;
    h->waiting--;
    return x;
}

fp_hosts_item *fp_hosts_next(fp_hosts *h)
{
    fp_host *start = h->ring, *e = start;

    if (e == NULL)
        return NULL;
    do {
        if (h->cap == 0 || e->active < h->cap) {
            h->ring = e->rnext; /* round robin: the next call starts after this host */
            e->active++;
            return pop(h, e);
        }
        e = e->rnext;
    } while (e != start);
    return NULL;
}

static void unlink_host(fp_hosts *h, fp_host *e)
{
    fp_host **pp = &h->bucket[hash(e->name) % FP_HOSTS_BUCKETS];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e);
}

static void maybe_free(fp_hosts *h, fp_host *e)
{
    if (e->active == 0 && e->wait_head == NULL)
        unlink_host(h, e);
}

void fp_hosts_end(fp_hosts *h, fp_hosts_item *it)
{
    fp_host *e = it->host;

    it->host = NULL;
    e->active--;
    maybe_free(h, e);
}

fp_hosts_item *fp_hosts_drop_waiting(fp_hosts *h)
{
    fp_hosts_item *it;
    fp_host *e = h->ring;

    if (e == NULL)
        return NULL;
    it = pop(h, e);
    it->host = NULL;
    maybe_free(h, e);
    return it;
}

void fp_hosts_free(fp_hosts *h)
{
    int i;

    for (i = 0; i < FP_HOSTS_BUCKETS; i++) {
        while (h->bucket[i]) {
            fp_host *e = h->bucket[i];
            h->bucket[i] = e->hnext;
            free(e);
        }
    }
    h->ring = NULL;
}

void fp_hosts_name(const char *url, char *out, size_t outlen)
{
    char *colon;

    host_of(url, out, outlen);
    if (out[0] == '[') {
        char *end = strchr(out, ']');
        if (end)
            end[1] = '\0';
    } else if ((colon = strchr(out, ':')) != NULL) {
        *colon = '\0';
    }
}
