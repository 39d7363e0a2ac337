/* outbox.c - commands kept until Redis acknowledges them (see outbox.h). */
#include "outbox.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fp_log.h"
#include "fp_redis_sync.h"

struct fp_cmd {
    int argc, cap;
    const char **argv;
    size_t *len;
    char **own; /* per argument: the copy this command frees, or NULL */
    int *raws;  /* indexes of the arguments that are task records it settles */
    int nraws;
    fp_cmd *next;                  /* in the queue */
    fp_cmd *live_prev, *live_next; /* tracked: in o->live */
    int tracked;
    int tag;            /* the owner's */
    const char *script; /* sent as EVALSHA: the source to send instead on NOSCRIPT */
    fp_outbox *o;
};

void fp_outbox_init(fp_outbox *o, fp_rconn *conn, void (*replied)(void *arg), void *arg)
{
    memset(o, 0, sizeof(*o));
    o->conn = conn;
    o->replied = replied;
    o->arg = arg;
}

fp_cmd *fp_cmd_new(fp_outbox *o, int tracked)
{
    fp_cmd *cmd = calloc(1, sizeof(*cmd));

    if (cmd == NULL)
        fp_oom("queueing a Redis command");
    cmd->o = o;
    cmd->tracked = tracked;
    if (tracked) {
        cmd->live_next = o->live;
        if (o->live)
            o->live->live_prev = cmd;
        o->live = cmd;
    }
    return cmd;
}

static void room(fp_cmd *cmd)
{
    int cap;

    if (cmd->argc < cmd->cap)
        return;
    cap = cmd->cap ? cmd->cap * 2 : 24;
    if ((cmd->argv = realloc(cmd->argv, sizeof(*cmd->argv) * (size_t)cap)) == NULL ||
        (cmd->len = realloc(cmd->len, sizeof(*cmd->len) * (size_t)cap)) == NULL ||
        (cmd->own = realloc(cmd->own, sizeof(*cmd->own) * (size_t)cap)) == NULL ||
        (cmd->raws = realloc(cmd->raws, sizeof(*cmd->raws) * (size_t)cap)) == NULL)
        fp_oom("queueing a Redis command");
    cmd->cap = cap;
}

/* Adds an argument; owned (not NULL) is freed with the command. */
static void add(fp_cmd *cmd, const char *s, size_t len, char *owned, int raw)
{
    room(cmd);
    cmd->argv[cmd->argc] = s;
    cmd->len[cmd->argc] = len;
    cmd->own[cmd->argc] = owned;
    if (raw)
        cmd->raws[cmd->nraws++] = cmd->argc;
    cmd->argc++;
}

void fp_cmd_add(fp_cmd *cmd, const fp_call *c, int from, int to)
{
    int i;

    for (i = from; i < to; i++) {
        char *p = malloc(c->len[i] + 1);
        if (p == NULL)
            fp_oom("queueing a Redis command");
        memcpy(p, c->argv[i], c->len[i]);
        p[c->len[i]] = '\0';
        add(cmd, p, c->len[i], p, i == c->task_at);
    }
}

void fp_cmd_add_arg(fp_cmd *cmd, const char *s, size_t len, int task)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        fp_oom("queueing a Redis command");
    memcpy(p, s, len);
    p[len] = '\0';
    add(cmd, p, len, p, task);
}

int fp_cmd_argc(const fp_cmd *cmd)
{
    return cmd->argc;
}

const char *fp_cmd_arg(const fp_cmd *cmd, int i, size_t *len)
{
    *len = cmd->len[i];
    return cmd->argv[i];
}

int fp_cmd_is_task(const fp_cmd *cmd, int i)
{
    int j;

    for (j = 0; j < cmd->nraws; j++)
        if (cmd->raws[j] == i)
            return 1;
    return 0;
}

void fp_cmd_set_tag(fp_cmd *cmd, int tag)
{
    cmd->tag = tag;
}

int fp_cmd_tag(const fp_cmd *cmd)
{
    return cmd->tag;
}

void fp_cmd_set_script(fp_cmd *cmd, const char *script)
{
    cmd->script = script;
}

/* EVALSHA <sha> ... becomes EVAL <source> ... (static strings: nothing to free). */
static void eval_instead(fp_cmd *cmd)
{
    free(cmd->own[0]);
    free(cmd->own[1]);
    cmd->own[0] = cmd->own[1] = NULL;
    cmd->argv[0] = "EVAL";
    cmd->len[0] = 4;
    cmd->argv[1] = cmd->script;
    cmd->len[1] = strlen(cmd->script);
    cmd->script = NULL;
}

void fp_cmd_free(fp_cmd *cmd)
{
    fp_outbox *o = cmd->o;
    int i;

    if (cmd->tracked) {
        if (cmd->live_prev)
            cmd->live_prev->live_next = cmd->live_next;
        else
            o->live = cmd->live_next;
        if (cmd->live_next)
            cmd->live_next->live_prev = cmd->live_prev;
    }
    for (i = 0; i < cmd->argc; i++)
        free(cmd->own[i]);
    free(cmd->argv);
    free(cmd->len);
    free(cmd->own);
    free(cmd->raws);
    free(cmd);
}

void fp_cmd_move(fp_cmd *dst, fp_cmd *src)
{
    int i, j = 0;

    for (i = 0; i < src->argc; i++) {
        int raw = j < src->nraws && src->raws[j] == i;
        add(dst, src->argv[i], src->len[i], src->own[i], raw);
        src->own[i] = NULL; /* dst owns it now */
        j += raw;
    }
    fp_cmd_free(src);
}

static void enqueue(fp_outbox *o, fp_cmd *cmd, int front)
{
    cmd->next = NULL;
    if (o->head == NULL) {
        o->head = o->tail = cmd;
    } else if (front) {
        cmd->next = o->head;
        o->head = cmd;
    } else {
        o->tail->next = cmd;
        o->tail = cmd;
    }
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    fp_cmd *cmd = priv;
    fp_outbox *o = cmd->o;
    redisReply *r = reply;

    (void)ac;
    o->sent--;
    if (r == NULL) {
        enqueue(o, cmd, 1); /* not acknowledged: send again after the reconnect */
    } else if (r->type == REDIS_REPLY_ERROR && cmd->script && cmd->argc >= 2 &&
               fp_redis_error_noscript(r->str)) {
        fp_debug("redis: %s; sending the script's source", r->str);
        eval_instead(cmd); /* nothing ran: the same call with the source, which caches it */
        enqueue(o, cmd, 1);
        fp_outbox_flush(o);
    } else if (r->type == REDIS_REPLY_ERROR && fp_redis_error_transient(r->str)) {
        fp_warn("redis: %s; will retry", r->str);
        enqueue(o, cmd, 0);
        fp_rconn_drop(o->conn); /* reconnect with backoff, then resend */
    } else if (r->type == REDIS_REPLY_ERROR && o->refused) {
        o->refused(o->arg, cmd, r->str); /* frees cmd */
    } else {
        if (r->type == REDIS_REPLY_ERROR)
            fp_error("redis: command failed: %s", r->str);
        fp_cmd_free(cmd);
    }
    o->replied(o->arg);
}

void fp_outbox_on_refused(fp_outbox *o, fp_outbox_refused_cb refused)
{
    o->refused = refused;
}

void fp_outbox_flush(fp_outbox *o)
{
    while (o->conn->up && o->head) {
        fp_cmd *cmd = o->head;
        o->head = cmd->next;
        if (o->head == NULL)
            o->tail = NULL;
        if (redisAsyncCommandArgv(o->conn->ac, reply_cb, cmd, cmd->argc, cmd->argv, cmd->len) !=
            REDIS_OK) {
            enqueue(o, cmd, 1);
            return;
        }
        o->sent++;
    }
}

void fp_outbox_push(fp_outbox *o, fp_cmd *cmd)
{
    enqueue(o, cmd, 0);
    fp_outbox_flush(o);
}

int fp_outbox_settling(const fp_outbox *o, const char *raw, size_t len)
{
    const fp_cmd *cmd;
    int i;

    for (cmd = o->live; cmd; cmd = cmd->live_next)
        for (i = 0; i < cmd->nraws; i++)
            if (cmd->len[cmd->raws[i]] == len && memcmp(cmd->argv[cmd->raws[i]], raw, len) == 0)
                return 1;
    return 0;
}

int fp_outbox_pending(const fp_outbox *o)
{
    const fp_cmd *cmd;
    int n = o->sent;

    for (cmd = o->head; cmd; cmd = cmd->next)
        n++;
    return n;
}

void fp_outbox_free(fp_outbox *o)
{
    fp_cmd *cmd;

    while ((cmd = o->head) != NULL) {
        o->head = cmd->next;
        fp_cmd_free(cmd);
    }
    o->tail = NULL;
}
