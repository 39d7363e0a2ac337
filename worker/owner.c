/* owner.c - one live worker per id (see owner.h). */
#include "owner.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_reap.h"
#include "fp_redis_sync.h"
#include "fp_scripts.h"
#include "link.h"

#define WATCH_MS (2 * FP_HEARTBEAT_MS + 500) /* a live owner refreshes twice meanwhile */
#define POLL_MS  100

static unsigned long pid_ns(void)
{
    struct stat st;

    return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static void host(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0)
        snprintf(buf, len, "?");
    buf[len - 1] = '\0';
    for (; *buf; buf++) /* the token is one word of the heartbeat, '/' its separator */
        if (*buf == ' ' || *buf == '/' || *buf == '=')
            *buf = '_';
}

void fp_owner_token(char *buf, size_t len)
{
    char h[64];
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    srandom((unsigned)(ts.tv_nsec ^ getpid()));
    host(h, sizeof(h));
    snprintf(buf, len, "%s/%lu/%ld/%08lx", h, pid_ns(), (long)getpid(), (unsigned long)random());
}

/* The owner token in a heartbeat value ("owner=<token> beat=<n> ..."), or "". */
static void owner_of(const char *v, char *out, size_t len)
{
    const char *p = strstr(v, "owner=");
    size_t n;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += 6;
    n = strcspn(p, " ");
    if (n >= len)
        return;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The owner ran here (same host and pid namespace) and that process is gone. */
static int gone_for_sure(const char *owner)
{
    char h[64], want[96];
    unsigned long ns;
    long pid;

    host(h, sizeof(h));
    snprintf(want, sizeof(want), "%s/", h);
    if (strncmp(owner, want, strlen(want)) != 0 ||
        sscanf(owner + strlen(want), "%lu/%ld/", &ns, &pid) != 2 || ns != pid_ns() || pid <= 0)
        return 0;
    return pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int fp_owner_claim(redisContext *c, const char *id, const char *token)
{
    char key[FP_KEY_MAX], first[512], owner[FP_OWNER_MAX];
    redisReply *r;
    long waited;
    int rc = 0;

    (void)token;
    fp_key_heartbeat(key, id);
    if ((r = redisCommand(c, "GET %s", key)) == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return 0; /* no heartbeat: nobody runs with our id */
    }
    snprintf(first, sizeof(first), "%s", r->str);
    freeReplyObject(r);
    owner_of(first, owner, sizeof(owner));
    if (!owner[0] || !gone_for_sure(owner)) {
        for (waited = 0; waited < WATCH_MS; waited += POLL_MS) {
            nap_ms(POLL_MS);
            if ((r = redisCommand(c, "GET %s", key)) == NULL)
                return -1;
            if (r->type != REDIS_REPLY_STRING) { /* expired: its owner stopped */
                freeReplyObject(r);
                break;
            }
            rc = strcmp(r->str, first) != 0;
            freeReplyObject(r);
            if (rc) {
                fp_error("another worker with id %s is running (owner %s: its heartbeat %s is "
                         "refreshed); not starting: give every worker its own --id",
                         id, owner[0] ? owner : "unknown", key);
                return 1;
            }
        }
    }
    fp_info("the worker %s that had id %s before is gone; taking its place", owner[0] ? owner : "",
            id);
    if ((r = redisCommand(c, "DEL %s", key)) == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* The heartbeat, set only while it is ours: a heartbeat naming another owner means a
 * worker with our id took our place while we were cut off or frozen; it is left as it is
 * and returned. One without owner= (the take script's "starting") or none is ours. */
static const char beat_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and string.sub(v, 1, 6) == 'owner=' and string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then\n"
    "  return v\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "redis.call('SADD', KEYS[2], ARGV[4])\n"
    "return 1\n";

void fp_owner_beat_call(fp_call *c, fp_owner_beats *b, const fp_conf *conf, const char *token,
                        const fp_counters *s, uint64_t now)
{
    static char v[320 + FP_OWNER_MAX]; /* the call points into it */
    uint64_t n = s->done + s->failed;
    char *p;

    /* Files per second, smoothed over the last few heartbeats (fetchpool status shows it). */
    if (b->rate_at && now > b->rate_at) {
        double r = (double)(n - b->rate_n) * 1000.0 / (double)(now - b->rate_at);
        b->rate = b->rate_n ? 0.5 * b->rate + 0.5 * r : r;
    }
    b->rate_at = now;
    b->rate_n = n;
    /* owner= and beat= first: a twin starting with our id sees the beats. */
    snprintf(v, sizeof(v),
             "owner=%s beat=%" PRIu64 " inflight=%" PRIu64 " done=%" PRIu64 " failed=%" PRIu64
             " retried=%" PRIu64 " bytes=%" PRIu64 " rate=%.1f host=%s%s%s",
             token, b->n + 1, s->inflight, s->done, s->failed, s->retried, s->bytes, b->rate,
             conf->host, s->paused ? " paused=" : "", s->paused ? s->paused : "");
    fp_call_begin(c, beat_script, 2);
    p = fp_call_room(c);
    fp_call_arg(c, p, strlen(fp_key_heartbeat(p, conf->id)));
    fp_call_arg(c, FP_KEY_WORKERS, strlen(FP_KEY_WORKERS));
    fp_call_arg(c, v, strlen("owner= ") + strlen(token)); /* v's first word, and ' ' */
    fp_call_arg(c, v, strlen(v));
    fp_call_arg_u64(c, FP_HEARTBEAT_TTL_MS);
    fp_call_arg(c, conf->id, strlen(conf->id));
}

#define RING(b, i) ((b)->sent_at[(i) % (sizeof((b)->sent_at) / sizeof((b)->sent_at[0]))])

void fp_owner_beat_sent(fp_owner_beats *b, uint64_t now)
{
    RING(b, b->n) = now;
    b->n++;
}

void fp_owner_beat_resync(fp_owner_beats *b)
{
    b->replied = b->n;
}

int fp_owner_beat_reply(fp_owner_beats *b, const redisReply *r, char *other, size_t len)
{
    uint64_t sent = b->replied < b->n ? RING(b, b->replied++) : 0;

    other[0] = '\0';
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return -1;
    if (r->type != REDIS_REPLY_STRING) {
        if (sent > b->ok_at)
            b->ok_at = sent;
        return 0;
    }
    owner_of(r->str, other, len);
    if (!other[0])
        snprintf(other, len, "?");
    return 1;
}

int fp_owner_fresh(const fp_owner_beats *b, uint64_t now)
{
    return b->ok_at && now < b->ok_at + FP_OWNER_FRESH_MS;
}

/* Our first heartbeat, right after a predecessor's tasks went back: from now on a worker
 * that had the id before finds it taken (its heartbeat script refuses). NX: a heartbeat
 * that came back meanwhile names a live worker after all. 0, 1 (taken, logged), -1. */
static int first_beat(redisContext *c, const char *id, const char *token)
{
    char key[FP_KEY_MAX], owner[FP_OWNER_MAX], v[FP_OWNER_MAX + 16];
    redisReply *r;
    int rc = 0;

    fp_key_heartbeat(key, id);
    snprintf(v, sizeof(v), "owner=%s beat=0", token);
    if ((r = redisCommand(c, "SET %s %s PX %d NX", key, v, FP_HEARTBEAT_TTL_MS)) == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fp_error("Redis: setting the heartbeat %s failed: %s", key, r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    if ((r = redisCommand(c, "GET %s", key)) == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STRING) { /* nil: it expired meanwhile, the next beat sets it */
        owner_of(r->str, owner, sizeof(owner));
        fp_error("another worker with id %s came back (owner %s: its heartbeat %s is set again) "
                 "while this one took its place; not starting: give every worker its own --id",
                 id, owner[0] ? owner : "unknown", key);
        rc = 1;
    }
    freeReplyObject(r);
    return rc;
}

int fp_owner_start(const fp_conf *conf, const char *token)
{
    char err[512];
    redisContext *c = fp_redis_connect(&conf->redis, 3, 3, err, sizeof(err));
    fp_reap_counts n;
    int rc = -1, claim;

    if (c == NULL) {
        fp_error("%s", err);
        goto done;
    }
    if (fp_redis_require_noeviction(c, conf->allow_eviction) != 0 ||
        fp_redis_require_version(c) != 0)
        goto done;
    if ((claim = fp_owner_claim(c, conf->id, token)) != 0) {
        if (claim < 0)
            fp_error("Redis at %s:%d: %s", conf->redis.host, conf->redis.port, c->errstr);
        goto done;
    }
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
    if ((claim = first_beat(c, conf->id, token)) != 0) {
        if (claim < 0 && c->err)
            fp_error("Redis at %s:%d: %s", conf->redis.host, conf->redis.port, c->errstr);
        goto done;
    }
    rc = 0;
done:
    if (c)
        redisFree(c);
    return rc;
}
