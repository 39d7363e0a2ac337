/* xfer.h - one transfer: a configured libcurl easy handle, the body being received
 * and the checks made while it arrives (size cap, image signature, opt-out header).
 *
 * A transfer is reused: the easy handle keeps its options, so starting a transfer only sets
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

typedef struct fp_xfer {
    CURL *easy; /* its CURLOPT_PRIVATE is the owner's */
    const fp_conf *conf;
    fp_store *store;
    fp_body body;
    fp_task task;
    const char *shown; /* the URL for results and logs: task.url, or shown_buf without
                          its credentials */
    /* state of the response being received */
    unsigned char head[FP_SNIFF_BYTES];
    size_t headlen;
    fp_image_type type;
    fp_reason abort_reason; /* why the write callback stopped the transfer */
    int abort_errno;
    int store_err; /* the store's -errno if the last result failed storing, else 0 */
    int code_checked, discard, optout;
    long retry_after_s;  /* -1 if none */
    const char *blocked; /* range the SSRF guard refused, or NULL */
    int tried;           /* an address passed the guard and was connected to */
    char errbuf[CURL_ERROR_SIZE];
    char *shown_buf; /* FP_URL_MAX + 1 bytes, made for the first URL with credentials */
} fp_xfer;

fp_xfer *fp_xfer_new(const fp_conf *conf, fp_store *store);
void fp_xfer_free(fp_xfer *x);
/* Keeps a copy of the decoded task. */
void fp_xfer_set_task(fp_xfer *x, const fp_task *t);
/* Resets the per-response state and points the handle at the task's URL. */
int fp_xfer_begin(fp_xfer *x);
/* Fills r from the finished transfer (before the handle is removed from the multi) and
 * stores the file of a good image. Returns the reason (FP_OK on success). */
fp_reason fp_xfer_result(fp_xfer *x, CURLcode rc, fp_result *r);
/* The result of the last transfer again, as a failure to store it (x->store_err), with
 * note added to the error: for a task that waited for its output and gave up. The handle
 * must not have started another transfer since. */
fp_reason fp_xfer_store_failed(fp_xfer *x, const char *note, fp_result *r);

#endif
