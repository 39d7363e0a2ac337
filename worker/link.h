/* link.h - the worker's link to Redis: fetchpool's protocol on the worker's side: taking tasks,
 * sending results, retries and heartbeats, and the order of shutdown.
 *
 * Two connections (rconn.h, each reconnecting by itself) on the worker's libuv loop:
 * "pull" takes tasks (a Lua script moves a batch from fp:tasks to this worker's
 * processing list; when the queue is empty it blocks in BLMOVE, which is why it has a
 * connection of its own) and "cmd" sends results, retries and heartbeats. Results wait in
 * an outbox (outbox.h) until Redis acknowledges them and are sent again after a reconnect
 * (the finish script is idempotent). After a reconnect, and every 5 s, the worker takes
 * back tasks in its processing list that it does not hold (their delivery was cut).
 * The heartbeat is set only while the id is ours; a worker that finds it taken steps
 * down (fp_link_lost_cb). */
#ifndef FP_LINK_H
#define FP_LINK_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "fp_scripts.h"

typedef struct fp_link fp_link;

/* What the take script says of a task it hands over: run it, or fail it at once, because
 * its host was given up for its job (host_unavailable) or because Redis refused a call
 * judging it (a damaged job or host key, a narrow ACL: internal_error). */
typedef enum fp_take_verdict { FP_TAKE_RUN, FP_TAKE_HOST_DOWN, FP_TAKE_BROKEN } fp_take_verdict;

/* Called with each task record taken from Redis. The callee copies what it keeps.
 * why: Redis's error for FP_TAKE_BROKEN, else "". */
typedef void (*fp_link_task_cb)(void *arg, const char *raw, size_t len, fp_take_verdict v,
                                const char *why);
/* Does the worker hold this task (running or waiting)? Used after a reconnect. */
typedef int (*fp_link_known_cb)(void *arg, const char *raw, size_t len);
/* Called once the queue is closed (after fp_link_shutdown). */
typedef void (*fp_link_closed_cb)(void *arg);

/* Called when the list of cancelled jobs (fp:cancelled, read with every heartbeat) names
 * a job: the worker drops what it holds of those (fp_link_cancelled, fp_link_drop). */
typedef void (*fp_link_cancelled_cb)(void *arg);

/* Called once if another worker took over our id while we were cut off from Redis or
 * frozen (owner.h): the link has stopped taking tasks and heartbeats and sends nothing
 * more that moves a task (retries, give-backs, drops, dead letters are left out; results
 * still go); the worker drains without handing anything back and exits non-zero. */
typedef void (*fp_link_lost_cb)(void *arg);

/* The worker's counters (worker.c owns and updates them; the heartbeat reports them). */
typedef struct fp_counters {
    uint64_t inflight, done, failed, retried, bytes;
    const char *paused; /* why the worker takes no tasks (its output is unwritable), or NULL */
} fp_counters;

/* Checks Redis is reachable (synchronously, so a bad address fails at start), hands back
 * any tasks a previous worker with the same id left in its processing list, then opens the
 * async connections. NULL with a message logged on failure. */
fp_link *fp_link_new(uv_loop_t *loop, const fp_conf *conf, const fp_counters *stats,
                     fp_link_task_cb on_task, fp_link_known_cb known,
                     fp_link_cancelled_cb cancelled, fp_link_lost_cb lost, void *arg);

/* Asks for up to n more tasks, at most recovered_slots of them recovered ones (tasks a
 * dead worker left; one at a time, so one that kills workers never takes along a task it
 * already killed once). spare of the n are beyond the free slots: Redis hands those out
 * only from a queue longer than the other workers can start at once (fp_script_take);
 * while it holds them all back and no slot is free, the link asks again after 200 ms or
 * once a slot frees, not before.
 * Replaces an earlier wish; 0 stops asking. */
void fp_link_want(fp_link *q, int n, int spare, int recovered_slots);

/* Final result of a task: removes the task from the processing list and records the
 * result, atomically (a loop turn's results go in one call). f's strings are copied.
 * (The finish and retry scripts record nothing of a cancelled job; a task of one that
 * arrives is dropped before the worker sees it.) */
void fp_link_finish(fp_link *q, const fp_finish *f);
/* Makes the results gathered so far one call now, ahead of a take sent after it (the
 * batch otherwise closes after the loop turn's I/O). */
void fp_link_finish_close(fp_link *q);
/* Puts the task back for another attempt after delay_ms. status and retry_after_s (-1:
 * none) are what the host answered, for its backpressure. */
void fp_link_retry(fp_link *q, uint64_t job, const char *raw, size_t rawlen, const char *next,
                   size_t nextlen, long delay_ms, const char *status, long retry_after_s);
/* Hands a task back to the head of the queue as it is (no attempt spent): a task this
 * worker took but will not run (its output cannot take files). */
void fp_link_give_back(fp_link *q, const char *raw, size_t rawlen);
/* Is the job cancelled (named by the last heartbeat's read of fp:cancelled)? */
int fp_link_cancelled(const fp_link *q, uint64_t job);
/* Takes a task of a cancelled job out of the processing list, without a result. */
void fp_link_drop(fp_link *q, const char *raw, size_t rawlen);
/* Sends a call of another module (rcache.c) on the command connection; cb (may be NULL)
 * gets its reply, NULL if the connection was lost. -1 if the connection is down or the
 * link is stopping (nothing is sent). */
int fp_link_call(fp_link *q, const fp_call *c, redisCallbackFn *cb, void *priv);
/* Moves an undecodable record from the processing list to the dead-letter list. */
void fp_link_bury(fp_link *q, const char *raw, size_t rawlen);

/* Stops taking tasks; once every result is acknowledged and a heartbeat confirmed the id
 * is ours, hands back what is left in the processing list, removes the heartbeat and
 * closes (a link that stepped down leaves the list and the heartbeat to the new owner).
 * Gives up on unacknowledged results after wait_ms (they stay in the processing list for
 * the master's reaper). */
void fp_link_shutdown(fp_link *q, long wait_ms, fp_link_closed_cb closed, void *arg);

#endif
