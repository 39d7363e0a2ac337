/* hold.c - the worker's tasks while its output folder cannot take files (full, out of
 * inodes, read-only: store.h). The pause (pause.h) says so once, probes the folder and
 * keeps time; this file is what it does to the worker's slots. A task whose file could
 * not be stored is held, not reported, and runs again once a probe finds room; it fails
 * only after waiting --store-wait. Meanwhile the worker takes no tasks and gives the ones
 * it had not started back to the queue, unspent, so other workers can run them (and the
 * transfers started after the first store that failed: worker.c, hand_back_since). */
#include <stdio.h>

#include "fp_log.h"
#include "worker_int.h"

void fp_hold_give_back(fp_worker *w)
{
    fp_hosts_item *it;
    uint64_t waited;
    int n = 0;

    while ((it = fp_hosts_drop_waiting(&w->hosts)) != NULL) {
        slot *s = (slot *)it;
        /* One that ran once already (held, then run again) keeps waiting here. */
        if (s->wait.since && fp_pause_on(&w->pause) &&
            fp_pause_hold(&w->pause, &s->wait, w->pause.reason, 0, &waited))
            continue;
        fp_link_give_back(w->link, s->raw, s->rawlen);
        fp_wk_slot_put(w, s);
        n++;
    }
    if (n)
        fp_info("gave back %d tasks not started to the queue", n);
    fp_wk_top_up(w);
}

/* The pause began: nothing is taken or started; waiting tasks go back to the queue. */
static void paused_cb(void *arg)
{
    fp_worker *w = arg;

    w->counters.paused = w->pause.shown;
    fp_hold_give_back(w);
}

static void give_up_cb(void *arg, fp_pause_item *it, uint64_t waited_ms)
{
    static fp_result r; /* large; the loop runs on one thread */
    fp_worker *w = arg;
    slot *s = FP_WK_SLOT_OF_WAIT(it);
    char note[64];

    snprintf(note, sizeof(note), "waited %.0f s for the output", (double)waited_ms / 1000.0);
    fp_wk_report(w, s, fp_xfer_store_failed(s->x, note, &r), &r);
    fp_wk_slot_put(w, s);
}

static void rerun_cb(void *arg, fp_pause_item *it)
{
    fp_worker *w = arg;
    slot *s = FP_WK_SLOT_OF_WAIT(it);

    if (fp_hosts_wait(&w->hosts, &s->item, s->x->task.url) != 0) {
        fp_error("out of memory taking a task"); /* stays in the processing list */
        fp_wk_slot_put(w, s);
    }
}

static void resumed_cb(void *arg)
{
    fp_worker *w = arg;

    w->counters.paused = w->paused ? "store_unavailable" : NULL;
    if (!w->draining)
        fp_wk_schedule(w);
}

static int probe_cb(void *arg)
{
    fp_worker *w = arg;
    return fp_store_probe(&w->store);
}

const fp_pause_ops fp_hold_ops = {probe_cb, paused_cb, resumed_cb, rerun_cb, give_up_cb};

void fp_hold(fp_worker *w, slot *s, fp_reason reason, fp_result *r)
{
    int err = s->x->store_err;
    uint64_t waited;

    if (w->draining) {
        fp_wk_slot_put(w, s); /* stays in the processing list: handed back at the end */
        return;
    }
    if (fp_pause_hold(&w->pause, &s->wait, fp_store_unwritable(err), err, &waited))
        return;
    if (waited > 0) {
        give_up_cb(w, &s->wait, waited);
        return;
    }
    fp_wk_report(w, s, reason, r); /* --store-wait 0: no waiting */
    fp_wk_slot_put(w, s);
}

void fp_hold_drop(fp_worker *w)
{
    fp_pause_item *it = fp_pause_stop(&w->pause), *next;

    for (; it; it = next) {
        next = it->next;
        fp_wk_slot_put(w, FP_WK_SLOT_OF_WAIT(it));
    }
}
