/* fp_service.h - the scripts behind running fetchpool as a service: cancelling a job,
 * counting every completed job (for metrics that never go back), one consistent snapshot
 * of the queues, jobs and workers for the master's /metrics, and a worker dropping a task
 * of a cancelled job. Keys and arguments are listed with each script; PROTOCOL.md
 * ("Service keys") says who writes what.
 *
 * A job is cancelled in two steps: a client sets `cancelled` in its hash and pushes its id
 * to fp:ctl (from then on the finish script records none of its results and the retry
 * script retries none of its tasks); the master then runs the cancel script and completes
 * the job as `cancelled`. Workers read fp:cancelled with every heartbeat and abort what
 * they run of those jobs. */
#ifndef FP_SERVICE_H
#define FP_SERVICE_H

#include <stdint.h>

#include "fp_scripts.h"

/* How long a cancelled job's id stays in fp:cancelled (a worker that was cut off from
 * Redis for longer finishes its tasks, whose results the finish script then ignores). */
#define FP_CANCELLED_KEEP_MS 3600000

/* Take every task of the job out of the queue, the retry set and the hosts' parked lists
 * (fp:park:<host> of the hosts in fp:parked, fp_polite.h), drop its unread input, and list
 * it in fp:cancelled (pruning ids older than ARGV[3] ms). Returns {queued tasks removed,
 * retries removed, parked tasks removed}. O(queue + retry set + parked tasks).
 * KEYS: fp:job:<id>, fp:tasks, fp:retry, fp:cancelled, fp:job:<id>:in.
 * ARGV: job id, "T1\t<id>\t" (the prefix of its task records), keep ms. */
extern const char fp_script_cancel[];

/* Add a completed (or cancelled) job's counters and latency histogram to fp:stats and
 * fp:stats:lat, once (field `folded` in the job hash); counts it in jobs_done or
 * jobs_cancelled. Returns 1 if added, 0 if it had been.
 * KEYS: fp:job:<id>, fp:job:<id>:lat, fp:stats, fp:stats:lat. ARGV: 1 if cancelled, else 0. */
extern const char fp_script_fold[];

/* Read-only: {{queue length, retry set size, dead letters, jobs waiting},
 * HGETALL fp:stats, HGETALL fp:stats:lat, {{id, HGETALL job hash, HGETALL its :lat}...},
 * {{worker id, heartbeat value (absent if expired)}...}}, at most ARGV[1] active jobs
 * and ARGV[2] workers. KEYS: fp:tasks, fp:retry, fp:dead, fp:jobs:new, fp:jobs:active,
 * fp:workers, fp:stats, fp:stats:lat. ARGV: max jobs, max workers. */
extern const char fp_script_snapshot[];

/* Take a task of a cancelled job out of a worker's processing list, without a result,
 * giving its host lease back (fp_polite.h). KEYS: fp:proc:<worker>. ARGV: the task record. */
extern const char fp_script_drop[];

void fp_call_cancel(fp_call *c, uint64_t job);
void fp_call_fold(fp_call *c, uint64_t job, int cancelled);
void fp_call_snapshot(fp_call *c, int max_jobs, int max_workers);
void fp_call_drop(fp_call *c, const char *worker, const char *task, size_t task_len);

#endif
