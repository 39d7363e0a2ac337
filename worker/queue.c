/* queue.c - Redis connections, task intake, result outbox and heartbeats (see queue.h). */
#include "queue.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_reap.h"
#include "fp_scripts.h"
#include "redis_uv.h"

#define BLOCK_S            "1" /* BLMOVE wait when the queue is empty */
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     2000
#define FINISH_BATCH_MAX   256 /* results in one finish script call at most */

/* One command waiting for Redis to acknowledge it (or, unlinked, a batch being built). */
typedef struct cmd_item {
    int argc, cap;
    const char **argv;
    size_t *len;
    char **own; /* per argument: the copy this item frees, or NULL */
    int *raws;  /* indexes of the arguments that are task records this item settles */
    int nraws;
    struct cmd_item *next;
    struct cmd_item *all_prev, *all_next; /* every live item, queued or sent */
    fp_queue *q;
} cmd_item;

typedef struct conn {
    fp_queue *q;
    const char *name;
    redisAsyncContext *ac;
    int up;
    int down_logged;
    long backoff_ms;
    uv_timer_t retry;
} conn;

struct fp_queue {
    uv_loop_t *loop;
    const fp_conf *conf;
    fp_queue_task_cb on_task;
    fp_queue_known_cb known;
    void *arg;
    cmd_item *items; /* all live items */
    int pull_connected_before;
    int need_adopt; /* look for orphans in our processing list once both connections are up */
    conn pull, cmd;
    char proc_key[FP_KEY_MAX], hb_key[FP_KEY_MAX];
    int want, recovered_slots, pulling;
    cmd_item *out_head, *out_tail;
    int sent;
    /* Results of this loop turn, sent as one finish call from the check handle. */
    cmd_item *batch_keys, *batch_args;
    int batch_n;
    uv_check_t batch_check;
    uv_timer_t heartbeat, deadline;
    int stopping, forced, final_sent;
    int open_handles;
    fp_queue_closed_cb closed;
    void *closed_arg;
    fp_queue_stats stats;
};

static void conn_open(conn *c);
static void maybe_adopt(fp_queue *q);
static void send_heartbeat(fp_queue *q);
static void pull_kick(fp_queue *q);
static void flush(fp_queue *q);
static void progress(fp_queue *q);
static void batch_close(fp_queue *q);

/* Connections ----------------------------------------------------------------------- */

static void retry_cb(uv_timer_t *t)
{
    conn_open(t->data);
}

static void conn_lost(conn *c, const char *why);

/* A connect that neither succeeds nor fails (a black-holed address) is given up. */
static void connect_timeout_cb(uv_timer_t *t)
{
    conn *c = t->data;
    redisAsyncContext *ac = c->ac;

    if (c->up || ac == NULL)
        return;
    c->ac = NULL;
    redisAsyncFree(ac); /* not connected: no callback runs */
    conn_lost(c, "connect timed out");
}

static void conn_schedule(conn *c)
{
    if (c->q->final_sent)
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->retry, retry_cb, (uint64_t)c->backoff_ms, 0);
}

static void conn_lost(conn *c, const char *why)
{
    if (!c->down_logged)
        fp_warn("redis %s connection lost (%s); reconnecting", c->name, why);
    c->down_logged = 1;
    conn_schedule(c);
}

static void auth_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    conn *c = priv;

    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR)
        fp_error("redis %s: %s", c->name, r->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn *c = ac->data;
    const fp_conf *conf = c->q->conf;

    uv_timer_stop(&c->retry);
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees the context after this callback */
        conn_lost(c, ac->errstr);
        return;
    }
    if (conf->redis.password[0])
        redisAsyncCommand(c->ac, auth_cb, c, "AUTH %s", conf->redis.password);
    if (conf->redis.db)
        redisAsyncCommand(c->ac, auth_cb, c, "SELECT %d", conf->redis.db);
    uv_timer_stop(&c->retry);
    c->up = 1;
    c->backoff_ms = 0;
    if (c->down_logged)
        fp_info("redis %s connection back", c->name);
    c->down_logged = 0;
    if (c == &c->q->pull) {
        /* A batch may have moved into our processing list with its reply lost. */
        if (c->q->pull_connected_before)
            c->q->need_adopt = 1;
        c->q->pull_connected_before = 1;
    } else {
        send_heartbeat(c->q); /* before the master's reaper misses us */
        flush(c->q);
    }
    maybe_adopt(c->q);
    pull_kick(c->q);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn *c = ac->data;

    c->ac = NULL;
    c->up = 0;
    if (c->q->final_sent) {
        progress(c->q);
        return;
    }
    conn_lost(c, status == REDIS_OK ? "closed" : ac->errstr);
}

static void conn_open(conn *c)
{
    const fp_conf *conf = c->q->conf;
    redisAsyncContext *ac = redisAsyncConnect(conf->redis.host, conf->redis.port);

    fp_debug("redis %s: connecting", c->name);
    if (ac == NULL) {
        conn_lost(c, "out of memory");
        return;
    }
    if (ac->err) {
        conn_lost(c, ac->errstr);
        redisAsyncFree(ac);
        return;
    }
    ac->data = c;
    if (fp_redis_uv_attach(ac, c->q->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_lost(c, "cannot attach to the loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    uv_timer_start(&c->retry, connect_timeout_cb, CONNECT_TIMEOUT_MS, 0);
}

static void conn_init(fp_queue *q, conn *c, const char *name)
{
    c->q = q;
    c->name = name;
    uv_timer_init(q->loop, &c->retry);
    c->retry.data = c;
    q->open_handles++;
}

/* Pulling tasks --------------------------------------------------------------------- */

static void deliver(fp_queue *q, const redisReply *r)
{
    if (r->type == REDIS_REPLY_STRING && !q->stopping)
        q->on_task(q->arg, r->str, r->len);
}

static void kick_cb(uv_timer_t *t)
{
    pull_kick(((conn *)t->data)->q);
}

/* q->pulling stays set while a reply is delivered, so the top-ups it causes do not send
 * a second fetch for the same free slots. */
static void pull_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_queue *q = priv;
    redisReply *r = reply;
    size_t i;

    (void)ac;
    if (r == NULL) {
        q->pulling = 0;
        progress(q);
        return; /* connection gone; pull_kick runs again after the reconnect */
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fp_warn("redis: taking tasks failed: %s", r->str);
        q->pulling = 0;
        if (!q->stopping && q->pull.up) /* the retry timer is idle while connected */
            uv_timer_start(&q->pull.retry, kick_cb, 500, 0);
        progress(q);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_ARRAY) {
        /* The fetch script: {tasks, recovered tasks passed over}. */
        const redisReply *tasks = r->element[0];
        for (i = 0; i < tasks->elements; i++)
            deliver(q, tasks->element[i]);
        if (tasks->elements == 0 && r->element[1]->integer > 0 && !q->stopping) {
            /* Only recovered tasks left and we hold our share: BLMOVE would take one
             * anyway, so look again a little later. */
            q->pulling = 0;
            uv_timer_start(&q->pull.retry, kick_cb, 200, 0);
            return;
        }
        if (tasks->elements == 0 && !q->stopping && q->want > 0 && q->pull.up) {
            /* Queue empty: wait for the next task without polling. */
            redisAsyncCommand(q->pull.ac, pull_reply, q, "BLMOVE %s %s LEFT RIGHT " BLOCK_S,
                              FP_KEY_TASKS, q->proc_key);
            return;
        }
    } else {
        deliver(q, r);
    }
    q->pulling = 0;
    if (q->stopping)
        progress(q);
    else
        pull_kick(q);
}

static int settling(const fp_queue *q, const char *raw, size_t len)
{
    const cmd_item *it;

    int i;

    for (it = q->items; it; it = it->all_next)
        for (i = 0; i < it->nraws; i++)
            if (it->len[it->raws[i]] == len && memcmp(it->argv[it->raws[i]], raw, len) == 0)
                return 1;
    return 0;
}

/* After a lost connection, a batch may have moved into our processing list with its reply
 * lost: take back every task there that we neither run nor are settling. */
static void adopt_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_queue *q = priv;
    redisReply *r = reply;
    size_t i, n = 0;

    (void)ac;
    if (r == NULL)
        q->need_adopt = 1; /* the cmd connection went down: again after the reconnect */
    if (r && r->type == REDIS_REPLY_ARRAY && !q->stopping) {
        for (i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || q->known(q->arg, e->str, e->len) ||
                settling(q, e->str, e->len))
                continue;
            q->on_task(q->arg, e->str, e->len);
            n++;
        }
        if (n)
            fp_info("took back %zu tasks whose delivery was cut by the lost connection", n);
    }
    q->pulling = 0;
    if (q->stopping)
        progress(q);
    else
        pull_kick(q);
}

/* The LRANGE goes on the cmd connection right behind the results already sent, so its
 * reply comes after theirs: a task they settled is gone from the list by then, and one
 * still settling is among q->items. No fetch runs meanwhile (pulling stays set). */
static void maybe_adopt(fp_queue *q)
{
    if (!q->need_adopt || !q->pull.up || !q->cmd.up || q->pulling || q->stopping)
        return;
    q->need_adopt = 0;
    q->pulling = 1;
    batch_close(q);
    flush(q);
    redisAsyncCommand(q->cmd.ac, adopt_reply, q, "LRANGE %s 0 -1", q->proc_key);
}

static void pull_kick(fp_queue *q)
{
    char n[16];

    if (!q->pull.up || q->pulling || q->stopping || q->want <= 0 || q->need_adopt)
        return;
    snprintf(n, sizeof(n), "%d", q->want);
    q->pulling = 1;
    redisAsyncCommand(q->pull.ac, pull_reply, q, "EVAL %s 4 %s %s %s %s %s %s %d %d",
                      fp_script_fetch, FP_KEY_TASKS, q->proc_key, FP_KEY_WORKERS, q->hb_key, n,
                      q->conf->id, q->recovered_slots, FP_HEARTBEAT_TTL_MS);
}

void fp_queue_want(fp_queue *q, int n, int recovered_slots)
{
    q->want = n;
    q->recovered_slots = recovered_slots;
    pull_kick(q);
}

/* Results and other commands -------------------------------------------------------- */

static void oom(void)
{
    fp_error("out of memory queueing a result");
    abort(); /* a result we cannot keep would be lost: better to be reaped */
}

static cmd_item *item_alloc(fp_queue *q)
{
    cmd_item *it = calloc(1, sizeof(*it));

    if (it == NULL)
        oom();
    it->q = q;
    return it;
}

/* A command that will be sent: tracked in q->items until acknowledged. */
static cmd_item *item_new(fp_queue *q)
{
    cmd_item *it = item_alloc(q);

    it->all_next = q->items;
    if (q->items)
        q->items->all_prev = it;
    q->items = it;
    return it;
}

static void arg_room(cmd_item *it)
{
    int cap;

    if (it->argc < it->cap)
        return;
    cap = it->cap ? it->cap * 2 : 24;
    if ((it->argv = realloc(it->argv, sizeof(*it->argv) * (size_t)cap)) == NULL ||
        (it->len = realloc(it->len, sizeof(*it->len) * (size_t)cap)) == NULL ||
        (it->own = realloc(it->own, sizeof(*it->own) * (size_t)cap)) == NULL ||
        (it->raws = realloc(it->raws, sizeof(*it->raws) * (size_t)cap)) == NULL)
        oom();
    it->cap = cap;
}

/* Adds an argument; owned (not NULL) is freed with the item. */
static void arg_add(cmd_item *it, const char *s, size_t len, char *owned)
{
    arg_room(it);
    it->argv[it->argc] = s;
    it->len[it->argc] = len;
    it->own[it->argc] = owned;
    it->argc++;
}

static void arg_static(cmd_item *it, const char *s)
{
    arg_add(it, s, strlen(s), NULL);
}

static void arg_copy(cmd_item *it, const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        oom();
    memcpy(p, s, len);
    p[len] = '\0';
    arg_add(it, p, len, p);
}

static void arg_str(cmd_item *it, const char *s)
{
    arg_copy(it, s, strlen(s));
}

static void arg_u64(cmd_item *it, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
    arg_copy(it, buf, (size_t)n);
}

/* A copy of a task record this item settles (adopt() must not take it back meanwhile). */
static void arg_raw(cmd_item *it, const char *raw, size_t len)
{
    arg_copy(it, raw, len);
    it->raws[it->nraws++] = it->argc - 1;
}

/* Moves every argument of src to the end of dst (ownership too) and frees src. */
static void arg_move(cmd_item *dst, cmd_item *src)
{
    int i, j = 0;

    for (i = 0; i < src->argc; i++) {
        arg_add(dst, src->argv[i], src->len[i], src->own[i]);
        if (j < src->nraws && src->raws[j] == i) {
            dst->raws[dst->nraws++] = dst->argc - 1;
            j++;
        }
    }
    free(src->argv);
    free(src->len);
    free(src->own);
    free(src->raws);
    free(src);
}

static void item_free(cmd_item *it)
{
    fp_queue *q = it->q;
    int i;

    if (it->all_prev)
        it->all_prev->all_next = it->all_next;
    else
        q->items = it->all_next;
    if (it->all_next)
        it->all_next->all_prev = it->all_prev;
    for (i = 0; i < it->argc; i++)
        free(it->own[i]);
    free(it->argv);
    free(it->len);
    free(it->own);
    free(it->raws);
    free(it);
}

static void outbox_push(fp_queue *q, cmd_item *it, int front)
{
    it->next = NULL;
    if (q->out_head == NULL) {
        q->out_head = q->out_tail = it;
    } else if (front) {
        it->next = q->out_head;
        q->out_head = it;
    } else {
        q->out_tail->next = it;
        q->out_tail = it;
    }
}

/* Errors Redis gives while it cannot take writes yet; anything else is a bug to log. */
static int transient_error(const char *s)
{
    return !strncmp(s, "LOADING", 7) || !strncmp(s, "BUSY", 4) || !strncmp(s, "OOM", 3) ||
           !strncmp(s, "READONLY", 8) || !strncmp(s, "MASTERDOWN", 10) ||
           !strncmp(s, "TRYAGAIN", 8) || !strncmp(s, "NOAUTH", 6);
}

static void cmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cmd_item *it = priv;
    fp_queue *q = it->q;
    redisReply *r = reply;

    (void)ac;
    q->sent--;
    if (r == NULL) {
        outbox_push(q, it, 1); /* not acknowledged: send again after the reconnect */
    } else if (r->type == REDIS_REPLY_ERROR && transient_error(r->str)) {
        fp_warn("redis: %s; will retry", r->str);
        outbox_push(q, it, 0);
        if (q->cmd.up && q->cmd.ac)
            redisAsyncDisconnect(q->cmd.ac); /* reconnect with backoff, then resend */
    } else {
        if (r->type == REDIS_REPLY_ERROR)
            fp_error("redis: command failed: %s", r->str);
        item_free(it);
    }
    progress(q);
}

static void flush(fp_queue *q)
{
    while (q->cmd.up && q->out_head) {
        cmd_item *it = q->out_head;
        q->out_head = it->next;
        if (q->out_head == NULL)
            q->out_tail = NULL;
        if (redisAsyncCommandArgv(q->cmd.ac, cmd_reply, it, it->argc, it->argv, it->len) !=
            REDIS_OK) {
            outbox_push(q, it, 1);
            return;
        }
        q->sent++;
    }
}

/* Turns the results gathered in this loop turn into one finish call in the outbox. */
static void batch_close(fp_queue *q)
{
    cmd_item *it;
    char n[16];

    if (q->batch_n == 0)
        return;
    it = item_new(q);
    snprintf(n, sizeof(n), "%d", 2 + 3 * q->batch_n);
    arg_static(it, "EVAL");
    arg_static(it, fp_script_finish);
    arg_str(it, n);
    arg_str(it, q->proc_key);
    arg_static(it, FP_KEY_DONE);
    arg_move(it, q->batch_keys);
    arg_move(it, q->batch_args);
    q->batch_keys = q->batch_args = NULL;
    q->batch_n = 0;
    uv_check_stop(&q->batch_check);
    outbox_push(q, it, 0);
}

static void batch_check_cb(uv_check_t *h)
{
    fp_queue *q = h->data;

    batch_close(q);
    flush(q);
}

void fp_queue_finish(fp_queue *q, const char *raw, size_t rawlen, uint64_t job, uint64_t idx,
                     const char *result, size_t resultlen, int ok, const char *status,
                     uint64_t bytes, uint64_t total_us, int64_t bucket)
{
    char key[FP_KEY_MAX];
    cmd_item *k, *a;

    if (q->batch_n == 0) {
        q->batch_keys = item_alloc(q);
        q->batch_args = item_alloc(q);
        uv_check_start(&q->batch_check, batch_check_cb); /* right after this loop turn's I/O */
    }
    k = q->batch_keys;
    a = q->batch_args;
    arg_str(k, fp_key_job(key, job, FP_JOB_META));
    arg_str(k, fp_key_job(key, job, FP_JOB_RES));
    arg_str(k, fp_key_job(key, job, FP_JOB_LAT));
    arg_raw(a, raw, rawlen);
    arg_u64(a, idx);
    arg_copy(a, result, resultlen);
    arg_static(a, ok ? "1" : "0");
    arg_str(a, status);
    arg_u64(a, bytes);
    arg_u64(a, total_us);
    if (bucket >= 0)
        arg_u64(a, (uint64_t)bucket);
    else
        arg_static(a, "");
    arg_u64(a, job);
    if (++q->batch_n == FINISH_BATCH_MAX) {
        batch_close(q);
        flush(q);
    }
}

void fp_queue_retry(fp_queue *q, const char *raw, size_t rawlen, const char *next, size_t nextlen,
                    long delay_ms)
{
    cmd_item *it = item_new(q);

    arg_static(it, "EVAL");
    arg_static(it, fp_script_retry);
    arg_static(it, "2");
    arg_str(it, q->proc_key);
    arg_static(it, FP_KEY_RETRY);
    arg_raw(it, raw, rawlen);
    arg_copy(it, next, nextlen);
    arg_u64(it, (uint64_t)(delay_ms < 0 ? 0 : delay_ms));
    outbox_push(q, it, 0);
    flush(q);
}

void fp_queue_bury(fp_queue *q, const char *raw, size_t rawlen)
{
    cmd_item *it = item_new(q);

    arg_static(it, "EVAL");
    arg_static(it, fp_script_bury);
    arg_static(it, "2");
    arg_str(it, q->proc_key);
    arg_static(it, FP_KEY_DEAD);
    arg_raw(it, raw, rawlen);
    outbox_push(q, it, 0);
    flush(q);
}

fp_queue_stats *fp_queue_stats_of(fp_queue *q)
{
    return &q->stats;
}

/* Heartbeat ------------------------------------------------------------------------- */

static void send_heartbeat(fp_queue *q)
{
    char v[160];

    if (!q->cmd.up)
        return;
    snprintf(v, sizeof(v),
             "inflight=%" PRIu64 " done=%" PRIu64 " failed=%" PRIu64 " retried=%" PRIu64
             " bytes=%" PRIu64,
             q->stats.inflight, q->stats.done, q->stats.failed, q->stats.retried, q->stats.bytes);
    redisAsyncCommand(q->cmd.ac, NULL, NULL, "SET %s %s PX %d", q->hb_key, v, FP_HEARTBEAT_TTL_MS);
    redisAsyncCommand(q->cmd.ac, NULL, NULL, "SADD %s %s", FP_KEY_WORKERS, q->conf->id);
}

static void heartbeat_cb(uv_timer_t *t)
{
    send_heartbeat(t->data);
}

/* Start ----------------------------------------------------------------------------- */

static int sync_setup(fp_queue *q)
{
    const fp_conf *conf = q->conf;
    struct timeval tv = {3, 0};
    redisContext *c = redisConnectWithTimeout(conf->redis.host, conf->redis.port, tv);
    redisReply *r;
    fp_reap_counts n;
    int rc = -1;

    if (c == NULL || c->err) {
        fp_error("cannot reach Redis at %s:%d: %s", conf->redis.host, conf->redis.port,
                 c ? c->errstr : "out of memory");
        goto done;
    }
    redisSetTimeout(c, tv);
    if (conf->redis.password[0]) {
        r = redisCommand(c, "AUTH %s", conf->redis.password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fp_error("Redis AUTH failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            goto done;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", conf->redis.db);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fp_error("Redis at %s:%d: %s", conf->redis.host, conf->redis.port, r ? r->str : c->errstr);
        freeReplyObject(r);
        goto done;
    }
    freeReplyObject(r);
    /* A worker that died with our id (a restarted container keeps its hostname) left
     * tasks behind: they go back exactly as the master's reaper would hand them back, so a
     * task that kills us every time still reaches its attempt limit. */
    if (fp_reap_list(c, conf->id, &n) != 0) {
        fp_error("Redis at %s:%d: %s", conf->redis.host, conf->redis.port, c->errstr);
        goto done;
    }
    if (n.back + n.lost + n.dead > 0)
        fp_info("an earlier worker %s died: %d tasks back to the queue, %d failed as "
                "worker_lost, %d dead letters",
                conf->id, n.back, n.lost, n.dead);
    rc = 0;
done:
    if (c)
        redisFree(c);
    return rc;
}

fp_queue *fp_queue_new(uv_loop_t *loop, const fp_conf *conf, fp_queue_task_cb on_task,
                       fp_queue_known_cb known, void *arg)
{
    fp_queue *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    q->loop = loop;
    q->conf = conf;
    q->on_task = on_task;
    q->known = known;
    q->arg = arg;
    fp_key_proc(q->proc_key, conf->id);
    fp_key_heartbeat(q->hb_key, conf->id);
    if (sync_setup(q) != 0) {
        free(q);
        return NULL;
    }
    conn_init(q, &q->pull, "pull");
    conn_init(q, &q->cmd, "cmd");
    uv_timer_init(loop, &q->heartbeat);
    q->heartbeat.data = q;
    uv_timer_init(loop, &q->deadline);
    q->deadline.data = q;
    uv_check_init(loop, &q->batch_check);
    q->batch_check.data = q;
    q->open_handles += 3;
    conn_open(&q->cmd);
    conn_open(&q->pull);
    uv_timer_start(&q->heartbeat, heartbeat_cb, 0, FP_HEARTBEAT_MS);
    return q;
}

/* Shutdown -------------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    fp_queue *q = h->data;

    q->open_handles--;
    progress(q);
}

static void release_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;

    (void)ac;
    (void)priv;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        fp_info("handed %lld unfinished tasks back to the queue", r->integer);
    else if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fp_warn("could not hand tasks back; the master's reaper will");
}

static void close_everything(fp_queue *q)
{
    conn *c[2] = {&q->pull, &q->cmd};
    int i;

    q->final_sent = 1;
    uv_timer_stop(&q->pull.retry);
    uv_timer_stop(&q->cmd.retry);
    q->pull.retry.data = q; /* every handle's close callback finds the queue */
    q->cmd.retry.data = q;
    uv_close((uv_handle_t *)&q->pull.retry, handle_closed);
    uv_close((uv_handle_t *)&q->cmd.retry, handle_closed);
    uv_close((uv_handle_t *)&q->heartbeat, handle_closed);
    uv_close((uv_handle_t *)&q->deadline, handle_closed);
    uv_close((uv_handle_t *)&q->batch_check, handle_closed);
    for (i = 0; i < 2; i++) {
        redisAsyncContext *ac = c[i]->ac;
        if (ac == NULL)
            continue;
        if (c[i]->up) {
            redisAsyncDisconnect(ac); /* sends what is queued, then closes */
        } else {
            c[i]->ac = NULL; /* still connecting: hiredis would not call on_disconnect */
            redisAsyncFree(ac);
        }
    }
}

static void progress(fp_queue *q)
{
    if (!q->stopping)
        return;
    if (!q->final_sent) {
        batch_close(q);
        flush(q);
    }
    if (q->final_sent) {
        if (q->open_handles == 0 && q->pull.ac == NULL && q->cmd.ac == NULL && q->closed) {
            fp_queue_closed_cb cb = q->closed;
            void *arg = q->closed_arg;
            cmd_item *it;
            q->closed = NULL;
            while ((it = q->out_head) != NULL) {
                q->out_head = it->next;
                item_free(it);
            }
            free(q);
            cb(arg);
        }
        return;
    }
    if (q->pulling || q->out_head || q->sent) {
        if (!q->forced)
            return;
    } else if (q->cmd.up) {
        redisAsyncCommand(q->cmd.ac, release_reply, q, "EVAL %s 2 %s %s", fp_script_release,
                          q->proc_key, FP_KEY_TASKS);
        redisAsyncCommand(q->cmd.ac, NULL, NULL, "DEL %s", q->hb_key);
        redisAsyncCommand(q->cmd.ac, NULL, NULL, "SREM %s %s", FP_KEY_WORKERS, q->conf->id);
    } else if (!q->forced) {
        return; /* wait for the reconnect, up to the deadline */
    }
    if (q->out_head || q->sent)
        fp_warn("stopping with %d results not acknowledged by Redis; their tasks stay in "
                "%s for the master to hand out again",
                (int)(q->sent + (q->out_head != NULL)), q->proc_key);
    close_everything(q);
}

static void deadline_cb(uv_timer_t *t)
{
    fp_queue *q = t->data;

    q->forced = 1;
    progress(q);
}

void fp_queue_shutdown(fp_queue *q, long wait_ms, fp_queue_closed_cb closed, void *arg)
{
    q->stopping = 1;
    q->want = 0;
    q->closed = closed;
    q->closed_arg = arg;
    uv_timer_start(&q->deadline, deadline_cb, (uint64_t)(wait_ms > 0 ? wait_ms : 1), 0);
    progress(q);
}
