/* control.c - pause, resume and cancel (PROTOCOL.md, "Control").
 *
 * A client writes the wish into the job hash (paused=1, or cancelled=<time>) and pushes the
 * job id to fp:ctl; the hash is the truth, fp:ctl only says "look again", so a master that
 * restarts finds every wish where the client left it (intake.c reads the same fields). A
 * paused job is skipped by the feed step; its queued tasks still run. A cancelled job is
 * taken out of the queue and the retry set by the cancel script and completed at once as
 * `cancelled` with the results it has: from the moment the client set the field, the finish
 * script records none of its results and workers abort its transfers at their next
 * heartbeat (they read fp:cancelled). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_service.h"
#include "fp_text.h"
#include "master.h"

#define CONTROL_MAX 64   /* wishes read per step */
#define RECHECK_MS  1000 /* a paused job's hash is read again this often */

static int cancel(fpm *m, uint64_t id)
{
    static fp_call call;
    redisReply *r;
    int rc;

    fp_call_cancel(&call, id);
    if ((r = fpm_redis_call(m, &call)) == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "cancelling a job")) {
        freeReplyObject(r);
        return 0;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3)
        fp_info("job %" PRIu64 " cancelled: %lld queued, %lld waiting to retry and %lld "
                "parked tasks removed",
                id, r->element[0]->integer, r->element[1]->integer, r->element[2]->integer);
    freeReplyObject(r);
    fpm_job_remove(m, id);
    rc = fpm_report_cancelled(m, id);
    return rc == FPM_LOST ? FPM_LOST : 1;
}

int fpm_control_apply(fpm *m, uint64_t id, int paused, int cancelled)
{
    fpm_job *j = fpm_job_find(m, id);

    if (cancelled)
        return cancel(m, id);
    if (j)
        fpm_control_paused(j, paused);
    return 0;
}

void fpm_control_paused(fpm_job *j, int paused)
{
    if (j->paused != paused)
        fp_info("job %" PRIu64 " %s", j->id, paused ? "paused" : "resumed");
    j->paused = paused;
}

/* One id from fp:ctl: reads what the job hash says and acts on it. */
static int control_job(fpm *m, const redisReply *e)
{
    char meta[FP_KEY_MAX];
    redisReply *r;
    uint64_t id;
    int paused, cancelled, rc = 0;

    if (e->type != REDIS_REPLY_STRING || fp_text_u64(e->str, e->len, &id) != 0)
        return 0; /* not an id: nothing to do */
    fp_key_job(meta, id, FP_JOB_META);
    if ((r = fpm_redis_cmd(m, "HMGET %s paused cancelled state", meta)) == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "job control") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[2]->str, "done") != 0 && strcmp(r->element[2]->str, "cancelled") != 0) {
        paused = fpm_reply_u64(r->element[0], 0) == 1;
        cancelled = r->element[1]->type != REDIS_REPLY_NIL;
        /* A job not taken yet (state new) is cancelled too; a paused one waits for intake. */
        rc = fpm_control_apply(m, id, paused, cancelled);
    }
    freeReplyObject(r);
    return rc;
}

int fpm_control_step(fpm *m)
{
    redisReply *r;
    size_t i;
    int did = 0, rc;

    r = fpm_redis_cmd(m, "LPOP %s %d", FP_KEY_CONTROL, CONTROL_MAX);
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "job control") || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return 0;
    }
    for (i = 0; i < r->elements && !fpm_stop; i++) {
        if ((rc = control_job(m, r->element[i])) == FPM_LOST) {
            freeReplyObject(r);
            return FPM_LOST;
        }
        did += rc > 0 ? rc : 0;
    }
    freeReplyObject(r);
    return did;
}

/* A paused job, looked at again once a second: another master on the same Redis may have
 * taken its resume or cancel from fp:ctl. 1 if it left the table, 0, or FPM_LOST. */
int fpm_control_recheck(fpm *m, fpm_job *j)
{
    char meta[FP_KEY_MAX];
    redisReply *r;
    uint64_t id = j->id, now = fpm_now_ms();
    int paused, cancelled, rc = 0;

    if (now - j->checked_ms < RECHECK_MS)
        return 0;
    j->checked_ms = now;
    fp_key_job(meta, id, FP_JOB_META);
    if ((r = fpm_redis_cmd(m, "HMGET %s paused cancelled state", meta)) == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "job control") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3) {
        paused = fpm_reply_u64(r->element[0], 0) == 1;
        cancelled = r->element[1]->type != REDIS_REPLY_NIL;
        if (cancelled && r->element[2]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[2]->str, "cancelled") == 0) {
            fpm_job_remove(m, id); /* the other master completed it */
            rc = 1;
        } else {
            rc = fpm_control_apply(m, id, paused, cancelled);
        }
    }
    freeReplyObject(r);
    return rc;
}
