/* upkeep.c - queue housekeeping the master does every loop round: moving retries whose
 * delay is over from fp:retry back to the head of fp:tasks, and, once a second, handing
 * back the tasks of workers whose heartbeat has expired (the reaper).
 *
 * A worker refreshes fp:worker:<id> every second with a 5 s expiry, so a dead worker's
 * tasks are back in the queue about 5-6 s after it died. Each task comes back with its
 * attempt raised; one whose last attempt died with its worker (a task that crashes every
 * worker taking it, say) gets the final result worker_lost instead of looping forever. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_record.h"
#include "fp_scripts.h"
#include "master.h"

#define PROMOTE_MAX 1000 /* retries moved per round; the script is O(moved) */

int fpm_promote_step(fpm *m)
{
    redisReply *r;
    int n = 0;

    r = fpm_redis_cmd(m, "EVAL %s 2 %s %s %d", fp_script_promote, FP_KEY_RETRY, FP_KEY_TASKS,
                      PROMOTE_MAX);
    if (r == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "promoting retries") && r->type == REDIS_REPLY_INTEGER)
        n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

/* Dead-worker reaper ---------------------------------------------------------------- */

#define REAP_EVERY_MS 1000

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The last attempt died with its worker: the task gets its final result. */
static redisReply *fail_lost(fpm *m, const char *proc, const char *raw, size_t rawlen,
                             const fp_task *t, const char *worker)
{
    static fp_result r;
    char rec[FP_RECORD_MAX], meta[FP_KEY_MAX], res[FP_KEY_MAX], lat[FP_KEY_MAX];
    char idx[24], job[24];
    int n;

    memset(&r, 0, sizeof(r));
    r.job = t->job;
    r.idx = t->idx;
    r.line = t->line;
    r.attempts = t->attempt;
    fp_reason_format(FP_R_WORKER_LOST, 0, r.status, sizeof(r.status));
    snprintf(r.worker, sizeof(r.worker), "%s", worker);
    snprintf(r.url, sizeof(r.url), "%s", t->url);
    snprintf(r.error, sizeof(r.error), "the worker died during attempt %u of %u", t->attempt,
             t->max_attempts);
    if ((n = fp_result_encode(&r, rec, sizeof(rec))) < 0)
        return NULL;
    snprintf(idx, sizeof(idx), "%" PRIu64, t->idx);
    snprintf(job, sizeof(job), "%" PRIu64, t->job);
    fp_key_job(meta, t->job, FP_JOB_META);
    fp_key_job(res, t->job, FP_JOB_RES);
    fp_key_job(lat, t->job, FP_JOB_LAT);
    return fpm_redis_cmd(m, "EVAL %s 5 %s %s %s %s %s %b %s %b 0 %s 0 0 %s %s", fp_script_finish,
                         proc, meta, res, lat, FP_KEY_DONE, raw, rawlen, idx, rec, (size_t)n,
                         r.status, "", job);
}

/* Hands every task of a dead worker back (or fails it once out of attempts). */
static int reap(fpm *m, const char *worker)
{
    static fp_task t;
    char proc[FP_KEY_MAX], hb[FP_KEY_MAX], next[FP_RECORD_MAX], err[128];
    redisReply *list, *r;
    size_t i;
    int back = 0, lost = 0, dead = 0;

    fp_key_proc(proc, worker);
    fp_key_heartbeat(hb, worker);
    if ((list = fpm_redis_cmd(m, "LRANGE %s 0 -1", proc)) == NULL)
        return FPM_LOST;
    for (i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements && !fpm_stop; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (fp_task_decode(&t, e->str, e->len, err, sizeof(err)) != 0) {
            fp_warn("dead letter in %s: %s", proc, err);
            r = fpm_redis_cmd(m, "EVAL %s 2 %s %s %b", fp_script_bury, proc, FP_KEY_DEAD, e->str,
                              e->len);
            dead++;
        } else if (t.attempt >= t.max_attempts) {
            r = fail_lost(m, proc, e->str, e->len, &t, worker);
            lost++;
        } else {
            int n;
            t.attempt++;
            t.flags |= FP_TASK_RECOVERED;
            if ((n = fp_task_encode(&t, next, sizeof(next))) < 0)
                continue;
            r = fpm_redis_cmd(m, "EVAL %s 2 %s %s %b %b", fp_script_requeue, proc, FP_KEY_TASKS,
                              e->str, e->len, next, (size_t)n);
            back++;
        }
        if (r == NULL) {
            freeReplyObject(list);
            return FPM_LOST;
        }
        fpm_redis_failed(m, r, "reaping a dead worker");
        freeReplyObject(r);
    }
    freeReplyObject(list);
    r = fpm_redis_cmd(m, "EVAL %s 3 %s %s %s %s", fp_script_forget, proc, hb, FP_KEY_WORKERS,
                      worker);
    if (r == NULL)
        return FPM_LOST;
    fpm_redis_failed(m, r, "forgetting a dead worker");
    freeReplyObject(r);
    fp_info("worker %s has no heartbeat: %d tasks back to the queue, %d failed as worker_lost, "
            "%d dead letters",
            worker, back, lost, dead);
    return back + lost + dead + 1;
}

int fpm_reap_dead_workers_step(fpm *m)
{
    static uint64_t last;
    redisReply *ids, *r;
    char hb[FP_KEY_MAX], id[FP_WORKER_ID_MAX + 1];
    size_t i, n = 0;
    int done = 0, rc;

    if (now_ms() - last < REAP_EVERY_MS)
        return 0;
    last = now_ms();
    if ((ids = fpm_redis_cmd(m, "SMEMBERS %s", FP_KEY_WORKERS)) == NULL)
        return FPM_LOST;
    if (ids->type == REDIS_REPLY_ARRAY)
        n = ids->elements;
    for (i = 0; i < n && !fpm_stop; i++) {
        const redisReply *e = ids->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (!(e->len > 0 && fp_worker_id_valid(e->str, e->len))) {
            fp_warn("removing a malformed worker id from %s", FP_KEY_WORKERS);
            r = fpm_redis_cmd(m, "SREM %s %b", FP_KEY_WORKERS, e->str, e->len);
        } else {
            memcpy(id, e->str, e->len);
            id[e->len] = '\0';
            r = fpm_redis_cmd(m, "EXISTS %s", fp_key_heartbeat(hb, id));
        }
        if (r == NULL) {
            freeReplyObject(ids);
            return FPM_LOST;
        }
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 &&
            (e->len > 0 && fp_worker_id_valid(e->str, e->len))) {
            freeReplyObject(r);
            if ((rc = reap(m, id)) == FPM_LOST) {
                freeReplyObject(ids);
                return FPM_LOST;
            }
            done += rc;
            continue;
        }
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    return done;
}
