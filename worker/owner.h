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
 * start), unchanged or expired means a dead predecessor. */
#ifndef FP_OWNER_H
#define FP_OWNER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "conf.h"

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

#endif
