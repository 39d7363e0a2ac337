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

/* One heartbeat: sets fp:worker:<id> to "owner=<token> beat=<beat>" and the counters for
 * FP_HEARTBEAT_TTL_MS and adds the id to fp:workers, unless the heartbeat names another
 * owner. The call points into a static buffer: send it before the next one. */
void fp_owner_beat_call(fp_call *c, const fp_conf *conf, const char *token, uint64_t beat,
                        const fp_counters *s, double rate);
/* Its reply: 0 set (ours), 1 another owner holds the id (named in other, "?" if the
 * heartbeat names none), -1 no reply or an error. */
int fp_owner_beat_reply(const redisReply *r, char *other, size_t len);

#endif
