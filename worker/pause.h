/* pause.h - a worker's pause while its output cannot take files.
 *
 * The output (store.h's folder, or any other output that answers the same two questions:
 * "is this error the output's, not the body's?" and "can you take a file now?") reports
 * that it is unwritable with a reason. The pause then logs that once, shows the reason in
 * the heartbeat (fp_pause.shown), holds the work items whose file could not be stored,
 * probes the output every interval, gives each held item up once it has waited wait_ms,
 * and hands the rest back to run again when a probe passes. What "stop taking work",
 * "run again" and "give up" mean is the owner's (worker.c: no tasks, a transfer again, a
 * disk_full result), through the ops. */
#ifndef FP_PAUSE_H
#define FP_PAUSE_H

#include <stdint.h>
#include <uv.h>

#include "fp_record.h"

/* Embedded in the owner's work item. since: loop time (ms) its file first could not be
 * stored, 0 if never (the owner clears it when the item is done). */
typedef struct fp_pause_item {
    struct fp_pause_item *next;
    uint64_t since;
} fp_pause_item;

typedef struct fp_pause_ops {
    int (*probe)(void *arg);    /* 0 when the output takes files again, else -errno */
    void (*paused)(void *arg);  /* the pause began: stop taking work */
    void (*resumed)(void *arg); /* it ended: items were handed to rerun */
    void (*rerun)(void *arg, fp_pause_item *it);                       /* run it again */
    void (*give_up)(void *arg, fp_pause_item *it, uint64_t waited_ms); /* waited enough */
} fp_pause_ops;

typedef struct fp_pause {
    uv_timer_t timer;
    const fp_pause_ops *ops;
    void *arg;
    long interval_ms, wait_ms;
    fp_reason reason;  /* FP_OK while not paused */
    const char *shown; /* the reason as the heartbeat shows it, NULL while not paused */
    uint64_t since;    /* loop time (ms) the pause began */
    fp_pause_item *held;
    int nheld;
} fp_pause;

/* wait_ms: how long an item may wait (0: never held, the owner fails it at once); the
 * output is probed every interval_ms, or if 0 every min(2 s, wait_ms). */
void fp_pause_init(fp_pause *p, uv_loop_t *loop, long wait_ms, long interval_ms,
                   const fp_pause_ops *ops, void *arg);
static inline int fp_pause_on(const fp_pause *p)
{
    return p->reason != FP_OK;
}
/* The item's file could not be stored for reason why (err: -errno): holds it and starts a
 * pause (logged once) unless one is on. Returns 0 instead if it has waited wait_ms already
 * or nothing may wait: the owner fails it now (waited: how long it waited, ms). */
int fp_pause_hold(fp_pause *p, fp_pause_item *it, fp_reason why, int err, uint64_t *waited);
/* Ends the pause without a probe and returns the held items (a list by next) to the
 * owner, who keeps their tasks for someone else (shutdown). */
fp_pause_item *fp_pause_stop(fp_pause *p);
void fp_pause_close(fp_pause *p, uv_close_cb cb);

#endif
