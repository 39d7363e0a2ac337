/* feed.c - turns input lines into tasks while the task queue is below its low-water mark
 * and the window has room.
 *
 * Jobs take turns (round robin), one batch of lines each, so a small job is never stuck
 * behind a large one. A batch is read with LRANGE from the job's input list (or from its
 * input file, input.c) and committed in ONE MULTI: the tasks pushed, the input trimmed
 * (or the file offset advanced), fed/total advanced, invalid lines recorded as results
 * (finish script) and, after the last line, the job sealed. A crash before EXEC leaves
 * the input untouched, so the batch is simply read again; only one batch is ever in
 * memory. The window (--window) bounds the tasks of each job that are in Redis at once,
 * queued, taken, parked, waiting for a retry, or as results not yet on the master's
 * disk: so Redis holds a window of every job, never a whole job. A second master on the
 * same Redis is safe: each batch is read under a WATCH of the job's input (the list, or
 * for an input file the key :in holding its offset), so if the other master committed
 * first, EXEC does nothing. For a job whose host budget is per registered domain, each
 * task's flags carry its host's label count (hostgroup.h). */
#include <inttypes.h>
#include <limits.h>
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

/* Classifies a batch of input lines into tasks and invalid-line results. g: the public
 * suffix list, for a job whose hosts share a budget per registered domain, else NULL. */
static void batch_build(const fpm_job *j, fpm_hostgroup *g, const fpm_lines *lines, batch *b)
{
    static char out[FP_URL_MAX + 1], buf[FP_RECORD_MAX];
    static fp_task t;
    size_t i;
    int len;

    b->tasks = calloc(lines->n + 1, sizeof(rec));
    b->bad = calloc(lines->n + 1, sizeof(rec));
    if (b->tasks == NULL || b->bad == NULL) {
        fp_oom("while feeding");
    }
    for (i = 0; i < lines->n; i++) {
        const char *s = lines->line[i];
        size_t slen = lines->len[i];
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
            if (g)
                t.flags |= fpm_hostgroup_labels(g, out) << FP_TASK_GROUP_SHIFT;
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
    b->consumed = lines->n;
}

/* Queues the batch's MULTI; returns the number of commands queued, or FPM_LOST. next_off:
 * the input file's offset after the batch (file jobs). */
static int batch_append(fpm *m, const fpm_job *j, const batch *b, int seal, uint64_t next_off)
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
    if (j->from_file) {
        if (fpm_redis_append(m, "HSET %s in_off %" PRIu64, meta, next_off))
            return FPM_LOST;
    } else if (fpm_redis_append(m, "LTRIM %s %" PRIu64 " -1", in, b->consumed)) {
        return FPM_LOST;
    }
    if (fpm_redis_append(m, "HINCRBY %s fed %" PRIu64, meta, b->consumed) ||
        fpm_redis_append(m, "HINCRBY %s total %" PRIu64, meta, b->created))
        return FPM_LOST;
    ncmd += 3;
    /* A file's line count is known as it is read. */
    /* :in holds the file's offset too: the key the WATCH of a second master looks at. */
    if (j->from_file && (fpm_redis_append(m, "HINCRBY %s lines %" PRIu64, meta, b->consumed) ||
                         fpm_redis_append(m, "SET %s %" PRIu64, in, next_off)))
        return FPM_LOST;
    ncmd += 2 * j->from_file;
    for (i = 0; i < b->nbad; i++) {
        fp_finish f = {.job = j->id,
                       .idx = b->bad[i].idx,
                       .result = b->bad[i].data,
                       .result_len = b->bad[i].len,
                       .status = fp_reason_str(FP_R_INVALID_INPUT)};
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
static int batch_commit(fpm *m, fpm_job *j, const batch *b, int seal, uint64_t next_off)
{
    redisReply *r = NULL, *x;
    int ncmd, i;
    size_t at;

    if ((ncmd = batch_append(m, j, b, seal, next_off)) == FPM_LOST)
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
    if (j->from_file) {
        j->in_off = next_off;
        j->lines = j->fed;
    }
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

/* WATCH the job's input, then read fed, total, sealed and in_off again. 1: nothing to feed (sealed
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
    if ((r = fpm_redis_cmd(m, "HMGET %s fed total sealed paused cancelled in_off", meta)) == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "reading a job") || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 6) {
        rc = 1;
    } else {
        j->fed = fpm_reply_u64(r->element[0], j->fed);
        j->total = fpm_reply_u64(r->element[1], j->total);
        j->in_off = fpm_reply_u64(r->element[5], j->in_off);
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

/* Reads the next batch of job j: from its input file, or from its input list (then the
 * line count and upload state are read first, so a job is sealed only when the client
 * has said its last line is pushed). *reply keeps the list's reply alive. Returns 0 (a
 * WATCH is then on, unless m->errors), 2 if there is nothing to feed (the job was sealed
 * by another master), or FPM_LOST. */
static int read_batch(fpm *m, fpm_job *j, long limit, fpm_lines *lines, redisReply **reply,
                      uint64_t *next_off, int *end)
{
    char in[FP_KEY_MAX], meta[FP_KEY_MAX], err[PATH_MAX + 64];
    redisReply *h, *r;
    size_t i;
    int rc;

    memset(lines, 0, sizeof(*lines));
    *reply = NULL;
    fp_key_job(meta, j->id, FP_JOB_META);
    fp_key_job(in, j->id, FP_JOB_IN);
    /* Another master on the same Redis may feed this job too: the input changes only
     * with fed and total, in one MULTI, so WATCHing it makes a batch read here and
     * committed there one step; if the other master committed first, EXEC does nothing.
     * Our copy of fed and total is read again under the WATCH. */
    if ((rc = watch_job(m, j, in)) != 0)
        return rc < 0 ? rc : 2;
    if (j->from_file) {
        if (j->input == NULL) {
            *end = 1;
            return 0;
        }
        if (fpm_input_read(j->input, j->in_off, (size_t)limit, lines, next_off, end, err,
                           sizeof(err)) != 0) {
            fp_error("job %" PRIu64 ": %s", j->id, err);
            m->errors++;
            return unwatch(m);
        }
        return 0;
    }
    if (fpm_redis_append(m, "HMGET %s lines upload", meta) ||
        fpm_redis_append(m, "LRANGE %s 0 %ld", in, limit - 1))
        return FPM_LOST;
    if ((h = fpm_redis_reply(m)) == NULL)
        return FPM_LOST;
    if ((r = fpm_redis_reply(m)) == NULL) {
        freeReplyObject(h);
        return FPM_LOST;
    }
    if (!fpm_redis_failed(m, h, "reading job input") && h->type == REDIS_REPLY_ARRAY &&
        h->elements == 2) {
        j->lines = fpm_reply_u64(h->element[0], j->lines);
        j->uploading =
            h->element[1]->type == REDIS_REPLY_STRING && strcmp(h->element[1]->str, "open") == 0;
    }
    freeReplyObject(h);
    if (fpm_redis_failed(m, r, "reading job input") || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return unwatch(m);
    }
    lines->line = calloc(r->elements + 1, sizeof(*lines->line));
    lines->len = calloc(r->elements + 1, sizeof(*lines->len));
    if (lines->line == NULL || lines->len == NULL)
        fp_oom("while feeding");
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        lines->line[i] = e->type == REDIS_REPLY_STRING ? e->str : "";
        lines->len[i] = e->type == REDIS_REPLY_STRING ? e->len : 0;
    }
    lines->n = r->elements;
    /* A short batch took the rest of the list: if that was the last line, seal now. */
    *end = lines->n < (size_t)limit && j->fed + lines->n >= j->lines && !j->uploading;
    *reply = r;
    return 0;
}

/* Feeds one batch of at most limit lines of job j. Returns the tasks queued or FPM_LOST;
 * *acted is set when the job moved on (lines consumed or sealed). */
static int feed_job(fpm *m, fpm_job *j, long limit, int *acted)
{
    redisReply *r;
    fpm_lines lines;
    uint64_t next_off = j->in_off;
    batch b;
    int end = 0, rc;

    if ((rc = read_batch(m, j, limit, &lines, &r, &next_off, &end)) != 0)
        return rc == 2 ? 0 : rc;
    if (m->errors) {
        fpm_lines_free(&lines);
        if (r)
            freeReplyObject(r);
        return 0;
    }
    if (lines.n == 0) {
        fpm_lines_free(&lines);
        if (r)
            freeReplyObject(r);
        if ((rc = unwatch(m)) != 0)
            return rc;
        if (!end && (j->from_file || j->uploading))
            return 0; /* the client has not pushed more yet */
        rc = seal_job(m, j);
        *acted = j->sealed;
        return rc;
    }
    if (j->group == FPM_GROUP_DOMAIN && !m->hostgroup_tried) {
        m->hostgroup = fpm_hostgroup_new(); /* NULL: logged, the job limits per host name */
        m->hostgroup_tried = 1;
    }
    memset(&b, 0, sizeof(b));
    batch_build(j, j->group == FPM_GROUP_DOMAIN ? m->hostgroup : NULL, &lines, &b);
    fpm_lines_free(&lines);
    if (r)
        freeReplyObject(r);
    rc = batch_commit(m, j, &b, end, next_off);
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

/* Room job j's window leaves: --window minus what the job has in Redis. Per job, so a
 * job whose tasks wait long (parked for a slow host, retries) never starves the others. */
static long window_room(fpm *m, const fpm_job *j)
{
    uint64_t used = j->total > 0 ? fpm_results_pending(m, j) : 0;

    return used >= (uint64_t)m->cfg.window ? 0 : m->cfg.window - (long)used;
}

int fpm_feed_step(fpm *m)
{
    redisReply *r;
    long long room;
    long limit;
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
        if (j->sealed || j->paused || (limit = window_room(m, j)) <= 0) {
            idle++;
            continue;
        }
        acted = 0;
        /* No more than the room left: the queue stays near its mark, so a job that
         * arrives later waits behind as few tasks as possible. */
        if (limit > room)
            limit = (long)room;
        if (limit > m->cfg.feed_batch)
            limit = m->cfg.feed_batch;
        n = feed_job(m, j, limit, &acted);
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
