/* redis.c - the master's one synchronous Redis connection: connect (fp_redis_connect: AUTH,
 * SELECT, a PING that also waits out LOADING after a Redis restart), reconnect with
 * backoff, and thin
 * wrappers that turn a broken connection into a NULL reply for the steps to pass up.
 *
 * hiredis marks a context unusable after any I/O error or timeout, so reconnecting always
 * means a fresh context; the steps then reload their state from Redis (main.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fp_log.h"
#include "fp_text.h"
#include "fp_keys.h"
#include "fp_redis_sync.h"
#include "master.h"

#define CONNECT_TIMEOUT_S 2
/* Longer than any blocking command the master sends (BLMOVE waits 0.05 s). */
#define REPLY_TIMEOUT_S 5

int fpm_redis_open(fpm *m, char *err, size_t errlen)
{
    redisContext *c = fp_redis_connect(&m->url, CONNECT_TIMEOUT_S, REPLY_TIMEOUT_S, err, errlen);

    if (c == NULL)
        return -1;
    m->rc = c;
    m->connected_ms = m->doubt_ms = fpm_now_ms();
    return 0;
}

void fpm_redis_close(fpm *m)
{
    if (m->rc)
        redisFree(m->rc);
    m->rc = NULL;
}

void fpm_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int fpm_redis_reconnect(fpm *m)
{
    char err[512];
    long backoff = FP_REDIS_BACKOFF_MIN_MS;
    int refused_logged = 0;
    struct timespec t0, t1;

    fp_warn("Redis connection lost (%s); reconnecting",
            m->rc && m->rc->errstr[0] ? m->rc->errstr : "unknown error");
    fpm_redis_close(m);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!fpm_stop) {
        fpm_nap_ms(backoff);
        if (fpm_stop)
            break;
        if (fpm_redis_open(m, err, sizeof(err)) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            __atomic_add_fetch(&m->reconnects, 1, __ATOMIC_RELAXED);
            fp_info("reconnected to Redis at %s:%d after %.1f s", m->url.host, m->url.port,
                    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
            return 0;
        }
        /* A refused login (the password changed while we ran) is worth one line; an
         * unreachable Redis was said by the "lost" line already. */
        if (strstr(err, ": login") && !refused_logged) {
            fp_warn("%s; retrying", err);
            refused_logged = 1;
        } else {
            fp_debug("reconnect failed: %s", err);
        }
        backoff = backoff * 2 > FP_REDIS_BACKOFF_MAX_MS ? FP_REDIS_BACKOFF_MAX_MS : backoff * 2;
    }
    return -1;
}

/* A reply that took long means Redis stalled (or we did): heartbeats may have expired
 * meanwhile with their refreshes still waiting in Redis, so the reaper waits. */
static redisReply *timed(fpm *m, uint64_t t0, redisReply *r)
{
    uint64_t now = fpm_now_ms();

    if (now - t0 > FPM_STALL_MS) {
        fp_warn("Redis took %.1f s to answer; judging no worker by its heartbeat for %d s",
                (double)(now - t0) / 1000.0, (FP_HEARTBEAT_TTL_MS + 1000) / 1000);
        m->doubt_ms = now;
    }
    return r;
}

redisReply *fpm_redis_cmd(fpm *m, const char *fmt, ...)
{
    uint64_t t0 = fpm_now_ms();
    redisReply *r;
    va_list ap;

    if (m->rc == NULL || m->rc->err)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(m->rc, fmt, ap);
    va_end(ap);
    return timed(m, t0, r);
}

/* Append failures are out-of-memory; hiredis then marks the context, so the caller treats
 * it like a lost connection and the context is replaced. */
int fpm_redis_append(fpm *m, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (m->rc == NULL || m->rc->err)
        return FPM_LOST;
    va_start(ap, fmt);
    rc = redisvAppendCommand(m->rc, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : FPM_LOST;
}

int fpm_redis_append_argv(fpm *m, int argc, const char **argv, const size_t *lens)
{
    if (m->rc == NULL || m->rc->err)
        return FPM_LOST;
    return redisAppendCommandArgv(m->rc, argc, argv, lens) == REDIS_OK ? 0 : FPM_LOST;
}

int fpm_redis_append_call(fpm *m, fp_call *c)
{
    return fpm_redis_append_argv(m, c->argc, c->argv, c->len);
}

redisReply *fpm_redis_call(fpm *m, fp_call *c)
{
    uint64_t t0 = fpm_now_ms();
    redisReply *r;

    if (m->rc == NULL || m->rc->err)
        return NULL;
    fp_call_by_sha(c);
    r = redisCommandArgv(m->rc, c->argc, c->argv, c->len);
    if (r && r->type == REDIS_REPLY_ERROR && fp_call_is_by_sha(c) &&
        fp_redis_error_noscript(r->str)) {
        freeReplyObject(r); /* nothing ran: the same call with the source, which caches it */
        fp_call_by_source(c);
        r = redisCommandArgv(m->rc, c->argc, c->argv, c->len);
    }
    return timed(m, t0, r);
}

redisReply *fpm_redis_reply(fpm *m)
{
    uint64_t t0 = fpm_now_ms();
    void *r = NULL;

    if (m->rc == NULL || m->rc->err)
        return NULL;
    if (redisGetReply(m->rc, &r) != REDIS_OK)
        return NULL;
    return timed(m, t0, r);
}

int fpm_redis_failed(fpm *m, const redisReply *r, const char *what)
{
    size_t i;

    if (r->type == REDIS_REPLY_ERROR) {
        fp_error("%s: Redis error: %s", what, r->str);
        m->errors++;
        return 1;
    }
    /* EXEC answers with one reply per queued command; any of them may be the error. */
    if (r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_ERROR) {
                fp_error("%s: Redis error in command %zu of the transaction: %s", what, i + 1,
                         r->element[i]->str);
                m->errors++;
                return 1;
            }
    return 0;
}

uint64_t fpm_reply_u64(const redisReply *r, uint64_t def)
{
    uint64_t v;

    if (r == NULL)
        return def;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer >= 0 ? (uint64_t)r->integer : def;
    if (r->type == REDIS_REPLY_STRING && fp_text_u64(r->str, r->len, &v) == 0)
        return v;
    return def;
}

int fpm_dead_letter(fpm *m, const char *s, size_t len)
{
    redisReply *r;
    int i;

    if (fpm_redis_append(m, "RPUSH %s %b", FP_KEY_DEAD, s, len) ||
        fpm_redis_append(m, "LTRIM %s -10000 -1", FP_KEY_DEAD))
        return FPM_LOST;
    for (i = 0; i < 2; i++) {
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
        fpm_redis_failed(m, r, "keeping a dead letter");
        freeReplyObject(r);
    }
    return 0;
}

uint64_t fpm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
