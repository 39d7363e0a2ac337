/* refused.h - what the worker does with a command Redis refuses for good.
 *
 * Part of the worker's protocol (link.c), kept apart. An error reply that is not one of
 * the transient ones (WRONGTYPE on a job key, NOPERM from an ACL, the finish script's
 * FPREFUSED, a script error) would come back on every resend, and dropping the command
 * would strand its tasks in a live worker's processing list. So a refused batch of results
 * is sent again one result per call (the finish script records what it can and refuses
 * only the tasks of an unusable job), and a task whose own call is refused again (or whose
 * retry is refused) takes the last way out, fp_script_abandon: dead-letter list, a failure
 * result internal_error, counted as failed. Each command carries a tag saying what it is. */
#ifndef FP_REFUSED_H
#define FP_REFUSED_H

#include "outbox.h"

enum fp_refused_tag {
    FP_CMD_OTHER = 0, /* refused: logged */
    FP_CMD_BATCH,     /* a finish call of several results */
    FP_CMD_FINISH,    /* a finish call of one result */
    FP_CMD_RETRY,
    FP_CMD_ABANDON
};

/* The outbox's refused callback for worker `worker` (queues what replaces cmd on o, frees
 * cmd). */
void fp_refused_handle(fp_outbox *o, const char *worker, fp_cmd *cmd, const char *err);

#endif
