/* queue.h - the worker's side of Redis: taking tasks, sending results, heartbeats.
 *
 * Two hiredis async connections on the worker's libuv loop: "pull" takes tasks (a Lua
 * script moves a batch from fp:tasks to this worker's processing list; when the queue is
 * empty it blocks in BLMOVE, which is why it has a connection of its own) and "cmd" sends
 * results, retries and heartbeats. Results wait in an outbox until Redis acknowledges
 * them; a lost connection puts the unacknowledged ones back and they are sent again after
 * the reconnect (the finish script is idempotent). Both connections reconnect with
 * backoff. */
#ifndef FP_QUEUE_H
#define FP_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"

typedef struct fp_queue fp_queue;

/* Called with each task record taken from Redis. The callee copies what it keeps. */
typedef void (*fp_queue_task_cb)(void *arg, const char *raw, size_t len);
/* Does the worker hold this task (running or waiting)? Used after a reconnect. */
typedef int (*fp_queue_known_cb)(void *arg, const char *raw, size_t len);
/* Called once the queue is closed (after fp_queue_shutdown). */
typedef void (*fp_queue_closed_cb)(void *arg);

typedef struct fp_queue_stats {
    uint64_t inflight, done, failed, retried, bytes;
} fp_queue_stats;

/* Checks Redis is reachable (synchronously, so a bad address fails at start), hands back
 * any tasks a previous worker with the same id left in its processing list, then opens the
 * async connections. NULL with a message logged on failure. */
fp_queue *fp_queue_new(uv_loop_t *loop, const fp_conf *conf, fp_queue_task_cb on_task,
                       fp_queue_known_cb known, void *arg);

/* Asks for up to n more tasks, at most recovered_slots of them recovered ones (tasks a
 * dead worker left; few run at once, so one that kills workers takes few others along).
 * Replaces an earlier wish; 0 stops asking. */
void fp_queue_want(fp_queue *q, int n, int recovered_slots);

/* Final result of a task: removes the task from the processing list and records the
 * result, atomically. raw: the task record as taken; result: an encoded R1 record. */
void fp_queue_finish(fp_queue *q, const char *raw, size_t rawlen, uint64_t job, uint64_t idx,
                     const char *result, size_t resultlen, int ok, const char *status,
                     uint64_t bytes, uint64_t total_us, int64_t bucket);
/* Puts the task back for another attempt after delay_ms. */
void fp_queue_retry(fp_queue *q, const char *raw, size_t rawlen, const char *next, size_t nextlen,
                    long delay_ms);
/* Moves an undecodable record from the processing list to the dead-letter list. */
void fp_queue_bury(fp_queue *q, const char *raw, size_t rawlen);

fp_queue_stats *fp_queue_stats_of(fp_queue *q);

/* Stops taking tasks; once every result is acknowledged, hands back what is left in the
 * processing list, removes the heartbeat and closes. Gives up on unacknowledged results
 * after wait_ms (they stay in the processing list for the master's reaper). */
void fp_queue_shutdown(fp_queue *q, long wait_ms, fp_queue_closed_cb closed, void *arg);

#endif
