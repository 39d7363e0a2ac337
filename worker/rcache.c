/* rcache.c - robots.txt per origin, shared by the cluster through Redis (see rcache.h).
 * An entry goes NEW -> ASKING (the get script) -> READY (the key was there), FETCH (we
 * hold the lock: our easy handle runs, then the put script) or WAIT (another worker
 * fetches, or Redis was not reachable: asked again on the next tick). */
#include "rcache.h"

#include <ctype.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_log.h"
#include "fp_polite.h"
#include "fp_record.h"
#include "fp_scripts.h"
#include "hosts.h"
#include "rfetch.h"
#include "robots.h"
#include "rtable.h"

#define POLL_MS      200
#define ORIGIN_MAX   300
#define FETCH_MAX_MS 30000L /* rfetch.c's bound on a fetch */
#define SWEEP_S      60
#define RELEARN_S    5  /* a learn call not confirmed is sent again after this */
#define RELEARN_OK_S 60 /* and a confirmed one, in case Redis lost it */

/* KEYS: fp:robots:<origin>, its lock. ARGV: worker id, lock expiry (ms).
 * Returns {1, value}, {2} (the caller holds the lock now: fetch) or {3} (wait). */
static const char get_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then return {1, v} end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return {2} end\n"
    "return {3}\n";
/* KEYS: as above. ARGV: value, expiry (s), worker id (the lock is dropped if it is ours),
 * then as learn_script's. The host's keys are advice: a damaged one fails nothing. */
static const char put_script[] = FP_LUA_CRAWL "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
                                              "if redis.call('GET', KEYS[2]) == ARGV[3] then\n"
                                              "  redis.call('DEL', KEYS[2])\n"
                                              "end\n"
                                              "pcall(fp_crawl_learnt, ARGV[4], tonumber(ARGV[5]), "
                                              "tonumber(ARGV[6]))\n"
                                              "return 1\n";
/* ARGV: host, Crawl-delay (ms, 0 none), until (unix s): fp:crawl:<host> (fp_polite.h). */
static const char learn_script[] =
    FP_LUA_CRAWL "pcall(fp_crawl_learnt, ARGV[1], tonumber(ARGV[2]), "
                 "tonumber(ARGV[3]))\n"
                 "return 1\n";

enum { E_NEW, E_ASKING, E_WAIT, E_FETCH, E_READY };

typedef struct entry {
    fp_rtable_node node; /* first: an entry is its node */
    fp_rcache *c;
    int state, flushing;
    time_t expires, relearn; /* when to write fp:crawl:<host> again (send_learning) */
    fp_robots *rules;        /* compacted (no text of the body kept), or NULL */
    size_t rules_bytes;
    char note[200]; /* why everything is disallowed, for the results */
    fp_rcache_item *wait_head, *wait_tail;
    fp_rfetch *f;
    char origin[]; /* scheme://host[:port] */
} entry;

struct fp_rcache {
    uv_loop_t *loop;
    const fp_conf *conf;
    fp_curl_uv *curl;
    fp_link *link;
    fp_rcache_cb cb;
    void *arg;
    fp_rtable table;
    time_t next_sweep;
    fp_rfetch *fetches;
    int waiting, nwait_entries, closed;
    uv_timer_t tick;
    char token[64];
    char why[512];
};

void fp_rcache_token(const char *ua, char *out, size_t outlen)
{
    size_t n = 0;

    while (ua[n] && n + 1 < outlen &&
           (isalnum((unsigned char)ua[n]) || ua[n] == '_' || ua[n] == '-')) {
        out[n] = (char)tolower((unsigned char)ua[n]);
        n++;
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "fetchpool");
}

static void tick_cb(uv_timer_t *t);

/* An entry is in use while a Redis call or a fetch holds it, or tasks wait on it. */
static int entry_idle(const fp_rtable_node *n, void *arg)
{
    const entry *e = (const entry *)n;

    (void)arg;
    if ((e->state != E_READY && e->state != E_NEW) || e->wait_head || e->flushing)
        return FP_RTABLE_BUSY;
    return e->state == E_READY && time(NULL) >= e->expires ? FP_RTABLE_EXPIRED : FP_RTABLE_IDLE;
}

static void entry_drop(fp_rtable_node *n, void *arg)
{
    entry *e = (entry *)n;

    (void)arg;
    free(e->rules);
    free(e);
}

static size_t entry_bytes(const entry *e)
{
    return sizeof(*e) + strlen(e->origin) + 1 + e->rules_bytes;
}

fp_rcache *fp_rcache_new(uv_loop_t *loop, const fp_conf *conf, fp_curl_uv *curl, fp_link *link,
                         fp_rcache_cb cb, void *arg)
{
    fp_rcache *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (fp_rtable_init(&c->table, RCACHE_MAX_ENTRIES, RCACHE_MAX_BYTES, entry_idle, entry_drop,
                       c) != 0) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->conf = conf;
    c->curl = curl;
    c->link = link;
    c->cb = cb;
    c->arg = arg;
    fp_rcache_token(conf->user_agent, c->token, sizeof(c->token));
    uv_timer_init(loop, &c->tick);
    c->tick.data = c; /* the multi-uv trap: without it the tick would do nothing */
    return c;
}

/* The origin and the path (query included) of url, through libcurl's parser. 0 or -1. */
static int split(const char *url, char *origin, char *path, size_t pathlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *p = NULL, *q = NULL, *h;
    int rc = -1;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &p, 0);
    curl_url_get(u, CURLUPART_QUERY, &q, 0);
    for (h = host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    if ((size_t)snprintf(origin, ORIGIN_MAX, "%s://%s%s%s", scheme, host, port ? ":" : "",
                         port ? port : "") >= ORIGIN_MAX)
        goto out;
    snprintf(path, pathlen, "%s%s%s", p && p[0] ? p : "/", q ? "?" : "", q ? q : "");
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(p);
    curl_free(q);
    curl_url_cleanup(u);
    return rc;
}

static entry *lookup(fp_rcache *c, const char *origin)
{
    entry *e = (entry *)fp_rtable_get(&c->table, origin);
    size_t n = strlen(origin);

    if (e)
        return e;
    if ((e = calloc(1, sizeof(*e) + n + 1)) == NULL)
        return NULL;
    memcpy(e->origin, origin, n + 1);
    e->c = c;
    e->node.key = e->origin;
    fp_rtable_add(&c->table, &e->node, entry_bytes(e));
    return e;
}

/* 1 allowed, 0 not (c->why says why). */
static int verdict(fp_rcache *c, const entry *e, const char *path)
{
    if (e->rules == NULL || e->rules->kind == FP_ROBOTS_ALLOW_ALL)
        return 1;
    if (e->rules->kind == FP_ROBOTS_DISALLOW_ALL) {
        snprintf(c->why, sizeof(c->why), "%s", e->note);
        return 0;
    }
    if (fp_robots_allowed(e->rules, path))
        return 1;
    snprintf(c->why, sizeof(c->why), "disallowed for %s by %s/robots.txt", c->token, e->origin);
    return 0;
}

/* A copy of r that keeps only its patterns, in one allocation. NULL if out of memory. */
static fp_robots *compact(const fp_robots *r, size_t *bytes)
{
    size_t head = offsetof(fp_robots, rule) + r->nrules * sizeof(fp_robots_rule), tl = 0, i;
    fp_robots *o;
    char *t;

    for (i = 0; i < r->nrules; i++)
        tl += r->rule[i].len;
    *bytes = 0;
    if ((o = malloc(head + tl + 1)) == NULL)
        return NULL;
    *bytes = head + tl + 1;
    memcpy(o, r, head);
    t = (char *)o + head;
    for (tl = 0, i = 0; i < r->nrules; i++) {
        memcpy(t + tl, r->text + r->rule[i].off, r->rule[i].len);
        o->rule[i].off = (uint32_t)tl;
        tl += r->rule[i].len;
    }
    o->text = t;
    return o;
}

/* The rules from a value of fp:robots:<origin>: "<code> <expiry> <note>\n<body>". */
static void load(entry *e, const char *v, size_t len)
{
    static fp_robots tmp; /* large; the loop runs on one thread */
    const char *nl = memchr(v, '\n', len), *body;
    char head[256], note[160] = "", when[32];
    long code = 0;
    long long expires = 0;
    size_t hl = nl ? (size_t)(nl - v) : len, blen;
    struct tm tm;
    time_t t;

    if (hl >= sizeof(head))
        hl = sizeof(head) - 1;
    memcpy(head, v, hl);
    head[hl] = '\0';
    if (sscanf(head, "%ld %lld %159[^\n]", &code, &expires, note) < 2)
        code = 0, expires = (long long)time(NULL) + RCACHE_FAIL_TTL_S;
    body = nl ? nl + 1 : v + len;
    blen = (size_t)(v + len - body);
    free(e->rules);
    if (code >= 200 && code < 300)
        fp_robots_parse(&tmp, body, blen, e->c->token);
    else if (code >= 300 && code < 400) /* more than 5 redirects: as if there were none */
        fp_robots_for_status(&tmp, 404);
    else
        fp_robots_for_status(&tmp, code);
    e->rules = compact(&tmp, &e->rules_bytes);
    e->expires = (time_t)expires;
    e->state = E_READY;
    t = e->expires;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
    if (code == 0)
        snprintf(e->note, sizeof(e->note),
                 "%.100s/robots.txt could not be had (%s): all disallowed until %s", e->origin,
                 note[0] ? note : "no answer", when);
    else
        snprintf(e->note, sizeof(e->note),
                 "%.100s/robots.txt answered HTTP %ld: all disallowed until %s", e->origin, code,
                 when);
    if (e->rules == NULL) { /* out of memory: nothing is known, nothing is allowed */
        snprintf(e->note, sizeof(e->note), "out of memory keeping %.100s/robots.txt", e->origin);
        e->expires = time(NULL) + 1;
    }
    fp_rtable_resize(&e->c->table, &e->node, entry_bytes(e));
}

/* Hands every waiting item of e its verdict. A callback may start tasks of other origins,
 * whose entries may evict idle ones: e counts as in use until it is done. */
static void flush(entry *e)
{
    fp_rcache *c = e->c;
    fp_rcache_item *it;
    char path[FP_URL_MAX + 1], origin[ORIGIN_MAX];
    int ok;

    e->flushing = 1;
    while ((it = e->wait_head) != NULL && !c->closed) {
        e->wait_head = it->next;
        c->waiting--;
        if (e->rules == NULL) {
            c->cb(c->arg, it, 0, e->note);
            continue;
        }
        ok = split(it->url, origin, path, sizeof(path)) == 0 ? verdict(c, e, path) : 1;
        c->cb(c->arg, it, ok, c->why);
    }
    if (e->wait_head == NULL)
        e->wait_tail = NULL;
    e->flushing = 0;
}

static void set_wait(entry *e)
{
    fp_rcache *c = e->c;

    e->state = E_WAIT;
    if (c->nwait_entries++ == 0 && !c->closed)
        uv_timer_start(&c->tick, tick_cb, POLL_MS, POLL_MS);
}

static void keys(const entry *e, char *key, char *lock)
{
    snprintf(key, ORIGIN_MAX + 16, "fp:robots:%s", e->origin);
    snprintf(lock, ORIGIN_MAX + 24, "fp:robots:%s:lock", e->origin);
}

static int fetch_start(entry *e);

/* The host's Crawl-delay as the take script reads it (fp_polite.h): the host as the
 * cluster-wide limits name it (hosts.h), the delay in ms (0: none), until when. */
static void crawl_args(fp_call *call, const entry *e)
{
    static char h[ORIGIN_MAX];                       /* the call points at it until it is sent */
    double d = e->rules ? e->rules->crawl_delay : 0; /* also a group with no rules but it */

    fp_hosts_name(e->origin, h, sizeof(h));
    fp_call_arg(call, h, strlen(h));
    fp_call_arg_u64(call, d > 0 ? (uint64_t)(d * 1000 + 0.999) : 0);
    fp_call_arg_u64(call, (uint64_t)e->expires);
}

/* A put or learn call in flight; its reply pushes the origin's entry's next learn call
 * out to RELEARN_OK_S if the entry is still there (it may be evicted meanwhile, so the
 * reply names it by origin). */
typedef struct learning {
    fp_rcache *c;
    char origin[];
} learning;

static void learnt_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    learning *l = priv;
    redisReply *r = reply;
    entry *e;

    (void)ac;
    if (!l->c->closed && r && r->type == REDIS_REPLY_INTEGER &&
        (e = (entry *)fp_rtable_get(&l->c->table, l->origin)) != NULL)
        e->relearn = time(NULL) + RELEARN_OK_S;
    free(l);
}

/* Sends call (put or learn). A robots task answered from memory sends learn again
 * RELEARN_S after a call Redis did not confirm, RELEARN_OK_S after one it did: a write
 * lost with the link, or by a Redis restart, would otherwise leave the take script
 * knowing no delay (one request per origin per 10 s) until the rules expire. */
static void send_learning(entry *e, const fp_call *call)
{
    size_t n = strlen(e->origin);
    learning *l = malloc(sizeof(*l) + n + 1);

    e->relearn = time(NULL) + RELEARN_S;
    if (l) {
        l->c = e->c;
        memcpy(l->origin, e->origin, n + 1);
    }
    if (fp_link_call(e->c->link, call, l ? learnt_cb : NULL, l) != 0)
        free(l); /* not sent: tried again on a later task */
}

static void learn(entry *e)
{
    static fp_call call;

    fp_call_begin(&call, learn_script, 0);
    crawl_args(&call, e);
    send_learning(e, &call);
}

static void get_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    entry *e = priv;
    redisReply *r = reply;

    (void)ac;
    if (e->c->closed)
        return;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        long long k = r->element[0]->integer;
        if (k == 1 && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
            load(e, r->element[1]->str, r->element[1]->len);
            learn(e);
            flush(e);
            return;
        }
        if (k == 2 && fetch_start(e) == 0)
            return;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        fp_warn("robots.txt of %s: Redis said %.200s", e->origin, r->str);
    }
    set_wait(e);
}

static void ask(entry *e)
{
    static fp_call call;
    char key[ORIGIN_MAX + 16], lock[ORIGIN_MAX + 24];
    long lock_ms = e->c->conf->connect_timeout_ms + FETCH_MAX_MS + 5000;

    keys(e, key, lock);
    fp_call_begin(&call, get_script, 2);
    fp_call_arg(&call, key, strlen(key));
    fp_call_arg(&call, lock, strlen(lock));
    fp_call_arg(&call, e->c->conf->id, strlen(e->c->conf->id));
    fp_call_arg_u64(&call, (uint64_t)lock_ms);
    e->state = E_ASKING;
    if (fp_link_call(e->c->link, &call, get_reply_cb, e) != 0)
        set_wait(e);
}

static void tick_cb(uv_timer_t *t)
{
    fp_rcache *c = t->data;
    entry *e;

    uv_timer_stop(&c->tick);
    c->nwait_entries = 0;
    for (e = (entry *)c->table.oldest; e; e = (entry *)e->node.newer)
        if (e->state == E_WAIT)
            ask(e);
}

int fp_rcache_check(fp_rcache *c, fp_rcache_item *it, const char *url, const char **why)
{
    char origin[ORIGIN_MAX], path[FP_URL_MAX + 1];
    entry *e;

    *why = c->why;
    if (time(NULL) >= c->next_sweep) {
        fp_rtable_sweep(&c->table);
        c->next_sweep = time(NULL) + SWEEP_S;
    }
    if (split(url, origin, path, sizeof(path)) != 0)
        return 1; /* the transfer will say what is wrong with the URL */
    if ((e = lookup(c, origin)) == NULL) {
        snprintf(c->why, sizeof(c->why), "out of memory looking up robots.txt");
        return 0;
    }
    if (e->state == E_READY && time(NULL) >= e->expires)
        e->state = E_NEW;
    if (e->state == E_READY && time(NULL) >= e->relearn)
        learn(e);
    if (e->state == E_READY)
        return verdict(c, e, path);
    it->url = url;
    it->next = NULL;
    if (e->wait_tail)
        e->wait_tail->next = it;
    else
        e->wait_head = it;
    e->wait_tail = it;
    c->waiting++;
    if (e->state == E_NEW)
        ask(e);
    return -1;
}

/* Fetching ---------------------------------------------------------------------------- */

static void fetch_free(fp_rfetch *f)
{
    entry *e = f->owner;
    fp_rfetch **pp;

    for (pp = &e->c->fetches; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    e->f = NULL;
    fp_rfetch_free(f);
}

static int fetch_start(entry *e)
{
    fp_rcache *c = e->c;
    fp_rfetch *f = fp_rfetch_start(c->curl, c->conf, e->origin, e);

    if (f == NULL)
        return -1;
    f->next = c->fetches;
    c->fetches = f;
    e->f = f;
    e->state = E_FETCH;
    return 0;
}

int fp_rcache_done(fp_rcache *c, CURL *easy, CURLcode rc)
{
    static fp_call call;
    static char value[FP_RFETCH_VALUE_MAX];
    char key[ORIGIN_MAX + 16], lock[ORIGIN_MAX + 24], ttl[24];
    fp_rfetch *f;
    entry *e;
    long ttl_s = RCACHE_TTL_S;
    size_t n;

    for (f = c->fetches; f && f->easy != easy; f = f->next)
        ;
    if (f == NULL)
        return 0;
    e = f->owner;
    n = fp_rfetch_value(f, c->curl, rc, e->origin, value, &ttl_s, RCACHE_FAIL_TTL_S);
    fetch_free(f);
    load(e, value, n);
    keys(e, key, lock);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    fp_call_begin(&call, put_script, 2);
    fp_call_arg(&call, key, strlen(key));
    fp_call_arg(&call, lock, strlen(lock));
    fp_call_arg(&call, value, n);
    fp_call_arg(&call, ttl, strlen(ttl));
    fp_call_arg(&call, c->conf->id, strlen(c->conf->id));
    crawl_args(&call, e);
    /* Not sent (Redis down): the lock expires and another worker may fetch it again;
     * this one sends learn again on its next task of the origin. */
    send_learning(e, &call);
    if (e->rules && e->rules->crawl_delay > 0)
        fp_info("robots.txt of %s asks for a Crawl-delay of %g s: its robots jobs start at "
                "most one request per %g s on that host, cluster-wide",
                e->origin, e->rules->crawl_delay, e->rules->crawl_delay);
    flush(e);
    return 1;
}

int fp_rcache_waiting(const fp_rcache *c)
{
    return c->waiting;
}

fp_rcache_item *fp_rcache_drop_waiting(fp_rcache *c)
{
    entry *e;
    fp_rcache_item *it;

    for (e = (entry *)c->table.oldest; e; e = (entry *)e->node.newer)
        if ((it = e->wait_head) != NULL) {
            if ((e->wait_head = it->next) == NULL)
                e->wait_tail = NULL;
            c->waiting--;
            return it;
        }
    return NULL;
}

static void tick_closed_cb(uv_handle_t *h)
{
    (void)h;
}

void fp_rcache_close(fp_rcache *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    while (c->fetches) {
        fp_curl_uv_remove(c->curl, c->fetches->easy);
        fetch_free(c->fetches);
    }
    uv_close((uv_handle_t *)&c->tick, tick_closed_cb);
}

void fp_rcache_free(fp_rcache *c)
{
    if (c == NULL)
        return;
    fp_rtable_clear(&c->table);
    free(c);
}
