/* link.c - fetchpool's protocol on the worker's side of Redis (see link.h): taking
 * tasks, adopting tasks whose delivery was cut, batching results, retries, dead letters,
 * and the order of shutdown (the heartbeat is beat.c's). The connections are rconn.c's,
 * the commands that must be acknowledged wait in outbox.c, and every call's arguments come
 * from fp_scripts.c. */
#include "link.h"

#include <hiredis/async.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_redis_sync.h"
#include "fp_service.h"
#include "link_int.h"
#include "refused.h"

#define BLOCK_S  "1" /* BLMOVE wait when the queue is empty */
#define BLOCK_MS 1000
/* A take whose reply was lost may still run in Redis later (a dropped link's command
 * waiting in Redis's socket buffer while Redis is stalled): look for such orphans in our
 * processing list this often, not only right after a reconnect. */
#define ADOPT_EVERY_MS   5000
#define FINISH_BATCH_MAX 256 /* results in one finish script call at most */

static void maybe_adopt(fp_link *q);
static void batch_close(fp_link *q);
static void take(fp_link *q, const char *check, size_t check_len);

/* Connections ----------------------------------------------------------------------- */

static void conn_up_cb(fp_rconn *c, void *arg)
{
    fp_link *q = arg;

    /* A batch may have moved into our processing list with its reply lost. */
    if (q->connected_before)
        q->need_adopt = 1;
    if (c == &q->pull) {
        uv_timer_stop(&q->kick);
        q->connected_before = 1;
    } else {
        fp_owner_beat_resync(&q->beats);
        fp_link_beat(q); /* before the master's reaper misses us */
        fp_outbox_flush(&q->out);
    }
    maybe_adopt(q);
    fp_link_kick(q);
}

static void conn_down_cb(fp_rconn *c, void *arg)
{
    fp_link *q = arg;

    (void)c;
    if (q->final_sent)
        fp_link_progress(q);
}

static void replied_cb(void *arg)
{
    fp_link_progress(arg);
}

static void refused_cb(void *arg, fp_cmd *cmd, const char *err)
{
    fp_link *q = arg;

    fp_refused_handle(&q->out, q->conf->id, cmd, err);
}

/* Pulling tasks --------------------------------------------------------------------- */

static void deliver(fp_link *q, const redisReply *r, fp_take_verdict v, const char *why)
{
    if (r->type != REDIS_REPLY_STRING || q->stopping || q->lost)
        return; /* left in the list: the new owner's adoption takes it (lost) */
    if (!fp_owner_fresh(&q->beats, uv_now(q->loop))) {
        q->need_adopt = 1; /* ours? adopted once a beat says so (owner.h) */
        return;
    }
    if (fp_cancelset_has_task(&q->cancelled, r->str, r->len))
        fp_link_drop(q, r->str, r->len);
    else
        q->on_task(q->arg, r->str, r->len, v, why);
}

static void kick_cb(uv_timer_t *t)
{
    fp_link *q = t->data;

    q->held = 0;
    fp_link_kick(q);
}

/* q->pulling stays set while a reply is delivered, so the top-ups it causes do not send
 * a second fetch for the same free slots. */
static void pull_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_link *q = priv;
    redisReply *r = reply;
    size_t i;

    (void)ac;
    if (r == NULL) {
        q->pulling = 0;
        fp_link_progress(q);
        return; /* connection gone; fp_link_kick runs again after the reconnect */
    }
    if (r->type == REDIS_REPLY_ERROR && fp_redis_error_noscript(r->str) && !q->stopping &&
        q->pull.up) {
        fp_debug("redis: %s; taking with the script's source", r->str);
        q->take_eval = 1; /* nothing ran: the same take, once, as EVAL */
        take(q, q->take_check, q->take_check_len);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fp_warn("redis: taking tasks failed: %s", r->str);
        q->pulling = 0;
        if (!q->stopping && q->pull.up) /* try again shortly */
            uv_timer_start(&q->kick, kick_cb, 500, 0);
        fp_link_progress(q);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 6 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[2]->type == REDIS_REPLY_ARRAY &&
        r->element[3]->type == REDIS_REPLY_ARRAY && r->element[4]->type == REDIS_REPLY_STRING &&
        r->element[5]->type == REDIS_REPLY_INTEGER) {
        /* The take script (fp_scripts.h): {run, passed over, host given up, unjudged, why,
         * spare held back}. */
        const redisReply *tasks = r->element[0], *doomed = r->element[2], *broken = r->element[3];
        for (i = 0; i < tasks->elements; i++)
            deliver(q, tasks->element[i], FP_TAKE_RUN, "");
        for (i = 0; i < doomed->elements; i++)
            deliver(q, doomed->element[i], FP_TAKE_HOST_DOWN, "");
        for (i = 0; i < broken->elements; i++)
            deliver(q, broken->element[i], FP_TAKE_BROKEN, r->element[4]->str);
        if (tasks->elements == 0 && r->element[1]->integer > 0 && !q->stopping) {
            /* Only recovered tasks left and we hold our share: BLMOVE would take one
             * anyway, so look again a little later. */
            q->pulling = 0;
            uv_timer_start(&q->kick, kick_cb, 200, 0);
            return;
        }
        if (tasks->elements == 0 && r->element[5]->integer > 0 && q->want <= q->spare &&
            !q->stopping) {
            /* Only spare tasks wanted and the queue holds none to spare: look again when a
             * slot frees, or a little later (the master may have fed more). */
            q->held = 1;
            q->pulling = 0;
            uv_timer_start(&q->kick, kick_cb, 200, 0);
            return;
        }
        if (tasks->elements == 0 && !q->stopping && q->want > 0 && q->pull.up) {
            /* Queue empty: wait for the next task without polling. */
            redisAsyncCommand(q->pull.ac, pull_reply_cb, q, "BLMOVE %s %s LEFT RIGHT " BLOCK_S,
                              FP_KEY_TASKS, q->proc_key);
            return;
        }
    } else if (r->type == REDIS_REPLY_STRING && !q->stopping) {
        /* BLMOVE moved a task past the take script: let it judge the host's budget, so
         * every task passes the same gate. It takes nothing more in that call, so a task
         * that crashes workers still arrives alone (the next call fetches the rest). */
        take(q, r->str, r->len);
        return;
    }
    q->pulling = 0;
    if (q->stopping)
        fp_link_progress(q);
    else
        fp_link_kick(q);
}

/* After a lost connection, a batch may have moved into our processing list with its reply
 * lost: take back every task there that we neither run nor are settling. */
static void adopt_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_link *q = priv;
    redisReply *r = reply;
    size_t i, n = 0;

    (void)ac;
    if (r == NULL)
        q->need_adopt = 1; /* the cmd connection went down: again after the reconnect */
    if (r && r->type == REDIS_REPLY_ARRAY && !fp_owner_fresh(&q->beats, uv_now(q->loop)))
        q->need_adopt = 1; /* the list may be another worker's: once a beat says not */
    else if (r && r->type == REDIS_REPLY_ARRAY && !q->stopping && !q->lost) {
        /* Results gathered since the LRANGE went out are not commands yet: made into one
         * now, their tasks count as being settled and are not taken back. */
        batch_close(q);
        for (i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || q->known(q->arg, e->str, e->len) ||
                fp_outbox_settling(&q->out, e->str, e->len))
                continue;
            deliver(q, e, FP_TAKE_RUN, ""); /* neither stopping nor lost here */
            n++;
        }
        if (n)
            fp_info("took back %zu tasks whose delivery was cut by the lost connection", n);
    }
    q->pulling = 0;
    if (q->stopping)
        fp_link_progress(q);
    else
        fp_link_kick(q);
}

/* The LRANGE goes on the cmd connection right behind the results already sent, so its
 * reply comes after theirs: a task they settled is gone from the list by then, and one
 * still settling is among q->items. No fetch runs meanwhile (pulling stays set). */
static void maybe_adopt(fp_link *q)
{
    if (!q->need_adopt || !q->pull.up || !q->cmd.up || q->pulling || q->stopping || q->lost ||
        !fp_owner_fresh(&q->beats, uv_now(q->loop)))
        return;
    q->need_adopt = 0;
    q->pulling = 1;
    batch_close(q);
    fp_outbox_flush(&q->out);
    redisAsyncCommand(q->cmd.ac, adopt_reply_cb, q, "LRANGE %s 0 -1", q->proc_key);
}

static void adopt_cb(uv_timer_t *t)
{
    fp_link *q = t->data;

    q->need_adopt = 1;
    maybe_adopt(q);
}

/* A task may wait for a local slot after it was taken: its lease outlives the longest
 * transfer by a minute. The lease is given back when the task is settled; the expiry is
 * only the backstop. The take and the finish, the calls every task makes, go by their
 * script's SHA1 (fp_call_by_sha); a NOSCRIPT answer sends the same call again with the
 * source (pull_reply_cb here, outbox.c for results). */
static void take(fp_link *q, const char *check, size_t check_len)
{
    static fp_call call;
    long lease_ms = q->conf->connect_timeout_ms + q->conf->timeout_ms + 60000;

    q->pulling = 1;
    fp_call_take(&call, q->conf->id, check ? 0 : q->want, check ? 0 : q->spare,
                 q->conf->concurrency, q->recovered_slots, lease_ms, check, check_len);
    if (q->take_eval)
        q->take_eval = 0; /* Redis answered NOSCRIPT to the last one: the source, once */
    else
        fp_call_by_sha(&call);
    /* A task to judge is kept until the reply, in case it must go again (NOSCRIPT). */
    if (check != q->take_check) {
        free(q->take_check);
        q->take_check = NULL;
        q->take_check_len = 0;
        if (check && (q->take_check = malloc(check_len + 1)) != NULL) {
            memcpy(q->take_check, check, check_len);
            q->take_check_len = check_len;
        }
    }
    redisAsyncCommandArgv(q->pull.ac, pull_reply_cb, q, call.argc, call.argv, call.len);
}

void fp_link_kick(fp_link *q)
{
    if (q->need_adopt) {
        maybe_adopt(q);
        return;
    }
    if (!q->pull.up || q->pulling || q->stopping || q->want <= 0 || q->need_adopt || q->lost ||
        (q->held && q->want <= q->spare) || !fp_owner_fresh(&q->beats, uv_now(q->loop)))
        return;
    take(q, NULL, 0);
}

void fp_link_want(fp_link *q, int n, int spare, int recovered_slots)
{
    q->want = n;
    q->spare = spare < 0 ? 0 : spare > n ? n : spare;
    q->recovered_slots = recovered_slots;
    if (q->want > q->spare)
        q->held = 0; /* a slot is free: take now */
    fp_link_kick(q);
}

/* Results, retries, dead letters ---------------------------------------------------- */

/* Turns the results gathered in this loop turn into one finish call in the outbox. */
static void batch_close(fp_link *q)
{
    static fp_call head;
    fp_cmd *cmd;

    if (q->batch_n == 0)
        return;
    cmd = fp_cmd_new(&q->out, 1);
    fp_cmd_set_tag(cmd, q->batch_n > 1 ? FP_CMD_BATCH : FP_CMD_FINISH);
    fp_call_finish_head(&head, q->conf->id, q->batch_n);
    fp_call_by_sha(&head);
    if (fp_call_is_by_sha(&head))
        fp_cmd_set_script(cmd, head.script);
    fp_cmd_add(cmd, &head, 0, head.argc);
    fp_cmd_move(cmd, q->batch_keys);
    fp_cmd_move(cmd, q->batch_args);
    q->batch_keys = q->batch_args = NULL;
    q->batch_n = 0;
    uv_check_stop(&q->batch_check);
    fp_outbox_push(&q->out, cmd);
}

static void batch_check_cb(uv_check_t *h)
{
    batch_close(h->data);
}

void fp_link_finish(fp_link *q, const fp_finish *f)
{
    static fp_call part;

    if (q->batch_n == 0) {
        q->batch_keys = fp_cmd_new(&q->out, 0);
        q->batch_args = fp_cmd_new(&q->out, 0);
        uv_check_start(&q->batch_check, batch_check_cb); /* right after this loop turn's I/O */
    }
    fp_call_finish_part(&part, f);
    fp_cmd_add(q->batch_keys, &part, 0, FP_FINISH_KEYS);
    fp_cmd_add(q->batch_args, &part, FP_FINISH_KEYS, part.argc);
    if (++q->batch_n == FINISH_BATCH_MAX)
        batch_close(q);
}

void fp_link_finish_close(fp_link *q)
{
    batch_close(q);
}

/* Once our id is taken (q->lost) a task we hold is the new owner's: handed back when the id
 * was taken, or in the list it adopts from. A retry, give-back, drop or dead letter would
 * move its task; only results go (each counts once, and finish leaves a missing task be). */
static void push_call(fp_link *q, const fp_call *c, int tag)
{
    fp_cmd *cmd;

    if (q->lost)
        return;
    cmd = fp_cmd_new(&q->out, 1);
    fp_cmd_set_tag(cmd, tag);
    fp_cmd_add(cmd, c, 0, c->argc);
    fp_outbox_push(&q->out, cmd);
}

void fp_link_retry(fp_link *q, uint64_t job, const char *raw, size_t rawlen, const char *next,
                   size_t nextlen, long delay_ms, const char *status, long retry_after_s)
{
    static fp_call call;

    fp_call_retry(&call, q->conf->id, job, raw, rawlen, next, nextlen, delay_ms, status,
                  retry_after_s);
    push_call(q, &call, FP_CMD_RETRY);
}

void fp_link_give_back(fp_link *q, const char *raw, size_t rawlen)
{
    static fp_call call;

    fp_call_give_back(&call, q->conf->id, raw, rawlen);
    push_call(q, &call, FP_CMD_RETRY); /* refused for good: abandoned as a retry would be */
}

void fp_link_bury(fp_link *q, const char *raw, size_t rawlen)
{
    static fp_call call;

    fp_call_bury(&call, q->conf->id, raw, rawlen);
    push_call(q, &call, FP_CMD_OTHER);
}

int fp_link_call(fp_link *q, const fp_call *c, redisCallbackFn *cb, void *priv)
{
    if (!q->cmd.up || q->stopping)
        return -1;
    return redisAsyncCommandArgv(q->cmd.ac, cb, priv, c->argc, (const char **)c->argv, c->len) ==
                   REDIS_OK
               ? 0
               : -1;
}

void fp_link_drop(fp_link *q, const char *raw, size_t rawlen)
{
    static fp_call call;

    fp_call_drop(&call, q->conf->id, raw, rawlen);
    push_call(q, &call, FP_CMD_OTHER);
}

/* Start ----------------------------------------------------------------------------- */

fp_link *fp_link_new(uv_loop_t *loop, const fp_conf *conf, const fp_counters *stats,
                     fp_link_task_cb on_task, fp_link_known_cb known,
                     fp_link_cancelled_cb cancelled, fp_link_lost_cb lost, void *arg)
{
    fp_link *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    q->loop = loop;
    q->conf = conf;
    q->stats = stats;
    q->on_task = on_task;
    q->known = known;
    q->on_cancelled = cancelled;
    q->on_lost = lost;
    q->arg = arg;
    fp_key_proc(q->proc_key, conf->id);
    fp_key_heartbeat(q->hb_key, conf->id);
    fp_owner_token(q->owner, sizeof(q->owner));
    if (fp_owner_start(conf, q->owner) != 0) {
        free(q);
        return NULL;
    }
    fp_rconn_init(&q->pull, loop, &conf->redis, "pull", conn_up_cb, conn_down_cb, q);
    fp_rconn_init(&q->cmd, loop, &conf->redis, "cmd", conn_up_cb, conn_down_cb, q);
    fp_outbox_init(&q->out, &q->cmd, replied_cb, q);
    fp_outbox_on_refused(&q->out, refused_cb);
    uv_timer_init(loop, &q->heartbeat);
    q->heartbeat.data = q;
    uv_timer_init(loop, &q->deadline);
    q->deadline.data = q;
    uv_timer_init(loop, &q->kick);
    q->kick.data = q;
    uv_timer_init(loop, &q->adopt);
    q->adopt.data = q;
    uv_check_init(loop, &q->batch_check);
    q->batch_check.data = q;
    /* the two connections, heartbeat, deadline, kick, adopt, check */
    q->open_handles = 7;
    fp_rconn_set_deadline(&q->pull, BLOCK_MS);
    fp_rconn_open(&q->cmd);
    fp_rconn_open(&q->pull);
    uv_timer_start(&q->heartbeat, fp_link_heartbeat_cb, 0, FP_HEARTBEAT_MS);
    uv_timer_start(&q->adopt, adopt_cb, ADOPT_EVERY_MS, ADOPT_EVERY_MS);
    return q;
}

/* Shutdown -------------------------------------------------------------------------- */

static void handle_closed_cb(uv_handle_t *h)
{
    fp_link *q = h->data;

    q->open_handles--;
    fp_link_progress(q);
}

static void conn_closed_cb(fp_rconn *c, void *arg)
{
    fp_link *q = arg;

    (void)c;
    q->open_handles--;
    fp_link_progress(q);
}

static void release_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;

    (void)ac;
    (void)priv;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        fp_info("handed %lld unfinished tasks back to the queue", r->integer);
    else if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fp_warn("could not hand tasks back; the master's reaper will");
}

static void close_everything(fp_link *q)
{
    q->final_sent = 1;
    uv_close((uv_handle_t *)&q->heartbeat, handle_closed_cb);
    uv_close((uv_handle_t *)&q->deadline, handle_closed_cb);
    uv_close((uv_handle_t *)&q->kick, handle_closed_cb);
    uv_close((uv_handle_t *)&q->adopt, handle_closed_cb);
    uv_close((uv_handle_t *)&q->batch_check, handle_closed_cb);
    fp_rconn_close(&q->pull, conn_closed_cb);
    fp_rconn_close(&q->cmd, conn_closed_cb);
}

void fp_link_progress(fp_link *q)
{
    if (!q->stopping)
        return;
    if (!q->final_sent) {
        batch_close(q);
        fp_outbox_flush(&q->out);
    }
    if (q->final_sent) {
        if (q->open_handles == 0 && q->pull.ac == NULL && q->cmd.ac == NULL && q->closed) {
            fp_link_closed_cb cb = q->closed;
            void *arg = q->closed_arg;
            q->closed = NULL;
            fp_outbox_free(&q->out);
            free(q->take_check);
            free(q);
            cb(arg);
        }
        return;
    }
    if (q->pulling || fp_outbox_pending(&q->out)) {
        if (!q->forced)
            return;
    } else if (q->lost) {
        /* The list and the heartbeat are the new owner's. */
    } else if (q->cmd.up && fp_owner_fresh(&q->beats, uv_now(q->loop))) {
        static fp_call call;
        fp_call_release(&call, q->conf->id);
        redisAsyncCommandArgv(q->cmd.ac, release_reply_cb, q, call.argc, call.argv, call.len);
        redisAsyncCommand(q->cmd.ac, NULL, NULL, "DEL %s", q->hb_key);
        redisAsyncCommand(q->cmd.ac, NULL, NULL, "SREM %s %s", FP_KEY_WORKERS, q->conf->id);
    } else if (!q->forced) {
        return; /* wait for the reconnect, up to the deadline */
    }
    if (fp_outbox_pending(&q->out))
        fp_warn("stopping with %d result calls not acknowledged by Redis; their tasks stay in "
                "%s for the master to hand out again",
                fp_outbox_pending(&q->out), q->proc_key);
    close_everything(q);
}

static void deadline_cb(uv_timer_t *t)
{
    fp_link *q = t->data;

    q->forced = 1;
    fp_link_progress(q);
}

void fp_link_shutdown(fp_link *q, long wait_ms, fp_link_closed_cb closed, void *arg)
{
    q->stopping = 1;
    q->want = q->spare = 0;
    q->closed = closed;
    q->closed_arg = arg;
    uv_timer_start(&q->deadline, deadline_cb, (uint64_t)(wait_ms > 0 ? wait_ms : 1), 0);
    fp_link_progress(q);
}
