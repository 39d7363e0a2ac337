/* fp_redis_sync.h - the synchronous Redis connection both programs open the same way:
 * the master for all its work, the worker to check Redis and take back what a worker
 * with its id left behind before it starts its async connections (worker/rconn.h, which
 * reconnects with the same backoff). */
#ifndef FP_REDIS_SYNC_H
#define FP_REDIS_SYNC_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "fp_redis_url.h"

/* Reconnect backoff, master and worker alike: doubling from the first to the last. */
#define FP_REDIS_BACKOFF_MIN_MS 100
#define FP_REDIS_BACKOFF_MAX_MS 2000

/* Connects within connect_s seconds, sets a reply timeout of reply_s and TCP keepalive,
 * sends AUTH (AUTH user password for an ACL user, AUTH password for the default user),
 * SELECT (if db is not 0) and PING. The context, or NULL with a message in err: Redis
 * named by host:port, never by its URL, and no user name or password in it; a refused
 * login says ": login" and what to check; a connection cut at the first command (a TLS
 * port) says so. */
redisContext *fp_redis_connect(const fp_redis_url *u, int connect_s, int reply_s, char *err,
                               size_t errlen);

/* Redis must not evict fetchpool's keys: any maxmemory-policy but noeviction may drop a
 * queue, a processing list or a heartbeat (Sidekiq refuses to run on one too). 0 if the
 * policy is noeviction; 1 if it cannot be read (neither CONFIG GET nor INFO memory is
 * allowed, as for a tight ACL user: the caller warns); -1 with a message in err otherwise. */
int fp_redis_check_eviction(redisContext *c, char *err, size_t errlen);
/* What both programs do with it at start: refuse (-1, logged) unless allow, which turns
 * the refusal into a loud warning. */
int fp_redis_require_noeviction(redisContext *c, int allow);

/* fetchpool's scripts need Redis 7.0 or later (redis.acl_check_cmd, in the finish script).
 * Versions as Redis's REDIS_VERSION_NUM: 0x00MMmmpp (7.0.15 is 0x07000f). */
#define FP_REDIS_VERSION_MIN 0x070000
/* The redis_version line of INFO server's text in that form; -1 if there is none or it
 * is not a version. */
long fp_redis_version_parse(const char *info);
/* What both programs do at start: refuse (-1, logged) a Redis older than
 * FP_REDIS_VERSION_MIN; one whose version cannot be read (INFO not allowed, as for a tight
 * ACL user) passes with a warning. */
int fp_redis_require_version(redisContext *c);

/* An error Redis gives while it cannot take writes yet (LOADING, BUSY, OOM, READONLY, ...):
 * the same command may succeed later. Any other error would come back every time. */
int fp_redis_error_transient(const char *s);
/* Redis does not have the script an EVALSHA names (restarted, SCRIPT FLUSH): the same call
 * as EVAL, with the source, runs it and caches it. */
int fp_redis_error_noscript(const char *s);

#endif
