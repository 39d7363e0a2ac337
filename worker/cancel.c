/* cancel.c - dropping the tasks of cancelled jobs the worker holds.
 *
 * A job is cancelled in Redis (PROTOCOL.md, "Control"); every heartbeat the link reads
 * fp:cancelled, and when it names jobs this runs: a running transfer of such a job is
 * aborted, a waiting one taken off its host's queue, and each task is dropped from the
 * processing list without a result (fp_link_drop). Tasks that arrive later, results and
 * retries of those jobs are dropped by the link itself, and a task whose body is being
 * uploaded is dropped when its upload ends (its result goes through the link). */
#include <stdint.h>

#include "fp_log.h"
#include "worker_int.h"

void fp_wk_cancelled_cb(void *arg)
{
    fp_worker *w = arg;
    fp_hosts_item *it, *keep = NULL, **tail = &keep;
    int i, aborted = 0, dropped = 0;

    if (w->draining)
        return;
    for (i = 0; i < w->nslots; i++) {
        slot *s = w->slots[i];
        if (s->active && fp_link_cancelled(w->link, s->x->task.job)) {
            fp_link_drop(w->link, s->raw, s->rawlen);
            fp_body_discard(&s->x->body);
            fp_wk_slot_end(w, s);
            aborted++;
        }
    }
    /* Waiting ones: every waiting task off its host's queue, the others put back in order. */
    while ((it = fp_hosts_drop_waiting(&w->hosts)) != NULL) {
        *tail = it;
        tail = &it->next;
        *tail = NULL;
    }
    while ((it = keep) != NULL) {
        slot *s = (slot *)it;
        keep = it->next;
        if (fp_link_cancelled(w->link, s->x->task.job) ||
            fp_hosts_wait(&w->hosts, &s->item, s->x->task.url) != 0) {
            /* (out of memory putting it back: dropped rather than lost in a list) */
            fp_link_drop(w->link, s->raw, s->rawlen);
            fp_wk_slot_put(w, s);
            dropped++;
        }
    }
    if (aborted + dropped == 0)
        return;
    fp_info("cancelled jobs: %d transfers aborted, %d waiting tasks dropped", aborted, dropped);
    fp_wk_schedule(w);
}
