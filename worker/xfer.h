/* xfer.h - one transfer slot: a configured libcurl easy handle, the body being received
 * and the checks made while it arrives (size cap, image signature, opt-out header).
 *
 * Slots are reused: the easy handle keeps its options, so starting a transfer only sets
 * the URL. fp_xfer_result turns a finished transfer into a result record and, for a good
 * image, publishes the file. */
#ifndef FP_XFER_H
#define FP_XFER_H

#include <curl/curl.h>
#include <stddef.h>

#include "conf.h"
#include "fp_record.h"
#include "sniff.h"
#include "store.h"

struct fp_host;

typedef struct fp_xfer {
    struct fp_xfer *next; /* in a host's wait queue or the free list */
    CURL *easy;
    const fp_conf *conf;
    fp_store *store;
    fp_body body;
    fp_task task;
    const char *shown; /* the URL for results and logs: task.url, or shown_buf without
                          its credentials */
    char *raw;         /* the task record as taken from Redis */
    size_t rawlen, rawcap;
    struct fp_host *host;
    int active;    /* added to the multi handle */
    int recovered; /* counted in the worker's recovered tasks */
    /* state of the response being received */
    unsigned char head[FP_SNIFF_BYTES];
    size_t headlen;
    fp_image_type type;
    fp_reason abort_reason; /* why the write callback stopped the transfer */
    int abort_errno;
    int code_checked, discard, optout;
    long retry_after_s;  /* -1 if none */
    const char *blocked; /* range the SSRF guard refused, or NULL */
    int tried;           /* an address passed the guard and was connected to */
    char errbuf[CURL_ERROR_SIZE];
    char shown_buf[FP_URL_MAX + 1];
} fp_xfer;

fp_xfer *fp_xfer_new(const fp_conf *conf, fp_store *store);
void fp_xfer_free(fp_xfer *x);
/* Keeps a copy of the raw task record and the decoded task. 0 or -1 (out of memory). */
int fp_xfer_set_task(fp_xfer *x, const char *raw, size_t rawlen, const fp_task *t);
/* Resets the per-response state and points the handle at the task's URL. */
int fp_xfer_begin(fp_xfer *x);
/* Fills r from the finished transfer (before the handle is removed from the multi) and
 * stores the file of a good image. Returns the reason (FP_OK on success). */
fp_reason fp_xfer_result(fp_xfer *x, CURLcode rc, fp_result *r);

#endif
