/* refused.c - commands Redis refuses for good (see refused.h). */
#include "refused.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_log.h"
#include "fp_record.h"
#include "fp_scripts.h"
#include "fp_text.h"

/* The finish call's layout (fp_scripts.h): EVAL and the script (or EVALSHA and its SHA1),
 * numkeys, proc, done, then
 * FP_FINISH_KEYS keys per result, then FP_FINISH_ARGS arguments per result. */
#define FINISH_HEAD 5

static void split(fp_outbox *o, const char *worker, const fp_cmd *cmd, const char *err)
{
    static fp_call head;
    const char *s;
    size_t len;
    uint64_t numkeys;
    int n, i, k;

    s = fp_cmd_arg(cmd, 2, &len);
    if (fp_text_u64(s, len, &numkeys) != 0 || numkeys < 2)
        return;
    n = (int)(numkeys - 2) / FP_FINISH_KEYS;
    fp_warn("redis refused a batch of %d results (%s); sending them one by one", n, err);
    fp_call_finish_head(&head, worker, 1);
    for (i = 0; i < n; i++) {
        fp_cmd *one = fp_cmd_new(o, 1);
        int keys = FINISH_HEAD + FP_FINISH_KEYS * i;
        int args = FINISH_HEAD + FP_FINISH_KEYS * n + FP_FINISH_ARGS * i;

        fp_cmd_set_tag(one, FP_CMD_FINISH);
        fp_cmd_add(one, &head, 0, head.argc);
        for (k = keys; k < keys + FP_FINISH_KEYS; k++) {
            s = fp_cmd_arg(cmd, k, &len);
            fp_cmd_add_arg(one, s, len, 0);
        }
        for (k = args; k < args + FP_FINISH_ARGS && k < fp_cmd_argc(cmd); k++) {
            s = fp_cmd_arg(cmd, k, &len);
            fp_cmd_add_arg(one, s, len, fp_cmd_is_task(cmd, k));
        }
        fp_outbox_push(o, one);
    }
}

/* Every task record the command settles gets its way out. */
static void abandon(fp_outbox *o, const char *worker, const fp_cmd *cmd, const char *err)
{
    static fp_task t;
    static fp_result r;
    static fp_call call;
    char rec[FP_RECORD_MAX], why[128], msg[sizeof(r.error)];
    const char *raw;
    size_t len;
    int i, n;

    for (i = 0; i < fp_cmd_argc(cmd); i++) {
        fp_cmd *c;

        if (!fp_cmd_is_task(cmd, i))
            continue;
        raw = fp_cmd_arg(cmd, i, &len);
        if (fp_task_decode(&t, raw, len, why, sizeof(why)) != 0)
            continue; /* cannot be: it was taken as a task */
        snprintf(msg, sizeof(msg), "Redis refused the result: %s", err);
        fp_result_fail_task(&r, &t, FP_R_INTERNAL, worker, msg);
        if ((n = fp_result_encode(&r, rec, sizeof(rec))) < 0)
            continue;
        fp_error("redis refused the result of line %llu of job %llu (%s): the task goes to %s "
                 "and counts as failed (internal_error)",
                 (unsigned long long)t.line, (unsigned long long)t.job, err, FP_KEY_DEAD);
        fp_call_abandon(&call, worker, raw, len, t.job, t.idx, rec, (size_t)n, r.status);
        c = fp_cmd_new(o, 1);
        fp_cmd_set_tag(c, FP_CMD_ABANDON);
        fp_cmd_add(c, &call, 0, call.argc);
        fp_outbox_push(o, c);
    }
}

void fp_refused_handle(fp_outbox *o, const char *worker, fp_cmd *cmd, const char *err)
{
    switch (fp_cmd_tag(cmd)) {
    case FP_CMD_BATCH: split(o, worker, cmd, err); break;
    case FP_CMD_FINISH:
    case FP_CMD_RETRY: abandon(o, worker, cmd, err); break;
    default: fp_error("redis: command failed: %s", err); break;
    }
    fp_cmd_free(cmd);
}
