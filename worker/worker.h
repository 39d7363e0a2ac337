/* worker.h - the worker process: tasks in, transfers out, results back.
 *
 * Owns the loop's pieces: the Redis queue (queue.h), the libcurl multi driver (fetch.h),
 * the transfer slots (xfer.h) with their per-host limits (hosts.h), and the store
 * (store.h). SIGTERM/SIGINT start a graceful drain: no new tasks, transfers in flight may
 * finish within the grace period, the rest go back to the queue; a second signal hands
 * back at once. */
#ifndef FP_WORKER_H
#define FP_WORKER_H

#include "conf.h"

/* Runs until drained. Returns the process exit status. */
int fp_worker_run(const fp_conf *conf);

#endif
