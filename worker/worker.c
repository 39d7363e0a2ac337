/* worker.c - scheduling of tasks onto transfer slots, results, retries and the drain. */
#include "worker.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fetch.h"
#include "fp_log.h"
#include "fp_stats.h"
#include "hosts.h"
#include "queue.h"
#include "store.h"
#include "xfer.h"

#define RETRY_AFTER_MAX_S 60
#define BACKOFF_BASE_MS   1000
#define BACKOFF_MAX_MS    30000
/* Recovered tasks (their worker died) held at once: few, so a task that kills workers
 * takes few innocent ones along when it strikes again. */
#define RECOVERED_MAX 4

typedef struct fp_worker {
    uv_loop_t *loop;
    const fp_conf *conf;
    fp_store store;
    fp_fetch *fetch;
    fp_queue *queue;
    fp_hosts hosts;
    fp_xfer **slots; /* every slot ever made, for the final cleanup */
    int nslots;
    fp_xfer *free_slots;
    int inflight;
    int recovered; /* recovered tasks held (running or waiting) */
    int draining, queue_closing;
    uv_signal_t sigterm, sigint;
    uv_timer_t grace;
    const char *crash_on; /* test-only: abort() on a URL containing this */
    int exit_code;
} fp_worker;

static void schedule(fp_worker *w);

/* Slots ----------------------------------------------------------------------------- */

static fp_xfer *slot_get(fp_worker *w)
{
    fp_xfer *x = w->free_slots, **grown;

    if (x) {
        w->free_slots = x->next;
        x->next = NULL;
        return x;
    }
    if ((x = fp_xfer_new(w->conf, &w->store)) == NULL)
        return NULL;
    fp_fetch_attach(w->fetch, x->easy);
    if ((grown = realloc(w->slots, sizeof(*grown) * (size_t)(w->nslots + 1))) == NULL) {
        fp_xfer_free(x);
        return NULL;
    }
    w->slots = grown;
    w->slots[w->nslots++] = x;
    return x;
}

static void slot_put(fp_worker *w, fp_xfer *x)
{
    if (x->recovered)
        w->recovered--;
    x->recovered = 0;
    x->host = NULL;
    x->next = w->free_slots;
    w->free_slots = x;
}

/* Asking for tasks ------------------------------------------------------------------ */

static void top_up(fp_worker *w)
{
    int cap = w->conf->concurrency, prefetch = cap / 2 > 1 ? cap / 2 : 1;
    int want = cap + prefetch - w->inflight - w->hosts.waiting;
    int batch = cap / 8 > 1 ? cap / 8 : 1;

    if (w->draining)
        return;
    /* Ask in batches (fewer round trips), unless we are about to run dry. */
    if (want >= batch || w->inflight + w->hosts.waiting < batch)
        fp_queue_want(w->queue, want > 0 ? want : 0, RECOVERED_MAX - w->recovered);
    else
        fp_queue_want(w->queue, 0, 0);
}

/* Results --------------------------------------------------------------------------- */

static long retry_delay_ms(const fp_xfer *x)
{
    long d;

    if (x->retry_after_s >= 0)
        return (x->retry_after_s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : x->retry_after_s) * 1000;
    d = BACKOFF_BASE_MS << (x->task.attempt - 1 < 5 ? x->task.attempt - 1 : 5);
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d * 3 / 4 + random() % (d / 2 + 1); /* +-25% jitter */
}

static void report(fp_worker *w, fp_xfer *x, fp_reason reason, fp_result *r)
{
    fp_queue_stats *st = fp_queue_stats_of(w->queue);
    char buf[FP_RECORD_MAX];
    int n;

    if (reason != FP_OK && fp_reason_transient(reason, r->http_code) &&
        x->task.attempt < x->task.max_attempts) {
        fp_task next = x->task;
        long delay = retry_delay_ms(x);
        next.attempt++;
        n = fp_task_encode(&next, buf, sizeof(buf));
        if (n > 0) {
            fp_debug("retry %s in %ld ms (attempt %u of %u: %s)", x->shown, delay, next.attempt,
                     next.max_attempts, r->status);
            fp_queue_retry(w->queue, x->raw, x->rawlen, buf, (size_t)n, delay);
            st->retried++;
            return;
        }
    }
    n = fp_result_encode(r, buf, sizeof(buf));
    if (n < 0) {
        fp_error("cannot encode the result of %s", x->shown);
        return; /* stays in the processing list; the reaper hands it out again */
    }
    if (reason == FP_OK) {
        st->done++;
        st->bytes += r->bytes;
    } else {
        st->failed++;
    }
    fp_debug("%s %s %s %.1f ms", r->status, r->url, r->path, (double)r->total_us / 1000.0);
    fp_queue_finish(w->queue, x->raw, x->rawlen, r->job, r->idx, buf, (size_t)n, reason == FP_OK,
                    r->status, r->bytes, r->total_us,
                    reason == FP_OK ? (int64_t)fp_stats_bucket(r->total_us) : -1);
}

static void on_done(void *arg, CURL *easy, CURLcode rc)
{
    fp_worker *w = arg;
    fp_xfer *x = NULL;
    static fp_result r; /* large; the loop runs on one thread */
    fp_reason reason;
    fp_host *host;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    reason = fp_xfer_result(x, rc, &r);
    fp_fetch_remove(w->fetch, easy);
    x->active = 0;
    w->inflight--;
    fp_queue_stats_of(w->queue)->inflight = (uint64_t)w->inflight;
    report(w, x, reason, &r);
    host = x->host;
    host->active--;
    slot_put(w, x);
    fp_hosts_done(&w->hosts, host);
    if (w->draining) {
        if (w->inflight == 0 && !w->queue_closing) {
            uv_timer_stop(&w->grace);
            schedule(w); /* closes the queue */
        }
        return;
    }
    schedule(w);
}

/* Starting transfers ---------------------------------------------------------------- */

static void start(fp_worker *w, fp_xfer *x)
{
    static fp_result r;
    fp_host *host = x->host;

    host->active++;
    if (fp_xfer_begin(x) == 0 && fp_fetch_add(w->fetch, x->easy) == 0) {
        x->active = 1;
        w->inflight++;
        fp_queue_stats_of(w->queue)->inflight = (uint64_t)w->inflight;
        return;
    }
    fp_error("cannot start a transfer for %s", x->shown);
    fp_xfer_result(x, CURLE_OUT_OF_MEMORY, &r);
    report(w, x, FP_R_INTERNAL, &r);
    host->active--;
    slot_put(w, x);
    fp_hosts_done(&w->hosts, host);
}

static void close_all(fp_worker *w);

static void schedule(fp_worker *w)
{
    fp_xfer *x;

    if (w->draining) {
        if (w->inflight == 0 && !w->queue_closing)
            close_all(w);
        return;
    }
    while (w->inflight < w->conf->concurrency && (x = fp_hosts_next(&w->hosts)) != NULL)
        start(w, x);
    top_up(w);
}

static void on_task(void *arg, const char *raw, size_t len)
{
    fp_worker *w = arg;
    static fp_task t;
    char err[128];
    fp_xfer *x;

    if (fp_task_decode(&t, raw, len, err, sizeof(err)) != 0) {
        fp_warn("dead letter: %s: %.80s", err, raw);
        fp_queue_bury(w->queue, raw, len);
        return;
    }
    if (w->crash_on && strstr(t.url, w->crash_on)) {
        fp_error("test hook FETCHPOOL_TEST_CRASH_URL matched %s: crashing", t.url);
        abort();
    }
    if ((x = slot_get(w)) == NULL || fp_xfer_set_task(x, raw, len, &t) != 0 ||
        (x->host = fp_hosts_get(&w->hosts, t.url)) == NULL) {
        /* Out of memory: leave the task in the processing list for the reaper. */
        fp_error("out of memory taking a task");
        if (x)
            slot_put(w, x);
        return;
    }
    if (t.flags & FP_TASK_RECOVERED) {
        x->recovered = 1;
        w->recovered++;
    }
    fp_hosts_wait(&w->hosts, x);
    schedule(w);
}

/* Linear in the slots; runs only after a lost Redis connection. */
static int known(void *arg, const char *raw, size_t len)
{
    fp_worker *w = arg;
    int i;

    for (i = 0; i < w->nslots; i++) {
        fp_xfer *x = w->slots[i];
        if (x->host && x->rawlen == len && memcmp(x->raw, raw, len) == 0)
            return 1;
    }
    return 0;
}

/* Drain and shutdown ---------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void fetch_closed(void *arg)
{
    fp_worker *w = arg;

    uv_close((uv_handle_t *)&w->sigterm, handle_closed);
    uv_close((uv_handle_t *)&w->sigint, handle_closed);
    uv_close((uv_handle_t *)&w->grace, handle_closed);
    /* Closing the handles restored the default action; a late signal must not turn a
     * clean exit into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

static void queue_closed(void *arg)
{
    fp_worker *w = arg;

    w->queue = NULL;
    fp_fetch_close(w->fetch, fetch_closed, w);
    w->fetch = NULL;
}

static void close_all(fp_worker *w)
{
    fp_xfer *x;

    w->queue_closing = 1;
    /* Tasks that never started stay in the processing list; the queue hands them back. */
    while ((x = fp_hosts_drop_waiting(&w->hosts)) != NULL) {
        fp_host *host = x->host;
        slot_put(w, x);
        fp_hosts_done(&w->hosts, host);
    }
    fp_info("drained; handing back unfinished tasks and closing");
    fp_queue_shutdown(w->queue, 5000, queue_closed, w);
}

static void abort_transfers(fp_worker *w)
{
    int i;

    for (i = 0; i < w->nslots; i++) {
        fp_xfer *x = w->slots[i];
        if (!x->active)
            continue;
        fp_host *host = x->host;
        fp_fetch_remove(w->fetch, x->easy);
        fp_body_discard(&x->body);
        x->active = 0;
        w->inflight--;
        host->active--;
        slot_put(w, x);
        fp_hosts_done(&w->hosts, host);
    }
}

static void grace_cb(uv_timer_t *t)
{
    fp_worker *w = t->data;

    fp_warn("grace period over with %d transfers in flight: handing them back", w->inflight);
    abort_transfers(w);
    schedule(w);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    fp_worker *w = s->data;

    if (w->queue_closing)
        return;
    if (w->draining) {
        fp_warn("second signal: handing back %d transfers now", w->inflight);
        uv_timer_stop(&w->grace);
        abort_transfers(w);
        schedule(w);
        return;
    }
    fp_info("%s: draining (%d transfers in flight, up to %.1f s)", strsignal(signum), w->inflight,
            (double)w->conf->grace_ms / 1000.0);
    w->draining = 1;
    fp_queue_want(w->queue, 0, 0);
    uv_timer_start(&w->grace, grace_cb, (uint64_t)w->conf->grace_ms, 0);
    schedule(w);
}

int fp_worker_run(const fp_conf *conf)
{
    fp_worker w;
    int rc, i;

    memset(&w, 0, sizeof(w));
    w.conf = conf;
    w.loop = uv_default_loop();
    w.exit_code = 0;
    w.crash_on = getenv("FETCHPOOL_TEST_CRASH_URL");
    srandom((unsigned)uv_hrtime() ^ (unsigned)uv_os_getpid());
    rc = fp_store_open(&w.store, conf->output, conf->id, conf->fsync,
                       conf->timeout_ms / 1000 * 2 + 600);
    if (rc != 0) {
        fp_error("cannot use output folder %s: %s", conf->output, strerror(-rc));
        fp_store_close(&w.store);
        return 2;
    }
    fp_hosts_init(&w.hosts, conf->host_conns);
    w.fetch = fp_fetch_new(w.loop, conf->idle_conns, on_done, &w);
    if (w.fetch == NULL) {
        fp_error("cannot set up libcurl");
        fp_store_close(&w.store);
        return 2;
    }
    w.queue = fp_queue_new(w.loop, conf, on_task, known, &w);
    if (w.queue == NULL) {
        fp_fetch_close(w.fetch, NULL, NULL);
        uv_run(w.loop, UV_RUN_DEFAULT);
        fp_store_close(&w.store);
        return 2;
    }
    uv_signal_init(w.loop, &w.sigterm);
    uv_signal_init(w.loop, &w.sigint);
    uv_timer_init(w.loop, &w.grace);
    w.sigterm.data = w.sigint.data = w.grace.data = &w;
    uv_signal_start(&w.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&w.sigint, signal_cb, SIGINT);
    fp_info("worker %s: redis %s:%d, output %s, concurrency %d, %d per host, %d idle%s", conf->id,
            conf->redis.host, conf->redis.port, conf->output, conf->concurrency, conf->host_conns,
            conf->idle_conns, conf->allow_private ? ", private addresses allowed" : "");
    top_up(&w);

    uv_run(w.loop, UV_RUN_DEFAULT);

    for (i = 0; i < w.nslots; i++)
        fp_xfer_free(w.slots[i]);
    free(w.slots);
    fp_hosts_free(&w.hosts);
    fp_store_close(&w.store);
    if (uv_loop_close(w.loop) != 0)
        fp_warn("loop closed with handles still open");
    fp_info("worker %s stopped", conf->id);
    return w.exit_code;
}
