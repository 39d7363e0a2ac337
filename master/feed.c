/* feed.c - turns input lines into tasks while the task queue is below its low-water mark.
 *
 * Jobs take turns (round robin), one batch of lines each, so a small job is never stuck
 * behind a large one. A batch is read with LRANGE and committed in ONE MULTI: the tasks
 * pushed, the input trimmed, fed/total advanced, invalid lines recorded as results (finish
 * script) and, after the last line, the job sealed. A crash before EXEC leaves the input
 * untouched, so the batch is simply read again; only one batch is ever in memory. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "line.h"
#include "fp_log.h"
#include "fp_record.h"
#include "fp_scripts.h"
#include "fp_text.h"
#include "master.h"

#define FEED_TURNS_MAX 64 /* batches per step, so completions are not kept waiting */
/* The finish script's processing-list key; never touched for an invalid line (no task). */
#define NO_PROC_LIST "master"

typedef struct rec {
    char *data;
    size_t len;
    uint64_t idx;
} rec;

typedef struct batch {
    rec *tasks, *bad; /* encoded task records; invalid_input result records */
    size_t ntasks, nbad;
    uint64_t consumed, created; /* input lines; tasks (= results to come) */
} batch;

static void rec_add(rec *list, size_t *n, const char *data, size_t len, uint64_t idx)
{
    char *p = malloc(len + 1);

    if (p == NULL) {
        fp_oom("while feeding");
    }
    memcpy(p, data, len);
    p[len] = '\0';
    list[*n].data = p;
    list[*n].len = len;
    list[*n].idx = idx;
    (*n)++;
}

static void batch_free(batch *b)
{
    size_t i;

    for (i = 0; i < b->ntasks; i++)
        free(b->tasks[i].data);
    for (i = 0; i < b->nbad; i++)
        free(b->bad[i].data);
    free(b->tasks);
    free(b->bad);
}

/* The invalid_input result of a line: the error is the reason, the URL the line as typed
 * (line end and surrounding blanks dropped) made printable, credentials hidden. */
static int encode_invalid(const fpm_job *j, uint64_t idx, uint64_t lineno, const char *why,
                          const char *raw, size_t len, char *buf, size_t buflen)
{
    static fp_result res; /* large; the master is single-threaded */
    static char shown[FP_URL_MAX + 1];
    char *p;
    int n;

    memset(&res, 0, sizeof(res));
    res.job = j->id;
    res.idx = idx;
    res.line = lineno;
    snprintf(res.status, sizeof(res.status), "%s", fp_reason_str(FP_R_INVALID_INPUT));
    fp_sanitize(res.error, sizeof(res.error), why, strlen(why));
    if (len > 0 && raw[len - 1] == '\r')
        len--;
    while (len > 0 && (raw[0] == ' ' || raw[0] == '\t'))
        raw++, len--;
    while (len > 0 && (raw[len - 1] == ' ' || raw[len - 1] == '\t'))
        len--;
    fp_sanitize(shown, sizeof(shown), raw, len);
    fp_text_url_redact(res.url, sizeof(res.url), shown);
    /* The url field allows no spaces (fp_sanitize keeps them). */
    for (p = res.url; *p; p++)
        if (*p == ' ')
            *p = '?';
    n = fp_result_encode(&res, buf, buflen);
    if (n < 0) {
        res.url[0] = '\0';
        n = fp_result_encode(&res, buf, buflen);
    }
    return n;
}

/* Classifies the n lines of an LRANGE reply into tasks and invalid-line results. */
static void batch_build(const fpm_job *j, const redisReply *lines, batch *b)
{
    static char out[FP_URL_MAX + 1], buf[FP_RECORD_MAX];
    static fp_task t;
    size_t i;
    int len;

    b->tasks = calloc(lines->elements, sizeof(rec));
    b->bad = calloc(lines->elements, sizeof(rec));
    if (b->tasks == NULL || b->bad == NULL) {
        fp_oom("while feeding");
    }
    for (i = 0; i < lines->elements; i++) {
        const redisReply *e = lines->element[i];
        const char *s = e->type == REDIS_REPLY_STRING ? e->str : "";
        size_t slen = e->type == REDIS_REPLY_STRING ? e->len : 0;
        uint64_t idx = j->total + b->created, lineno = j->fed + i + 1, given;
        size_t skip = 0;
        fp_line_kind kind;

        if (j->numbered && (given = fp_line_numbered(s, slen, &skip)) > 0) {
            lineno = given; /* the line of the file the client read it from */
            s += skip;
            slen -= skip;
        }
        kind = fp_line_parse(s, slen, out, sizeof(out));

        if (kind == FP_LINE_SKIP)
            continue;
        if (kind == FP_LINE_URL) {
            memset(&t, 0, sizeof(t));
            t.job = j->id;
            t.idx = idx;
            t.line = lineno;
            t.attempt = 1;
            t.max_attempts = j->attempts;
            t.flags = j->flags & FP_TASK_JOB_FLAGS;
            t.url = out;
            len = fp_task_encode(&t, buf, sizeof(buf));
            if (len >= 0) {
                rec_add(b->tasks, &b->ntasks, buf, (size_t)len, idx);
                b->created++;
                continue;
            }
            snprintf(out, sizeof(out), "URL cannot be encoded as a task");
        }
        len = encode_invalid(j, idx, lineno, out, s, slen, buf, sizeof(buf));
        if (len < 0) {
            fp_error("job %" PRIu64 " line %" PRIu64 ": cannot encode its result; skipped", j->id,
                     lineno);
            continue;
        }
        rec_add(b->bad, &b->nbad, buf, (size_t)len, idx);
        b->created++;
    }
    b->consumed = lines->elements;
}

/* Queues the batch's MULTI; returns the number of commands queued, or FPM_LOST. */
static int batch_append(fpm *m, const fpm_job *j, const batch *b, int seal)
{
    static fp_call call;
    char meta[FP_KEY_MAX], in[FP_KEY_MAX];
    const char **argv;
    size_t *lens, i;
    int ncmd = 0, rc;

    fp_key_job(meta, j->id, FP_JOB_META);
    fp_key_job(in, j->id, FP_JOB_IN);

    if (fpm_redis_append(m, "MULTI"))
        return FPM_LOST;
    ncmd++;
    if (b->ntasks > 0) {
        argv = malloc((b->ntasks + 2) * sizeof(*argv));
        lens = malloc((b->ntasks + 2) * sizeof(*lens));
        if (argv == NULL || lens == NULL) {
            fp_oom("while feeding");
        }
        argv[0] = "RPUSH";
        lens[0] = 5;
        argv[1] = FP_KEY_TASKS;
        lens[1] = strlen(FP_KEY_TASKS);
        for (i = 0; i < b->ntasks; i++) {
            argv[i + 2] = b->tasks[i].data;
            lens[i + 2] = b->tasks[i].len;
        }
        rc = fpm_redis_append_argv(m, (int)b->ntasks + 2, argv, lens);
        free(argv);
        free(lens);
        if (rc)
            return FPM_LOST;
        ncmd++;
    }
    if (fpm_redis_append(m, "LTRIM %s %" PRIu64 " -1", in, b->consumed) ||
        fpm_redis_append(m, "HINCRBY %s fed %" PRIu64, meta, b->consumed) ||
        fpm_redis_append(m, "HINCRBY %s total %" PRIu64, meta, b->created))
        return FPM_LOST;
    ncmd += 3;
    for (i = 0; i < b->nbad; i++) {
        fp_finish f = {.job = j->id,
                       .idx = b->bad[i].idx,
                       .result = b->bad[i].data,
                       .result_len = b->bad[i].len,
                       .status = fp_reason_str(FP_R_INVALID_INPUT),
                       .bucket = -1};
        fp_call_finish(&call, NO_PROC_LIST, &f);
        if (fpm_redis_append_call(m, &call))
            return FPM_LOST;
        ncmd++;
    }
    if (seal) {
        fp_call_seal(&call, j->id);
        if (fpm_redis_append_call(m, &call))
            return FPM_LOST;
        ncmd++;
    }
    if (fpm_redis_append(m, "EXEC"))
        return FPM_LOST;
    return ncmd + 1;
}

/* Commits the batch; on success advances the job's copy from EXEC's answers. 1 if another
 * master committed first (nothing applied). */
static int batch_commit(fpm *m, fpm_job *j, const batch *b, int seal)
{
    redisReply *r = NULL, *x;
    int ncmd, i;
    size_t at;

    if ((ncmd = batch_append(m, j, b, seal)) == FPM_LOST)
        return FPM_LOST;
    /* Every queued reply must be read, or the connection would be out of step. */
    for (i = 0; i < ncmd; i++) {
        if (r)
            freeReplyObject(r);
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
    }
    if (r->type == REDIS_REPLY_NIL) { /* another master fed this job since our WATCH */
        freeReplyObject(r);
        return 1;
    }
    if (fpm_redis_failed(m, r, "feeding a batch") || r->type != REDIS_REPLY_ARRAY) {
        m->resync = 1; /* what got applied is unknown: reload from Redis */
        freeReplyObject(r);
        return 0;
    }
    at = b->ntasks > 0 ? 1 : 0; /* EXEC answers in order: [RPUSH] LTRIM fed total ... */
    if (r->elements < at + 3) {
        m->resync = 1;
        freeReplyObject(r);
        return 0;
    }
    x = r->element[at + 1];
    j->fed = fpm_reply_u64(x, j->fed + b->consumed);
    x = r->element[at + 2];
    j->total = fpm_reply_u64(x, j->total + b->created);
    j->sealed = seal;
    freeReplyObject(r);
    return 0;
}

/* Seals a job whose input list is empty. */
static int seal_job(fpm *m, fpm_job *j)
{
    static fp_call call;
    redisReply *r;

    if (j->fed < j->lines)
        fp_warn("job %" PRIu64 ": input ends after %" PRIu64 " of %" PRIu64
                " lines (lost in Redis?); sealing it",
                j->id, j->fed, j->lines);
    fp_call_seal(&call, j->id);
    r = fpm_redis_call(m, &call);
    if (r == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "sealing a job")) {
        j->sealed = 1;
        fp_debug("job %" PRIu64 " sealed: %" PRIu64 " tasks", j->id, j->total);
    }
    freeReplyObject(r);
    return 0;
}

static int unwatch(fpm *m)
{
    redisReply *r = fpm_redis_cmd(m, "UNWATCH");

    if (r == NULL)
        return FPM_LOST;
    freeReplyObject(r);
    return 0;
}

/* WATCH the job's input, then read fed, total and sealed again. 1: nothing to feed (sealed
 * meanwhile, or an error, logged), 0: go on, FPM_LOST. */
static int watch_job(fpm *m, fpm_job *j, const char *in)
{
    char meta[FP_KEY_MAX];
    redisReply *r;
    int rc = 0;

    if ((r = fpm_redis_cmd(m, "WATCH %s", in)) == NULL)
        return FPM_LOST;
    freeReplyObject(r);
    fp_key_job(meta, j->id, FP_JOB_META);
    if ((r = fpm_redis_cmd(m, "HMGET %s fed total sealed paused cancelled", meta)) == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "reading a job") || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 5) {
        rc = 1;
    } else {
        j->fed = fpm_reply_u64(r->element[0], j->fed);
        j->total = fpm_reply_u64(r->element[1], j->total);
        if (fpm_reply_u64(r->element[2], 0) == 1) {
            j->sealed = 1; /* the other master sealed it */
            rc = 1;
        }
        /* Paused or cancelled through the other master's fp:ctl (control.c). */
        if (fpm_reply_u64(r->element[3], 0) == 1 || r->element[4]->type != REDIS_REPLY_NIL) {
            if (r->element[4]->type == REDIS_REPLY_NIL)
                fpm_control_paused(j, 1);
            j->paused = 1; /* a cancelled job: its cancel follows (control.c) */
            rc = 1;
        }
    }
    freeReplyObject(r);
    if (rc == 1 && unwatch(m) != 0)
        return FPM_LOST;
    return rc;
}

/* Feeds one batch of at most limit lines of job j. Returns the tasks queued or FPM_LOST;
 * *acted is set when the job moved on (lines consumed or sealed). */
static int feed_job(fpm *m, fpm_job *j, long limit, int *acted)
{
    char in[FP_KEY_MAX];
    redisReply *r;
    batch b;
    int seal, rc;

    fp_key_job(in, j->id, FP_JOB_IN);
    /* Another master on the same Redis may feed this job too: the input list changes only
     * with fed and total, in one MULTI, so WATCHing it makes a batch read here and committed
     * there one step; if the other master committed first, EXEC does nothing. Our copy of
     * fed and total is read again under the WATCH. */
    if ((rc = watch_job(m, j, in)) != 0)
        return rc < 0 ? rc : 0;
    r = fpm_redis_cmd(m, "LRANGE %s 0 %ld", in, limit - 1);
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "reading job input") || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return unwatch(m);
    }
    if (r->elements == 0) {
        freeReplyObject(r);
        if ((rc = unwatch(m)) != 0)
            return rc;
        rc = seal_job(m, j);
        *acted = j->sealed;
        return rc;
    }
    memset(&b, 0, sizeof(b));
    batch_build(j, r, &b);
    freeReplyObject(r);
    /* A short batch took the rest of the list: if that was the last line, seal now. */
    seal = b.consumed < (uint64_t)limit && j->fed + b.consumed >= j->lines;
    rc = batch_commit(m, j, &b, seal);
    if (rc == 1) {
        fp_debug("job %" PRIu64 ": another master fed this batch first", j->id);
        *acted = 1;
        rc = 0;
    } else if (rc == 0 && !m->resync && m->errors == 0) {
        *acted = 1;
        rc = (int)b.ntasks;
        fp_debug("job %" PRIu64 ": fed %" PRIu64 "/%" PRIu64 " lines, %zu tasks, %zu invalid",
                 j->id, j->fed, j->lines, b.ntasks, b.nbad);
        if (j->sealed)
            fp_debug("job %" PRIu64 " sealed: %" PRIu64 " tasks", j->id, j->total);
    }
    batch_free(&b);
    return rc;
}

int fpm_feed_step(fpm *m)
{
    redisReply *r;
    long long room;
    size_t idle = 0;
    int turns = 0, did = 0, n, acted;
    fpm_job *j;

    if (m->njobs == 0)
        return 0;
    r = fpm_redis_cmd(m, "LLEN %s", FP_KEY_TASKS);
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "queue length") || r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return 0;
    }
    room = m->cfg.queue_depth - r->integer;
    freeReplyObject(r);
    while (room > 0 && idle < m->njobs && turns < FEED_TURNS_MAX && !fpm_stop && !m->resync &&
           m->errors == 0) {
        if (m->next >= m->njobs)
            m->next = 0;
        j = &m->jobs[m->next];
        m->next = (m->next + 1) % m->njobs;
        if (j->paused && (n = fpm_control_recheck(m, j)) != 0) {
            if (n == FPM_LOST)
                return FPM_LOST;
            return did; /* the job left the table: the cursor moved */
        }
        if (j->sealed || j->paused) {
            idle++;
            continue;
        }
        acted = 0;
        /* No more than the room left: the queue stays near its mark, so a job that
         * arrives later waits behind as few tasks as possible. */
        n = feed_job(m, j, room < m->cfg.feed_batch ? (long)room : m->cfg.feed_batch, &acted);
        if (n == FPM_LOST)
            return FPM_LOST;
        turns++;
        room -= n;
        if (acted) {
            did++;
            idle = 0;
        } else {
            idle++;
        }
    }
    return did;
}
