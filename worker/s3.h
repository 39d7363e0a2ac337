/* s3.h - stores bodies as objects in an S3-compatible store, on the worker's libuv loop.
 *
 * The worker's other output besides the folder of store.c: a body that passed every check
 * (held in memory, or spilled to its temp file) is uploaded under the same content-
 * addressed name it would have on disk, <prefix>/ab/<sha256>.<ext>. Uploads run on a
 * libcurl multi handle of their own (curl_uv.c on the same loop), so they never block the
 * loop and keep their own connection pool to the store. Each upload asks HEAD first and
 * PUTs only a missing object; digests stored recently by this worker skip both. A large
 * body is streamed from its temp file by a read callback, never loaded.
 *
 * Failures: 5xx, 429/SlowDown, timeouts (--timeout, or FP_S3_STALL_S without a byte moving)
 * and connection trouble are retried with backoff
 * (FP_S3_TRIES per request). When they run out, the store is down: the module says
 * "pause" through pause_cb (the worker stops taking tasks), holds the upload, probes the
 * store every FP_S3_PROBE_MS with one held upload, and on the first success says "resume"
 * and restarts every held upload. Held uploads fail as store_unavailable only once the
 * store has been down for wait_ms; after that, uploads are tried (with their retries)
 * and fail at once until the store answers again. A refusal (403, no such bucket, other
 * 4xx) fails the upload as store_denied at once. */
#ifndef FP_S3_H
#define FP_S3_H

#include <stdint.h>
#include <uv.h>

#include "fp_record.h"
#include "s3_req.h"

#define FP_S3_TRIES    4    /* attempts per request before the store counts as down */
#define FP_S3_PROBE_MS 1000 /* a down store is probed this often */
#define FP_S3_STALL_S  15   /* a request that moves no byte for this long counts as failed */

typedef struct fp_s3 fp_s3;
struct fp_s3_req;

/* One upload. The caller owns it and the body it names, both until done_cb or
 * fp_s3_cancel. */
typedef struct fp_s3_put {
    /* in: the body, in memory (file NULL) or in a file of len bytes */
    const unsigned char *mem;
    const char *file;
    uint64_t len;
    char sha[65];
    const char *ext;
    /* out */
    fp_reason reason;             /* FP_OK, FP_R_STORE_DENIED, _UNAVAILABLE, FP_R_IO, ... */
    char path[FP_PATH_MAX + 1];   /* s3://bucket/key on success */
    char error[FP_ERROR_MAX + 1]; /* on failure */
    uint64_t us;                  /* time from fp_s3_start to done, waits included */
    int existed;                  /* already stored: HEAD found it, or stored a moment ago */
    struct fp_s3_req *req;        /* private */
} fp_s3_put;

typedef void (*fp_s3_done_cb)(void *arg, fp_s3_put *p);
typedef void (*fp_s3_pause_cb)(void *arg, int paused);
typedef void (*fp_s3_closed_cb)(void *arg);

/* c must outlive the module. NULL on failure. */
fp_s3 *fp_s3_new(uv_loop_t *loop, const fp_s3_conf *c, long connect_timeout_ms, long timeout_ms,
                 long wait_ms, const char *ca_bundle, struct curl_slist *resolve,
                 fp_s3_done_cb done, fp_s3_pause_cb pause, void *arg);
/* Starts an upload. Returns 1 if it is already done (stored a moment ago: p is filled,
 * no callback), 0 if done_cb will be called later, -1 on failure (out of memory; no
 * callback). */
int fp_s3_start(fp_s3 *s, fp_s3_put *p);
/* Stops an upload without a callback; the object may or may not be stored. */
void fp_s3_cancel(fp_s3 *s, fp_s3_put *p);
/* Counters for the log: uploads done, objects already there, total upload time (us). */
void fp_s3_stats(const fp_s3 *s, uint64_t *puts, uint64_t *existed, uint64_t *us);
/* Every upload must be done or cancelled. Frees s once every handle is closed, then
 * closed(arg). */
void fp_s3_close(fp_s3 *s, fp_s3_closed_cb closed, void *arg);

#endif
