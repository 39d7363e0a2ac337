/* results.c - moves each job's results from Redis to its results files (parts.h).
 *
 * Workers' results wait in the list fp:job:<id>:out in the order they were counted. Each
 * step reads a batch from its head (LRANGE), spools it on disk (fsynced), and only then
 * deletes it from Redis (the trim script: workers only append at the tail, and it trims
 * only while this master holds the lease and the records read are still at the head; the
 * same script adds the batch's successes to the job's latency histogram, so each result
 * counts there once, when it leaves :out). A part whose every slot is spooled is marked
 * in Redis first (bit p of fp:job:<id>:parts:
 * from then on the finish script takes no result for it, not even the real result that
 * replaces a worker_lost one), checked (a replacement counted before the mark must be
 * spooled first), written out, and then its seen bitmaps are deleted.
 * Before a job's summary is written every result is drained and every part written out,
 * so a job whose summary says done has its complete results files.
 *
 * One master writes a job's results (a lease, fp:job:<id>:writer, so a second master on
 * the same Redis leaves the job to it). A crash anywhere repeats at most the last step: a batch
 * spooled but not trimmed comes again and is skipped slot by slot, a part marked but not written
 * is written from its spool, a part written but not told to Redis is told when the job's folder
 * is opened again. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_stats.h"
#include "master.h"
#include "parts.h"

#define DRAIN_BATCH 10000 /* results read per LRANGE, spooled with one fsync */
#define DRAIN_MAX   50000 /* results moved per step, so the other steps get their turn */
/* A job's results are drained at most this often (unless the last drain was a full
 * batch): an fsync takes milliseconds, and the loop must come back soon to keep the
 * task queue fed. The window leaves room for DRAIN_EVERY_MS of results and more. */
#define DRAIN_EVERY_MS 200
#define FULL_MAX       16

#define LEASE_MS   15000 /* the writer's lease on a job's results; refreshed every */
#define REFRESH_MS 3000

typedef struct fpm_out {
    uint64_t job;
    fpm_parts *ps;
    uint64_t lease_ms;   /* when we last held the writer lease (0: never) */
    uint64_t drained_ms; /* when its results were last drained */
    int behind;          /* the last drain stopped at a full batch */
} fpm_out;

static fpm_out *out_find(fpm *m, uint64_t job)
{
    size_t i;

    for (i = 0; i < m->nouts; i++)
        if (m->outs[i].job == job)
            return &m->outs[i];
    return NULL;
}

static void out_drop(fpm *m, uint64_t job)
{
    fpm_out *o = out_find(m, job);

    if (o == NULL)
        return;
    fpm_parts_free(o->ps);
    *o = m->outs[--m->nouts];
}

void fpm_results_free(fpm *m)
{
    while (m->nouts > 0)
        out_drop(m, m->outs[0].job);
    free(m->outs);
    m->outs = NULL;
    m->capouts = 0;
}

/* This master's name in writer leases: <host>-<pid>. */
static const char *writer_id(void)
{
    static char me[96];

    if (me[0] == '\0') {
        char host[64] = "master";
        gethostname(host, sizeof(host) - 1);
        snprintf(me, sizeof(me), "%s-%ld", host, (long)getpid());
    }
    return me;
}

/* The job's parts, opened (and loaded from disk) on first use. NULL after logging. */
static fpm_parts *parts_for(fpm *m, uint64_t job, fpm_format fmt, uint64_t psize)
{
    char err[PATH_MAX + 128];
    fpm_out *o = out_find(m, job);
    fpm_parts *ps;

    if (o)
        return o->ps;
    ps = fpm_parts_open(m->cfg.results_dir, job, fmt, psize, err, sizeof(err));
    if (ps == NULL) {
        fp_error("job %" PRIu64 ": results: %s", job, err);
        m->errors++;
        return NULL;
    }
    if (m->nouts == m->capouts) {
        size_t cap = m->capouts ? m->capouts * 2 : 16;
        fpm_out *n = realloc(m->outs, cap * sizeof(*n));
        if (n == NULL)
            fp_oom("for the results table");
        m->outs = n;
        m->capouts = cap;
    }
    m->outs[m->nouts].job = job;
    m->outs[m->nouts].ps = ps;
    m->outs[m->nouts].lease_ms = 0;
    m->outs[m->nouts].drained_ms = 0;
    m->outs[m->nouts].behind = 0;
    m->nouts++;
    return ps;
}

uint64_t fpm_results_pending(fpm *m, const fpm_job *j)
{
    fpm_parts *ps = parts_for(m, j->id, j->format, j->part_size);
    uint64_t d;

    if (ps == NULL)
        return j->total; /* the disk is in trouble: count everything as pending */
    d = fpm_parts_drained(ps);
    return j->total > d ? j->total - d : 0;
}

/* Tells Redis that parts are written out: bit p of :parts, then its bitmaps go. */
static int tell_written(fpm *m, uint64_t job, const uint64_t *nos, size_t n)
{
    char parts[FP_KEY_MAX], seen[FP_KEY_MAX];
    redisReply *r;
    size_t i;

    fp_key_job(parts, job, FP_JOB_PARTS);
    for (i = 0; i < n; i++)
        if (fpm_redis_append(m, "SETBIT %s %" PRIu64 " 1", parts, nos[i]) ||
            fpm_redis_append(m, "DEL %s", fp_key_seen(seen, job, nos[i])) ||
            fpm_redis_append(m, "DEL %s", fp_key_lost(seen, job, nos[i])))
            return FPM_LOST;
    for (i = 0; i < 3 * n; i++) {
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
        fpm_redis_failed(m, r, "marking a results part written");
        freeReplyObject(r);
    }
    return 0;
}

/* Marks part no as being written (bit no of :parts), so that the finish script takes no
 * more results for it: not even a real result replacing a worker_lost one, which would
 * count as ok in Redis while the part file says worker_lost. A replacement counted before
 * the mark waits in :out; *ready is 0 while one may (Redis no longer has a slot as lost
 * that the spool holds as lost) and :out is not empty, so the part waits for the next drain.
 * Cannot be undone, and need not be: a part is written once all its slots are spooled (or
 * the job is over), so every later result for it is a duplicate. */
static int mark_writing(fpm *m, uint64_t job, fpm_parts *ps, uint64_t no, int *ready)
{
    char parts[FP_KEY_MAX], lost[FP_KEY_MAX], out[FP_KEY_MAX];
    redisReply *r[3];
    int i;

    *ready = 0;
    fp_key_job(parts, job, FP_JOB_PARTS);
    fp_key_lost(lost, job, no);
    fp_key_job(out, job, FP_JOB_OUT);
    if (fpm_redis_append(m, "SETBIT %s %" PRIu64 " 1", parts, no) ||
        fpm_redis_append(m, "GET %s", lost) || fpm_redis_append(m, "LLEN %s", out))
        return FPM_LOST;
    for (i = 0; i < 3; i++)
        if ((r[i] = fpm_redis_reply(m)) == NULL) {
            while (i-- > 0)
                freeReplyObject(r[i]);
            return FPM_LOST;
        }
    if (fpm_redis_failed(m, r[0], "marking a results part") || r[1]->type == REDIS_REPLY_ERROR)
        *ready = 1; /* the finish script refuses every result for a part with such keys */
    else if (r[1]->type == REDIS_REPLY_STRING)
        *ready = fpm_parts_lost_agree(ps, no, (const unsigned char *)r[1]->str, r[1]->len);
    else
        *ready = fpm_parts_lost_agree(ps, no, NULL, 0); /* no bitmap: nothing is lost */
    if (!*ready && r[2]->type == REDIS_REPLY_INTEGER && r[2]->integer == 0)
        *ready = 1; /* nothing left to wait for (the lost mark went another way) */
    if (!*ready)
        fp_debug("job %" PRIu64 ": results part %" PRIu64 " waits for a replaced worker_lost "
                 "result still in %s",
                 job, no, out);
    for (i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return 0;
}

/* Writes part no out. Returns 0, WAITING (mark_writing: try again after the next drain;
 * force writes it anyway) or FPM_LOST. */
#define WAITING 1
static int write_part(fpm *m, uint64_t job, fpm_parts *ps, uint64_t no, uint64_t slots,
                      int drop_missing, int force)
{
    char err[PATH_MAX + 128];
    uint64_t missing = 0;
    int ready, rc;

    if ((rc = mark_writing(m, job, ps, no, &ready)) != 0)
        return rc;
    if (!ready && !force)
        return WAITING;
    if (fpm_parts_write(ps, no, slots, drop_missing, &missing, err, sizeof(err)) != 0) {
        fp_error("job %" PRIu64 ": writing results part %" PRIu64 ": %s", job, no, err);
        m->errors++;
        return 0;
    }
    if (missing && !drop_missing)
        fp_warn("job %" PRIu64 ": results part %" PRIu64 " written with %" PRIu64 " slots missing",
                job, no, missing);
    fp_debug("job %" PRIu64 ": results part %" PRIu64 " written (%s)", job, no, fpm_parts_dir(ps));
    return tell_written(m, job, &no, 1);
}

/* Parts found written out at open: make sure Redis knows (a crash may have come between). */
static int tell_found(fpm *m, uint64_t job, fpm_parts *ps)
{
    uint64_t *nos;
    size_t n = fpm_parts_found(ps, &nos);
    int rc = n ? tell_written(m, job, nos, n) : 0;

    free(nos);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* The trim script's histogram of a batch: "<bucket> <count>" pairs of its successes,
 * separated by spaces (fp_scripts.h). Returns a string to free, of length *len. */
static char *hist_arg(const fpm_rec *recs, size_t n, size_t *len)
{
    enum { PAIR = 24 }; /* " <bucket> <count>": at most 1 + 10 + 1 + 5 (DRAIN_BATCH) */
    uint32_t *b = malloc(n * sizeof(*b) + 1);
    char *s = malloc(n * PAIR + 1);
    size_t i, j, k = 0, used = 0;
    uint64_t us;

    if (b == NULL || s == NULL)
        fp_oom("while draining results");
    for (i = 0; i < n; i++)
        if (fpm_rec_ok_us(recs[i].data, recs[i].len, &us))
            b[k++] = fp_stats_bucket(us);
    qsort(b, k, sizeof(*b), cmp_u32);
    for (i = 0; i < k; i = j) {
        for (j = i; j < k && b[j] == b[i]; j++)
            ;
        used +=
            (size_t)snprintf(s + used, PAIR + 1, "%s%" PRIu32 " %zu", used ? " " : "", b[i], j - i);
    }
    s[used] = '\0';
    free(b);
    *len = used;
    return s;
}

/* Moves one batch of job's results to disk. Returns how many were read, or FPM_LOST. */
static int drain_batch(fpm *m, uint64_t job, fpm_parts *ps, int *more)
{
    char out[FP_KEY_MAX], err[PATH_MAX + 128];
    uint64_t full[FULL_MAX];
    redisReply *r, *t;
    const redisReply *last;
    fp_call call;
    fpm_rec *recs;
    char *hist = NULL;
    size_t i, n = 0, nfull, hist_len;
    long fresh;
    int rc = 0;

    *more = 0;
    fp_key_job(out, job, FP_JOB_OUT);
    if ((r = fpm_redis_cmd(m, "LRANGE %s 0 %d", out, DRAIN_BATCH - 1)) == NULL)
        return FPM_LOST;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0) {
        /* Not a list (damaged by hand): the finish script refuses to record results
         * there too, so there is nothing to drain; the slots end up "missing". */
        fp_debug("job %" PRIu64 ": %s is not a list; nothing to drain", job, out);
        freeReplyObject(r);
        return 0;
    }
    if (fpm_redis_failed(m, r, "reading results") || r->type != REDIS_REPLY_ARRAY ||
        r->elements == 0) {
        freeReplyObject(r);
        return 0;
    }
    if ((recs = calloc(r->elements, sizeof(*recs))) == NULL)
        fp_oom("while draining results");
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        uint64_t idx;
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (fpm_rec_idx(e->str, e->len, &idx) != 0) {
            fp_warn("job %" PRIu64 ": a result without a slot; moved to %s", job, FP_KEY_DEAD);
            if (fpm_dead_letter(m, e->str, e->len) == FPM_LOST) {
                rc = FPM_LOST;
                goto done;
            }
            continue;
        }
        recs[n].data = e->str;
        recs[n].len = e->len;
        recs[n].idx = idx;
        n++;
    }
    if ((fresh = fpm_parts_append(ps, recs, n, err, sizeof(err))) < 0) {
        fp_error("job %" PRIu64 ": spooling results: %s", job, err);
        out_drop(m, job); /* state unknown: reload from disk next time */
        m->errors++;
        goto done;
    }
    /* Durable on disk: now Redis may forget them, if they are still ours to forget. */
    last = r->element[r->elements - 1];
    hist = hist_arg(recs, n, &hist_len);
    fp_call_trim(&call, job, writer_id(), r->elements, last->str ? last->str : "",
                 last->str ? last->len : 0, LEASE_MS, hist, hist_len);
    if ((t = fpm_redis_call(m, &call)) == NULL) {
        rc = FPM_LOST;
        goto done;
    }
    if (!fpm_redis_failed(m, t, "trimming results") && t->type == REDIS_REPLY_INTEGER &&
        t->integer < 0) {
        fp_warn("job %" PRIu64 ": results not trimmed: %s; left to the master that holds the "
                "writer lease",
                job, t->integer == -1 ? "the lease is no longer ours" : ":out changed under us");
        freeReplyObject(t);
        out_drop(m, job); /* what was spooled is the other master's to write now */
        goto done;
    }
    freeReplyObject(t);
    if (out_find(m, job) != NULL)
        out_find(m, job)->lease_ms = fpm_now_ms(); /* the trim renewed it */
    if (fresh < (long)n)
        fp_debug("job %" PRIu64 ": %ld results were spooled already", job, (long)n - fresh);
    nfull = fpm_parts_full(ps, full, FULL_MAX);
    for (i = 0; i < nfull && (rc == 0 || rc == WAITING); i++)
        rc = write_part(m, job, ps, full[i], fpm_parts_part_size(ps), 0, 0);
    if (rc == WAITING)
        rc = 0;
    if (rc == 0) {
        rc = (int)r->elements;
        *more = r->elements == DRAIN_BATCH;
    }
done:
    free(hist);
    free(recs);
    freeReplyObject(r);
    return rc;
}

/* 1 if this master is (or now becomes) the one writing the job's results, 0 if another
 * master on the same Redis holds the lease, FPM_LOST. Two masters must never both drain
 * :out: each would hold part of the results. A master that dies leaves the lease to
 * expire; the next one carries on from the results folder (shared, or its own disk's). */
static int own(fpm *m, uint64_t job)
{
    const char *me = writer_id();
    char key[FP_KEY_MAX];
    fpm_out *o = out_find(m, job);
    redisReply *r;
    int mine;

    if (o && o->lease_ms && fpm_now_ms() - o->lease_ms < REFRESH_MS)
        return 1;
    fp_key_job(key, job, FP_JOB_WRITER);
    if ((r = fpm_redis_cmd(m, "SET %s %s NX PX %d", key, me, LEASE_MS)) == NULL)
        return FPM_LOST;
    mine = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!mine) {
        if ((r = fpm_redis_cmd(m, "GET %s", key)) == NULL)
            return FPM_LOST;
        mine = r->type == REDIS_REPLY_STRING && strcmp(r->str, me) == 0;
        freeReplyObject(r);
        if (mine) {
            if ((r = fpm_redis_cmd(m, "PEXPIRE %s %d", key, LEASE_MS)) == NULL)
                return FPM_LOST;
            freeReplyObject(r);
        }
    }
    if (mine && (o = out_find(m, job)) != NULL)
        o->lease_ms = fpm_now_ms();
    return mine;
}

/* Drains up to max results of a job; returns how many, or FPM_LOST. */
static int drain_job(fpm *m, uint64_t job, fpm_format fmt, uint64_t psize, long max, int *more)
{
    fpm_out *o;
    fpm_parts *ps;
    int n, did = 0, rc;

    *more = 0;
    o = out_find(m, job);
    if (o == NULL) {
        if ((ps = parts_for(m, job, fmt, psize)) == NULL)
            return 0;
    } else {
        ps = o->ps;
    }
    if ((rc = own(m, job)) != 1)
        return rc;
    if (o == NULL && (rc = tell_found(m, job, ps)) != 0)
        return rc;
    do {
        if ((n = drain_batch(m, job, ps, more)) == FPM_LOST)
            return FPM_LOST;
        did += n;
        if (out_find(m, job) == NULL)
            break; /* dropped after an error */
    } while (*more && did < max && !fpm_stop && m->errors == 0);
    return did;
}

int fpm_results_step(fpm *m)
{
    long left = DRAIN_MAX;
    size_t i;
    int n, did = 0, more;

    for (i = 0; i < m->njobs && left > 0 && !fpm_stop && m->errors == 0; i++) {
        const fpm_job *j = &m->jobs[i];
        fpm_out *o = out_find(m, j->id);
        /* A job that was never fed has no results yet: no folder for it either. */
        if (j->total == 0 && o == NULL)
            continue;
        if (o && !o->behind && fpm_now_ms() - o->drained_ms < DRAIN_EVERY_MS)
            continue;
        if ((n = drain_job(m, j->id, j->format, j->part_size, left, &more)) == FPM_LOST)
            return FPM_LOST;
        if ((o = out_find(m, j->id)) != NULL) {
            o->drained_ms = fpm_now_ms();
            o->behind = more;
        }
        did += n;
        left -= n;
    }
    return did;
}

int fpm_results_complete(fpm *m, uint64_t job, fpm_format fmt, uint64_t psize, uint64_t total,
                         int cancelled)
{
    uint64_t nparts = total ? (total + psize - 1) / psize : 1, no, slots;
    fpm_parts *ps;
    int more, n, rc, tries, waiting = 1;

    if ((rc = own(m, job)) != 1)
        return rc; /* another master writes this job's results and reports it */
    /* Once a job is over no result can replace another, so a part that waits for one
     * (write_part) has it after the next drain; the third round writes regardless. */
    for (tries = 0; waiting; tries++) {
        for (more = 1; more;) {
            if ((n = drain_job(m, job, fmt, psize, DRAIN_MAX, &more)) == FPM_LOST)
                return FPM_LOST;
            if (m->errors || fpm_stop)
                return 0;
        }
        if ((ps = out_find(m, job) ? out_find(m, job)->ps : NULL) == NULL)
            return 0; /* the lease went to another master while draining */
        for (waiting = 0, no = 0; no < nparts; no++) {
            if (fpm_parts_written(ps, no))
                continue;
            slots = total > no * psize ? total - no * psize : 0;
            if (slots > psize)
                slots = psize;
            rc = write_part(m, job, ps, no, slots, cancelled, tries >= 2);
            if (rc == WAITING)
                waiting = 1;
            else if (rc != 0)
                return rc;
            if (m->errors)
                return 0;
        }
    }
    out_drop(m, job);
    return 1;
}
