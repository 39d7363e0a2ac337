/* fp_reap.h - hands back the tasks a worker left in its processing list when it died.
 *
 * Used by the master's reaper (a worker whose heartbeat expired) and by a worker starting
 * with the id of one that died (a restarted container keeps its hostname). Each task goes
 * back to the head of the queue with its attempt raised and the recovered flag set, or
 * gets the final result worker_lost once its last attempt died with its worker, so a task
 * that crashes every worker cannot loop forever. Runs on a synchronous hiredis context. */
#ifndef FP_REAP_H
#define FP_REAP_H

#include <hiredis/hiredis.h>

typedef struct fp_reap_counts {
    int back;   /* handed back to the queue */
    int lost;   /* failed as worker_lost */
    int dead;   /* undecodable: moved to fp:dead */
    int errors; /* Redis error replies (logged) */
    int alive;  /* stopped: the worker's heartbeat came back (it was only slow) */
} fp_reap_counts;

/* Stops as soon as the worker's heartbeat exists (n->alive): a worker that was only slow
 * keeps the rest of its tasks. Returns 0, or -1 if the connection broke (c->err says
 * why). */
int fp_reap_list(redisContext *c, const char *worker, fp_reap_counts *n);

#endif
