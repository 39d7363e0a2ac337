/* relay.c - relays a job's results files through Redis to a client that cannot see the
 * results folder (another machine), with backpressure.
 *
 * A client asks by setting relay_from (the bytes of the results file it already has) in
 * the job hash and adding the id to fp:relay. The master then keeps up to RELAY_CHUNKS
 * chunks in fp:job:<id>:rows, each "<offset>\n<bytes>" (offset: where the bytes start
 * in the part files concatenated), read from the parts already written out, and after
 * the last part of a finished job "<size> end\n". The client removes a chunk only once
 * it has written it, so a client killed at any point asks again from its file's size and
 * writes nothing twice. The relay's position (relay_part, relay_off, relay_at) lives in
 * the job hash, so a restarted master carries on. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_text.h"
#include "master.h"

#define RELAY_CHUNK  (256 * 1024)
#define RELAY_CHUNKS 4 /* chunks waiting in Redis per job: 1 MB */
#define RELAY_JOBS   64

typedef struct relay {
    uint64_t id, from, part, off, at, total, psize;
    int asked, done, exists;
    fpm_format fmt;
} relay;

static void part_path(fpm *m, const relay *j, uint64_t no, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%" PRIu64 "/part-%06" PRIu64 ".%s", m->cfg.results_dir, j->id, no,
             fpm_format_ext(j->fmt));
}

static int load(fpm *m, relay *j)
{
    char meta[FP_KEY_MAX];
    redisReply *r, **e;

    r = fpm_redis_cmd(m,
                      "HMGET %s relay_from relay_part relay_off relay_at state format total "
                      "part_size",
                      fp_key_job(meta, j->id, FP_JOB_META));
    if (r == NULL)
        return FPM_LOST;
    if (fpm_redis_failed(m, r, "relay") || r->type != REDIS_REPLY_ARRAY || r->elements != 8) {
        freeReplyObject(r);
        return -2;
    }
    e = r->element;
    j->exists = e[4]->type == REDIS_REPLY_STRING;
    j->asked = e[0]->type == REDIS_REPLY_STRING;
    j->from = fpm_reply_u64(e[0], 0);
    j->part = fpm_reply_u64(e[1], 0);
    j->off = fpm_reply_u64(e[2], 0);
    j->at = fpm_reply_u64(e[3], 0);
    j->done = j->exists && strcmp(e[4]->str, "done") == 0;
    j->fmt = FPM_TSV;
    if (e[5]->type == REDIS_REPLY_STRING)
        fpm_format_parse(e[5]->str, e[5]->len, &j->fmt);
    j->total = fpm_reply_u64(e[6], 0);
    j->psize = fpm_reply_u64(e[7], FP_PART_SIZE_DEFAULT);
    if (j->psize == 0)
        j->psize = FP_PART_SIZE_DEFAULT;
    freeReplyObject(r);
    return 0;
}

/* Runs a MULTI of n queued commands (MULTI and EXEC included); 0 or FPM_LOST. */
static int commit(fpm *m, int n)
{
    redisReply *r;
    int i;

    for (i = 0; i < n; i++) {
        if ((r = fpm_redis_reply(m)) == NULL)
            return FPM_LOST;
        if (i == n - 1)
            fpm_redis_failed(m, r, "relay");
        freeReplyObject(r);
    }
    return 0;
}

/* A client asked from byte `from`: find that place in the parts, drop what is queued. */
static int restart(fpm *m, relay *j)
{
    char meta[FP_KEY_MAX], rows[FP_KEY_MAX], path[PATH_MAX];
    uint64_t cum = 0, no = 0;
    struct stat st;

    for (;; no++) {
        part_path(m, j, no, path, sizeof(path));
        if (stat(path, &st) != 0 || cum + (uint64_t)st.st_size > j->from)
            break;
        cum += (uint64_t)st.st_size;
    }
    j->part = no;
    j->off = j->from - cum;
    j->at = j->from;
    fp_key_job(meta, j->id, FP_JOB_META);
    fp_key_job(rows, j->id, FP_JOB_ROWS);
    if (fpm_redis_append(m, "MULTI") || fpm_redis_append(m, "DEL %s", rows) ||
        fpm_redis_append(m,
                         "HSET %s relay_part %" PRIu64 " relay_off %" PRIu64 " relay_at %" PRIu64,
                         meta, j->part, j->off, j->at) ||
        fpm_redis_append(m, "HDEL %s relay_from", meta) || fpm_redis_append(m, "EXEC"))
        return FPM_LOST;
    fp_debug("job %" PRIu64 ": relaying results from byte %" PRIu64, j->id, j->from);
    return commit(m, 5);
}

/* Queues one chunk (data NULL: the end) and the new position. */
static int push(fpm *m, relay *j, const char *data, size_t n)
{
    char meta[FP_KEY_MAX], rows[FP_KEY_MAX], head[48];
    size_t hl = (size_t)snprintf(head, sizeof(head), "%" PRIu64 "%s\n", j->at, data ? "" : " end");
    char *chunk = malloc(hl + n + 1);
    int rc;

    if (chunk == NULL)
        fp_oom("while relaying results");
    memcpy(chunk, head, hl);
    if (n)
        memcpy(chunk + hl, data, n);
    fp_key_job(meta, j->id, FP_JOB_META);
    fp_key_job(rows, j->id, FP_JOB_ROWS);
    rc = fpm_redis_append(m, "MULTI") || fpm_redis_append(m, "RPUSH %s %b", rows, chunk, hl + n) ||
         fpm_redis_append(m,
                          "HSET %s relay_part %" PRIu64 " relay_off %" PRIu64 " relay_at %" PRIu64,
                          meta, j->part, j->off + n, j->at + n) ||
         fpm_redis_append(m, "EXPIRE %s %ld", rows, m->cfg.retention) ||
         (data == NULL && fpm_redis_append(m, "SREM %s %" PRIu64, FP_KEY_RELAY, j->id)) ||
         fpm_redis_append(m, "EXEC");
    free(chunk);
    if (rc)
        return FPM_LOST;
    j->off += n;
    j->at += n;
    return commit(m, data ? 5 : 6);
}

/* Moves up to RELAY_CHUNKS chunks of one job; returns how many, or FPM_LOST. */
static int relay_job(fpm *m, relay *j)
{
    static char buf[RELAY_CHUNK];
    char rows[FP_KEY_MAX], path[PATH_MAX];
    redisReply *r;
    long long queued;
    uint64_t nparts;
    ssize_t n;
    int fd, rc, did = 0;

    if ((r = fpm_redis_cmd(m, "LLEN %s", fp_key_job(rows, j->id, FP_JOB_ROWS))) == NULL)
        return FPM_LOST;
    queued = r->type == REDIS_REPLY_INTEGER ? r->integer : RELAY_CHUNKS;
    freeReplyObject(r);
    while (queued + did < RELAY_CHUNKS && m->errors == 0) {
        part_path(m, j, j->part, path, sizeof(path));
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            if (errno != ENOENT)
                fp_warn("job %" PRIu64 ": relay: %s: %s", j->id, path, strerror(errno));
            return did; /* not written yet */
        }
        n = pread(fd, buf, sizeof(buf), (off_t)j->off);
        close(fd);
        if (n < 0) {
            fp_warn("job %" PRIu64 ": relay: %s: %s", j->id, path, strerror(errno));
            return did;
        }
        if (n > 0) {
            if ((rc = push(m, j, buf, (size_t)n)) != 0)
                return rc;
            did++;
            continue;
        }
        nparts = j->total ? (j->total + j->psize - 1) / j->psize : 1;
        if (j->done && j->part + 1 >= nparts) {
            if ((rc = push(m, j, NULL, 0)) != 0)
                return rc;
            fp_debug("job %" PRIu64 ": results relayed (%" PRIu64 " bytes)", j->id, j->at);
            return did + 1;
        }
        part_path(m, j, j->part + 1, path, sizeof(path));
        if (access(path, F_OK) != 0)
            return did;
        j->part++; /* the position is stored with the next chunk */
        j->off = 0;
    }
    return did;
}

int fpm_relay_step(fpm *m)
{
    redisReply *ids;
    relay j;
    size_t i;
    int did = 0, rc;

    if ((ids = fpm_redis_cmd(m, "SRANDMEMBER %s %d", FP_KEY_RELAY, RELAY_JOBS)) == NULL)
        return FPM_LOST;
    for (i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements && m->errors == 0; i++) {
        const redisReply *e = ids->element[i];
        memset(&j, 0, sizeof(j));
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (fp_text_u64(e->str, e->len, &j.id) == 0 && (rc = load(m, &j)) != 0) {
            if (rc == FPM_LOST) {
                freeReplyObject(ids);
                return FPM_LOST;
            }
            continue;
        }
        if (!j.exists) { /* not a job (any more): stop relaying it */
            redisReply *x = fpm_redis_cmd(m, "SREM %s %b", FP_KEY_RELAY, e->str, e->len);
            if (x == NULL) {
                freeReplyObject(ids);
                return FPM_LOST;
            }
            freeReplyObject(x);
            continue;
        }
        rc = j.asked ? restart(m, &j) : 0;
        if (rc == 0 && !j.asked)
            rc = relay_job(m, &j);
        if (rc == FPM_LOST) {
            freeReplyObject(ids);
            return FPM_LOST;
        }
        did += rc > 0 ? rc : 0;
    }
    freeReplyObject(ids);
    return did;
}
