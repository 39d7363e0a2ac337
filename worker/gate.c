/* gate.c - what a task passes before it waits for a transfer slot: its host given up for
 * the job (host_unavailable), a take script that could not judge it (internal_error) and,
 * for a job that asked, the host's robots.txt (rcache.h). A task failed here gets its
 * result without a transfer. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp_log.h"
#include "fp_polite.h"
#include "worker_int.h"

void fp_wk_fail_untried(fp_worker *w, const char *raw, size_t len, const fp_task *t,
                        fp_reason reason, const char *why)
{
    static fp_result r;
    char buf[FP_RECORD_MAX];
    int n;

    fp_result_fail_task(&r, t, reason, w->conf->id, why);
    if ((n = fp_result_encode(&r, buf, sizeof(buf))) < 0) {
        fp_error("cannot encode the result of %s", r.url);
        return; /* stays in the processing list; the reaper hands it out again */
    }
    w->counters.failed++;
    fp_debug("%s %s: %s", r.status, r.url, r.error);
    {
        fp_finish f = {.task = raw,
                       .task_len = len,
                       .job = r.job,
                       .idx = r.idx,
                       .result = buf,
                       .result_len = (size_t)n,
                       .ok = 0,
                       .status = r.status};
        fp_link_finish(w->link, &f);
    }
}

/* What the take script decided for a task it would not let run. */
void fp_wk_fail_judged(fp_worker *w, const char *raw, size_t len, const fp_task *t,
                       fp_take_verdict v, const char *why)
{
    char host[256], key[256], msg[FP_ERROR_MAX + 1];

    if (v == FP_TAKE_BROKEN) {
        fp_warn("Redis refused a call judging line %" PRIu64 " of job %" PRIu64
                " (%s): it fails as internal_error",
                t->line, t->job, why);
        snprintf(msg, sizeof(msg), "Redis refused a call judging its host's budget: %s", why);
        fp_wk_fail_untried(w, raw, len, t, FP_R_INTERNAL, msg);
        return;
    }
    fp_hosts_name(t->url, host, sizeof(host));
    fp_task_host_key(host, t->flags, key, sizeof(key)); /* its registered domain, if grouped */
    snprintf(msg, sizeof(msg),
             "%.160s was given up for this job after %d connection failures in a row", key,
             FP_POLITE_GIVE_UP);
    fp_wk_fail_untried(w, raw, len, t, FP_R_HOST_UNAVAILABLE, msg);
}

/* The slot's task may go on to its host's queue (0), or was settled here (1). */
static int robots_settle(fp_worker *w, slot *s, int allowed, const char *why)
{
    if (allowed && fp_link_cancelled(w->link, s->x->task.job)) {
        fp_link_drop(w->link, s->raw, s->rawlen); /* cancelled while it waited (cancel.c) */
    } else if (allowed) {
        if (fp_hosts_wait(&w->hosts, &s->item, s->x->task.url) == 0)
            return 0;
        fp_error("out of memory taking a task"); /* the reaper hands it out again */
    } else {
        fp_wk_fail_untried(w, s->raw, s->rawlen, &s->x->task, FP_R_ROBOTS_DISALLOWED, why);
    }
    fp_wk_slot_put(w, s);
    return 1;
}

static void robots_cb(void *arg, fp_rcache_item *it, int allowed, const char *why)
{
    fp_worker *w = arg;
    slot *s = (slot *)((char *)it - offsetof(slot, robots));

    robots_settle(w, s, allowed, why);
    fp_wk_schedule(w);
}

int fp_wk_gate_init(fp_worker *w)
{
    w->robots = fp_rcache_new(w->loop, w->conf, w->curl, w->link, robots_cb, w);
    return w->robots ? 0 : -1;
}

int fp_wk_gate(fp_worker *w, slot *s)
{
    const char *why;
    int v;

    if (!(s->x->task.flags & FP_TASK_ROBOTS))
        return robots_settle(w, s, 1, NULL);
    if ((v = fp_rcache_check(w->robots, &s->robots, s->x->task.url, &why)) < 0)
        return 0; /* robots_cb goes on */
    return robots_settle(w, s, v, why);
}
