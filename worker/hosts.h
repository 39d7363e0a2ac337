/* hosts.h - per-host politeness: at most `cap` transfers in flight to one host, the rest
 * wait in that host's FIFO. Hosts with waiting transfers sit on a ring that the
 * scheduler walks round robin, so one slow host cannot take every slot.
 *
 * What waits is an fp_hosts_item embedded in the caller's own record. The hosts module
 * owns the host records and counts each host's transfers itself: fp_hosts_next starts
 * one, fp_hosts_end ends it, and a host with nothing running or waiting is freed. */
#ifndef FP_HOSTS_H
#define FP_HOSTS_H

#include <stddef.h>

struct fp_host;

typedef struct fp_hosts_item {
    struct fp_hosts_item *next; /* in its host's wait queue */
    struct fp_host *host;
} fp_hosts_item;

typedef struct fp_host {
    struct fp_host *hnext;         /* hash chain */
    struct fp_host *rprev, *rnext; /* ring of hosts with waiting transfers */
    int on_ring;
    int active; /* transfers in flight */
    fp_hosts_item *wait_head, *wait_tail;
    char name[]; /* lower-case host name */
} fp_host;

#define FP_HOSTS_BUCKETS 4096

typedef struct fp_hosts {
    fp_host *bucket[FP_HOSTS_BUCKETS];
    fp_host *ring; /* next host to look at */
    int cap;       /* 0: no cap */
    int waiting;   /* transfers waiting, all hosts */
} fp_hosts;

void fp_hosts_init(fp_hosts *h, int cap);
/* Queues it behind the host of url (a host record is made on first use). 0, or -1 if out
 * of memory (it is not queued). */
int fp_hosts_wait(fp_hosts *h, fp_hosts_item *it, const char *url);
/* Takes the next waiting item whose host is under its cap and counts it as started, or
 * NULL. */
fp_hosts_item *fp_hosts_next(fp_hosts *h);
/* A started item ended. */
void fp_hosts_end(fp_hosts *h, fp_hosts_item *it);
/* Removes and returns a waiting item (never started), NULL when none is left. */
fp_hosts_item *fp_hosts_drop_waiting(fp_hosts *h);
void fp_hosts_free(fp_hosts *h);
/* The host name of a URL as the cluster-wide limits group it (fp_polite.h): lower-case,
 * without userinfo and port. */
void fp_hosts_name(const char *url, char *out, size_t outlen);

#endif
