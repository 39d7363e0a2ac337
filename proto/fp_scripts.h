/* fp_scripts.h - the Lua scripts that make each queue step one atomic Redis command.
 *
 * Every state change that touches more than one key runs as one script, so a crash of
 * any process between two commands can never lose a task or count a result twice: a
 * task is always in exactly one of fp:tasks, a processing list, fp:retry, or (as its
 * result) the job's result hash. Keys and arguments are listed with each script. */
#ifndef FP_SCRIPTS_H
#define FP_SCRIPTS_H

#include <stddef.h>
#include <stdint.h>

#include "fp_keys.h"

/* Move up to ARGV[1] tasks from the queue to a processing list, taking at most ARGV[3]
 * recovered tasks (flag bit 2; the others go to the tail of the queue). A task whose job
 * limits its host (host_conns, host_rate) and whose host has no budget left is parked
 * instead (fp_polite.h); each task taken for a job with host_conns holds a lease that
 * expires after ARGV[5] ms unless given back first. ARGV[6], if not empty, is a task
 * already in the processing list (moved there by BLMOVE): judged first, parked if it
 * must wait, and put back at the tail like the others if it is a recovered task beyond
 * ARGV[3]. Returns {tasks to run, number of recovered tasks passed over, tasks whose host
 * was given up for the job (in the processing list; the worker fails them as
 * host_unavailable), tasks a call judging them failed for (a job or host key of the
 * wrong type, a command the ACL user may not run: in the processing list; the worker
 * fails them as internal_error), the first such error or ""}; tasks of a cancelled job
 * are dropped. Registers the worker
 * in fp:workers and starts its heartbeat first, so the reaper knows every list that may
 * hold tasks and never mistakes a starting worker for a dead one.
 * KEYS: fp:tasks, fp:proc:<worker>, fp:workers, fp:worker:<worker>.
 * ARGV: n, worker id, recovered tasks allowed, heartbeat expiry (ms), lease expiry (ms),
 * task to judge or "". */
extern const char fp_script_take[];

/* Record the final results of one or more tasks: for each, remove the task from the
 * processing list (if it is still there, give its host lease back and tell the host's
 * backpressure what the host answered: a result sent again does neither); unless its slot
 * already has a result (bit idx of the part's seen bitmap fp:job:<id>:seen:<p>, or bit p
 * of fp:job:<id>:parts once the master writes the part out: a duplicate is ignored, so
 * every result counts once; so is a result for a job that
 * no longer exists or was cancelled; but a worker_lost result, the reaper's word for a
 * worker it gave up on, marked in fp:job:<id>:lost:<p>, gives way to the real result of
 * that task while the job is not complete and its part not marked: the worker was only
 * frozen, and the counters move with it) RPUSH the result to fp:job:<id>:out for the
 * master to write out, bump the job's counters, and when done == total on a sealed job
 * push its id to fp:done. p = idx / part_size (job field, FP_PART_SIZE_DEFAULT). Returns
 * how many were counted. A task whose job keys are of the wrong type or not allowed to
 * this ACL user, whose numbers do not parse, or whose job's part_size is not a whole
 * number from 1 to FP_PART_SIZE_MAX, is refused before anything is written
 * (its result and counters change together or not at all) and left in the processing
 * list; the others are recorded, and the reply is then the error "FPREFUSED <n> of <m>
 * ...". KEYS: fp:proc:<worker> (any name if no task), fp:done, then for each result
 * fp:job:<id>, fp:job:<id>:out. ARGV, 8 for each result: task record ("" if none), idx,
 * result record, ok (1/0), status, bytes, total_us, job id. Workers send a loop turn's
 * results in one call. (The latency histogram is the master's: see the trim script.) */
extern const char fp_script_finish[];

/* Mark a job as fully fed; completes it if every task already has a result.
 * KEYS: fp:job:<id>, fp:done. ARGV: job id. */
extern const char fp_script_seal[];

/* Put a task back for a later attempt (its host lease given back), unless its job was cancelled
 * (then it is only taken out of the processing list; returns 0). KEYS: fp:proc:<worker>, fp:retry,
 * fp:job:<id>. ARGV: old task record, new task record (attempt raised), delay in ms, the
 * attempt's status, the host's Retry-After in seconds (-1: none); for a job with per-host caps
 * these two slow down or pause the host (fp_polite.h), once: only if the task was still in
 * the processing list (a retry sent again after a lost reply tells the host nothing).
 * A task no longer in the list is not scheduled either (returns 0): a resent retry did it
 * already, or a reaper handed the task back meanwhile (its worker was cut off or frozen,
 * or another worker took its id), and a second copy would run the task twice. */
extern const char fp_script_retry[];

/* Move retries that are due to the head of the queue, and parked tasks of hosts that are
 * due as far as their budget lets them start. Returns how many.
 * KEYS: fp:retry, fp:tasks, fp:parked. ARGV: at most this many retries. */
extern const char fp_script_promote[];

/* Hand every task of a processing list back to the head of the queue. Returns how many.
 * KEYS: fp:proc:<worker>, fp:tasks. */
extern const char fp_script_release[];

/* Move an undecodable record from a processing list to the dead-letter list (capped).
 * KEYS: fp:proc:<worker>, fp:dead. ARGV: the record. */
extern const char fp_script_bury[];

/* The last way out of a task whose result Redis refused (fp_script_finish's FPREFUSED, or
 * any other error that is not transient): take the task record out of the processing
 * list and, unless done before (the result slot is taken, or with no usable slot, a job
 * hash or part_size that is unusable, the task had already left the list), put it on the
 * dead-letter list, record the failure result and count it as failed with the given
 * reason (if the job hash is usable), completing the job if it was the last. A task of a
 * cancelled job only leaves the list. Returns 1 if it counted the result. Every step that
 * Redis refuses is skipped, so the call itself cannot fail.
 * KEYS: fp:proc:<worker>, fp:dead, fp:job:<id>, fp:job:<id>:out, fp:done.
 * ARGV: task record, idx, result record, job id, status. */
extern const char fp_script_abandon[];

/* Reaper: move one task of a dead worker back to the head of the queue with its attempt
 * raised, unless it has left the processing list meanwhile (the worker was only slow and
 * finished it). Returns 1 if moved, -1 if the worker's heartbeat is back (it was only
 * slow: nothing moved). KEYS: fp:proc:<worker>, fp:tasks, fp:worker:<worker>.
 * ARGV: task record, task record with the attempt raised. */
extern const char fp_script_requeue[];

/* A live worker that will not run a task it took (its output folder cannot take files)
 * moves it back to the head of the queue as it is, no attempt spent, giving its host
 * lease back. Returns 1 if moved, 0 if it had left the list. KEYS: fp:proc:<worker>,
 * fp:tasks. ARGV: task record. */
extern const char fp_script_give_back[];

/* Reaper: drop a worker from fp:workers once its processing list is empty and its
 * heartbeat is gone. KEYS: fp:proc:<worker>, fp:worker:<worker>, fp:workers.
 * ARGV: worker id. */
extern const char fp_script_forget[];

/* Redis's TIME, from a script: unlike a plain read, it waits out CLIENT PAUSE WRITE (the
 * master's reaper times it to see Redis stall). KEYS, ARGV: none. */
extern const char fp_script_now[];

/* Master, the writer of a job's results (fp_trim.c): delete the first ARGV[2] records of
 * fp:job:<id>:out, which it has spooled, only if the writer lease is still ARGV[1] and the
 * last of them is still at index ARGV[2]-1 (the records it read); the lease is then renewed
 * for ARGV[4] ms. Returns the count, or -1 (the lease is another master's) or -2 (the
 * list's head moved) with nothing deleted: the job's results are no longer this master's
 * to drain. With the trim, in the same script, the successes among those records join
 * the job's latency histogram: ARGV[5], "<bucket> <count>" pairs separated by spaces
 * (fp_stats_bucket of each ok result's total_us; "" for none), added to fp:job:<id>:lat
 * unless that key is not a hash (then skipped; the job's report warns). So a result
 * counts in the histogram exactly when it leaves :out, once, like its row in the results
 * files. KEYS: fp:job:<id>:out, fp:job:<id>:writer, fp:job:<id>:lat. ARGV: writer id,
 * count, the last record read, lease ms, histogram. */
extern const char fp_script_trim[];

/* Calls --------------------------------------------------------------------------------
 * Each script's calling convention (its KEYS and ARGV, in order) is written once, in the
 * fp_call_* builder below, and every caller (worker, master, reaper) uses it. A call is
 * the argv/len pair hiredis's *Argv functions take. Strings passed to a builder are
 * pointed to and must outlive the call; keys and numbers it formats live in the call. */
#define FP_CALL_ARGS 24

typedef struct fp_call {
    int argc;
    const char *argv[FP_CALL_ARGS];
    size_t len[FP_CALL_ARGS];
    int task_at;               /* the argument that is a task record the call settles, or -1 */
    char buf[12 * FP_KEY_MAX]; /* keys and numbers formatted by the builder */
    size_t used;
    const char *script; /* the source it runs (argv[1] of EVAL) */
} fp_call;

/* Builders make EVAL calls, the source in argv[1]: then Redis receives and hashes the
 * whole source with every call (9-12 KB for the take, the finish and the promote: about 20
 * µs of Redis's CPU each). fp_call_by_sha makes it EVALSHA of the source's SHA1 (left as
 * it is if libcrypto has no SHA1). A Redis that lacks the script (restarted, SCRIPT
 * FLUSH) answers NOSCRIPT having run nothing; fp_call_by_source turns the call back into
 * EVAL, to send again, which caches it. The digests are computed once (not thread-safe,
 * like the builders). fp_script_sha: a script's SHA1 in hex, or NULL. */
void fp_call_by_sha(fp_call *c);
void fp_call_by_source(fp_call *c);
int fp_call_is_by_sha(const fp_call *c);
const char *fp_script_sha(const char *script);

/* One task's final result, as the finish script records it. */
typedef struct fp_finish {
    const char *task; /* the task record as taken (NULL: none, e.g. an invalid line) */
    size_t task_len;
    uint64_t job, idx;
    const char *result; /* an encoded R1 record */
    size_t result_len;
    int ok;
    const char *status;
    uint64_t bytes, total_us;
} fp_finish;

#define FP_FINISH_KEYS 2 /* per result */
#define FP_FINISH_ARGS 8 /* per result */

/* A finish call for one result. */
void fp_call_finish(fp_call *c, const char *worker, const fp_finish *f);
/* A finish call for n results, in parts (the worker batches a loop turn's results): the
 * head, then for each result fp_call_finish_part, whose first FP_FINISH_KEYS arguments
 * go after every earlier result's keys and the other FP_FINISH_ARGS after all keys. */
void fp_call_finish_head(fp_call *c, const char *worker, int n);
void fp_call_finish_part(fp_call *c, const fp_finish *f);

/* Up to n tasks, spare of them beyond the worker's free slots (taken only out of what the
 * queue holds beyond the other workers' concurrency, counted as the worker's own:
 * fp_script_take); check: a task BLMOVE moved into the processing list, to judge (NULL:
 * none). */
void fp_call_take(fp_call *c, const char *worker, int n, int spare, int concurrency,
                  int recovered_slots, long lease_ms, const char *check, size_t check_len);
void fp_call_seal(fp_call *c, uint64_t job);
/* status: what the attempt ended with, retry_after_s: the host's Retry-After (-1: none);
 * both feed the host's backpressure (fp_polite.h). */
void fp_call_retry(fp_call *c, const char *worker, uint64_t job, const char *task, size_t task_len,
                   const char *next, size_t next_len, long delay_ms, const char *status,
                   long retry_after_s);
void fp_call_promote(fp_call *c, int max);
void fp_call_release(fp_call *c, const char *worker);
void fp_call_bury(fp_call *c, const char *worker, const char *rec, size_t len);
void fp_call_abandon(fp_call *c, const char *worker, const char *task, size_t task_len,
                     uint64_t job, uint64_t idx, const char *result, size_t result_len,
                     const char *status);
void fp_call_requeue(fp_call *c, const char *worker, const char *task, size_t task_len,
                     const char *next, size_t next_len);
void fp_call_give_back(fp_call *c, const char *worker, const char *task, size_t task_len);
void fp_call_forget(fp_call *c, const char *worker);
void fp_call_now(fp_call *c);
void fp_call_trim(fp_call *c, uint64_t job, const char *writer, uint64_t n, const char *last,
                  size_t last_len, long lease_ms, const char *hist, size_t hist_len);

/* Building blocks for the builders of other files (fp_service.c): start a call of script
 * with numkeys keys, then add its arguments in order. */
void fp_call_begin(fp_call *c, const char *script, int numkeys);
void fp_call_arg(fp_call *c, const char *s, size_t len);
void fp_call_arg_u64(fp_call *c, uint64_t v);
void fp_call_arg_job_key(fp_call *c, uint64_t job, fp_job_key which);
void fp_call_arg_task(fp_call *c, const char *task, size_t len);
char *fp_call_room(fp_call *c); /* FP_KEY_MAX bytes in the call's buffer */

#endif
