/* s3_req.h - the S3 side that needs no event loop: where an object store is (parsed from
 * --output s3://bucket/prefix, the endpoint, region and addressing), the key of a body,
 * one signed request set up on an easy handle, and what an answer means.
 *
 * Requests are signed by libcurl itself (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3" with
 * CURLOPT_USERPWD = key:secret). libcurl 7.88 does not hash an uploaded body, so the
 * payload hash goes in as the x-amz-content-sha256 header, which it then signs: for a PUT
 * that is the body's SHA-256, already known because it names the object. Kept apart from
 * s3.c so unit tests can sign a request and check it without libuv. */
#ifndef FP_S3_REQ_H
#define FP_S3_REQ_H

#include <curl/curl.h>
#include <stddef.h>

#include "fp_record.h"

#define FP_S3_PREFIX_MAX 256
#define FP_S3_KEY_MAX    (FP_S3_PREFIX_MAX + 80)

typedef enum fp_s3_addressing {
    FP_S3_AUTO = 0, /* path-style for a custom endpoint, virtual-hosted for AWS's */
    FP_S3_PATH,     /* scheme://host/bucket/key */
    FP_S3_VIRTUAL   /* scheme://bucket.host/key */
} fp_s3_addressing;

typedef struct fp_s3_conf {
    int on; /* --output is an s3:// URL */
    char bucket[64];
    char prefix[FP_S3_PREFIX_MAX + 1]; /* without leading or trailing '/', may be "" */
    char scheme[8];                    /* "http" or "https" */
    char host[256];                    /* endpoint host (IPv6 in brackets), no bucket */
    int port;                          /* 0: the scheme's */
    char region[64];
    fp_s3_addressing addressing; /* never AUTO once parsed */
    char userpwd[512];           /* access key id ':' secret, for CURLOPT_USERPWD */
    char token[2048];            /* AWS_SESSION_TOKEN, or "" */
    char sigv4[96];              /* "aws:amz:<region>:s3" */
} fp_s3_conf;

/* Fills c from the output URL (s3://bucket[/prefix]), the endpoint (NULL: AWS's for the
 * region), region (NULL: us-east-1), addressing ("path", "virtual" or NULL for auto) and
 * the credentials (key id and secret required, token optional). 0, or -1 with a message
 * in err that never holds a secret. */
int fp_s3_conf_parse(fp_s3_conf *c, const char *output, const char *endpoint, const char *region,
                     const char *addressing, const char *key_id, const char *secret,
                     const char *token, char *err, size_t errlen);

/* "<prefix>/ab/<sha>.<ext>" (no prefix: "ab/<sha>.<ext>"), as on disk. key: FP_S3_KEY_MAX + 1
 * bytes. */
void fp_s3_key(const fp_s3_conf *c, const char *sha, const char *ext, char *key);
/* "s3://<bucket>/<key>" into out (FP_PATH_MAX + 1 bytes): a result's path. */
void fp_s3_path(const fp_s3_conf *c, const char *key, char *out);
/* The request URL of key under the configured addressing. 0, or -1 if it does not fit. */
int fp_s3_url(const fp_s3_conf *c, const char *key, char *out, size_t outlen);
/* The Content-Type stored with an object of this extension. */
const char *fp_s3_content_type(const char *ext);

typedef enum fp_s3_method { FP_S3_HEAD, FP_S3_PUT } fp_s3_method;

/* Sets up e for a signed HEAD or PUT of key: URL, method, signing, headers. The headers
 * are made into *hdrs (freed and replaced; the caller frees the last with
 * curl_slist_free_all after the transfer). For a PUT, payload_sha is the body's hex
 * SHA-256 and size its length; the caller sets the read callback. 0 or -1. */
int fp_s3_setup(CURL *e, const fp_s3_conf *c, fp_s3_method m, const char *key,
                const char *payload_sha, curl_off_t size, const char *content_type,
                struct curl_slist **hdrs);

/* What one answer means. */
typedef enum fp_s3_answer {
    FP_S3_DONE,    /* PUT stored it, or HEAD found it */
    FP_S3_MISSING, /* HEAD: not there, so PUT it */
    FP_S3_RETRY,   /* 5xx, 429, SlowDown, timeouts, connection trouble: try again later */
    FP_S3_DENIED,  /* 403, no such bucket, other 4xx: will not get better by itself */
    FP_S3_LOCAL    /* our side failed (reading the body, out of memory) */
} fp_s3_answer;

fp_s3_answer fp_s3_judge(fp_s3_method m, CURLcode rc, long http_code);
/* The <Code> of an S3 error body ("NoSuchBucket"), into out; "" if none. */
void fp_s3_error_code(const char *body, size_t len, char *out, size_t outlen);

#endif
