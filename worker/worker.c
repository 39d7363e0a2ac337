/* worker.c - scheduling of tasks onto transfer slots, results, retries and the drain.
 * Its state is in worker_int.h; the tasks held while the output folder cannot take files
 * are hold.c's. */
#include "worker.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "classify.h"
#include "fp_log.h"
#include "fp_polite.h"
#include "fp_text.h"
#include "worker_int.h"

/* Recovered tasks (their worker died) held at once: one, so a task that kills workers
 * never strikes beside one it struck before (each innocent task dies with it once). */
#define RECOVERED_MAX 1

/* Slots (their struct: worker_int.h) ---------------------------------------------- */

static slot *slot_get(fp_worker *w)
{
    slot *s = w->free_slots, **grown;

    if (s) {
        w->free_slots = s->next_free;
        return s;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    if ((s->x = fp_xfer_new(w->conf, &w->store)) == NULL ||
        (w->s3 && (s->up = malloc(sizeof(*s->up))) == NULL) ||
        (grown = realloc(w->slots, sizeof(*grown) * (size_t)(w->nslots + 1))) == NULL) {
        fp_xfer_free(s->x);
        free(s->up);
        free(s);
        return NULL;
    }
    curl_easy_setopt(s->x->easy, CURLOPT_PRIVATE, s);
    fp_curl_uv_attach(w->curl, s->x->easy);
    if (s->up)
        s->up->owner = s;
    w->slots = grown;
    w->slots[w->nslots++] = s;
    return s;
}

void fp_wk_slot_put(fp_worker *w, slot *s)
{
    if (s->recovered)
        w->recovered--;
    s->recovered = 0;
    s->held = 0;
    s->wait.since = 0;
    s->next_free = w->free_slots;
    w->free_slots = s;
}

/* The task record as taken (the finish and retry calls name it). 0 or -1. */
static int slot_set_raw(slot *s, const char *raw, size_t len)
{
    if (len + 1 > s->rawcap) {
        char *p = realloc(s->raw, len + 1);
        if (p == NULL)
            return -1;
        s->raw = p;
        s->rawcap = len + 1;
    }
    memcpy(s->raw, raw, len);
    s->raw[len] = '\0';
    s->rawlen = len;
    return 0;
}

/* A slot that fp_hosts_next started has stopped: the one place that undoes start(). Once
 * is enough: a settled slot (done_cb) was stopped before. */
static void slot_stop(fp_worker *w, slot *s)
{
    if (s->active) {
        fp_curl_uv_remove(w->curl, s->x->easy);
        s->active = 0;
        w->inflight--;
        w->counters.inflight = (uint64_t)w->inflight;
    }
    if (s->item.host)
        fp_hosts_end(&w->hosts, &s->item);
}

/* ... and is done with its task. */
void fp_wk_slot_end(fp_worker *w, slot *s)
{
    slot_stop(w, s);
    fp_wk_slot_put(w, s);
}

/* Asking for tasks ------------------------------------------------------------------ */

void fp_wk_top_up(fp_worker *w)
{
    int cap = w->conf->concurrency, prefetch = cap / 2 > 1 ? cap / 2 : 1;
    int want = cap + prefetch - w->inflight - w->settling - w->hosts.waiting -
               fp_rcache_waiting(w->robots);
    int batch = cap / 8 > 1 ? cap / 8 : 1;

    if (w->draining)
        return;
    if (fp_wk_paused(w)) {
        fp_link_want(w->link, 0, 0, 0);
        return;
    }
    /* Ask in batches (fewer round trips), unless we are about to run dry. The prefetch
     * part of want is spare: beyond the free slots (fp_link_want). */
    if (want >= batch || w->inflight + w->hosts.waiting < batch)
        fp_link_want(w->link, want > 0 ? want : 0, want < prefetch ? want : prefetch,
                     RECOVERED_MAX - w->recovered);
    else
        fp_link_want(w->link, 0, 0, 0);
}

/* Results --------------------------------------------------------------------------- */

void fp_wk_report(fp_worker *w, slot *s, fp_reason reason, fp_result *r)
{
    fp_xfer *x = s->x;
    fp_counters *st = &w->counters;
    char buf[FP_RECORD_MAX];
    int n;

    if (reason != FP_OK && fp_reason_transient(reason, r->http_code) &&
        x->task.attempt < x->task.max_attempts) {
        fp_task next = x->task;
        long delay = fp_retry_delay_ms(x->task.attempt, x->retry_after_s, random());
        next.attempt++;
        n = fp_task_encode(&next, buf, sizeof(buf));
        if (n > 0) {
            fp_debug("retry %s in %ld ms (attempt %u of %u: %s)", x->shown, delay, next.attempt,
                     next.max_attempts, r->status);
            fp_link_retry(w->link, x->task.job, s->raw, s->rawlen, buf, (size_t)n, delay, r->status,
                          x->retry_after_s);
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
    {
        fp_finish f = {.task = s->raw,
                       .task_len = s->rawlen,
                       .job = r->job,
                       .idx = r->idx,
                       .result = buf,
                       .result_len = (size_t)n,
                       .ok = reason == FP_OK,
                       .status = r->status,
                       .bytes = r->bytes,
                       .total_us = r->total_us};
        fp_link_finish(w->link, &f);
    }
}

static void after_done(fp_worker *w);

/* Uploads (S3 output) ---------------------------------------------------------------- */

/* The upload of s ended (or never started): its result goes out, the slot is free. */
static void upload_end(fp_worker *w, slot *s, fp_reason reason, const char *err)
{
    fp_result *r = &s->up->r;

    if (reason == FP_OK) {
        snprintf(r->path, sizeof(r->path), "%s", s->up->put.path);
        r->total_us += s->up->put.us; /* the task's time: download and upload */
    } else {
        r->path[0] = r->sha256[0] = '\0';
        r->bytes = 0;
        fp_reason_format(reason, 0, r->status, sizeof(r->status));
        fp_sanitize(r->error, sizeof(r->error), err, strlen(err));
    }
    fp_body_discard(&s->x->body);
    fp_wk_report(w, s, reason, r);
    s->uploading = 0;
    w->inflight--;
    w->counters.inflight = (uint64_t)w->inflight;
    fp_wk_slot_put(w, s);
}

static void upload_done_cb(void *arg, fp_s3_put *p)
{
    fp_worker *w = arg;

    upload_end(w, ((upload *)p)->owner, p->reason, p->error);
    after_done(w);
}

static void pause_cb(void *arg, int paused)
{
    fp_worker *w = arg;

    w->paused = paused;
    w->counters.paused = paused ? "store_unavailable" : w->pause.shown;
    if (paused)
        fp_hold_give_back(w);
    else
        fp_wk_schedule(w);
}

/* The download of s is done and good: leave the transfer and upload the body. */
static void upload_start(fp_worker *w, slot *s)
{
    fp_s3_put *p = &s->up->put;
    const fp_body *b = &s->x->body;
    int rc;

    fp_curl_uv_remove(w->curl, s->x->easy);
    s->active = 0; /* still counted in w->inflight, until upload_end */
    fp_hosts_end(&w->hosts, &s->item);
    s->uploading = 1;
    p->mem = b->mem;
    p->file = b->fd >= 0 ? b->tmp : NULL;
    p->len = b->bytes;
    memcpy(p->sha, s->up->r.sha256, sizeof(p->sha));
    p->ext = fp_sniff_ext(s->x->type);
    rc = fp_s3_start(w->s3, p);
    if (rc == 1)
        upload_end(w, s, FP_OK, "");
    else if (rc < 0)
        upload_end(w, s, FP_R_INTERNAL, "cannot start an upload (out of memory)");
}

/* A transfer that will not be settled goes back to the queue unspent: its body is dropped
 * and its attempt not counted. */
static void give_back_unspent(fp_worker *w, slot *s)
{
    fp_body_discard(&s->x->body);
    slot_stop(w, s);
    fp_link_give_back(w->link, s->raw, s->rawlen);
    fp_wk_slot_put(w, s);
}

/* The first store that failed paused the worker (hold.c). Storing first, no transfer
 * would have started after that one finished: those go back to the queue unspent, as
 * the tasks not started do, whether still running or finished and waiting to be settled
 * (a slow turn finishes transfers started in it: under ASan 13 of a job's 20 had finished
 * before the first store). So the tasks tried are those storing first would try. */
static void hand_back_since(fp_worker *w, uint64_t ended)
{
    slot **pp = &w->settle_head, *s;
    int i, n = 0;

    while ((s = *pp) != NULL) {
        if (s->started <= ended) {
            pp = &s->next_settle;
            continue;
        }
        *pp = s->next_settle;
        w->settling--;
        give_back_unspent(w, s);
        n++;
    }
    w->settle_tail = pp;
    for (i = 0; i < w->nslots; i++) {
        s = w->slots[i];
        if (s->active && s->started > ended) {
            give_back_unspent(w, s);
            n++;
        }
    }
    if (n)
        fp_info("gave back %d transfers started after the first store that failed", n);
}

/* A finished transfer's body is stored, and its result reported, after the transfers
 * that replace it have started: done_cb frees its place (inflight, its host's count) and
 * queues it; settle_cb runs in the loop's idle phase, which comes after the timer phase in
 * which libcurl sends the new requests. So a burst of finished transfers (the rounds of a
 * latency-bound job) delays the next requests by their starts only, not by hashing and
 * writing every body first. With S3 output (an upload keeps its slot in flight) and while
 * draining, a transfer settles at once. libcurl keeps what a handle tells of its transfer
 * until the handle's next one, so the queued handles may leave the multi handle first. */
static void settle(fp_worker *w, slot *s)
{
    static fp_result r0; /* large; the loop runs on one thread */
    fp_result *r = &r0;
    fp_reason reason;

    if (s->up)
        r = &s->up->r;                       /* kept until the upload ends */
    reason = fp_xfer_result(s->x, s->rc, r); /* reads the handle: before upload_start */
    if (reason == FP_OK && w->s3) {
        upload_start(w, s);
    } else if (s->x->store_err && fp_store_unwritable(s->x->store_err) != FP_OK) {
        uint64_t ended = s->ended;
        int was = fp_pause_on(&w->pause);
        slot_stop(w, s);
        fp_hold(w, s, reason, r); /* waits for room in the output folder (hold.c) */
        if (!was && fp_pause_on(&w->pause))
            hand_back_since(w, ended);
    } else {
        fp_wk_report(w, s, reason, r);
        fp_wk_slot_end(w, s);
    }
}

static void settle_cb(uv_idle_t *h)
{
    fp_worker *w = h->data;
    slot *s;

    uv_idle_stop(h);
    while ((s = w->settle_head) != NULL) {
        w->settle_head = s->next_settle;
        w->settling--;
        settle(w, s);
    }
    w->settle_tail = &w->settle_head;
    /* The results go before the take their freed slots send (after_done), as when they
     * were reported in the completion callback: a task that take brings and that kills
     * the worker must not take these, unreported, along (it_recovery's poison tests). */
    fp_link_finish_close(w->link);
    after_done(w);
}

static void done_cb(void *arg, CURL *easy, CURLcode rc)
{
    fp_worker *w = arg;
    slot *s = NULL;

    if (fp_rcache_done(w->robots, easy, rc))
        return;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
    s->rc = rc;
    s->ended = w->starts;
    if (w->s3 || w->draining) {
        settle(w, s);
    } else {
        slot_stop(w, s);
        s->next_settle = NULL;
        *w->settle_tail = s;
        w->settle_tail = &s->next_settle;
        w->settling++;
        uv_idle_start(&w->settle, settle_cb);
    }
    after_done(w);
}

static void after_done(fp_worker *w)
{
    if (w->draining) {
        if (w->inflight == 0 && w->settling == 0 && !w->link_closing) {
            uv_timer_stop(&w->grace);
            fp_wk_schedule(w); /* closes the link to Redis */
        }
        return;
    }
    fp_wk_schedule(w);
}

/* Starting transfers ---------------------------------------------------------------- */

static void start(fp_worker *w, slot *s)
{
    static fp_result r;

    if (fp_xfer_begin(s->x) == 0 && fp_curl_uv_add(w->curl, s->x->easy) == 0) {
        s->active = 1;
        s->started = ++w->starts;
        w->inflight++;
        w->counters.inflight = (uint64_t)w->inflight;
        return;
    }
    fp_error("cannot start a transfer for %s", s->x->shown);
    fp_xfer_result(s->x, CURLE_OUT_OF_MEMORY, &r);
    fp_wk_report(w, s, FP_R_INTERNAL, &r);
    fp_wk_slot_end(w, s);
}

static void close_all(fp_worker *w);

void fp_wk_schedule(fp_worker *w)
{
    fp_hosts_item *it;

    if (w->draining) {
        if (w->inflight == 0 && w->settling == 0 && !w->link_closing)
            close_all(w);
        return;
    }
    while (!fp_wk_paused(w) && w->inflight < w->conf->concurrency &&
           (it = fp_hosts_next(&w->hosts)) != NULL)
        start(w, (slot *)it);
    fp_wk_top_up(w);
}

/* A record that does not decode is logged by its first bytes, as it came from the
 * queue: credentials in a URL hidden, tabs shown as spaces, other control bytes as '?'. */
static void dead_letter_log(const char *err, const char *raw, size_t len)
{
    char head[97], shown[128];
    size_t i, n = len < sizeof(head) - 1 ? len : sizeof(head) - 1, from = 0;
    const char *scheme;

    memcpy(head, raw, n);
    head[n] = '\0';
    /* The URL is the field holding "://": redact from that field's start. */
    if ((scheme = strstr(head, "://")) != NULL)
        for (i = 0; head + i < scheme; i++)
            if (head[i] == '\t' || head[i] == ' ')
                from = i + 1;
    memcpy(shown, head, from);
    fp_text_url_redact(shown + from, sizeof(shown) - from, head + from);
    for (i = 0; shown[i]; i++)
        if (shown[i] == '\t')
            shown[i] = ' ';
        else if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7f)
            shown[i] = '?';
    fp_warn("dead letter: %s: %.80s%s", err, shown, len > 80 ? "..." : "");
}

static void task_cb(void *arg, const char *raw, size_t len, fp_take_verdict v, const char *why)
{
    fp_worker *w = arg;
    static fp_task t;
    char err[128];
    slot *s;

    if (fp_task_decode(&t, raw, len, err, sizeof(err)) != 0) {
        dead_letter_log(err, raw, len);
        fp_link_bury(w->link, raw, len);
        return;
    }
    if (v != FP_TAKE_RUN) {
        fp_wk_fail_judged(w, raw, len, &t, v, why);
        return;
    }
    if (w->crash_on && strstr(t.url, w->crash_on)) {
        fp_error("test hook FETCHPOOL_TEST_CRASH_URL matched %s: crashing", t.url);
        abort();
    }
    if (fp_pause_on(&w->pause)) { /* taken just before the output folder filled up */
        fp_link_give_back(w->link, raw, len);
        return;
    }
    if ((s = slot_get(w)) == NULL || slot_set_raw(s, raw, len) != 0) {
        /* Out of memory: leave the task in the processing list for the reaper. */
        fp_error("out of memory taking a task");
        if (s)
            fp_wk_slot_put(w, s);
        return;
    }
    fp_xfer_set_task(s->x, &t);
    s->held = 1;
    if (t.flags & FP_TASK_RECOVERED) {
        s->recovered = 1;
        w->recovered++;
    }
    fp_wk_gate(w, s); /* on to its host, its robots.txt, or failed here */
    fp_wk_schedule(w);
}

/* Linear in the slots; runs only after a lost Redis connection. */
static int known_cb(void *arg, const char *raw, size_t len)
{
    fp_worker *w = arg;
    int i;

    for (i = 0; i < w->nslots; i++) {
        const slot *s = w->slots[i];
        if (s->held && s->rawlen == len && memcmp(s->raw, raw, len) == 0)
            return 1;
    }
    return 0;
}

/* Drain and shutdown ---------------------------------------------------------------- */

static void close_all(fp_worker *w)
{
    fp_hosts_item *it;
    fp_rcache_item *rit;

    w->link_closing = 1;
    fp_hold_drop(w);
    /* Tasks that never started stay in the processing list; the link hands them back. */
    while ((it = fp_hosts_drop_waiting(&w->hosts)) != NULL)
        fp_wk_slot_put(w, (slot *)it);
    while ((rit = fp_rcache_drop_waiting(w->robots)) != NULL)
        fp_wk_slot_put(w, (slot *)((char *)rit - offsetof(slot, robots)));
    fp_rcache_close(w->robots);
    if (w->exit_code == FP_EXIT_ID_TAKEN)
        fp_info("drained; closing (the tasks left are the new owner's)");
    else
        fp_info("drained; handing back unfinished tasks and closing");
    fp_link_shutdown(w->link, 5000, fp_wk_link_closed_cb, w);
}

static void abort_transfers(fp_worker *w)
{
    int i;

    for (i = 0; i < w->nslots; i++) {
        slot *s = w->slots[i];
        if (s->uploading) {
            /* Its task stays in the processing list; the link hands it back. */
            fp_s3_cancel(w->s3, &s->up->put);
            fp_body_discard(&s->x->body);
            s->uploading = 0;
            w->inflight--;
            w->counters.inflight = (uint64_t)w->inflight;
            fp_wk_slot_put(w, s);
            continue;
        }
        if (!s->active)
            continue;
        fp_body_discard(&s->x->body);
        fp_wk_slot_end(w, s);
    }
}

static void grace_cb(uv_timer_t *t)
{
    fp_worker *w = t->data;

    fp_warn("grace period over with %d transfers in flight: handing them back", w->inflight);
    abort_transfers(w);
    fp_wk_schedule(w);
}

static void drain(fp_worker *w)
{
    w->draining = 1;
    fp_link_want(w->link, 0, 0, 0);
    uv_timer_start(&w->grace, grace_cb, (uint64_t)w->conf->grace_ms, 0);
    fp_wk_schedule(w);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    fp_worker *w = s->data;

    if (w->link_closing)
        return;
    if (w->draining) {
        fp_warn("second signal: handing back %d transfers now", w->inflight);
        uv_timer_stop(&w->grace);
        abort_transfers(w);
        fp_wk_schedule(w);
        return;
    }
    fp_info("%s: draining (%d transfers in flight, up to %.1f s)", strsignal(signum), w->inflight,
            (double)w->conf->grace_ms / 1000.0);
    drain(w);
}

/* Another worker took over our id (link.h; the link logged it): drain as on SIGTERM, but
 * leave the tasks to it and exit non-zero. */
static void lost_cb(void *arg)
{
    fp_worker *w = arg;

    w->exit_code = FP_EXIT_ID_TAKEN;
    if (!w->draining && !w->link_closing)
        drain(w);
}

/* Connections kept for reuse unless --idle-conns says: enough that a list coming back to
 * one of a few thousand hosts finds its connection again (the bench's many-hosts scenario
 * made 4,000 connections instead of 20,000), at least libcurl's own 4 per transfer. */
#define IDLE_CONNS_AUTO 4096

/* Each transfer (2, with the resolver's), kept connection, spilled body and shard folder
 * takes a descriptor: the soft limit is raised to the hard one, with a warning if that is
 * too low. Returns --idle-conns, or IDLE_CONNS_AUTO as far as the limit leaves room
 * beside the transfers and 512 for the shard folders, Redis and the rest. */
static int conns_kept(const fp_conf *conf)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conf->concurrency * 2 + 512, room;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = rl.rlim_max = 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want + (rlim_t)conf->idle_conns)
        fp_warn("open files limited to %llu (ulimit -n); --concurrency %d --idle-conns %d: %llu",
                (unsigned long long)rl.rlim_cur, conf->concurrency, conf->idle_conns,
                (unsigned long long)(want + (rlim_t)conf->idle_conns));
    if (conf->idle_conns > 0)
        return conf->idle_conns;
    room = rl.rlim_cur > want ? rl.rlim_cur - want : 0;
    room = room < IDLE_CONNS_AUTO ? room : IDLE_CONNS_AUTO;
    return room > (rlim_t)conf->concurrency * 4 ? (int)room : conf->concurrency * 4;
}

int fp_worker_run(const fp_conf *conf)
{
    fp_worker w;
    int rc, i, idle;

    memset(&w, 0, sizeof(w));
    w.conf = conf;
    w.loop = uv_default_loop();
    w.crash_on = getenv("FETCHPOOL_TEST_CRASH_URL");
    srandom((unsigned)uv_hrtime() ^ (unsigned)uv_os_getpid());
    idle = conns_kept(conf);
    /* With S3 output the local store only spools bodies too big for memory. */
    rc = fp_store_open(&w.store, conf->s3.on ? conf->spool : conf->output, conf->id, conf->fsync,
                       conf->timeout_ms / 1000 * 2 + 600);
    if (rc != 0) {
        fp_error("cannot use %s folder %s: %s", conf->s3.on ? "spool" : "output",
                 conf->s3.on ? conf->spool : conf->output, strerror(-rc));
        fp_store_close(&w.store);
        return 2;
    }
    fp_hosts_init(&w.hosts, conf->host_conns);
    w.curl = fp_curl_uv_new(w.loop, idle, done_cb, &w);
    if (w.curl == NULL) {
        fp_error("cannot set up libcurl");
        fp_store_close(&w.store);
        return 2;
    }
    if (conf->s3.on && (w.s3 = fp_s3_new(w.loop, &conf->s3, conf->connect_timeout_ms,
                                         conf->timeout_ms, conf->store_wait_ms, conf->ca_bundle,
                                         conf->resolve, upload_done_cb, pause_cb, &w)) == NULL) {
        fp_error("cannot set up the object store's libcurl");
        fp_curl_uv_close(w.curl, NULL, NULL);
        uv_run(w.loop, UV_RUN_DEFAULT);
        fp_store_close(&w.store);
        return 2;
    }
    w.link =
        fp_link_new(w.loop, conf, &w.counters, task_cb, known_cb, fp_wk_cancelled_cb, lost_cb, &w);
    if (w.link == NULL) {
        if (w.s3)
            fp_s3_close(w.s3, NULL, NULL);
        fp_curl_uv_close(w.curl, NULL, NULL);
        uv_run(w.loop, UV_RUN_DEFAULT);
        fp_store_close(&w.store);
        return 2;
    }
    if (fp_wk_gate_init(&w) != 0) {
        fp_error("out of memory");
        exit(2);
    }
    uv_signal_init(w.loop, &w.sigterm);
    uv_signal_init(w.loop, &w.sigint);
    uv_timer_init(w.loop, &w.grace);
    uv_idle_init(w.loop, &w.settle);
    w.settle_tail = &w.settle_head;
    /* Test hook: probe a full output folder more often than every 2 s. */
    fp_pause_init(&w.pause, w.loop, conf->store_wait_ms,
                  getenv("FETCHPOOL_TEST_PROBE_MS") ? atol(getenv("FETCHPOOL_TEST_PROBE_MS")) : 0,
                  &fp_hold_ops, &w);
    w.sigterm.data = w.sigint.data = w.grace.data = w.settle.data = &w;
    uv_signal_start(&w.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&w.sigint, signal_cb, SIGINT);
    fp_info("worker %s: redis %s:%d, output %s, concurrency %d, %d per host, %d idle%s", conf->id,
            conf->redis.host, conf->redis.port, conf->output, conf->concurrency, conf->host_conns,
            idle, conf->allow_private ? ", private addresses allowed" : "");
    fp_wk_top_up(&w);

    uv_run(w.loop, UV_RUN_DEFAULT);

    for (i = 0; i < w.nslots; i++) {
        fp_xfer_free(w.slots[i]->x);
        free(w.slots[i]->up);
        free(w.slots[i]->raw);
        free(w.slots[i]);
    }
    free(w.slots);
    fp_rcache_free(w.robots);
    fp_hosts_free(&w.hosts);
    fp_store_close(&w.store);
    if (uv_loop_close(w.loop) != 0)
        fp_warn("loop closed with handles still open");
    fp_info("worker %s stopped", conf->id);
    return w.exit_code;
}
