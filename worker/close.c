/* close.c - the order in which the worker's pieces close once its link to Redis has
 * closed (worker.c's drain ends there): the object store, libcurl, then the signal, grace
 * and pause handles, after which the loop ends. */
#include <inttypes.h>
#include <signal.h>

#include "fp_log.h"
#include "worker_int.h"

static void handle_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void curl_closed_cb(void *arg)
{
    fp_worker *w = arg;

    uv_close((uv_handle_t *)&w->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&w->sigint, handle_closed_cb);
    uv_close((uv_handle_t *)&w->grace, handle_closed_cb);
    uv_close((uv_handle_t *)&w->settle, handle_closed_cb);
    fp_pause_close(&w->pause, handle_closed_cb);
    /* Closing the handles restored the default action; a late signal must not turn a
     * clean exit into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

static void s3_closed_cb(void *arg)
{
    fp_worker *w = arg;

    w->s3 = NULL;
    fp_curl_uv_close(w->curl, curl_closed_cb, w);
    w->curl = NULL;
}

void fp_wk_link_closed_cb(void *arg)
{
    fp_worker *w = arg;

    w->link = NULL;
    if (w->s3) {
        uint64_t puts, existed, us;
        fp_s3_stats(w->s3, &puts, &existed, &us);
        fp_info("object store: %" PRIu64 " uploaded, %" PRIu64 " already there, %.3f s of uploads",
                puts, existed, (double)us / 1e6);
        fp_s3_close(w->s3, s3_closed_cb, w);
        return;
    }
    fp_curl_uv_close(w->curl, curl_closed_cb, w);
    w->curl = NULL;
}
