/* s3.c - uploads to an S3-compatible store on the libuv loop (see s3.h).
 *
 * Each upload is a request record with its own easy handle and retry timer, reused from a
 * pool. A request goes HEAD -> (missing) PUT -> done; an answer worth retrying re-arms
 * its timer, and a request out of tries joins the held list while the store is down. The
 * store's state (up, down, down too long) is the module's: one probe timer for the whole
 * store, so a down store costs one request a second, not one per held upload. */
#include "s3.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curl_uv.h"
#include "fp_log.h"

#define RECENT     4096 /* digests remembered (direct-mapped), as store.c */
#define ERRBODY    1024 /* bytes of an error answer kept, for its <Code> */
#define BACKOFF_MS 100  /* first retry delay; doubles per try */

typedef enum { ST_UP, ST_DOWN, ST_EXPIRED } store_state;

typedef struct fp_s3_req {
    fp_s3 *s;
    CURL *easy;
    uv_timer_t timer; /* retry backoff */
    struct curl_slist *hdrs;
    fp_s3_put *put; /* NULL while in the pool */
    fp_s3_method m;
    int tries;
    int on_multi, held;
    int fd; /* the body's file while a PUT reads it, else -1 */
    uint64_t off;
    uint64_t t0; /* uv_hrtime at fp_s3_start */
    char key[FP_S3_KEY_MAX + 1];
    char body[ERRBODY];
    size_t bodylen;
    char errbuf[CURL_ERROR_SIZE];
    struct fp_s3_req *next;  /* in the pool or the held list */
    struct fp_s3_req *chain; /* every request made, for the close */
} req;

struct fp_s3 {
    uv_loop_t *loop;
    const fp_s3_conf *c;
    fp_curl_uv *curl;
    long connect_timeout_ms, timeout_ms, wait_ms;
    const char *ca_bundle;
    struct curl_slist *resolve;
    fp_s3_done_cb done;
    fp_s3_pause_cb pause;
    void *arg;
    req *pool, *all;
    req *held, *held_tail;
    store_state state;
    uint64_t down_since; /* uv_now, ms */
    char last_err[160];
    uv_timer_t probe;
    unsigned char (*recent)[32];
    uint64_t puts, existed, us;
    int open_handles, curl_open;
    fp_s3_closed_cb closed;
    void *closed_arg;
};

static void begin(req *r, fp_s3_method m);

/* Bodies ---------------------------------------------------------------------------- */

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    req *r = userp;
    const fp_s3_put *p = r->put;
    size_t want = size * nitems;
    ssize_t n;

    if (r->off >= p->len)
        return 0;
    if (want > p->len - r->off)
        want = (size_t)(p->len - r->off);
    if (r->fd < 0) {
        memcpy(buf, p->mem + r->off, want);
        r->off += want;
        return want;
    }
    do
        n = pread(r->fd, buf, want, (off_t)r->off);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return CURL_READFUNC_ABORT; /* a short file is as bad as a failed read */
    r->off += (uint64_t)n;
    return (size_t)n;
}

/* libcurl rewinds the body to send it again (a reused connection that was closed). */
static int seek_cb(void *userp, curl_off_t offset, int origin)
{
    req *r = userp;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->put->len)
        return CURL_SEEKFUNC_FAIL;
    r->off = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    req *r = userp;
    size_t n = size * nmemb, take = sizeof(r->body) - r->bodylen;

    if (take > n)
        take = n;
    memcpy(r->body + r->bodylen, data, take);
    r->bodylen += take;
    return n;
}

/* Requests -------------------------------------------------------------------------- */

static req *req_get(fp_s3 *s)
{
    req *r = s->pool;
    CURL *e;

    if (r) {
        s->pool = r->next;
        r->next = NULL;
        return r;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    if ((e = curl_easy_init()) == NULL) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->easy = e;
    r->fd = -1;
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r; /* the multi-uv trap: a timer without data does nothing useful */
    s->open_handles++;
    r->chain = s->all;
    s->all = r;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a store that stalls is cut, */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)FP_S3_STALL_S); /* then retried */
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* as xfer.c: keeps the CA cache on */
    if (s->ca_bundle && s->ca_bundle[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_bundle);
    if (s->resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, s->resolve);
    fp_curl_uv_attach(s->curl, e);
    return r;
}

static void close_fd(req *r)
{
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
}

static void req_put(fp_s3 *s, req *r)
{
    close_fd(r);
    r->put = NULL;
    r->next = s->pool;
    s->pool = r;
}

static void hold(fp_s3 *s, req *r)
{
    r->held = 1;
    r->next = NULL;
    if (s->held_tail)
        s->held_tail->next = r;
    else
        s->held = r;
    s->held_tail = r;
}

static req *unhold_first(fp_s3 *s)
{
    req *r = s->held;

    if (r == NULL)
        return NULL;
    s->held = r->next;
    if (s->held == NULL)
        s->held_tail = NULL;
    r->next = NULL;
    r->held = 0;
    return r;
}

static void unhold(fp_s3 *s, req *r)
{
    req **pp, *prev = NULL;

    for (pp = &s->held; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            if (s->held_tail == r)
                s->held_tail = prev;
            break;
        }
    }
    r->next = NULL;
    r->held = 0;
}

static int hexval(char ch)
{
    return ch >= 'a' ? ch - 'a' + 10 : ch - '0';
}

static unsigned char *recent_slot(fp_s3 *s, const char *sha, unsigned char md[32])
{
    int i;

    for (i = 0; i < 32; i++)
        md[i] = (unsigned char)(hexval(sha[2 * i]) << 4 | hexval(sha[2 * i + 1]));
    return s->recent[(md[0] << 4 | md[1] >> 4) & (RECENT - 1)];
}

static void finish(req *r, fp_reason reason, const char *err)
{
    fp_s3 *s = r->s;
    fp_s3_put *p = r->put;
    unsigned char md[32], *slot;

    p->reason = reason;
    p->us = (uv_hrtime() - r->t0) / 1000;
    if (reason == FP_OK) {
        fp_s3_path(s->c, r->key, p->path);
        slot = recent_slot(s, p->sha, md);
        memcpy(slot, md, 32);
        if (p->existed)
            s->existed++;
        else
            s->puts++;
        s->us += p->us;
    } else {
        p->path[0] = '\0';
        snprintf(p->error, sizeof(p->error), "%s", err);
    }
    p->req = NULL;
    req_put(s, r);
    s->done(s->arg, p);
}

/* Store state ------------------------------------------------------------------------ */

static void probe_cb(uv_timer_t *t);

static void store_up(fp_s3 *s)
{
    req *r, *list;

    if (s->state == ST_UP)
        return;
    if (s->state == ST_DOWN)
        fp_info("object store answers again after %.1f s: resuming",
                (double)(uv_now(s->loop) - s->down_since) / 1000.0);
    else
        fp_info("object store answers again");
    s->state = ST_UP;
    uv_timer_stop(&s->probe);
    s->pause(s->arg, 0);
    list = s->held;
    s->held = s->held_tail = NULL;
    while ((r = list) != NULL) {
        list = r->next;
        r->next = NULL;
        r->held = 0;
        r->tries = 0;
        begin(r, FP_S3_HEAD);
    }
}

/* Down for longer than wait_ms: every held upload fails, later ones fail fast. */
static void store_expire(fp_s3 *s)
{
    char err[FP_ERROR_MAX + 1];
    req *r;

    fp_error("object store unreachable for %.1f s (%s): failing uploads as store_unavailable",
             (double)(uv_now(s->loop) - s->down_since) / 1000.0, s->last_err);
    s->state = ST_EXPIRED;
    uv_timer_stop(&s->probe);
    snprintf(err, sizeof(err), "%s; gave up waiting for the store", s->last_err);
    s->pause(s->arg, 0);
    while ((r = unhold_first(s)) != NULL)
        finish(r, FP_R_STORE_UNAVAILABLE, err);
}

/* r ran out of tries against a store that does not answer. */
static void store_down(req *r)
{
    fp_s3 *s = r->s;
    char err[FP_ERROR_MAX + 1];

    if (s->state == ST_EXPIRED) {
        snprintf(err, sizeof(err), "%s; gave up waiting for the store", s->last_err);
        finish(r, FP_R_STORE_UNAVAILABLE, err);
        return;
    }
    if (s->state == ST_UP) {
        s->state = ST_DOWN;
        s->down_since = uv_now(s->loop);
        fp_warn("object store unreachable (%s): pausing, probing every %d ms for up to %.0f s",
                s->last_err, FP_S3_PROBE_MS, (double)s->wait_ms / 1000.0);
        s->pause(s->arg, 1);
    }
    hold(s, r);
    if (uv_now(s->loop) - s->down_since >= (uint64_t)s->wait_ms)
        store_expire(s);
    else if (!uv_is_active((uv_handle_t *)&s->probe))
        uv_timer_start(&s->probe, probe_cb, FP_S3_PROBE_MS, 0);
}

static void probe_cb(uv_timer_t *t)
{
    fp_s3 *s = t->data;
    req *r;

    if (s->state != ST_DOWN)
        return;
    if (uv_now(s->loop) - s->down_since >= (uint64_t)s->wait_ms) {
        store_expire(s);
        return;
    }
    /* Ticks until the store answers, whatever becomes of this probe (a hang, a local
     * failure): the wait ends on time and no held upload is forgotten. */
    uv_timer_start(&s->probe, probe_cb, FP_S3_PROBE_MS, 0);
    if ((r = unhold_first(s)) != NULL) {
        r->tries = FP_S3_TRIES - 1; /* a probe is one request, not a round of retries */
        begin(r, FP_S3_HEAD);
    }
}

/* One request -------------------------------------------------------------------------- */

static void retry_cb(uv_timer_t *t)
{
    req *r = t->data;
    begin(r, r->m);
}

static void begin(req *r, fp_s3_method m)
{
    fp_s3 *s = r->s;
    fp_s3_put *p = r->put;

    r->m = m;
    r->bodylen = 0;
    r->off = 0;
    r->errbuf[0] = '\0';
    close_fd(r);
    if (m == FP_S3_PUT && p->file && (r->fd = open(p->file, O_RDONLY | O_CLOEXEC)) < 0) {
        char err[FP_ERROR_MAX + 1];
        snprintf(err, sizeof(err), "reading the body to upload: %s", strerror(errno));
        finish(r, FP_R_IO, err);
        return;
    }
    if (fp_s3_setup(r->easy, s->c, m, r->key, p->sha, (curl_off_t)p->len,
                    fp_s3_content_type(p->ext), &r->hdrs) != 0 ||
        fp_curl_uv_add(s->curl, r->easy) != 0) {
        finish(r, FP_R_INTERNAL, "cannot start an upload");
        return;
    }
    r->on_multi = 1;
}

static void curl_done_cb(void *arg, CURL *easy, CURLcode rc)
{
    fp_s3 *s = arg;
    req *r = NULL;
    long code = 0;
    char what[64], err[FP_ERROR_MAX + 1];
    const char *m;
    fp_s3_answer a;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    fp_curl_uv_remove(s->curl, easy);
    r->on_multi = 0;
    close_fd(r);
    a = fp_s3_judge(r->m, rc, code);
    m = r->m == FP_S3_PUT ? "PUT" : "HEAD";
    if (rc == CURLE_OK) {
        fp_s3_error_code(r->body, r->bodylen, what, sizeof(what));
        snprintf(err, sizeof(err), "object store %s: HTTP %ld%s%s", m, code, what[0] ? " " : "",
                 what);
    } else {
        snprintf(err, sizeof(err), "object store %s: %.200s", m,
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    }
    switch (a) {
    case FP_S3_DONE:
        r->put->existed = r->m == FP_S3_HEAD;
        store_up(s);
        finish(r, FP_OK, "");
        return;
    case FP_S3_MISSING:
        r->tries = 0;
        begin(r, FP_S3_PUT);
        return;
    case FP_S3_DENIED:
        store_up(s); /* it answered */
        finish(r, FP_R_STORE_DENIED, err);
        return;
    case FP_S3_LOCAL: finish(r, rc == CURLE_READ_ERROR ? FP_R_IO : FP_R_INTERNAL, err); return;
    case FP_S3_RETRY: break;
    }
    snprintf(s->last_err, sizeof(s->last_err), "%.150s", err);
    if (++r->tries < FP_S3_TRIES) {
        uint64_t delay = (uint64_t)BACKOFF_MS << (r->tries - 1);
        delay += (uint64_t)random() % (delay / 2 + 1);
        fp_debug("%s: retrying in %" PRIu64 " ms", err, delay);
        uv_timer_start(&r->timer, retry_cb, delay, 0);
        return;
    }
    store_down(r);
}

/* The module ------------------------------------------------------------------------- */

fp_s3 *fp_s3_new(uv_loop_t *loop, const fp_s3_conf *c, long connect_timeout_ms, long timeout_ms,
                 long wait_ms, const char *ca_bundle, struct curl_slist *resolve,
                 fp_s3_done_cb done, fp_s3_pause_cb pause, void *arg)
{
    fp_s3 *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->recent = calloc(RECENT, 32)) == NULL) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->c = c;
    s->connect_timeout_ms = connect_timeout_ms;
    s->timeout_ms = timeout_ms;
    s->wait_ms = wait_ms;
    s->ca_bundle = ca_bundle;
    s->resolve = resolve;
    s->done = done;
    s->pause = pause;
    s->arg = arg;
    if ((s->curl = fp_curl_uv_new(loop, 64, curl_done_cb, s)) == NULL) {
        free(s->recent);
        free(s);
        return NULL;
    }
    s->curl_open = 1;
    uv_timer_init(loop, &s->probe);
    s->probe.data = s;
    s->open_handles = 1;
    return s;
}

int fp_s3_start(fp_s3 *s, fp_s3_put *p)
{
    unsigned char md[32], *slot;
    req *r;

    p->reason = FP_OK;
    p->existed = 0;
    p->error[0] = p->path[0] = '\0';
    p->us = 0;
    p->req = NULL;
    slot = recent_slot(s, p->sha, md);
    if (memcmp(slot, md, 32) == 0) {
        char key[FP_S3_KEY_MAX + 1];
        fp_s3_key(s->c, p->sha, p->ext, key);
        fp_s3_path(s->c, key, p->path);
        p->existed = 1;
        s->existed++;
        return 1;
    }
    if ((r = req_get(s)) == NULL)
        return -1;
    r->put = p;
    p->req = r;
    r->t0 = uv_hrtime();
    r->tries = 0;
    fp_s3_key(s->c, p->sha, p->ext, r->key);
    if (s->state == ST_DOWN) {
        hold(s, r); /* the probe speaks for every upload while the store is down */
        return 0;
    }
    r->m = FP_S3_HEAD;
    if (fp_s3_setup(r->easy, s->c, FP_S3_HEAD, r->key, p->sha, 0, "", &r->hdrs) != 0 ||
        fp_curl_uv_add(s->curl, r->easy) != 0) {
        p->req = NULL;
        req_put(s, r);
        return -1;
    }
    r->bodylen = 0;
    r->errbuf[0] = '\0';
    r->on_multi = 1;
    return 0;
}

void fp_s3_cancel(fp_s3 *s, fp_s3_put *p)
{
    req *r = p->req;

    if (r == NULL)
        return;
    if (r->on_multi)
        fp_curl_uv_remove(s->curl, r->easy);
    r->on_multi = 0;
    uv_timer_stop(&r->timer);
    if (r->held)
        unhold(s, r);
    p->req = NULL;
    req_put(s, r);
}

void fp_s3_stats(const fp_s3 *s, uint64_t *puts, uint64_t *existed, uint64_t *us)
{
    *puts = s->puts;
    *existed = s->existed;
    *us = s->us;
}

static void maybe_free(fp_s3 *s)
{
    req *r, *next;
    fp_s3_closed_cb cb;
    void *arg;

    if (s->open_handles > 0 || s->curl_open)
        return;
    for (r = s->all; r; r = next) {
        next = r->chain;
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->hdrs);
        close_fd(r);
        free(r);
    }
    cb = s->closed;
    arg = s->closed_arg;
    free(s->recent);
    free(s);
    if (cb)
        cb(arg);
}

static void req_timer_closed_cb(uv_handle_t *h)
{
    req *r = h->data;
    fp_s3 *s = r->s;

    s->open_handles--;
    maybe_free(s);
}

static void probe_closed_cb(uv_handle_t *h)
{
    fp_s3 *s = h->data;

    s->open_handles--;
    maybe_free(s);
}

static void curl_closed_cb(void *arg)
{
    fp_s3 *s = arg;

    s->curl_open = 0;
    maybe_free(s);
}

void fp_s3_close(fp_s3 *s, fp_s3_closed_cb closed, void *arg)
{
    req *r;

    s->closed = closed;
    s->closed_arg = arg;
    for (r = s->all; r; r = r->chain)
        uv_close((uv_handle_t *)&r->timer, req_timer_closed_cb);
    uv_close((uv_handle_t *)&s->probe, probe_closed_cb);
    fp_curl_uv_close(s->curl, curl_closed_cb, s);
}
