/* link_int.h - the link's state, shared by link.c (the protocol) and beat.c (the
 * heartbeat). Nothing else includes it. */
#ifndef FP_LINK_INT_H
#define FP_LINK_INT_H

#include "cancelset.h"
#include "link.h"
#include "outbox.h"
#include "owner.h"
#include "rconn.h"

struct fp_link {
    uv_loop_t *loop;
    const fp_conf *conf;
    const fp_counters *stats; /* the worker's, reported by the heartbeat */
    fp_link_task_cb on_task;
    fp_link_known_cb known;
    fp_link_cancelled_cb on_cancelled;
    fp_link_lost_cb on_lost;
    fp_cancelset cancelled; /* fp:cancelled as last read */
    void *arg;
    int connected_before; /* the pull connection was up before */
    int need_adopt;       /* look for orphans in our processing list once both connections are up */
    fp_rconn pull, cmd;
    fp_outbox out; /* sent on cmd */
    char proc_key[FP_KEY_MAX], hb_key[FP_KEY_MAX];
    char owner[FP_OWNER_MAX]; /* named in the heartbeat (owner.h) */
    fp_owner_beats beats;     /* and whether the id is known to be ours (owner.h) */
    int want, spare, recovered_slots, pulling;
    int held; /* the last take held every spare task back and no slot was free */
    /* The next take goes as EVAL with the source (Redis answered NOSCRIPT to the last
     * one), take_check: the task that take judged. */
    int take_eval;
    char *take_check;
    size_t take_check_len;
    /* Results of this loop turn, sent as one finish call from the check handle. */
    fp_cmd *batch_keys, *batch_args;
    int batch_n;
    uv_check_t batch_check;
    uv_timer_t heartbeat, deadline, kick, adopt;
    int stopping, forced, final_sent;
    int lost, beat_failed; /* lost: our id is another worker's now (beat_reply_cb) */
    int open_handles;
    fp_link_closed_cb closed;
    void *closed_arg;
};

/* link.c: fetch more tasks (or adopt first) if nothing holds that back; the shutdown's
 * next step if one is under way. */
void fp_link_kick(fp_link *q);
void fp_link_progress(fp_link *q);
/* beat.c: one heartbeat now (and the read of fp:cancelled); the timer's callback. */
void fp_link_beat(fp_link *q);
void fp_link_heartbeat_cb(uv_timer_t *t);

#endif
