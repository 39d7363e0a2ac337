/* fp_record.c - encode and decode task and result records (format in PROTOCOL.md).
 *
 * Decoding is the trust boundary: anything in a Redis list may be garbage or hostile, so
 * the decoder splits on tabs, requires the exact field count, parses numbers strictly and
 * checks every text field before anything else in the process looks at it. */
#include "fp_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp_text.h"

#define TASK_FIELDS   8
#define RESULT_FIELDS 18

static const char *const reason_names[FP_R_COUNT] = {
    [FP_OK] = "ok",
    [FP_R_INVALID_INPUT] = "invalid_input",
    [FP_R_HTTP] = "http_error",
    [FP_R_DNS] = "dns",
    [FP_R_CONNECT_REFUSED] = "connect_refused",
    [FP_R_CONNECT] = "connect_failed",
    [FP_R_TIMEOUT] = "timeout",
    [FP_R_RESET] = "connection_reset",
    [FP_R_TLS] = "tls",
    [FP_R_TOO_MANY_REDIRECTS] = "too_many_redirects",
    [FP_R_BAD_SCHEME] = "bad_scheme",
    [FP_R_BLOCKED_ADDRESS] = "blocked_address",
    [FP_R_TOO_LARGE] = "too_large",
    [FP_R_NOT_AN_IMAGE] = "not_an_image",
    [FP_R_OPTOUT] = "robots_optout",
    [FP_R_EMPTY] = "empty_body",
    [FP_R_DISK_FULL] = "disk_full",
    [FP_R_IO] = "io_error",
    [FP_R_WORKER_LOST] = "worker_lost",
    [FP_R_PROTOCOL] = "protocol_error",
    [FP_R_INTERNAL] = "internal_error",
    [FP_R_STORE_DENIED] = "store_denied",
    [FP_R_STORE_UNAVAILABLE] = "store_unavailable",
    [FP_R_HOST_UNAVAILABLE] = "host_unavailable",
    [FP_R_ROBOTS_DISALLOWED] = "robots_disallowed",
};

const char *fp_reason_str(fp_reason r)
{
    return (unsigned)r < FP_R_COUNT ? reason_names[r] : "internal_error";
}

int fp_reason_transient(fp_reason r, uint32_t http_code)
{
    switch (r) {
    case FP_R_DNS:
    case FP_R_CONNECT_REFUSED:
    case FP_R_CONNECT:
    case FP_R_TIMEOUT:
    case FP_R_RESET: return 1;
    case FP_R_HTTP:
        return http_code == 408 || http_code == 429 || http_code == 500 || http_code == 502 ||
               http_code == 503 || http_code == 504;
    default: return 0;
    }
}

void fp_reason_format(fp_reason r, uint32_t http_code, char *out, size_t outlen)
{
    if (r == FP_R_HTTP && http_code >= 100 && http_code <= 999)
        snprintf(out, outlen, "http_%" PRIu32, http_code);
    else
        snprintf(out, outlen, "%s", fp_reason_str(r));
}

void fp_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t i, n = 0;

    if (dstlen == 0)
        return;
    for (i = 0; i < srclen && n + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    /* Replace the bytes of invalid or cut UTF-8 sequences one at a time. */
    dst[n] = '\0';
    for (;;) {
        size_t bad = fp_text_utf8_first_invalid(dst, n);
        if (bad == n)
            break;
        dst[bad] = '?';
    }
}

void fp_result_fail_task(fp_result *r, const fp_task *t, fp_reason reason, const char *worker,
                         const char *error)
{
    memset(r, 0, sizeof(*r));
    r->job = t->job;
    r->idx = t->idx;
    r->line = t->line;
    r->attempts = t->attempt;
    fp_reason_format(reason, 0, r->status, sizeof(r->status));
    snprintf(r->worker, sizeof(r->worker), "%s", worker);
    fp_text_url_redact(r->url, sizeof(r->url), t->url);
    fp_sanitize(r->error, sizeof(r->error), error, strlen(error));
}

/* Field checks ---------------------------------------------------------------------- */

static int status_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > FP_REASON_MAX)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

int fp_worker_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len > FP_WORKER_ID_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static int sha_valid(const char *s, size_t len)
{
    size_t i;

    if (len != 0 && len != 64)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* A stored path is relative, or an s3:// URL whose rest is such a path (bucket/key),
 * made of safe characters, and never climbs. */
static int path_valid(const char *s, size_t len)
{
    size_t i;

    if (len > FP_PATH_MAX)
        return 0;
    if (len > 5 && memcmp(s, "s3://", 5) == 0) {
        s += 5;
        len -= 5;
    }
    if (len && s[0] == '/')
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '/' || c == '-'))
            return 0;
        if (c == '.' && i + 1 < len && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* Encoding -------------------------------------------------------------------------- */

int fp_task_encode(const fp_task *t, char *buf, size_t buflen)
{
    size_t ulen;
    int n;

    if (t->url == NULL)
        return -1;
    ulen = strlen(t->url);
    if (ulen == 0 || ulen > FP_URL_MAX || !fp_text_valid(t->url, ulen, 0) || t->attempt == 0 ||
        t->max_attempts == 0 || (t->flags & ~FP_TASK_FLAGS_ALL))
        return -1;
    n = snprintf(buf, buflen,
                 "T1\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32
                 "\t%s",
                 t->job, t->idx, t->line, t->attempt, t->max_attempts, t->flags, t->url);
    return (n < 0 || (size_t)n >= buflen) ? -1 : n;
}

int fp_result_encode(const fp_result *r, char *buf, size_t buflen)
{
    int n;

    if (!status_valid(r->status, strlen(r->status)) ||
        !fp_worker_id_valid(r->worker, strlen(r->worker)) ||
        !sha_valid(r->sha256, strlen(r->sha256)) || !path_valid(r->path, strlen(r->path)) ||
        !fp_text_valid(r->content_type, strlen(r->content_type), 1) ||
        !fp_text_valid(r->url, strlen(r->url), 0) || !fp_text_valid(r->error, strlen(r->error), 1))
        return -1;
    n = snprintf(buf, buflen,
                 "R1\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\t%" PRIu32 "\t%" PRIu64 "\t%" PRIu64
                 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32 "\t%s\t%s\t%s\t%s\t%s\t%s",
                 r->job, r->idx, r->line, r->status, r->http_code, r->bytes, r->total_us, r->dns_us,
                 r->connect_us, r->ttfb_us, r->attempts, r->worker, r->sha256, r->path,
                 r->content_type, r->url, r->error);
    return (n < 0 || (size_t)n >= buflen) ? -1 : n;
}

/* Decoding -------------------------------------------------------------------------- */

typedef struct field {
    const char *p;
    size_t len;
} field;

/* Splits on tabs; returns the field count, or -1 if there are more than max. */
static int split(const char *data, size_t len, field *f, int max)
{
    int n = 0;
    size_t start = 0, i;

    for (i = 0; i <= len; i++) {
        if (i == len || data[i] == '\t') {
            if (n == max)
                return -1;
            f[n].p = data + start;
            f[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static int copy_field(char *dst, size_t dstlen, const field *f)
{
    if (f->len >= dstlen)
        return -1;
    memcpy(dst, f->p, f->len);
    dst[f->len] = '\0';
    return 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int fp_task_decode(fp_task *t, const char *data, size_t len, char *err, size_t errlen)
{
    field f[TASK_FIELDS];
    uint64_t attempt, max_attempts, flags;

    if (len < 2 || memcmp(data, "T1", 2) != 0)
        FAIL("not a task record (want version T1)");
    if (split(data, len, f, TASK_FIELDS) != TASK_FIELDS)
        FAIL("task record: want %d fields", TASK_FIELDS);
    if (f[0].len != 2)
        FAIL("task record: bad version field");
    if (fp_text_u64(f[1].p, f[1].len, &t->job) || fp_text_u64(f[2].p, f[2].len, &t->idx) ||
        fp_text_u64(f[3].p, f[3].len, &t->line) || fp_text_u64(f[4].p, f[4].len, &attempt) ||
        fp_text_u64(f[5].p, f[5].len, &max_attempts) || fp_text_u64(f[6].p, f[6].len, &flags))
        FAIL("task record: bad number");
    if (attempt == 0 || attempt > UINT32_MAX || max_attempts == 0 || max_attempts > UINT32_MAX ||
        (flags & ~(uint64_t)FP_TASK_FLAGS_ALL))
        FAIL("task record: attempt, limit or flags out of range");
    if (f[7].len == 0 || f[7].len > FP_URL_MAX || !fp_text_valid(f[7].p, f[7].len, 0))
        FAIL("task record: bad url");
    t->attempt = (uint32_t)attempt;
    t->max_attempts = (uint32_t)max_attempts;
    t->flags = (uint32_t)flags;
    memcpy(t->buf, f[7].p, f[7].len);
    t->buf[f[7].len] = '\0';
    t->url = t->buf;
    return 0;
}

int fp_result_decode(fp_result *r, const char *data, size_t len, char *err, size_t errlen)
{
    field f[RESULT_FIELDS];
    uint64_t code, attempts;

    if (len < 2 || memcmp(data, "R1", 2) != 0)
        FAIL("not a result record (want version R1)");
    if (split(data, len, f, RESULT_FIELDS) != RESULT_FIELDS)
        FAIL("result record: want %d fields", RESULT_FIELDS);
    if (f[0].len != 2)
        FAIL("result record: bad version field");
    if (fp_text_u64(f[1].p, f[1].len, &r->job) || fp_text_u64(f[2].p, f[2].len, &r->idx) ||
        fp_text_u64(f[3].p, f[3].len, &r->line) || fp_text_u64(f[5].p, f[5].len, &code) ||
        fp_text_u64(f[6].p, f[6].len, &r->bytes) || fp_text_u64(f[7].p, f[7].len, &r->total_us) ||
        fp_text_u64(f[8].p, f[8].len, &r->dns_us) ||
        fp_text_u64(f[9].p, f[9].len, &r->connect_us) ||
        fp_text_u64(f[10].p, f[10].len, &r->ttfb_us) || fp_text_u64(f[11].p, f[11].len, &attempts))
        FAIL("result record: bad number");
    if (code > 999 || attempts > UINT32_MAX)
        FAIL("result record: http code or attempts out of range");
    if (!status_valid(f[4].p, f[4].len))
        FAIL("result record: bad status");
    if (!fp_worker_id_valid(f[12].p, f[12].len))
        FAIL("result record: bad worker id");
    if (!sha_valid(f[13].p, f[13].len))
        FAIL("result record: bad sha256");
    if (!path_valid(f[14].p, f[14].len))
        FAIL("result record: bad path");
    if (f[15].len > FP_CTYPE_MAX || !fp_text_valid(f[15].p, f[15].len, 1))
        FAIL("result record: bad content type");
    if (f[16].len > FP_URL_MAX || !fp_text_valid(f[16].p, f[16].len, 0))
        FAIL("result record: bad url");
    if (f[17].len > FP_ERROR_MAX || !fp_text_valid(f[17].p, f[17].len, 1))
        FAIL("result record: bad error text");
    r->http_code = (uint32_t)code;
    r->attempts = (uint32_t)attempts;
    copy_field(r->status, sizeof(r->status), &f[4]);
    copy_field(r->worker, sizeof(r->worker), &f[12]);
    copy_field(r->sha256, sizeof(r->sha256), &f[13]);
    copy_field(r->path, sizeof(r->path), &f[14]);
    copy_field(r->content_type, sizeof(r->content_type), &f[15]);
    copy_field(r->url, sizeof(r->url), &f[16]);
    copy_field(r->error, sizeof(r->error), &f[17]);
    return 0;
}

char *fp_task_host_key(const char *host, uint32_t flags, char *out, size_t outlen)
{
    unsigned labels = (flags & FP_TASK_GROUP_MASK) >> FP_TASK_GROUP_SHIFT;
    size_t n = strlen(host), i, seen = 0;

    if (labels == 0) {
        snprintf(out, outlen, "%s", host);
        return out;
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    for (i = n; i > 0; i--)
        if (host[i - 1] == '.' && ++seen == labels)
            break;
    snprintf(out, outlen, "%.*s", (int)(n - i), host + i);
    return out;
}
