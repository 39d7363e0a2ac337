/* intake.c - the master's table of active jobs: takes new jobs from fp:jobs:new into
 * fp:jobs:active, and rebuilds the table from Redis at start and after a reconnect.
 *
 * Redis holds the truth (fed, total, sealed in the job hash; the ids in fp:jobs:active),
 * so a restarted master resumes every job exactly where the last committed step left it.
 * Jobs are taken oldest first (LEFT of fp:jobs:new, which clients RPUSH). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_record.h"
#include "fp_text.h"
#include "master.h"

#define INTAKE_MAX       64 /* jobs taken per step, so the other steps get their turn */
#define DEFAULT_ATTEMPTS 3

fpm_job *fpm_job_find(fpm *m, uint64_t id)
{
    size_t i;

    for (i = 0; i < m->njobs; i++)
        if (m->jobs[i].id == id)
            return &m->jobs[i];
    return NULL;
}

void fpm_job_remove(fpm *m, uint64_t id)
{
    fpm_job *j = fpm_job_find(m, id);
    size_t i;

    if (j == NULL)
        return;
    free(j->input);
    i = (size_t)(j - m->jobs);
    memmove(j, j + 1, (m->njobs - i - 1) * sizeof(*j));
    m->njobs--;
    if (m->next > i)
        m->next--;
    if (m->next >= m->njobs)
        m->next = 0;
}

static void job_add(fpm *m, const fpm_job *j)
{
    if (m->njobs == m->capjobs) {
        size_t cap = m->capjobs ? m->capjobs * 2 : 16;
        fpm_job *p = realloc(m->jobs, cap * sizeof(*p));
        if (p == NULL) {
            fp_oom("for the job table");
        }
        m->jobs = p;
        m->capjobs = cap;
    }
    m->jobs[m->njobs++] = *j;
}

/* Takes an unusable id out of fp:jobs:active so it is not looked at again. */
static int job_drop(fpm *m, const char *s, size_t len)
{
    redisReply *r = fpm_redis_cmd(m, "LREM %s 0 %b", FP_KEY_JOBS_ACTIVE, s, len);

    if (r == NULL)
        return FPM_LOST;
    fpm_redis_failed(m, r, "dropping a job");
    freeReplyObject(r);
    return 0;
}

/* Makes sure the meta hash has what the other processes rely on: state=running,
 * fed/total present (the finish script refuses results of a job without total), the
 * per-host limits and what they count per (the master's defaults unless the client set
 * them) and the results part size. */
static int job_mark_running(fpm *m, const char *meta, uint64_t part_size)
{
    redisReply *r;
    int i, rc = 0;

    if (fpm_redis_append(m, "HSET %s state running", meta) ||
        fpm_redis_append(m, "HSETNX %s total 0", meta) ||
        fpm_redis_append(m, "HSETNX %s fed 0", meta) ||
        fpm_redis_append(m, "HSETNX %s host_conns %ld", meta, m->cfg.host_conns) ||
        fpm_redis_append(m, "HSETNX %s host_rate %g", meta, m->cfg.host_rate) ||
        fpm_redis_append(m, "HSETNX %s host_group %s", meta, fpm_group_str(m->cfg.host_group)) ||
        fpm_redis_append(m, "HSETNX %s part_size %" PRIu64, meta, part_size))
        return FPM_LOST;
    for (i = 0; i < 7; i++) {
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
        if (fpm_redis_failed(m, r, "job intake"))
            rc = 1;
        freeReplyObject(r);
    }
    return rc;
}

/* A sealed job with every result in whose id is not in fp:done lost that push (Redis
 * restarted without it): push it again. The report step is idempotent anyway. */
static int job_recheck_done(fpm *m, uint64_t id)
{
    redisReply *r = fpm_redis_cmd(m, "LPOS %s %" PRIu64, FP_KEY_DONE, id);
    int missing;

    if (r == NULL)
        return FPM_LOST;
    missing = r->type == REDIS_REPLY_NIL;
    fpm_redis_failed(m, r, "job resume");
    freeReplyObject(r);
    if (!missing)
        return 0;
    fp_warn("job %" PRIu64 " is complete but was not in %s; queueing its report", id, FP_KEY_DONE);
    r = fpm_redis_cmd(m, "RPUSH %s %" PRIu64, FP_KEY_DONE, id);
    if (r == NULL)
        return FPM_LOST;
    fpm_redis_failed(m, r, "job resume");
    freeReplyObject(r);
    return 0;
}

/* Resolves a job's input file; one that is not usable leaves j->input NULL (the job is
 * sealed empty) with the reason in the job's error field. */
static int job_input(fpm *m, fpm_job *j, const char *name, size_t len)
{
    char err[256], meta[FP_KEY_MAX], shown[128];
    redisReply *r;

    fp_sanitize(shown, sizeof(shown), name, len);
    if (strlen(name) != len)
        snprintf(err, sizeof(err), "input name holds a NUL byte");
    else if ((j->input = fpm_input_resolve(m->cfg.jobs_dir, name, err, sizeof(err))) != NULL)
        return 0;
    fp_warn("job %" PRIu64 ": input '%s': %s; the job gets no tasks", j->id, shown, err);
    r = fpm_redis_cmd(m, "HSET %s error %s", fp_key_job(meta, j->id, FP_JOB_META), err);
    if (r == NULL)
        return FPM_LOST;
    fpm_redis_failed(m, r, "job intake");
    freeReplyObject(r);
    return 0;
}

/* Loads a job whose id is in fp:jobs:active into the table. fresh: just taken from
 * fp:jobs:new (logs "started") rather than resumed. Returns 1 if added, 0 if not,
 * FPM_LOST. */
static int job_load(fpm *m, const char *s, size_t len, int fresh)
{
    char meta[FP_KEY_MAX], shown[80];
    redisReply *r, **e;
    uint64_t id, done, attempts;
    fpm_job j;
    int rc, cancelled;

    if (fp_text_u64(s, len, &id) != 0) {
        fp_sanitize(shown, sizeof(shown), s, len);
        fp_warn("moving bad job id '%s' from %s to %s", shown, FP_KEY_JOBS_ACTIVE, FP_KEY_DEAD);
        if (fpm_dead_letter(m, s, len) == FPM_LOST)
            return FPM_LOST;
        return job_drop(m, s, len);
    }
    if (fpm_job_find(m, id))
        return 0;
    fp_key_job(meta, id, FP_JOB_META);
    r = fpm_redis_cmd(m,
                      "HMGET %s lines fed total sealed attempts flags state done paused "
                      "cancelled numbered part_size format input in_off upload host_group",
                      meta);
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "job intake") || r->type != REDIS_REPLY_ARRAY || r->elements != 17) {
        freeReplyObject(r);
        return 0;
    }
    e = r->element;
    if (e[0]->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        fp_warn("job %" PRIu64 " has no 'lines' field (never fully submitted, or expired); "
                "dropping it",
                id);
        return job_drop(m, s, len);
    }
    if (e[6]->type == REDIS_REPLY_STRING &&
        (strcmp(e[6]->str, "done") == 0 || strcmp(e[6]->str, "cancelled") == 0)) {
        freeReplyObject(r);
        return job_drop(m, s, len);
    }
    memset(&j, 0, sizeof(j));
    j.id = id;
    j.lines = fpm_reply_u64(e[0], 0);
    j.fed = fpm_reply_u64(e[1], 0);
    j.total = fpm_reply_u64(e[2], 0);
    j.sealed = fpm_reply_u64(e[3], 0) == 1;
    attempts = fpm_reply_u64(e[4], DEFAULT_ATTEMPTS);
    j.attempts = attempts >= 1 && attempts <= UINT32_MAX ? (uint32_t)attempts : DEFAULT_ATTEMPTS;
    j.flags = (uint32_t)(fpm_reply_u64(e[5], 0) & FP_TASK_FLAGS_ALL);
    done = fpm_reply_u64(e[7], 0);
    j.paused = fpm_reply_u64(e[8], 0) == 1;
    cancelled = e[9]->type != REDIS_REPLY_NIL;
    j.numbered = fpm_reply_u64(e[10], 0) == 1;
    j.part_size = fpm_reply_u64(e[11], (uint64_t)m->cfg.part_size);
    if (j.part_size == 0 || j.part_size > FPM_PART_SIZE_MAX)
        j.part_size = FP_PART_SIZE_DEFAULT;
    if (e[12]->type == REDIS_REPLY_STRING && fpm_format_parse(e[12]->str, e[12]->len, &j.format)) {
        fp_sanitize(shown, sizeof(shown), e[12]->str, e[12]->len);
        fp_warn("job %" PRIu64 ": unknown results format '%s'; writing tsv", id, shown);
    }
    j.in_off = fpm_reply_u64(e[14], 0);
    j.uploading = e[15]->type == REDIS_REPLY_STRING && strcmp(e[15]->str, "open") == 0;
    /* Absent: the master's default, which job_mark_running writes. */
    j.group = m->cfg.host_group;
    if (e[16]->type == REDIS_REPLY_STRING &&
        (j.group = fpm_group_parse(e[16]->str, e[16]->len)) < 0) {
        fp_sanitize(shown, sizeof(shown), e[16]->str, e[16]->len);
        fp_warn("job %" PRIu64 ": unknown host_group '%s'; limiting per host name", id, shown);
        j.group = FPM_GROUP_HOST;
    }
    if (e[13]->type == REDIS_REPLY_STRING) {
        j.from_file = 1;
        if (job_input(m, &j, e[13]->str, e[13]->len) == FPM_LOST) {
            freeReplyObject(r);
            return FPM_LOST;
        }
    }
    freeReplyObject(r);

    if ((rc = job_mark_running(m, meta, j.part_size)) != 0) {
        free(j.input);
        return rc == FPM_LOST ? FPM_LOST : 0;
    }
    if (j.sealed && done >= j.total && (rc = job_recheck_done(m, id)) != 0)
        return rc;
    job_add(m, &j);
    if (cancelled) /* cancelled before this master acted on it: now */
        return fpm_control_apply(m, id, j.paused, 1) == FPM_LOST ? FPM_LOST : 1;
    if (fresh && j.from_file)
        fp_info("job %" PRIu64 " started: input file %s", id, j.input ? j.input : "(none)");
    else if (fresh)
        fp_info("job %" PRIu64 " started: %" PRIu64 " lines%s", id, j.lines,
                j.uploading ? " so far (uploading)" : "");
    else
        fp_info("job %" PRIu64 " resumed: %" PRIu64 "/%" PRIu64 " lines fed, %" PRIu64 " tasks%s",
                id, j.fed, j.lines, j.total, j.sealed ? ", sealed" : "");
    return 1;
}

int fpm_intake_take(fpm *m, const redisReply *id)
{
    if (id->type != REDIS_REPLY_STRING)
        return 0;
    return job_load(m, id->str, id->len, 1);
}

int fpm_intake_step(fpm *m)
{
    redisReply *r;
    int n = 0, rc;

    while (n < INTAKE_MAX && !fpm_stop) {
        r = fpm_redis_cmd(m, "LMOVE %s %s LEFT RIGHT", FP_KEY_JOBS_NEW, FP_KEY_JOBS_ACTIVE);
        if (r == NULL)
            return FPM_LOST;
        if (fpm_redis_failed(m, r, "job intake") || r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            break;
        }
        rc = fpm_intake_take(m, r);
        freeReplyObject(r);
        if (rc == FPM_LOST)
            return FPM_LOST;
        n++;
    }
    return n;
}

int fpm_intake_resume(fpm *m)
{
    redisReply *r;
    size_t i;
    int rc;

    for (i = 0; i < m->njobs; i++)
        free(m->jobs[i].input);
    m->njobs = 0;
    m->next = 0;
    r = fpm_redis_cmd(m, "LRANGE %s 0 -1", FP_KEY_JOBS_ACTIVE);
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "resume") || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return 0;
    }
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        rc = job_load(m, r->element[i]->str, r->element[i]->len, 0);
        if (rc == FPM_LOST) {
            freeReplyObject(r);
            return FPM_LOST;
        }
    }
    freeReplyObject(r);
    m->resync = 0;
    return 0;
}
