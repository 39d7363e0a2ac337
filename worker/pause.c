/* pause.c - holding work while the output cannot take files, probing it, resuming (see
 * pause.h). The held list is short (at most the tasks a worker holds), so it is walked. */
#include "pause.h"

#include <string.h>

#include "fp_log.h"

#define PROBE_MS 2000

/* Still unwritable: give up the items that waited long enough. */
static void give_up_overdue(fp_pause *p, uint64_t now)
{
    fp_pause_item **pp = &p->held, *it;
    int n = 0;

    while ((it = *pp) != NULL) {
        if (now - it->since < (uint64_t)p->wait_ms) {
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        p->nheld--;
        p->ops->give_up(p->arg, it, now - it->since);
        n++;
    }
    if (n)
        fp_warn("%d tasks failed after waiting %.0f s for the output to take files; %d still "
                "wait",
                n, (double)p->wait_ms / 1000.0, p->nheld);
}

static void probe_cb(uv_timer_t *t)
{
    fp_pause *p = t->data;
    fp_pause_item *it;

    if (p->ops->probe(p->arg) != 0) {
        give_up_overdue(p, uv_now(t->loop));
        return;
    }
    fp_info("output takes files again after %.1f s (%s): resuming, %d tasks run again",
            (double)(uv_now(t->loop) - p->since) / 1000.0, fp_reason_str(p->reason), p->nheld);
    it = fp_pause_stop(p);
    while (it) {
        fp_pause_item *next = it->next;
        p->ops->rerun(p->arg, it);
        it = next;
    }
    p->ops->resumed(p->arg);
}

void fp_pause_init(fp_pause *p, uv_loop_t *loop, long wait_ms, long interval_ms,
                   const fp_pause_ops *ops, void *arg)
{
    memset(p, 0, sizeof(*p));
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->wait_ms = wait_ms > 0 ? wait_ms : 0;
    p->interval_ms = wait_ms > 0 && wait_ms < PROBE_MS ? wait_ms : PROBE_MS;
    if (interval_ms > 0)
        p->interval_ms = interval_ms;
    p->ops = ops;
    p->arg = arg;
}

int fp_pause_hold(fp_pause *p, fp_pause_item *it, fp_reason why, int err, uint64_t *waited)
{
    uint64_t now = uv_now(p->timer.loop);

    if (it->since == 0)
        it->since = now;
    *waited = now - it->since;
    if (*waited >= (uint64_t)p->wait_ms)
        return 0;
    it->next = p->held;
    p->held = it;
    p->nheld++;
    if (fp_pause_on(p))
        return 1;
    p->reason = why;
    p->shown = fp_reason_str(why);
    p->since = now;
    fp_warn("output cannot take files (%s: %s): pausing, no new tasks; probing every %.1f s, "
            "a task fails after waiting %.0f s",
            p->shown, strerror(-err), (double)p->interval_ms / 1000.0, (double)p->wait_ms / 1000.0);
    uv_timer_start(&p->timer, probe_cb, (uint64_t)p->interval_ms, (uint64_t)p->interval_ms);
    p->ops->paused(p->arg);
    return 1;
}

fp_pause_item *fp_pause_stop(fp_pause *p)
{
    fp_pause_item *it = p->held;

    p->reason = FP_OK;
    p->shown = NULL;
    p->held = NULL;
    p->nheld = 0;
    uv_timer_stop(&p->timer);
    return it;
}

void fp_pause_close(fp_pause *p, uv_close_cb cb)
{
    fp_pause_stop(p);
    uv_close((uv_handle_t *)&p->timer, cb);
}
