/* owner.h - one live worker per id: the owner token in the heartbeat, and the check at
 * start that refuses to run beside a live worker with the same --id.
 *
 * Two live workers sharing an id share a processing list: the second would hand back the
 * first one's tasks at start (they run twice), take back tasks it never ran, and each
 * would remove the other's heartbeat. So the heartbeat names its owner
 * (host/pid-namespace/pid/random) and counts its beats. At start a heartbeat that exists
 * is judged: its owner is gone for sure (same host and pid namespace, and that process no
 * longer runs, or it was our own pid: a restarted container) and we go on at once;
 * otherwise we watch it for two heartbeat periods: refreshed means a live twin (refuse to
 * start), unchanged or expired means a dead predecessor; it sets its own heartbeat right
 * after handing the predecessor's tasks back.
 *
 * A worker that was only cut off from Redis (or frozen) past that may find its id taken
 * when it comes back: its heartbeat is set by a script that leaves one naming another
 * owner alone, so the old worker learns it from its next beat and steps down (link.c)
 * instead of sharing the processing list with its successor. */
#ifndef FP_OWNER_H
#define FP_OWNER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "conf.h"
#include "fp_scripts.h"
#include "link.h"

#define FP_OWNER_MAX 160

/* This process's token (host/pidns/pid/random, no spaces). */
void fp_owner_token(char *buf, size_t len);

/* 0: nobody else runs with this id (a dead predecessor's heartbeat is removed, so its
 * tasks can be handed back); 1: a live worker holds it (logged); -1: Redis failed
 * (c->errstr). */
int fp_owner_claim(redisContext *c, const char *id, const char *token);

/* The worker's first words with Redis, before its connections open: connects, checks the
 * eviction policy, claims the id (above) and hands back what a dead predecessor with this
 * id left in its processing list. 0, or -1 with the reason logged. */
int fp_owner_start(const fp_conf *conf, const char *token);

/* The heartbeats of a running worker, and whether the id is known to be still ours: the
 * send time of the newest beat Redis confirmed. A successor needs our heartbeat to stand
 * still for 2.5 s (or expire) before it takes the id, so while a beat sent less than
 * FP_OWNER_FRESH_MS ago is confirmed nobody can have taken it; past that (cut off,
 * frozen, Redis stalled) the worker starts no task it takes and adopts none until a beat
 * confirms the id again (link.c). Replies come in order, so a ring of send times serves. */
#define FP_OWNER_FRESH_MS (2 * FP_HEARTBEAT_MS)
typedef struct fp_owner_beats {
    uint64_t n, replied, ok_at, sent_at[16];
    uint64_t rate_at, rate_n; /* files/s: last beat's time and count */
    double rate;
} fp_owner_beats;

/* The next heartbeat, sent at now: sets fp:worker:<id> to "owner=<token> beat=<n>" and the
 * counters for FP_HEARTBEAT_TTL_MS and adds the id to fp:workers, unless the heartbeat
 * names another owner. The call points into a static buffer: send it before the next
 * one, and call fp_owner_beat_sent once it is sent. */
void fp_owner_beat_call(fp_call *c, fp_owner_beats *b, const fp_conf *conf, const char *token,
                        const fp_counters *s, uint64_t now);
void fp_owner_beat_sent(fp_owner_beats *b, uint64_t now);
/* A connection came up: every beat sent on the one before has had its (NULL) reply. */
void fp_owner_beat_resync(fp_owner_beats *b);
/* Its reply (NULL too: they keep the order): 0 set (ours), 1 another owner holds the id
 * (named in other, "?" if the heartbeat names none), -1 no reply or an error. */
int fp_owner_beat_reply(fp_owner_beats *b, const redisReply *r, char *other, size_t len);
/* A beat sent less than FP_OWNER_FRESH_MS before now was confirmed. */
int fp_owner_fresh(const fp_owner_beats *b, uint64_t now);

#endif
