/* rows.c - formats result records as results-file rows (rows.h). Pure functions. */
#include "rows.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const columns[] = {
    "line",    "url",      "status", "http_code", "bytes", "total_ms",     "dns_ms", "connect_ms",
    "ttfb_ms", "attempts", "worker", "sha256",    "path",  "content_type", "error"};
#define NCOLS (sizeof(columns) / sizeof(columns[0]))

int fpm_format_parse(const char *s, size_t len, fpm_format *out)
{
    if (s == NULL || len == 0 || (len == 3 && memcmp(s, "tsv", 3) == 0))
        *out = FPM_TSV;
    else if (len == 5 && memcmp(s, "jsonl", 5) == 0)
        *out = FPM_JSONL;
    else
        return -1;
    return 0;
}

const char *fpm_format_ext(fpm_format f)
{
    return f == FPM_JSONL ? "jsonl" : "tsv";
}

const char *fpm_rows_header(fpm_format f)
{
    return f == FPM_JSONL ? ""
                          : "line\turl\tstatus\thttp_code\tbytes\ttotal_ms\tdns_ms\tconnect_ms\t"
                            "ttfb_ms\tattempts\tworker\tsha256\tpath\tcontent_type\terror\n";
}

/* A growing line in a caller buffer; overflow is remembered and reported once. */
typedef struct out {
    char *p;
    size_t len, cap;
    int over;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->over || o->len + n >= o->cap) {
        o->over = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(out *o, uint64_t v)
{
    char b[24];
    put(o, b, (size_t)snprintf(b, sizeof(b), "%" PRIu64, v));
}

/* Microseconds as milliseconds: TSV "%.3f"; JSON as Python's repr of us / 1000.0, which
 * for any value below 2^53 is the exact decimal without trailing zeros ("12.0", "0.5"). */
static void put_ms(out *o, fpm_format f, uint64_t us)
{
    char b[40];
    int n;

    n = snprintf(b, sizeof(b), "%" PRIu64 ".%03" PRIu64, us / 1000, us % 1000);
    if (f == FPM_JSONL)
        while (b[n - 1] == '0' && b[n - 2] != '.')
            n--;
    put(o, b, (size_t)n);
}

/* A JSON string as Python's json.dumps(ensure_ascii=False) writes it. */
static void put_json_str(out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char esc[8];

    put(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c == '\r') {
            put(o, "\\r", 2);
        } else if (c == '\t') {
            put(o, "\\t", 2);
        } else if (c == '\b') {
            put(o, "\\b", 2);
        } else if (c == '\f') {
            put(o, "\\f", 2);
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            put(o, esc, 6);
        } else {
            put(o, s, 1);
        }
    }
    put(o, "\"", 1);
}

static void key(out *o, fpm_format f, size_t i)
{
    if (f == FPM_TSV) {
        if (i > 0)
            put(o, "\t", 1);
        return;
    }
    puts_(o, i == 0 ? "{\"" : ", \"");
    puts_(o, columns[i]);
    puts_(o, "\": ");
}

static void str_col(out *o, fpm_format f, size_t i, const char *s)
{
    key(o, f, i);
    if (f == FPM_TSV)
        puts_(o, s);
    else
        put_json_str(o, s);
}

static int finish(out *o, fpm_format f)
{
    if (f == FPM_JSONL)
        put(o, "}", 1);
    put(o, "\n", 1);
    if (o->over)
        return -1;
    o->p[o->len] = '\0';
    return (int)o->len;
}

int fpm_row_missing(fpm_format f, const char *why, char *buf, size_t buflen)
{
    out o = {buf, 0, buflen, 0};
    size_t i;

    for (i = 0; i < NCOLS; i++) {
        if (i == 0) {
            key(&o, f, i);
            if (f == FPM_JSONL)
                puts_(&o, "null");
        } else {
            str_col(&o, f, i, i == 2 ? "missing" : i == NCOLS - 1 ? why : "");
        }
    }
    return finish(&o, f);
}

int fpm_row_format(fpm_format f, const char *rec, size_t len, uint64_t idx, char *buf,
                   size_t buflen)
{
    static fp_result r; /* large; the master is single-threaded */
    char err[128], why[96];
    out o = {buf, 0, buflen, 0};

    if (fp_result_decode(&r, rec, len, err, sizeof(err)) != 0) {
        snprintf(why, sizeof(why), "malformed result record for task %" PRIu64, idx);
        return fpm_row_missing(f, why, buf, buflen);
    }
    key(&o, f, 0);
    put_u64(&o, r.line);
    str_col(&o, f, 1, r.url);
    str_col(&o, f, 2, r.status);
    key(&o, f, 3);
    put_u64(&o, r.http_code);
    key(&o, f, 4);
    put_u64(&o, r.bytes);
    key(&o, f, 5);
    put_ms(&o, f, r.total_us);
    key(&o, f, 6);
    put_ms(&o, f, r.dns_us);
    key(&o, f, 7);
    put_ms(&o, f, r.connect_us);
    key(&o, f, 8);
    put_ms(&o, f, r.ttfb_us);
    key(&o, f, 9);
    put_u64(&o, r.attempts);
    str_col(&o, f, 10, r.worker);
    str_col(&o, f, 11, r.sha256);
    str_col(&o, f, 12, r.path);
    str_col(&o, f, 13, r.content_type);
    str_col(&o, f, 14, r.error);
    return finish(&o, f);
}
