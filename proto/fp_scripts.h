/* fp_scripts.h - the Lua scripts that make each queue step one atomic Redis command.
 *
 * Every state change that touches more than one key runs as one script, so a crash of
 * any process between two commands can never lose a task or count a result twice: a
 * task is always in exactly one of fp:tasks, a processing list, fp:retry, or (as its
 * result) the job's result hash. Keys and arguments are listed with each script. */
#ifndef FP_SCRIPTS_H
#define FP_SCRIPTS_H

/* Move up to ARGV[1] tasks from the queue to a processing list, taking at most ARGV[3]
 * recovered tasks (flag bit 2; the others go to the tail of the queue). Returns
 * {tasks, number of recovered tasks passed over}. Registers the worker in fp:workers
 * and starts its heartbeat first, so the reaper knows every list that may hold tasks and
 * never mistakes a starting worker for a dead one.
 * KEYS: fp:tasks, fp:proc:<worker>, fp:workers, fp:worker:<worker>.
 * ARGV: n, worker id, recovered tasks allowed, heartbeat expiry (ms). */
extern const char fp_script_fetch[];

/* Record the final results of one or more tasks: for each, remove the task from the
 * processing list, HSETNX the result (a duplicate is ignored, so every result counts once;
 * so is a result for a job that no longer exists), bump the job's counters, and when
 * done == total on a sealed job push its id to fp:done. Returns how many were counted.
 * KEYS: fp:proc:<worker> (any name if no task), fp:done, then for each result
 * fp:job:<id>, fp:job:<id>:res, fp:job:<id>:lat. ARGV, 9 for each result: task record
 * ("" if none), idx, result record, ok (1/0), status, bytes, total_us, latency bucket
 * ("" for none), job id. Workers send a loop turn's results in one call. */
extern const char fp_script_finish[];

/* Mark a job as fully fed; completes it if every task already has a result.
 * KEYS: fp:job:<id>, fp:done. ARGV: job id. */
extern const char fp_script_seal[];

/* Put a task back for a later attempt. KEYS: fp:proc:<worker>, fp:retry.
 * ARGV: old task record, new task record (attempt raised), delay in ms. */
extern const char fp_script_retry[];

/* Move retries that are due to the head of the queue. Returns how many.
 * KEYS: fp:retry, fp:tasks. ARGV: at most this many. */
extern const char fp_script_promote[];

/* Hand every task of a processing list back to the head of the queue. Returns how many.
 * KEYS: fp:proc:<worker>, fp:tasks. */
extern const char fp_script_release[];

/* Move an undecodable record from a processing list to the dead-letter list (capped).
 * KEYS: fp:proc:<worker>, fp:dead. ARGV: the record. */
extern const char fp_script_bury[];

/* Reaper: move one task of a dead worker back to the head of the queue with its attempt
 * raised, unless it has left the processing list meanwhile (the worker was only slow and
 * finished it). Returns 1 if moved. KEYS: fp:proc:<worker>, fp:tasks.
 * ARGV: task record, task record with the attempt raised. */
extern const char fp_script_requeue[];

/* Reaper: drop a worker from fp:workers once its processing list is empty and its
 * heartbeat is gone. KEYS: fp:proc:<worker>, fp:worker:<worker>, fp:workers.
 * ARGV: worker id. */
extern const char fp_script_forget[];

#endif
