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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_reap.h"
#include "fp_record.h"
#include "fp_scripts.h"
#include "master.h"

#define PROMOTE_MAX 1000 /* retries moved per round; the script is O(moved) */

int fpm_promote_step(fpm *m)
{
    static fp_call call;
    redisReply *r;
    int n = 0;

    fp_call_promote(&call, PROMOTE_MAX);
    r = fpm_redis_call(m, &call);
    if (r == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "promoting retries") && r->type == REDIS_REPLY_INTEGER)
        n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

/* Dead-worker reaper ---------------------------------------------------------------- */

#define REAP_EVERY_MS 1000
/* After a (re)connect every heartbeat may have expired during the outage: give live
 * workers a full heartbeat lifetime to show up again before judging any of them. */
#define REAP_SETTLE_MS (FP_HEARTBEAT_TTL_MS + 1000)

/* Hands every task of a dead worker back (or fails it once out of attempts). */
static int reap(fpm *m, const char *worker)
{
    static fp_call call;
    fp_reap_counts n;
    redisReply *r;

    if (fp_reap_list(m->rc, worker, &n) != 0)
        return FPM_LOST;
    m->errors += n.errors;
    if (n.alive) {
        fp_info("worker %s has a heartbeat again; %d of its tasks were handed back", worker,
                n.back + n.lost);
        return n.back + n.lost + n.dead + 1;
    }
    fp_call_forget(&call, worker);
    r = fpm_redis_call(m, &call);
    if (r == NULL)
        return FPM_LOST;
    fpm_redis_failed(m, r, "forgetting a dead worker");
    freeReplyObject(r);
    fp_info("worker %s has no heartbeat: %d tasks back to the queue, %d failed as worker_lost, "
            "%d dead letters",
            worker, n.back, n.lost, n.dead);
    return n.back + n.lost + n.dead + 1;
}

/* Redis's clock, through a script: a script waits out CLIENT PAUSE WRITE as writes do
 * (reads do not), so a pause shows as a slow reply here before any heartbeat is read.
 * A jump of Redis's clock expires heartbeats early (forward) or late (back): compared with
 * our monotonic clock, one is a reason for doubt. 0, or FPM_LOST. */
static int clock_check(fpm *m)
{
    static fp_call call;
    redisReply *r;
    int64_t offset;
    uint64_t now;

    fp_call_now(&call);
    if ((r = fpm_redis_call(m, &call)) == NULL)
        return FPM_LOST;
    now = fpm_now_ms();
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        offset = (int64_t)(fpm_reply_u64(r->element[0], 0) * 1000 +
                           fpm_reply_u64(r->element[1], 0) / 1000) -
                 (int64_t)now;
        if (m->clock_offset_ms && llabs(offset - m->clock_offset_ms) > FPM_STALL_MS) {
            fp_warn("Redis's clock jumped by %+.1f s; judging no worker by its heartbeat "
                    "for %d s",
                    (double)(offset - m->clock_offset_ms) / 1000.0, REAP_SETTLE_MS / 1000);
            m->doubt_ms = now;
        }
        m->clock_offset_ms = offset;
    } else {
        fpm_redis_failed(m, r, "reading Redis's clock");
    }
    freeReplyObject(r);
    return 0;
}

int fpm_reap_dead_workers_step(fpm *m)
{
    static uint64_t last;
    redisReply *ids, *r;
    char hb[FP_KEY_MAX], id[FP_WORKER_ID_MAX + 1];
    size_t i, n = 0;
    int done = 0, rc;

    if (fpm_now_ms() - last < REAP_EVERY_MS || fpm_now_ms() - m->doubt_ms < REAP_SETTLE_MS)
        return 0;
    last = fpm_now_ms();
    if (clock_check(m) == FPM_LOST)
        return FPM_LOST;
    if (fpm_now_ms() - m->doubt_ms < REAP_SETTLE_MS)
        return 0;
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
        if (fpm_now_ms() - m->doubt_ms < REAP_SETTLE_MS) { /* that reply was slow */
            freeReplyObject(r);
            break;
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
