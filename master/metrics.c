/* metrics.c - the master's Prometheus endpoint (see metrics.h).
 *
 * libmicrohttpd runs one internal thread that accepts and answers every connection in
 * turn, so the Redis context below is only ever used by that thread. A scrape reads one
 * snapshot (fp_script_snapshot, atomic), renders it into a buffer and hands the buffer to
 * libmicrohttpd, which frees it. With Redis unreachable the answer is still 200 with
 * fetchpool_redis_up 0 and what the master knows itself, as exporters do. */
#include "metrics.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_log.h"
#include "fp_redis_sync.h"
#include "fp_service.h"
#include "fp_stats.h"
#include "fp_text.h"

#define MAX_JOBS     1000 /* active jobs with series of their own */
#define MAX_WORKERS  10000
#define MAX_REASONS  256
#define CONNECT_S    1
#define REPLY_S      2
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct fpm_metrics {
    struct MHD_Daemon *d;
    fp_redis_url url;
    redisContext *rc;
    const uint64_t *reconnects;
};

/* Address ---------------------------------------------------------------------------- */

int fpm_metrics_addr(const char *s, struct sockaddr_storage *sa, socklen_t *salen, char *err,
                     size_t errlen)
{
    char host[64] = "127.0.0.1";
    const char *port = s, *colon = strrchr(s, ':');
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    uint64_t p;
    size_t hl;

    memset(sa, 0, sizeof(*sa));
    if (colon) {
        hl = (size_t)(colon - s);
        if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
            s++;
            hl -= 2;
        }
        if (hl == 0 || hl >= sizeof(host)) {
            snprintf(err, errlen, "--metrics: bad address in '%s' (want [ADDR:]PORT)", s);
            return -1;
        }
        memcpy(host, s, hl);
        host[hl] = '\0';
        port = colon + 1;
    }
    if (fp_text_u64(port, strlen(port), &p) != 0 || p < 1 || p > 65535) {
        snprintf(err, errlen, "--metrics: bad port '%s' (want [ADDR:]PORT, 1-65535)", port);
        return -1;
    }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        *salen = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        *salen = sizeof(*v6);
        return 0;
    }
    snprintf(err, errlen, "--metrics: '%s' is not a numeric IPv4 or IPv6 address", host);
    return -1;
}

/* Text ------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        if ((b->p = realloc(b->p, b->cap)) == NULL)
            fp_oom("rendering metrics");
    }
}

/* A label value: \, " and line ends escaped, other control characters dropped. */
static void sb_label(sbuf *b, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\' || ch == '"')
            sb_printf(b, "\\%c", ch);
        else if (ch == '\n')
            sb_printf(b, "\\n");
        else if (ch >= 0x20)
            sb_printf(b, "%c", ch);
    }
}

static void head(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Reading the snapshot --------------------------------------------------------------- */

static uint64_t num(const redisReply *r)
{
    uint64_t v;

    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING && fp_text_u64(r->str, r->len, &v) == 0)
        return v;
    return 0;
}

static int is(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int is_array(const redisReply *r, size_t min)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

typedef struct reason {
    const char *name; /* points into the reply */
    size_t len;
    uint64_t n;
} reason;

/* What the counters add up to: the folded jobs' plus the active ones'. */
typedef struct totals {
    uint64_t ok, failed, bytes, sum_us, jobs_done, jobs_cancelled;
    reason reasons[MAX_REASONS];
    size_t nreasons;
    uint64_t le[FP_PROM_BUCKETS + 1]; /* not cumulative; the last is +Inf only */
    double lat_sum_s;
} totals;

static void add_reason(totals *t, const char *name, size_t len, uint64_t n)
{
    size_t i;

    for (i = 0; i < t->nreasons; i++)
        if (t->reasons[i].len == len && memcmp(t->reasons[i].name, name, len) == 0) {
            t->reasons[i].n += n;
            return;
        }
    if (t->nreasons < MAX_REASONS)
        t->reasons[t->nreasons++] = (reason){name, len, n};
}

/* Adds a job hash (or fp:stats), as HGETALL's flat list, to the totals. */
static void add_counts(totals *t, const redisReply *h)
{
    size_t i;

    if (!is_array(h, 0))
        return;
    for (i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        if (f->type != REDIS_REPLY_STRING)
            continue;
        if (is(f, "ok"))
            t->ok += num(v);
        else if (is(f, "failed"))
            t->failed += num(v);
        else if (is(f, "bytes"))
            t->bytes += num(v);
        else if (is(f, "sum_us"))
            t->sum_us += num(v);
        else if (is(f, "jobs_done"))
            t->jobs_done += num(v);
        else if (is(f, "jobs_cancelled"))
            t->jobs_cancelled += num(v);
        else if (f->len > 5 && memcmp(f->str, "fail:", 5) == 0)
            add_reason(t, f->str + 5, f->len - 5, num(v));
    }
}

static void add_hist(totals *t, const redisReply *h)
{
    uint64_t b, n;
    size_t i;

    if (!is_array(h, 0))
        return;
    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type != REDIS_REPLY_STRING ||
            fp_text_u64(h->element[i]->str, h->element[i]->len, &b) != 0 || b > UINT32_MAX)
            continue;
        n = num(h->element[i + 1]);
        t->le[fp_stats_prom_index((uint32_t)b)] += n;
        t->lat_sum_s += (double)n * (double)fp_stats_bucket_value((uint32_t)b) / 1e6;
    }
}

/* A field of a job hash. */
static const redisReply *field(const redisReply *h, const char *name)
{
    size_t i;

    for (i = 0; is_array(h, 0) && i + 1 < h->elements; i += 2)
        if (is(h->element[i], name))
            return h->element[i + 1];
    return NULL;
}

/* The value after "<key>=" in a "k=v k=v" heartbeat, or NULL. */
static const char *hb_value(const redisReply *v, const char *key)
{
    size_t kl = strlen(key);
    const char *p;

    for (p = v->str; (p = strstr(p, key)) != NULL; p++)
        if ((p == v->str || p[-1] == ' ') && p[kl] == '=')
            return p + kl + 1;
    return NULL;
}

static uint64_t hb_num(const redisReply *v, const char *key)
{
    const char *p = hb_value(v, key);
    uint64_t n = 0;

    while (p && *p >= '0' && *p <= '9')
        n = n * 10 + (uint64_t)(*p++ - '0');
    return n;
}

/* paused=<why>: paused unless the why is empty or 0. */
static int hb_paused(const redisReply *v)
{
    const char *p = hb_value(v, "paused");

    return p && *p && *p != ' ' && !(p[0] == '0' && (p[1] == ' ' || p[1] == '\0'));
}

/* Rendering -------------------------------------------------------------------------- */

static void render_totals(sbuf *b, const totals *t)
{
    uint64_t cum = 0;
    size_t i;

    head(b, "fetchpool_downloads_total", "counter",
         "URLs finished: status ok, or failed with the reason");
    sb_printf(b, "fetchpool_downloads_total{status=\"ok\"} %" PRIu64 "\n", t->ok);
    for (i = 0; i < t->nreasons; i++) {
        sb_printf(b, "fetchpool_downloads_total{status=\"failed\",reason=\"");
        sb_label(b, t->reasons[i].name, t->reasons[i].len);
        sb_printf(b, "\"} %" PRIu64 "\n", t->reasons[i].n);
    }
    head(b, "fetchpool_downloaded_bytes_total", "counter", "Bytes of the images stored");
    sb_printf(b, "fetchpool_downloaded_bytes_total %" PRIu64 "\n", t->bytes);
    head(b, "fetchpool_download_time_seconds_total", "counter",
         "Single download times added up, ok and failed (the job summaries' sum_s)");
    sb_printf(b, "fetchpool_download_time_seconds_total %.6f\n", (double)t->sum_us / 1e6);
    head(b, "fetchpool_download_duration_seconds", "histogram",
         "Total time of each successful download (from the jobs' 2 % histograms)");
    for (i = 0; i < FP_PROM_BUCKETS; i++) {
        cum += t->le[i];
        sb_printf(b, "fetchpool_download_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                  fp_prom_le[i], cum);
    }
    cum += t->le[FP_PROM_BUCKETS];
    sb_printf(b, "fetchpool_download_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    sb_printf(b, "fetchpool_download_duration_seconds_sum %.6f\n", t->lat_sum_s);
    sb_printf(b, "fetchpool_download_duration_seconds_count %" PRIu64 "\n", cum);
    head(b, "fetchpool_jobs_finished_total", "counter", "Jobs completed, by how they ended");
    sb_printf(b, "fetchpool_jobs_finished_total{state=\"done\"} %" PRIu64 "\n", t->jobs_done);
    sb_printf(b, "fetchpool_jobs_finished_total{state=\"cancelled\"} %" PRIu64 "\n",
              t->jobs_cancelled);
}

static void render_jobs(sbuf *b, const redisReply *jobs)
{
    static const char *const f[][3] = {
        {"fetchpool_job_lines", "lines", "Input lines the client submitted"},
        {"fetchpool_job_lines_fed", "fed", "Input lines the master has turned into tasks"},
        {"fetchpool_job_tasks", "total", "Tasks created so far (invalid lines included)"},
        {"fetchpool_job_tasks_done", "done", "Tasks with a result"},
        {"fetchpool_job_tasks_ok", "ok", "Tasks that downloaded an image"},
        {"fetchpool_job_tasks_failed", "failed", "Tasks that failed"},
        {"fetchpool_job_paused", "paused", "1 while the job is paused"}};
    size_t k, i;

    for (k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        head(b, f[k][0], "gauge", f[k][2]);
        for (i = 0; i < jobs->elements; i++) {
            const redisReply *j = jobs->element[i];
            if (!is_array(j, 3) || j->element[0]->type != REDIS_REPLY_STRING ||
                field(j->element[1], "folded"))
                continue;
            sb_printf(b, "%s{job_id=\"", f[k][0]);
            sb_label(b, j->element[0]->str, j->element[0]->len);
            sb_printf(b, "\"} %" PRIu64 "\n", num(field(j->element[1], f[k][1])));
        }
    }
}

static void render_workers(sbuf *b, const redisReply *ws)
{
    static const char *const f[][3] = {
        {"fetchpool_worker_inflight", "inflight", "Transfers the worker has in flight"},
        {"fetchpool_worker_paused", "paused",
         "1 while the worker takes no tasks (e.g. disk full)"}};
    uint64_t alive = 0;
    size_t k, i;

    for (i = 0; i < ws->elements; i++)
        if (is_array(ws->element[i], 2) && ws->element[i]->element[1]->type == REDIS_REPLY_STRING)
            alive++;
    head(b, "fetchpool_workers_alive", "gauge", "Workers whose heartbeat is fresh");
    sb_printf(b, "fetchpool_workers_alive %" PRIu64 "\n", alive);
    for (k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        head(b, f[k][0], "gauge", f[k][2]);
        for (i = 0; i < ws->elements; i++) {
            const redisReply *w = ws->element[i];
            uint64_t v;
            if (!is_array(w, 2) || w->element[0]->type != REDIS_REPLY_STRING ||
                w->element[1]->type != REDIS_REPLY_STRING)
                continue;
            v = k == 0 ? hb_num(w->element[1], f[k][1]) : (uint64_t)hb_paused(w->element[1]);
            sb_printf(b, "%s{worker=\"", f[k][0]);
            sb_label(b, w->element[0]->str, w->element[0]->len);
            sb_printf(b, "\"} %" PRIu64 "\n", v);
        }
    }
}

static void render(sbuf *b, const redisReply *s)
{
    static const char *const g[][2] = {
        {"fetchpool_queue_tasks", "Tasks waiting in the queue (fp:tasks)"},
        {"fetchpool_retry_tasks", "Tasks waiting for a retry (fp:retry)"},
        {"fetchpool_dead_letters", "Records that could not be decoded (fp:dead)"},
        {"fetchpool_jobs_waiting", "Jobs submitted and not yet taken by a master"}};
    static totals t;
    const redisReply *depths = s->element[0], *jobs = s->element[3];
    size_t i;

    memset(&t, 0, sizeof(t));
    for (i = 0; i < 4 && i < depths->elements; i++) {
        head(b, g[i][0], "gauge", g[i][1]);
        sb_printf(b, "%s %" PRIu64 "\n", g[i][0], num(depths->element[i]));
    }
    add_counts(&t, s->element[1]);
    add_hist(&t, s->element[2]);
    for (i = 0; i < jobs->elements; i++) {
        const redisReply *j = jobs->element[i];
        if (!is_array(j, 3) || field(j->element[1], "folded"))
            continue; /* folded into fp:stats already: do not count it twice */
        add_counts(&t, j->element[1]);
        add_hist(&t, j->element[2]);
    }
    head(b, "fetchpool_jobs_active", "gauge", "Jobs the master is feeding or waiting on");
    sb_printf(b, "fetchpool_jobs_active %zu\n", jobs->elements);
    render_totals(b, &t);
    render_jobs(b, jobs);
    render_workers(b, s->element[4]);
}

/* Answers ---------------------------------------------------------------------------- */

static redisReply *snapshot(fpm_metrics *mx)
{
    static fp_call call;
    char err[256];
    redisReply *r;

    if (mx->rc == NULL) {
        mx->rc = fp_redis_connect(&mx->url, CONNECT_S, REPLY_S, err, sizeof(err));
        if (mx->rc == NULL) {
            fp_debug("metrics: %s", err);
            return NULL;
        }
    }
    fp_call_snapshot(&call, MAX_JOBS, MAX_WORKERS);
    r = redisCommandArgv(mx->rc, call.argc, call.argv, call.len);
    if (r == NULL || mx->rc->err) {
        if (r)
            freeReplyObject(r);
        redisFree(mx->rc);
        mx->rc = NULL;
        return NULL;
    }
    if (!is_array(r, 5) || !is_array(r->element[0], 4) || !is_array(r->element[3], 0) ||
        !is_array(r->element[4], 0)) {
        fp_warn("metrics: unexpected snapshot reply (%s)",
                r->type == REDIS_REPLY_ERROR ? r->str : "not the script's shape");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned int code, char *body,
                              size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result request_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    fpm_metrics *mx = cls;
    sbuf b = {NULL, 0, 0};
    redisReply *s;
    unsigned int code = MHD_HTTP_OK;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is read and ignored */
        return MHD_YES;
    }
    b.cap = 8192;
    if ((b.p = malloc(b.cap)) == NULL)
        return MHD_NO;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        sb_printf(&b, "only GET /metrics\n");
    } else if (strcmp(url, "/metrics") != 0) {
        code = MHD_HTTP_NOT_FOUND;
        sb_printf(&b, "fetchpool-master serves /metrics\n");
    } else {
        s = snapshot(mx);
        head(&b, "fetchpool_redis_up", "gauge", "1 if the master's metrics could read Redis");
        sb_printf(&b, "fetchpool_redis_up %d\n", s != NULL);
        head(&b, "fetchpool_master_redis_reconnects_total", "counter",
             "Times the master's loop reconnected to Redis");
        sb_printf(&b, "fetchpool_master_redis_reconnects_total %" PRIu64 "\n",
                  __atomic_load_n(mx->reconnects, __ATOMIC_RELAXED));
        if (s) {
            render(&b, s);
            freeReplyObject(s);
        }
    }
    return answer(conn, code, b.p, b.len);
}

/* libmicrohttpd's messages: fmt is its own printf format. */
__attribute__((format(printf, 2, 0))) static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    fp_warn("metrics: %s", msg);
}

fpm_metrics *fpm_metrics_start(const char *addr, const fp_redis_url *url,
                               const uint64_t *reconnects, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    fpm_metrics *mx;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

    if (fpm_metrics_addr(addr, &sa, &salen, err, errlen) != 0)
        return NULL;
    if ((mx = calloc(1, sizeof(*mx))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mx->url = *url;
    mx->reconnects = reconnects;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    mx->d = MHD_start_daemon(flags, ntohs(((struct sockaddr_in *)&sa)->sin_port), NULL, NULL,
                             request_cb, mx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL, MHD_OPTION_END);
    if (mx->d == NULL) {
        snprintf(err, errlen, "--metrics: cannot listen on %s (in use, or not an address here)",
                 addr);
        free(mx);
        return NULL;
    }
    return mx;
}

void fpm_metrics_stop(fpm_metrics *mx)
{
    if (mx == NULL)
        return;
    MHD_stop_daemon(mx->d);
    if (mx->rc)
        redisFree(mx->rc);
    free(mx);
}
