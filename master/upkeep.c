/* upkeep.c - queue housekeeping the master does every loop round: moving retries whose
 * delay is over from fp:retry back to the head of fp:tasks, and (in a later issue)
 * handing back the tasks of workers whose heartbeat has expired. */
#include "fp_keys.h"
#include "fp_scripts.h"
#include "master.h"

#define PROMOTE_MAX 1000 /* retries moved per round; the script is O(moved) */

int fpm_promote_step(fpm *m)
{
    redisReply *r;
    int n = 0;

    r = fpm_redis_cmd(m, "EVAL %s 2 %s %s %d", fp_script_promote, FP_KEY_RETRY, FP_KEY_TASKS,
                      PROMOTE_MAX);
    if (r == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "promoting retries") && r->type == REDIS_REPLY_INTEGER)
        n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

/* Dead-worker reaper: not written yet (its own issue). It will find ids in fp:workers whose
 * heartbeat key fp:worker:<id> has expired and run fp_script_release on their processing
 * lists, so their tasks go back to the queue. Until then a crashed worker's tasks wait. */
int fpm_reap_dead_workers_step(fpm *m)
{
    (void)m;
    return 0;
}
