/* report.c - completes the jobs listed in fp:done: writes out the rest of the job's
 * results files (results.c), computes the summary from the job's counters and latency
 * histogram, and in ONE MULTI writes fp:job:<id>:summary, sets
 * state=done, wakes waiting clients (fp:job:<id>:wake), drops the id from fp:jobs:active
 * and fp:done, adds its counters to fp:stats (fold script), and sets every key of the job to expire
 * after the retention time.
 *
 * The id is read with LINDEX and removed only by that MULTI, so a master that dies half
 * way reports the job again after restart; doing it twice is harmless (the summary is
 * rewritten from the same counters, a second wake-up element is ignored by clients). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_record.h"
#include "fp_service.h"
#include "fp_stats.h"
#include "fp_text.h"
#include "master.h"

#define REPORT_MAX   32 /* jobs completed per step */
#define SUMMARY_NUMS 12 /* summary fields besides fail:<reason> */

/* What the job hash says, as read by HGETALL. */
typedef struct job_counts {
    fp_summary s;
    uint64_t created_us, finished_us;
    int sealed, has_finished, cancelled;
    uint64_t part_size;
    fpm_format format;
    const redisReply **fail; /* name, count, name, count ... (point into the reply) */
    size_t nfail;
} job_counts;

static int field_is(const redisReply *f, const char *name)
{
    return f->type == REDIS_REPLY_STRING && strcmp(f->str, name) == 0;
}

static void counts_read(const redisReply *h, job_counts *c)
{
    size_t i;

    memset(c, 0, sizeof(*c));
    c->fail = calloc(h->elements + 1, sizeof(*c->fail));
    if (c->fail == NULL) {
        fp_oom("while reporting");
    }
    for (i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];

        if (field_is(f, "total"))
            c->s.total = fpm_reply_u64(v, 0);
        else if (field_is(f, "ok"))
            c->s.ok = fpm_reply_u64(v, 0);
        else if (field_is(f, "failed"))
            c->s.failed = fpm_reply_u64(v, 0);
        else if (field_is(f, "bytes"))
            c->s.bytes = fpm_reply_u64(v, 0);
        else if (field_is(f, "sum_us"))
            c->s.sum_us = fpm_reply_u64(v, 0);
        else if (field_is(f, "created_us"))
            c->created_us = fpm_reply_u64(v, 0);
        else if (field_is(f, "finished_us")) {
            c->finished_us = fpm_reply_u64(v, 0);
            c->has_finished = 1;
        } else if (field_is(f, "sealed"))
            c->sealed = fpm_reply_u64(v, 0) == 1;
        else if (field_is(f, "part_size"))
            c->part_size = fpm_reply_u64(v, 0);
        else if (field_is(f, "format") && v->type == REDIS_REPLY_STRING &&
                 fpm_format_parse(v->str, v->len, &c->format) != 0)
            c->format = FPM_TSV;
        else if (f->type == REDIS_REPLY_STRING && strncmp(f->str, "fail:", 5) == 0 &&
                 v->type == REDIS_REPLY_STRING) {
            c->fail[c->nfail++] = f;
            c->fail[c->nfail++] = v;
        }
    }
}

/* The latency histogram, bucket -> count, as fp_stats wants it. Caller frees. */
static fp_hist_entry *hist_read(const redisReply *h, size_t *n)
{
    fp_hist_entry *e = calloc(h->elements / 2 + 1, sizeof(*e));
    uint64_t b, cnt;
    size_t i;

    if (e == NULL) {
        fp_oom("while reporting");
    }
    *n = 0;
    for (i = 0; i + 1 < h->elements; i += 2) {
        b = fpm_reply_u64(h->element[i], UINT64_MAX);
        cnt = fpm_reply_u64(h->element[i + 1], 0);
        if (b > UINT32_MAX || cnt == 0)
            continue; /* not written by a worker; ignore rather than skew the summary */
        e[*n].bucket = (uint32_t)b;
        e[*n].count = cnt;
        (*n)++;
    }
    return e;
}

/* Redis TIME in microseconds (the clock every timestamp of a job comes from). */
static int redis_now_us(fpm *m, uint64_t *now)
{
    redisReply *r = fpm_redis_cmd(m, "TIME");

    if (r == NULL)
        return FPM_LOST;
    *now = 0;
    if (!fpm_redis_failed(m, r, "TIME") && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        *now = fpm_reply_u64(r->element[0], 0) * 1000000 + fpm_reply_u64(r->element[1], 0);
    freeReplyObject(r);
    return 0;
}

/* Queues the HSET of the summary hash: counts as integers, the rest with 3 decimals. */
static int append_summary(fpm *m, const char *key, const job_counts *c)
{
    static const char *const names[SUMMARY_NUMS] = {"total",    "ok",     "failed",  "bytes",
                                                    "wall_s",   "sum_s",  "speedup", "files_per_s",
                                                    "mb_per_s", "p50_ms", "p95_ms",  "p99_ms"};
    char nums[SUMMARY_NUMS][32];
    const char **av;
    size_t *al, i, n = 0, max = 4 + 2 * SUMMARY_NUMS + c->nfail;
    int rc;

    snprintf(nums[0], sizeof(nums[0]), "%" PRIu64, c->s.total);
    snprintf(nums[1], sizeof(nums[0]), "%" PRIu64, c->s.ok);
    snprintf(nums[2], sizeof(nums[0]), "%" PRIu64, c->s.failed);
    snprintf(nums[3], sizeof(nums[0]), "%" PRIu64, c->s.bytes);
    snprintf(nums[4], sizeof(nums[0]), "%.3f", (double)c->s.wall_us / 1e6);
    snprintf(nums[5], sizeof(nums[0]), "%.3f", (double)c->s.sum_us / 1e6);
    snprintf(nums[6], sizeof(nums[0]), "%.3f", c->s.speedup);
    snprintf(nums[7], sizeof(nums[0]), "%.3f", c->s.files_per_s);
    snprintf(nums[8], sizeof(nums[0]), "%.3f", c->s.mb_per_s);
    snprintf(nums[9], sizeof(nums[0]), "%.3f", (double)c->s.p50_us / 1e3);
    snprintf(nums[10], sizeof(nums[0]), "%.3f", (double)c->s.p95_us / 1e3);
    snprintf(nums[11], sizeof(nums[0]), "%.3f", (double)c->s.p99_us / 1e3);

    av = malloc(max * sizeof(*av));
    al = malloc(max * sizeof(*al));
    if (av == NULL || al == NULL) {
        fp_oom("while reporting");
    }
    av[n++] = "HSET";
    av[n++] = key;
    for (i = 0; i < SUMMARY_NUMS; i++) {
        av[n++] = names[i];
        av[n++] = nums[i];
    }
    if (c->cancelled) { /* total counts the tasks made before the cancel */
        av[n++] = "cancelled";
        av[n++] = "1";
    }
    for (i = 0; i < n; i++)
        al[i] = strlen(av[i]);
    for (i = 0; i < c->nfail; i++, n++) {
        av[n] = c->fail[i]->str;
        al[n] = c->fail[i]->len;
    }
    rc = fpm_redis_append_argv(m, (int)n, av, al);
    free(av);
    free(al);
    return rc;
}

/* The hosts the job's tasks waited for (fp:job:<id>:throttle, host -> times a task was
 * parked): how many, and the most waited-for ones as "host=count,..." (at most
 * THROTTLED_SHOWN). Both go into the summary when there were any. */
#define THROTTLED_SHOWN 10

typedef struct throttled {
    const redisReply *name;
    uint64_t n;
} throttled;

static int throttled_cmp(const void *a, const void *b)
{
    uint64_t x = ((const throttled *)a)->n, y = ((const throttled *)b)->n;

    return x < y ? 1 : x > y ? -1 : 0;
}

static int append_throttled(fpm *m, const char *key, const redisReply *h, int *ncmd)
{
    char shown[THROTTLED_SHOWN * 90], count[24]; /* 60 + "=" + 20 digits + "," each */
    size_t i, n = h->elements / 2, used = 0;
    throttled *t;
    int k;

    if (n == 0)
        return 0;
    if ((t = calloc(n, sizeof(*t))) == NULL)
        fp_oom("while reporting");
    for (i = 0; i < n; i++) {
        t[i].name = h->element[2 * i];
        t[i].n = fpm_reply_u64(h->element[2 * i + 1], 0);
    }
    qsort(t, n, sizeof(*t), throttled_cmp);
    shown[0] = '\0';
    for (i = 0; i < n && i < THROTTLED_SHOWN; i++) {
        k = snprintf(shown + used, sizeof(shown) - used, "%s%.*s=%" PRIu64, i ? "," : "",
                     (int)(t[i].name->len < 60 ? t[i].name->len : 60), t[i].name->str, t[i].n);
        if (k > 0)
            used += (size_t)k;
    }
    free(t);
    snprintf(count, sizeof(count), "%zu", n);
    if (fpm_redis_append(m, "HSET %s throttled_hosts %s throttled %s", key, count, shown))
        return FPM_LOST;
    (*ncmd)++;
    return 0;
}

/* Queues the whole completion transaction; returns the number of commands, or FPM_LOST. */
static int append_completion(fpm *m, uint64_t id, const job_counts *c, uint64_t finished_us,
                             const redisReply *throttle)
{
    static const fp_job_key keys[] = {FP_JOB_META,    FP_JOB_IN,    FP_JOB_OUT,      FP_JOB_LAT,
                                      FP_JOB_SUMMARY, FP_JOB_WAKE,  FP_JOB_THROTTLE, FP_JOB_DOWN,
                                      FP_JOB_PARTS,   FP_JOB_WRITER};
    static fp_call fold;
    char meta[FP_KEY_MAX], sum[FP_KEY_MAX], wake[FP_KEY_MAX], key[FP_KEY_MAX];
    const char *state = c->cancelled ? "cancelled" : "done";
    size_t i;
    int ncmd = 0;

    fp_key_job(meta, id, FP_JOB_META);
    fp_key_job(sum, id, FP_JOB_SUMMARY);
    fp_key_job(wake, id, FP_JOB_WAKE);

    if (fpm_redis_append(m, "MULTI") || fpm_redis_append(m, "DEL %s", sum) ||
        append_summary(m, sum, c) || fpm_redis_append(m, "HSET %s state %s", meta, state) ||
        fpm_redis_append(m, "HSETNX %s finished_us %" PRIu64, meta, finished_us) ||
        fpm_redis_append(m, "RPUSH %s %s", wake, state) ||
        fpm_redis_append(m, "LREM %s 0 %" PRIu64, FP_KEY_JOBS_ACTIVE, id) ||
        fpm_redis_append(m, "LREM %s 0 %" PRIu64, FP_KEY_DONE, id) ||
        fpm_redis_append(m, "LREM %s 0 %" PRIu64, FP_KEY_JOBS_NEW, id))
        return FPM_LOST;
    ncmd += 9; /* a job cancelled before intake is still in fp:jobs:new */
    /* Its counters join those of every completed job (for metrics), once. */
    fp_call_fold(&fold, id, c->cancelled);
    if (fpm_redis_append_call(m, &fold))
        return FPM_LOST;
    ncmd++;
    if (append_throttled(m, sum, throttle, &ncmd))
        return FPM_LOST;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (fpm_redis_append(m, "EXPIRE %s %ld", fp_key_job(key, id, keys[i]), m->cfg.retention))
            return FPM_LOST;
        ncmd++;
    }
    if (fpm_redis_append(m, "EXEC"))
        return FPM_LOST;
    return ncmd + 1;
}

/* Reads n queued replies and keeps the last (EXEC's). NULL if the connection broke. */
static redisReply *last_reply(fpm *m, int n)
{
    redisReply *r = NULL;
    int i;

    for (i = 0; i < n; i++) {
        if (r)
            freeReplyObject(r);
        if ((r = fpm_redis_reply(m)) == NULL)
            return NULL;
    }
    return r;
}

/* Takes an id out of fp:done without a report; also out of fp:jobs:active (and the
 * table) when the job is gone for good. */
static int forget(fpm *m, const char *s, size_t len, int gone)
{
    redisReply *r;
    uint64_t id;
    int n = gone ? 2 : 1;

    if (fpm_redis_append(m, "LREM %s 0 %b", FP_KEY_DONE, s, len) ||
        (gone && fpm_redis_append(m, "LREM %s 0 %b", FP_KEY_JOBS_ACTIVE, s, len)))
        return FPM_LOST;
    while (n-- > 0) {
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
        fpm_redis_failed(m, r, "dropping a job");
        freeReplyObject(r);
    }
    if (gone && fp_text_u64(s, len, &id) == 0)
        fpm_job_remove(m, id);
    return 0;
}

/* Completes a job: reported as done when its last result is in (fp:done), or as cancelled
 * (control.c) with the results it has. */
static int report_job(fpm *m, const char *s, size_t len, int cancel)
{
    char meta[FP_KEY_MAX], lat[FP_KEY_MAX], thr[FP_KEY_MAX], shown[80];
    redisReply *hm = NULL, *hl = NULL, *ht = NULL, *ex;
    fp_hist_entry *hist = NULL;
    job_counts c;
    size_t nhist = 0;
    uint64_t id, finished;
    int ncmd, rc = 0;

    memset(&c, 0, sizeof(c));
    if (fp_text_u64(s, len, &id) != 0) {
        fp_sanitize(shown, sizeof(shown), s, len);
        fp_warn("moving bad job id '%s' from %s to %s", shown, FP_KEY_DONE, FP_KEY_DEAD);
        if (fpm_dead_letter(m, s, len) == FPM_LOST)
            return FPM_LOST;
        return forget(m, s, len, 1);
    }
    fp_key_job(meta, id, FP_JOB_META);
    fp_key_job(lat, id, FP_JOB_LAT);
    fp_key_job(thr, id, FP_JOB_THROTTLE);
    if (fpm_redis_append(m, "HGETALL %s", meta) || fpm_redis_append(m, "HGETALL %s", thr) ||
        (hm = fpm_redis_reply(m)) == NULL || (ht = fpm_redis_reply(m)) == NULL) {
        rc = FPM_LOST;
        goto out;
    }
    if (fpm_redis_failed(m, hm, "reading a job") || fpm_redis_failed(m, ht, "reading a job") ||
        hm->type != REDIS_REPLY_ARRAY || ht->type != REDIS_REPLY_ARRAY)
        goto out;
    if (hm->elements == 0) {
        fp_warn("job %" PRIu64 " is in %s but has no meta hash (expired?); dropping it", id,
                FP_KEY_DONE);
        rc = forget(m, s, len, 1);
        goto out;
    }
    counts_read(hm, &c);
    if (!c.sealed && !cancel && !c.cancelled) {
        fp_warn("job %" PRIu64 " is in %s but not sealed; ignoring that entry", id, FP_KEY_DONE);
        rc = forget(m, s, len, 0); /* still being fed: it stays active */
        goto out;
    }
    if (c.part_size == 0 || c.part_size > FPM_PART_SIZE_MAX)
        c.part_size = FP_PART_SIZE_DEFAULT;
    /* The summary says done only once the results files are complete. */
    if ((rc = fpm_results_complete(m, id, c.format, c.part_size, c.s.total,
                                   cancel || c.cancelled)) != 1)
        goto out;
    /* The histogram is complete now: the trims of the last results added to it. */
    if ((hl = fpm_redis_cmd(m, "HGETALL %s", lat)) == NULL) {
        rc = FPM_LOST;
        goto out;
    }
    if (hl->type != REDIS_REPLY_ARRAY) /* a damaged key must not keep the job from ending */
        fp_warn("job %" PRIu64 ": cannot read its latency histogram (%s); no percentiles", id,
                hl->type == REDIS_REPLY_ERROR ? hl->str : "not a hash");
    rc = 0;
    finished = c.finished_us;
    if (!c.has_finished && (rc = redis_now_us(m, &finished)) != 0)
        goto out;
    c.s.wall_us = finished > c.created_us && c.created_us ? finished - c.created_us : 0;
    if (hl->type == REDIS_REPLY_ARRAY)
        hist = hist_read(hl, &nhist);
    fp_summary_finish(&c.s, hist, nhist);

    c.cancelled |= cancel;
    if ((ncmd = append_completion(m, id, &c, finished, ht)) == FPM_LOST ||
        (ex = last_reply(m, ncmd)) == NULL) {
        rc = FPM_LOST;
        goto out;
    }
    if (!fpm_redis_failed(m, ex, "reporting a job") && ex->type == REDIS_REPLY_ARRAY) {
        fpm_job_remove(m, id);
        fp_info("job %" PRIu64 " %s: %" PRIu64 " tasks, %" PRIu64 " ok, %" PRIu64
                " failed, wall %.3f s",
                id, c.cancelled ? "cancelled" : "done", c.s.total, c.s.ok, c.s.failed,
                (double)c.s.wall_us / 1e6);
        rc = 1;
    }
    freeReplyObject(ex);
out:
    free(hist);
    free(c.fail);
    if (hm)
        freeReplyObject(hm);
    if (hl)
        freeReplyObject(hl);
    if (ht)
        freeReplyObject(ht);
    return rc;
}

int fpm_report_step(fpm *m)
{
    redisReply *r;
    int n = 0, rc;

    while (n < REPORT_MAX && !fpm_stop && m->errors == 0) {
        r = fpm_redis_cmd(m, "LINDEX %s 0", FP_KEY_DONE);
        if (r == NULL)
            return FPM_LOST;
        m->done_empty = r->type == REDIS_REPLY_NIL;
        if (fpm_redis_failed(m, r, "completions") || r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            break;
        }
        rc = report_job(m, r->str, r->len, 0);
        freeReplyObject(r);
        if (rc == FPM_LOST)
            return FPM_LOST;
        if (rc == 0)
            break; /* not done yet (another master writes its results, or an error) */
        n++;
    }
    return n;
}

int fpm_report_cancelled(fpm *m, uint64_t id)
{
    char s[32];

    return report_job(m, s, (size_t)snprintf(s, sizeof(s), "%" PRIu64, id), 1);
}
