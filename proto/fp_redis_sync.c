/* fp_redis_sync.c - the synchronous Redis connection (see fp_redis_sync.h). */
#include "fp_redis_sync.h"

#include <stdarg.h>
#include <stdio.h>

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
