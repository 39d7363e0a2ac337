/* fp_redis_sync.c - the synchronous Redis connection (see fp_redis_sync.h). */
#include "fp_redis_sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fp_log.h"

/* Runs one handshake command; 0 if the reply is not an error. */
static int handshake(redisContext *c, char *err, size_t errlen, const char *what, const char *fmt,
                     ...)
{
    redisReply *r;
    va_list ap;
    int rc = 0;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "connection lost");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", what, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

int fp_redis_check_eviction(redisContext *c, char *err, size_t errlen)
{
    redisReply *r = redisCommand(c, "CONFIG GET maxmemory-policy");
    int rc = 1;

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[1]->str, "noeviction") == 0) {
            rc = 0;
        } else {
            snprintf(err, errlen,
                     "Redis has maxmemory-policy %s: it may evict queued tasks, processing "
                     "lists and heartbeats, and results would be lost; set it to noeviction "
                     "(CONFIG SET maxmemory-policy noeviction)",
                     r->element[1]->str);
            rc = -1;
        }
    }
    freeReplyObject(r);
    return rc;
}

int fp_redis_require_noeviction(redisContext *c, int allow)
{
    char err[512];
    int rc = fp_redis_check_eviction(c, err, sizeof(err));

    if (rc == 1)
        fp_warn("cannot read Redis's maxmemory-policy (CONFIG not allowed?); it must be "
                "noeviction, or tasks and results may be lost");
    if (rc >= 0)
        return 0;
    if (allow) {
        fp_warn("%s. Running anyway (--allow-eviction): tasks and results may be lost", err);
        return 0;
    }
    fp_error("%s, or pass --allow-eviction (FETCHPOOL_ALLOW_EVICTION=1) to run anyway", err);
    return -1;
}

redisContext *fp_redis_connect(const fp_redis_url *u, int connect_s, int reply_s, char *err,
                               size_t errlen)
{
    struct timeval ct = {connect_s, 0}, rt = {reply_s, 0};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, ct);

    if (c == NULL) {
        snprintf(err, errlen, "cannot reach Redis at %s:%d: out of memory", u->host, u->port);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "cannot reach Redis at %s:%d: %s", u->host, u->port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, rt) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(err, errlen, "Redis at %s:%d: cannot set socket options: %s", u->host, u->port,
                 c->errstr);
        goto fail;
    }
    if (u->password[0] && handshake(c, err, errlen, "Redis AUTH", "AUTH %s", u->password))
        goto fail;
    if (u->db != 0 && handshake(c, err, errlen, "Redis SELECT", "SELECT %d", u->db))
        goto fail;
    if (handshake(c, err, errlen, "Redis PING", "PING"))
        goto fail;
    return c;
fail:
    redisFree(c);
    return NULL;
}
