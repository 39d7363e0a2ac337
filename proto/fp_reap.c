/* fp_reap.c - hand back a dead worker's tasks (see fp_reap.h). */
#include "fp_reap.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_record.h"
#include "fp_redis_sync.h"
#include "fp_scripts.h"

/* The last attempt died with its worker: the task gets its final result. */
static redisReply *fail_lost(redisContext *c, const char *proc, const char *raw, size_t rawlen,
                             const fp_task *t, const char *worker)
{
    static fp_result r; /* large; callers are single-threaded */
    static fp_call call;
    char rec[FP_RECORD_MAX], why[96];
    fp_finish f = {0};
    redisReply *reply;
    int n;

    snprintf(why, sizeof(why), "the worker died during attempt %u of %u", t->attempt,
             t->max_attempts);
    fp_result_fail_task(&r, t, FP_R_WORKER_LOST, worker, why);
    if ((n = fp_result_encode(&r, rec, sizeof(rec))) < 0)
        return redisCommand(c, "LREM %s 1 %b", proc, raw, rawlen); /* cannot happen */
    f.task = raw;
    f.task_len = rawlen;
    f.job = t->job;
    f.idx = t->idx;
    f.result = rec;
    f.result_len = (size_t)n;
    f.status = r.status;
    fp_call_finish(&call, worker, &f);
    reply = redisCommandArgv(c, call.argc, call.argv, call.len);
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || fp_redis_error_transient(reply->str))
        return reply;
    /* Refused for good (fp_script_finish's FPREFUSED, WRONGTYPE, NOPERM): never leave it
     * in the list, where the reaper would find it again every second. */
    fp_error("Redis refused the result of line %" PRIu64 " of job %" PRIu64
             " (%s): the task goes to %s and counts as failed",
             t->line, t->job, reply->str, FP_KEY_DEAD);
    freeReplyObject(reply);
    fp_call_abandon(&call, worker, raw, rawlen, t->job, t->idx, rec, (size_t)n, r.status);
    return redisCommandArgv(c, call.argc, call.argv, call.len);
}

int fp_reap_list(redisContext *c, const char *worker, fp_reap_counts *n)
{
    static fp_task t;
    static fp_call call;
    char proc[FP_KEY_MAX], hb[FP_KEY_MAX], next[FP_RECORD_MAX], err[128];
    redisReply *list, *r;
    size_t i;
    int len;

    memset(n, 0, sizeof(*n));
    fp_key_proc(proc, worker);
    if ((list = redisCommand(c, "LRANGE %s 0 -1", proc)) == NULL)
        return -1;
    for (i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (fp_task_decode(&t, e->str, e->len, err, sizeof(err)) != 0) {
            fp_warn("dead letter in %s: %s", proc, err);
            fp_call_bury(&call, worker, e->str, e->len);
            r = redisCommandArgv(c, call.argc, call.argv, call.len);
            n->dead++;
        } else if (t.attempt >= t.max_attempts) {
            if ((r = redisCommand(c, "EXISTS %s", fp_key_heartbeat(hb, worker))) == NULL) {
                freeReplyObject(list);
                return -1;
            }
            if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
                freeReplyObject(r);
                n->alive = 1;
                break;
            }
            freeReplyObject(r);
            r = fail_lost(c, proc, e->str, e->len, &t, worker);
            n->lost++;
        } else {
            t.attempt++;
            t.flags |= FP_TASK_RECOVERED;
            if ((len = fp_task_encode(&t, next, sizeof(next))) < 0)
                continue;
            fp_call_requeue(&call, worker, e->str, e->len, next, (size_t)len);
            r = redisCommandArgv(c, call.argc, call.argv, call.len);
            if (r && r->type == REDIS_REPLY_INTEGER && r->integer < 0) {
                freeReplyObject(r);
                n->alive = 1;
                break;
            }
            n->back++;
        }
        if (r == NULL) {
            freeReplyObject(list);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            fp_error("handing back a task of %s: Redis error: %s", worker, r->str);
            n->errors++;
        }
        freeReplyObject(r);
    }
    freeReplyObject(list);
    return 0;
}
