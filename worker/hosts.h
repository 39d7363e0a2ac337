/* hosts.h - per-host politeness: at most `cap` transfers in flight to one host, the rest
 * wait in that host's FIFO. Hosts with waiting transfers sit on a ring that the
 * scheduler walks round robin, so one slow host cannot take every slot. */
#ifndef FP_HOSTS_H
#define FP_HOSTS_H

#include "xfer.h"

typedef struct fp_host {
    struct fp_host *hnext;         /* hash chain */
    struct fp_host *rprev, *rnext; /* ring of hosts with waiting transfers */
    int on_ring;
    int active; /* transfers in flight */
    fp_xfer *wait_head, *wait_tail;
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
/* The host record for a URL's host (created on first use). NULL if out of memory. */
fp_host *fp_hosts_get(fp_hosts *h, const char *url);
/* Queues x behind its host. */
void fp_hosts_wait(fp_hosts *h, fp_xfer *x);
/* Takes the next waiting transfer whose host is under its cap, or NULL. */
fp_xfer *fp_hosts_next(fp_hosts *h);
/* A transfer of this host ended; frees the host record once it is idle. */
void fp_hosts_done(fp_hosts *h, fp_host *host);
/* Removes and returns every waiting transfer, one at a time (NULL when none). */
fp_xfer *fp_hosts_drop_waiting(fp_hosts *h);
void fp_hosts_free(fp_hosts *h);

#endif
