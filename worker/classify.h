/* classify.h - what a finished transfer means: its failure reason, and when to try again.
 *
 * Pure functions of what libcurl, the kernel and the worker's own checks reported, so that
 * every rule is table-tested without a network (tests/unit/test_classify.c). Whether a
 * reason is worth another attempt at all is fp_reason_transient (proto/fp_record.h). */
#ifndef FP_CLASSIFY_H
#define FP_CLASSIFY_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_record.h"

/* Bytes of a non-2xx body read (and dropped) to keep the connection. */
#define FP_ERROR_BODY_MAX 65536

typedef struct fp_outcome {
    CURLcode rc;            /* libcurl's result */
    long os_errno;          /* CURLINFO_OS_ERRNO */
    long http_code;         /* CURLINFO_RESPONSE_CODE, 0 if no status line came */
    fp_reason aborted;      /* why the write callback stopped the transfer, or FP_OK */
    int aborted_errno;      /* errno of a failed write to the store, or 0 */
    int discarding;         /* the body was an error page, read and dropped */
    const char *blocked;    /* the range the SSRF guard refused, or NULL */
    int tried;              /* an address passed the guard and was connected to */
    const char *curl_error; /* libcurl's error buffer, "" if empty */
} fp_outcome;

/* The reason of a transfer's end as far as libcurl saw it (FP_OK: the transfer itself
 * succeeded; the body's checks come after). err gets a detail when there is one. */
fp_reason fp_classify(const fp_outcome *o, char *err, size_t errlen);

/* Milliseconds before attempt `attempt` + 1 of a transient failure: the server's
 * Retry-After in seconds if it gave one (retry_after_s >= 0; at most 60 s), otherwise 1 s
 * doubling per attempt up to 30 s, with +-25 % jitter taken from rnd (any number >= 0). */
long fp_retry_delay_ms(uint32_t attempt, long retry_after_s, long rnd);

#endif
