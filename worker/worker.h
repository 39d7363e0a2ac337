/* worker.h - the worker process: tasks in, transfers out, results back.
 *
 * Owns the loop's pieces: the link to Redis (link.h), the libcurl multi driver
 * (curl_uv.h), the slots that hold tasks and their transfers (xfer.h) under per-host limits
 * (hosts.h), the counters the heartbeat reports, the store (store.h) and the pause while it
 * cannot take files (pause.h). SIGTERM/SIGINT start a
 * graceful drain: no new tasks, transfers in flight may finish within the grace period, the rest go
 * back to the queue; a second signal hands back at once. */
#ifndef FP_WORKER_H
#define FP_WORKER_H

#include "conf.h"

/* Exit status of a worker that stepped down because another one took over its id while
 * it was cut off from Redis or frozen (link.h). */
#define FP_EXIT_ID_TAKEN 3

/* Runs until drained. Returns the process exit status. */
int fp_worker_run(const fp_conf *conf);

#endif
