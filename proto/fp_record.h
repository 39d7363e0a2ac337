/* fp_record.h - task and result records: the wire format master and workers share.
 *
 * Records are tab-separated text with a type-and-version first field ("T1", "R1"), see
 * PROTOCOL.md. Encoders write into a caller buffer; decoders parse untrusted bytes and
 * never crash: every field is checked and a malformed record gets an error message.
 * Decoded string fields point into a private copy held by the record (fp_task/fp_result
 * own no heap memory; they hold a fixed buffer), so a decoded record is self-contained. */
#ifndef FP_RECORD_H
#define FP_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FP_URL_MAX       8192 /* longest URL accepted anywhere */
#define FP_CTYPE_MAX     128  /* content type is cut to this */
#define FP_ERROR_MAX     256  /* error text is cut to this */
#define FP_WORKER_ID_MAX 64
#define FP_REASON_MAX    32
#define FP_PATH_MAX      511   /* a stored path or s3://bucket/key URL */
#define FP_RECORD_MAX    16384 /* every encoded record fits in this */

/* Task flags (per job, carried by every task). */
#define FP_TASK_ALLOW_SVG     0x1u
#define FP_TASK_IGNORE_OPTOUT 0x2u
#define FP_TASK_RECOVERED     0x4u /* handed back by the reaper after its worker died */
#define FP_TASK_ROBOTS        0x8u /* obey the host's robots.txt (worker/rcache.h) */
#define FP_TASK_JOB_FLAGS     0xbu /* the flags a job may set */
/* Bits 4-7: the host's budget is its registered domain, the last this many labels of the
 * host name (1-15; 0: the host name itself). Set by the master, per task, for a job with
 * host_group=domain (master/hostgroup.h); read by the scripts (fp_polite.h's fp_parse). */
#define FP_TASK_GROUP_SHIFT 4
#define FP_TASK_GROUP_MAX   15u
#define FP_TASK_GROUP_MASK  (FP_TASK_GROUP_MAX << FP_TASK_GROUP_SHIFT)
#define FP_TASK_FLAGS_ALL   0xffu

typedef struct fp_task {
    uint64_t job;
    uint64_t idx;     /* slot of the result, 0-based, input order */
    uint64_t line;    /* 1-based line of the submitted file */
    uint32_t attempt; /* 1 for the first try */
    uint32_t max_attempts;
    uint32_t flags;
    const char *url; /* points into buf */
    char buf[FP_URL_MAX + 1];
} fp_task;

typedef struct fp_result {
    uint64_t job;
    uint64_t idx;
    uint64_t line;
    char status[FP_REASON_MAX + 1]; /* "ok" or a reason, [a-z0-9_]+ */
    uint32_t http_code;
    uint64_t bytes;
    uint64_t total_us, dns_us, connect_us, ttfb_us;
    uint32_t attempts;
    char worker[FP_WORKER_ID_MAX + 1];
    char sha256[65];            /* lower-case hex, or "" */
    char path[FP_PATH_MAX + 1]; /* relative to the output folder, an s3:// URL, or "" */
    char content_type[FP_CTYPE_MAX + 1];
    char url[FP_URL_MAX + 1];
    char error[FP_ERROR_MAX + 1];
} fp_result;

/* Failure reasons. The string form is what results and summaries carry. */
typedef enum fp_reason {
    FP_OK = 0,
    FP_R_INVALID_INPUT, /* the line is not a usable URL */
    FP_R_HTTP,          /* HTTP status >= 400: reported as "http_<code>" */
    FP_R_DNS,           /* name did not resolve */
    FP_R_CONNECT_REFUSED,
    FP_R_CONNECT, /* other connect failures (unreachable, ...) */
    FP_R_TIMEOUT, /* connect, total or low-speed timeout */
    FP_R_RESET,   /* connection reset or closed early */
    FP_R_TLS,
    FP_R_TOO_MANY_REDIRECTS,
    FP_R_BAD_SCHEME,      /* not http/https, also after a redirect */
    FP_R_BLOCKED_ADDRESS, /* SSRF guard refused the address */
    FP_R_TOO_LARGE,
    FP_R_NOT_AN_IMAGE,
    FP_R_OPTOUT, /* X-Robots-Tag noai / noimageai */
    FP_R_EMPTY,  /* 2xx with no body */
    FP_R_DISK_FULL,
    FP_R_IO,          /* storing failed for another reason */
    FP_R_WORKER_LOST, /* the attempt limit was reached by workers dying on it */
    FP_R_PROTOCOL,    /* malformed HTTP or other transfer error */
    FP_R_INTERNAL,
    FP_R_STORE_DENIED,      /* the object store refused: 403, no such bucket, other 4xx */
    FP_R_STORE_UNAVAILABLE, /* the object store stayed unreachable or failing (5xx) */
    FP_R_HOST_UNAVAILABLE,  /* the host failed too often in a row; given up for the job */
    FP_R_ROBOTS_DISALLOWED, /* the host's robots.txt disallows the URL (or could not be had) */
    FP_R_COUNT
} fp_reason;

const char *fp_reason_str(fp_reason r);
/* Worker ids: up to FP_WORKER_ID_MAX of [A-Za-z0-9._:-] (they name Redis keys). */
int fp_worker_id_valid(const char *s, size_t len);
/* Transient failures are retried (timeouts, resets, refusals, DNS, 408/429/5xx). */
int fp_reason_transient(fp_reason r, uint32_t http_code);
/* Writes the status string for (r, http_code) into out ("ok", "http_404", "timeout"). */
void fp_reason_format(fp_reason r, uint32_t http_code, char *out, size_t outlen);

/* Encode into buf (FP_RECORD_MAX is always enough for a valid record). Returns the length,
 * or -1 if a field is invalid (URL with control characters, too long, ...). */
int fp_task_encode(const fp_task *t, char *buf, size_t buflen);
int fp_result_encode(const fp_result *r, char *buf, size_t buflen);

/* Decode len bytes (not NUL-terminated). Returns 0, or -1 with a message in err. */
int fp_task_decode(fp_task *t, const char *data, size_t len, char *err, size_t errlen);
/* The key of a task's per-host budget, from its host name (lower-cased) and flags: the
 * host's last n labels (one trailing dot dropped) if bits 4-7 hold n, else the host
 * itself; the rule of fp_polite.h's fp_parse, in C. Returns out. */
char *fp_task_host_key(const char *host, uint32_t flags, char *out, size_t outlen);
int fp_result_decode(fp_result *r, const char *data, size_t len, char *err, size_t errlen);

/* A task's final result without a transfer (its worker died, Redis refused its result, its
 * host was given up, robots.txt forbids it): the task's job, idx, line and attempt, the
 * status for reason, the worker, the URL with its credentials redacted and error sanitised
 * (fp_sanitize); every other field empty. */
void fp_result_fail_task(fp_result *r, const fp_task *t, fp_reason reason, const char *worker,
                         const char *error);

/* Copies src into dst (size dstlen), replacing control characters, tabs and DEL by '?',
 * and cutting at dstlen-1 bytes without splitting a UTF-8 sequence. */
void fp_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
