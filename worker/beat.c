/* beat.c - the worker's heartbeat (link.h, owner.h): every second, set fp:worker:<id>
 * while the id is ours and read fp:cancelled beside it; a reply naming another owner makes
 * the link step down. */
#include <hiredis/async.h>
#include <inttypes.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "link_int.h"

int fp_link_cancelled(const fp_link *q, uint64_t job)
{
    return fp_cancelset_has(&q->cancelled, job);
}

/* fp:cancelled, read with the heartbeat: a cancelled job's transfers stop within about a
 * second. The set is small (ids of the last hour; the newest 1024 are read). */
static void cancelled_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_link *q = priv;

    (void)ac;
    if (reply == NULL || q->stopping)
        return;
    fp_cancelset_update(&q->cancelled, reply);
    if (q->cancelled.n > 0 && q->on_cancelled)
        q->on_cancelled(q->arg);
}

/* A heartbeat that names another owner: our id was taken while we were cut off or frozen
 * (owner.h). Step down: the worker drains without taking tasks (link.h). */
static void beat_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_link *q = priv;
    char other[FP_OWNER_MAX];
    int rc = fp_owner_beat_reply(&q->beats, reply, other, sizeof(other));

    (void)ac;
    q->beat_failed = rc < 0 && reply ? q->beat_failed + 1 : 0;
    if (q->beat_failed == 1) /* once until it works again */
        fp_warn("redis: setting the heartbeat failed: %s", ((redisReply *)reply)->str);
    if (rc > 0 && !q->lost) {
        q->lost = 1;
        q->want = q->spare = 0;
        uv_timer_stop(&q->heartbeat);
        uv_timer_stop(&q->adopt);
        fp_error("another worker (owner %s) took over id %s while this one (owner %s) was cut "
                 "off from Redis or frozen; stepping down: no new tasks, %" PRIu64
                 " transfers in flight finish and send their results, %s is left to it",
                 other, q->conf->id, q->owner, q->stats->inflight, q->proc_key);
        if (q->on_lost)
            q->on_lost(q->arg);
    }
    fp_link_kick(q); /* taking, adopting and a drain's hand-back wait for a fresh beat */
    fp_link_progress(q);
}

void fp_link_beat(fp_link *q)
{
    static fp_call call;
    uint64_t now = uv_now(q->loop);

    if (!q->cmd.up || q->lost)
        return;
    fp_owner_beat_call(&call, &q->beats, q->conf, q->owner, q->stats, now);
    if (redisAsyncCommandArgv(q->cmd.ac, beat_reply_cb, q, call.argc, call.argv, call.len) ==
        REDIS_OK)
        fp_owner_beat_sent(&q->beats, now);
    redisAsyncCommand(q->cmd.ac, cancelled_reply_cb, q, "ZRANGE %s -1024 -1", FP_KEY_CANCELLED);
}

void fp_link_heartbeat_cb(uv_timer_t *t)
{
    fp_link_beat(t->data);
}
