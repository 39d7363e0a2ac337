/* rconn.c - a reconnecting async Redis connection (see rconn.h). */
#include "rconn.h"

#include "fp_log.h"
#include "fp_redis_sync.h"
#include "redis_uv.h"

#define CONNECT_TIMEOUT_MS 5000
#define WATCH_EVERY_MS     250 /* how often the reply deadline is checked */

static void retry_cb(uv_timer_t *t)
{
    fp_rconn_open(t->data);
}

static void lost(fp_rconn *c, const char *why)
{
    if (c->closing)
        return;
    if (!c->down_logged)
        fp_warn("redis %s connection lost (%s); reconnecting", c->name, why);
    c->down_logged = 1;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : FP_REDIS_BACKOFF_MIN_MS;
    if (c->backoff_ms > FP_REDIS_BACKOFF_MAX_MS)
        c->backoff_ms = FP_REDIS_BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, retry_cb, (uint64_t)c->backoff_ms, 0);
}

static void timer_closed_cb(uv_handle_t *h)
{
    fp_rconn *c = h->data;

    if (--c->open_timers == 0)
        c->closed_cb(c, c->arg);
}

static void watch_close(fp_rconn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->watch))
        uv_close((uv_handle_t *)&c->watch, timer_closed_cb);
}

/* Replies are awaited and nothing has been read for the deadline: the link is dead or
 * half-open, and hiredis would wait for ever. Freeing the context hands every awaited
 * command a NULL reply, then calls disconnect_cb. */
static void watch_cb(uv_timer_t *t)
{
    fp_rconn *c = t->data;
    redisAsyncContext *ac = c->ac;
    uint64_t now = uv_now(c->loop), last;

    if (ac == NULL || !c->up)
        return;
    if (ac->replies.head == NULL) {
        c->busy_since = 0;
        return;
    }
    if (c->busy_since == 0)
        c->busy_since = now; /* a command went out since the last look */
    last = fp_redis_uv_read_ms(ac);
    if (last < c->busy_since)
        last = c->busy_since;
    if (now - last <= (uint64_t)c->deadline_ms)
        return;
    c->up = 0; /* no new commands from the callbacks that now run */
    c->ac = NULL;
    c->why = "no reply within the deadline";
    redisAsyncFree(ac);
}

static void connect_timeout_cb(uv_timer_t *t)
{
    fp_rconn *c = t->data;
    redisAsyncContext *ac = c->ac;

    if (c->up || ac == NULL)
        return;
    if (c->connected) {
        /* Connected, but the login was never answered: freeing runs disconnect_cb. */
        if (!c->down_logged)
            fp_warn("redis %s: no answer to the login in %d ms; reconnecting", c->name,
                    CONNECT_TIMEOUT_MS);
        c->down_logged = 1;
        redisAsyncFree(ac);
        return;
    }
    c->ac = NULL;
    redisAsyncFree(ac); /* not connected: no callback runs */
    lost(c, "connect timed out");
}

static void became_up(fp_rconn *c)
{
    uv_timer_stop(&c->timer);
    c->up = 1;
    c->backoff_ms = 0;
    c->busy_since = 0;
    uv_timer_start(&c->watch, watch_cb, WATCH_EVERY_MS, WATCH_EVERY_MS);
    if (c->down_logged)
        fp_info("redis %s connection back", c->name);
    c->down_logged = c->refused_logged = 0;
    c->up_cb(c, c->arg);
}

/* The replies to AUTH and SELECT: up once the last one is in, so nothing is sent before
 * the login is accepted. A refusal (a password changed while we run; at start the
 * synchronous check has already caught a wrong one) is logged once, without the
 * secret, and tried again with backoff. */
static void hello_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    fp_rconn *c = priv;

    if (r == NULL || c->closing || c->ac != ac)
        return; /* the connection went: disconnect_cb follows */
    if (r->type == REDIS_REPLY_ERROR && !c->refused) {
        /* Once per outage, also after the "connection lost" line. */
        if (!c->refused_logged)
            fp_error("redis %s: %s (check the user and password in the Redis URL); retrying",
                     c->name, r->str);
        c->refused_logged = c->down_logged = 1;
        c->refused = 1;
        redisAsyncDisconnect(ac); /* after the other replies; then disconnect_cb */
    }
    if (--c->hello_pending == 0 && !c->refused)
        became_up(c);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    fp_rconn *c = ac->data;

    if (status != REDIS_OK) {
        uv_timer_stop(&c->timer);
        c->ac = NULL; /* hiredis frees the context after this callback */
        lost(c, ac->errstr);
        return;
    }
    c->connected = 1;
    c->refused = 0;
    c->hello_pending = 0;
    /* As fp_redis_connect: AUTH user password for an ACL user, AUTH password else. */
    if (c->url->user[0] && redisAsyncCommand(c->ac, hello_cb, c, "AUTH %s %s", c->url->user,
                                             c->url->password) == REDIS_OK)
        c->hello_pending++;
    if (!c->url->user[0] && c->url->password[0] &&
        redisAsyncCommand(c->ac, hello_cb, c, "AUTH %s", c->url->password) == REDIS_OK)
        c->hello_pending++;
    if (c->url->db && redisAsyncCommand(c->ac, hello_cb, c, "SELECT %d", c->url->db) == REDIS_OK)
        c->hello_pending++;
    if (c->hello_pending == 0)
        became_up(c); /* else the connect timer still runs, for the replies */
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    fp_rconn *c = ac->data;
    const char *why = c->why ? c->why : status == REDIS_OK ? "closed" : ac->errstr;

    c->ac = NULL;
    c->up = c->connected = 0;
    c->why = NULL;
    if (c->closing)
        watch_close(c);
    else
        uv_timer_stop(&c->watch);
    lost(c, why);
    c->down_cb(c, c->arg);
}

void fp_rconn_open(fp_rconn *c)
{
    redisAsyncContext *ac;

    if (c->closing)
        return;
    fp_debug("redis %s: connecting", c->name);
    if ((ac = redisAsyncConnect(c->url->host, c->url->port)) == NULL) {
        lost(c, "out of memory");
        return;
    }
    if (ac->err) {
        lost(c, ac->errstr);
        redisAsyncFree(ac);
        return;
    }
    if (redisEnableKeepAlive(&ac->c) != REDIS_OK)
        fp_warn("redis %s: no TCP keepalive: %s", c->name, ac->c.errstr);
    ac->data = c;
    if (fp_redis_uv_attach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        lost(c, "cannot attach to the loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    c->ac = ac;
    uv_timer_start(&c->timer, connect_timeout_cb, CONNECT_TIMEOUT_MS, 0);
}

void fp_rconn_init(fp_rconn *c, uv_loop_t *loop, const fp_redis_url *url, const char *name,
                   fp_rconn_cb up, fp_rconn_cb down, void *arg)
{
    c->ac = NULL;
    c->up = c->connected = c->refused = c->refused_logged = c->hello_pending = 0;
    c->name = name;
    c->loop = loop;
    c->url = url;
    c->down_logged = c->closing = 0;
    c->backoff_ms = 0;
    c->deadline_ms = FP_RCONN_DEADLINE_MS;
    c->busy_since = 0;
    c->why = NULL;
    c->up_cb = up;
    c->down_cb = down;
    c->closed_cb = NULL;
    c->arg = arg;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->watch);
    c->watch.data = c;
    c->open_timers = 2;
}

void fp_rconn_set_deadline(fp_rconn *c, long extra_ms)
{
    c->deadline_ms = FP_RCONN_DEADLINE_MS + (extra_ms > 0 ? extra_ms : 0);
}

void fp_rconn_drop(fp_rconn *c)
{
    if (c->up && c->ac)
        redisAsyncDisconnect(c->ac); /* disconnect_cb reconnects with backoff */
}

void fp_rconn_close(fp_rconn *c, fp_rconn_cb closed)
{
    redisAsyncContext *ac = c->ac;

    c->closing = 1;
    c->closed_cb = closed;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
    if (ac == NULL) {
        watch_close(c);
        return;
    }
    if (c->connected) {
        /* Sends what is queued, then disconnect_cb (which closes the watch); the watch
         * frees a connection whose replies never come. */
        redisAsyncDisconnect(ac);
    } else {
        c->ac = NULL; /* still connecting: hiredis would not call disconnect_cb */
        redisAsyncFree(ac);
        watch_close(c);
    }
}
