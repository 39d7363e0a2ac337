/* fp_redis_sync.c - the synchronous Redis connection (see fp_redis_sync.h). */
#include "fp_redis_sync.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_log.h"

#define TLS_HINT                                                                                   \
    " (if that port speaks TLS, as redis-server --tls-port does: fetchpool speaks plain "          \
    "Redis only, so connect through a TLS client such as stunnel; see docs/compose.md)"

/* Runs one handshake command; 0 if the reply is not an error. The message names Redis by
 * host:port and the step by what; the command itself (AUTH carries the password) never
 * goes into err. refused is added to an error reply. */
static int handshake(redisContext *c, const fp_redis_url *u, char *err, size_t errlen,
                     const char *what, const char *refused, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;
    int rc = 0;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        /* A TLS server resets a connection whose first bytes are not a TLS handshake. */
        int cut = c->err == REDIS_ERR_EOF ||
                  (c->err == REDIS_ERR_IO && strstr(c->errstr, "reset") != NULL);

        snprintf(err, errlen, "Redis at %s:%d: %s: %s%s", u->host, u->port, what,
                 c->errstr[0] ? c->errstr : "connection lost", cut ? TLS_HINT : "");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s:%d: %s: %s%s", u->host, u->port, what, r->str, refused);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* The policy from CONFIG GET, or else from INFO memory (managed services and ACL users
 * without CONFIG often have INFO); "" if neither answers. */
static void eviction_policy(redisContext *c, char *out, size_t outlen)
{
    redisReply *r = redisCommand(c, "CONFIG GET maxmemory-policy");
    const char *p;

    out[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(out, outlen, "%s", r->element[1]->str);
    freeReplyObject(r);
    if (out[0] || c->err)
        return;
    r = redisCommand(c, "INFO memory");
    if (r && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "maxmemory_policy:")) != NULL) {
        p += strlen("maxmemory_policy:");
        snprintf(out, outlen, "%.*s", (int)strcspn(p, "\r\n"), p);
    }
    freeReplyObject(r);
}

int fp_redis_check_eviction(redisContext *c, char *err, size_t errlen)
{
    char policy[64];

    eviction_policy(c, policy, sizeof(policy));
    if (policy[0] == '\0')
        return 1;
    if (strcmp(policy, "noeviction") == 0)
        return 0;
    snprintf(err, errlen,
             "Redis has maxmemory-policy %s: it may evict queued tasks, processing "
             "lists and heartbeats, and results would be lost; set it to noeviction "
             "(CONFIG SET maxmemory-policy noeviction)",
             policy);
    return -1;
}

int fp_redis_require_noeviction(redisContext *c, int allow)
{
    char err[512];
    int rc = fp_redis_check_eviction(c, err, sizeof(err));

    if (rc == 1)
        fp_warn("cannot read Redis's maxmemory-policy (neither CONFIG GET nor INFO is "
                "allowed?); it must be noeviction, or tasks and results may be lost");
    if (rc >= 0)
        return 0;
    if (allow) {
        fp_warn("%s. Running anyway (--allow-eviction): tasks and results may be lost", err);
        return 0;
    }
    fp_error("%s, or pass --allow-eviction (FETCHPOOL_ALLOW_EVICTION=1) to run anyway", err);
    return -1;
}

/* One part of a version, 0 to 255 (unstable builds say 255.255.255); *p moves past it.
 * -1 if there is none. */
static long version_part(const char **p)
{
    char *end;
    long v;

    if (!isdigit((unsigned char)**p))
        return -1;
    v = strtol(*p, &end, 10);
    if (end - *p > 3 || v > 255)
        return -1;
    *p = end;
    return v;
}

long fp_redis_version_parse(const char *info)
{
    const char *p = info, *key = "redis_version:";
    long major, minor, patch = 0;

    while ((p = strstr(p, key)) != NULL && p != info && p[-1] != '\n')
        p += strlen(key);
    if (p == NULL)
        return -1;
    p += strlen(key);
    if ((major = version_part(&p)) < 0 || *p++ != '.' || (minor = version_part(&p)) < 0)
        return -1;
    if (*p == '.') {
        p++;
        if ((patch = version_part(&p)) < 0)
            return -1;
    }
    return major << 16 | minor << 8 | patch;
}

int fp_redis_require_version(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO server");
    long v = -1;

    if (r && r->type == REDIS_REPLY_STRING)
        v = fp_redis_version_parse(r->str);
    freeReplyObject(r);
    if (v < 0) {
        fp_warn("cannot read Redis's version (is INFO allowed?); fetchpool needs Redis 7.0 or "
                "later, or every result fails as internal_error");
        return 0;
    }
    if (v >= FP_REDIS_VERSION_MIN)
        return 0;
    fp_error("Redis is version %ld.%ld.%ld; fetchpool needs Redis 7.0 or later (its scripts "
             "call redis.acl_check_cmd)",
             v >> 16, v >> 8 & 0xff, v & 0xff);
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
    /* An ACL user logs in with AUTH user password (Redis 6+); a password alone is the
     * default user's. The user name is not logged either: a password put where the user
     * goes (redis://secret@host) would be. */
    if (u->user[0] && handshake(c, u, err, errlen, "login as the URL's user",
                                " (check the user and password in the Redis URL)", "AUTH %s %s",
                                u->user, u->password))
        goto fail;
    if (!u->user[0] && u->password[0] &&
        handshake(c, u, err, errlen, "login", " (check the password in the Redis URL)", "AUTH %s",
                  u->password))
        goto fail;
    if (u->db != 0 && handshake(c, u, err, errlen, "SELECT", "", "SELECT %d", u->db))
        goto fail;
    if (handshake(c, u, err, errlen, "PING", "", "PING"))
        goto fail;
    return c;
fail:
    redisFree(c);
    return NULL;
}

int fp_redis_error_noscript(const char *s)
{
    return !strncmp(s, "NOSCRIPT", 8);
}

int fp_redis_error_transient(const char *s)
{
    return !strncmp(s, "LOADING", 7) || !strncmp(s, "BUSY", 4) || !strncmp(s, "OOM", 3) ||
           !strncmp(s, "READONLY", 8) || !strncmp(s, "MASTERDOWN", 10) ||
           !strncmp(s, "TRYAGAIN", 8) || !strncmp(s, "NOAUTH", 6);
}
