/* worker_int.h - the worker's state, shared by worker.c, hold.c and cancel.c: not an API,
 * only the worker's own files include it. worker.c owns every field; hold.c keeps the tasks
 * whose file the output folder could not take while the worker is paused; cancel.c drops
 * the tasks of cancelled jobs. */
#ifndef FP_WORKER_INT_H
#define FP_WORKER_INT_H

#include <stddef.h>
#include <uv.h>

#include "conf.h"
#include "curl_uv.h"
#include "hosts.h"
#include "link.h"
#include "pause.h"
#include "rcache.h"
#include "s3.h"
#include "store.h"
#include "xfer.h"

typedef struct fp_worker {
    uv_loop_t *loop;
    const fp_conf *conf;
    fp_store store;
    fp_curl_uv *curl;
    fp_s3 *s3;      /* with S3 output */
    int paused;     /* the object store is down: take and start nothing */
    fp_pause pause; /* on while the output folder cannot take files (hold.c) */
    fp_link *link;
    fp_counters counters; /* reported by the heartbeat */
    fp_hosts hosts;
    fp_rcache *robots;   /* robots.txt per origin (gate.c) */
    struct slot **slots; /* every slot ever made, for the final cleanup */
    int nslots;
    struct slot *free_slots;
    int inflight;
    /* Transfers finished but not yet stored and reported (worker.c, settle): off the
     * multi handle and out of inflight, so the next transfers start first. */
    struct slot *settle_head, **settle_tail;
    int settling;
    uv_idle_t settle;
    uint64_t starts; /* transfers started so far: the order of slot.started */
    int recovered;   /* recovered tasks held (running or waiting) */
    int draining, link_closing;
    uv_signal_t sigterm, sigint;
    uv_timer_t grace;
    const char *crash_on; /* test-only: abort() on a URL containing this */
    int exit_code;
} fp_worker;

/* Slots -----------------------------------------------------------------------------
 * A slot holds one task of this worker, waiting for its host, in flight, or finished and
 * waiting to be settled (its body stored, its result reported), and the transfer that
 * runs it. The scheduling state is the worker's; hosts.c counts each host's transfers
 * itself. With S3 output a slot stays in flight (and counted against --concurrency) while
 * its body uploads: that bounds the bodies waiting for the store. */

/* The upload of a slot's body and the result it completes. */
typedef struct upload {
    fp_s3_put put; /* first: what s3.c hands back is the upload */
    fp_result r;
    struct slot *owner;
} upload;

typedef struct slot {
    fp_hosts_item item; /* first: what hosts.c hands back is the slot */
    struct slot *next_free;
    struct slot *next_settle; /* in w->settle_head's queue */
    CURLcode rc;              /* how the transfer ended, while it waits there */
    uint64_t started, ended;  /* w->starts after its start, and when it finished */
    fp_xfer *x;
    char *raw; /* the task record as taken from Redis */
    size_t rawlen, rawcap;
    int held;              /* holds a task (waiting or running) */
    int active;            /* its transfer is on the multi handle */
    int recovered;         /* counted in w->recovered */
    int uploading;         /* its body is being uploaded (s3.c); still counted in w->inflight */
    upload *up;            /* with S3 output */
    fp_pause_item wait;    /* held by w->pause while its file waits for room (hold.c) */
    fp_rcache_item robots; /* waiting for its origin's robots.txt (gate.c) */
} slot;

#define FP_WK_SLOT_OF_WAIT(it) ((slot *)((char *)(it)-offsetof(slot, wait)))

/* worker.c, for hold.c and cancel.c */
void fp_wk_report(fp_worker *w, slot *s, fp_reason reason, fp_result *r);
void fp_wk_slot_put(fp_worker *w, slot *s);
/* A slot that fp_hosts_next started is done with: the one place that undoes start(). */
void fp_wk_slot_end(fp_worker *w, slot *s);
void fp_wk_schedule(fp_worker *w);
void fp_wk_top_up(fp_worker *w);
/* close.c: the link's closed callback: closes the rest, then the loop ends. */
void fp_wk_link_closed_cb(void *arg);
/* cancel.c: the link's callback when fp:cancelled names jobs: their tasks held here are
 * dropped (running transfers aborted, waiting ones taken off their hosts' queues). */
void fp_wk_cancelled_cb(void *arg);
/* Takes no tasks and starts none: the object store is down or the output folder full. */
static inline int fp_wk_paused(const fp_worker *w)
{
    return w->paused || fp_pause_on(&w->pause);
}

/* gate.c: before a task waits for its host. fp_wk_gate queues s's task behind its host
 * (0), waits for its robots.txt (0, the slot is then the cache's until it decides), or
 * fails it without a transfer and frees the slot (1). */
int fp_wk_gate_init(fp_worker *w);
int fp_wk_gate(fp_worker *w, slot *s);
/* The result of a task that never had a transfer (the task as taken, raw/len). */
void fp_wk_fail_untried(fp_worker *w, const char *raw, size_t len, const fp_task *t,
                        fp_reason reason, const char *why);
void fp_wk_fail_judged(fp_worker *w, const char *raw, size_t len, const fp_task *t,
                       fp_take_verdict v, const char *why);

/* hold.c: the pause's work (pause.h) on the worker's slots. */
extern const fp_pause_ops fp_hold_ops;
/* Either pause began (this one, or the object store's, s3.h): the tasks not started go
 * back to the queue, unspent, so other workers run them; asks for no more. */
void fp_hold_give_back(fp_worker *w);
/* The output folder could not take the file of s's finished transfer (its transfer is
 * stopped): holds the task for room, or fails it (reason, r) if it may wait no longer. */
void fp_hold(fp_worker *w, slot *s, fp_reason reason, fp_result *r);
/* Shutdown: the held tasks stay in the processing list (the link hands them back). */
void fp_hold_drop(fp_worker *w);

#endif
