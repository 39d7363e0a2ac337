/* rcache.h - robots.txt for the worker: fetched once per origin for the whole cluster,
 * kept here and in Redis, asked before a task of a job with FP_TASK_ROBOTS runs.
 *
 * An origin (scheme://host[:port], lower-case) has one key fp:robots:<origin> in Redis
 * holding "<http code> <expiry, unix s>\n<body>" (the body bounded by FP_ROBOTS_MAX, empty
 * unless it was 2xx text), and while one worker fetches it, fp:robots:<origin>:lock (SET
 * NX with an expiry). Other workers ask again every POLL_MS until the key is there, or
 * the lock expired (its fetcher died) and one of them takes it. The fetch is an easy
 * handle on the worker's curl multi (curl_uv.h), never blocking the loop; the guard and
 * options are the transfers' (no proxy, the same CA file, --resolve). Outcomes (RFC 9309
 * 2.3.1): 2xx: the rules for the agent token; 4xx or more than 5 redirects: everything
 * allowed; 5xx, no answer, an address the guard refuses: everything disallowed, kept
 * for RCACHE_FAIL_TTL_S only; a body with a NUL byte: ignored (allowed). Kept for
 * RCACHE_TTL_S otherwise (the RFC's 24 hours). Crawl-delay goes to fp:crawl:<host> for the
 * take script, which caps the host's rate for robots jobs by it (fp_polite.h).
 *
 * A waiting task is an fp_rcache_item embedded in the caller's record; it holds no
 * transfer slot. The cache owns its entries, easy handles and timer. Entries are bounded
 * (RCACHE_MAX_ENTRIES, RCACHE_MAX_BYTES; least recently used go first) and expired ones
 * are dropped every minute; one with a fetch or Redis call in flight or tasks waiting on
 * it is never dropped. */
#ifndef FP_RCACHE_H
#define FP_RCACHE_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

#include "conf.h"
#include "curl_uv.h"
#include "link.h"

#define RCACHE_TTL_S      86400
#define RCACHE_FAIL_TTL_S 600
/* The entries kept here (rtable.h): an origin evicted is asked of Redis again (one call,
 * not a fetch), so the bound only has to hold the origins a worker's tasks are spread
 * over at a time; it keeps a broad crawl's worker (a million origins) at a few MiB. The
 * bytes bound is for big rule sets (a 500 KiB robots.txt keeps up to 1,024 rules). */
#define RCACHE_MAX_ENTRIES 8192
#define RCACHE_MAX_BYTES   (16u << 20)

typedef struct fp_rcache fp_rcache;

typedef struct fp_rcache_item {
    struct fp_rcache_item *next;
    const char *url; /* the caller's, kept while it waits */
} fp_rcache_item;

/* The verdict for a waiting item: allowed 1 or 0; why says why not (for the result). */
typedef void (*fp_rcache_cb)(void *arg, fp_rcache_item *it, int allowed, const char *why);

fp_rcache *fp_rcache_new(uv_loop_t *loop, const fp_conf *conf, fp_curl_uv *curl, fp_link *link,
                         fp_rcache_cb cb, void *arg);
/* 1: url may be fetched; 0: it may not (why is set, valid until the next call); -1: it
 * waits for the origin's rules and cb tells later (never from inside this call). */
int fp_rcache_check(fp_rcache *c, fp_rcache_item *it, const char *url, const char **why);
/* A transfer finished: 1 if it was one of the cache's (then handled), 0 if not. */
int fp_rcache_done(fp_rcache *c, CURL *easy, CURLcode rc);
/* Items waiting for rules, all origins. */
int fp_rcache_waiting(const fp_rcache *c);
/* Shutdown: removes and returns a waiting item, NULL when none is left. */
fp_rcache_item *fp_rcache_drop_waiting(fp_rcache *c);
/* Stops every fetch (removing its easy handle from the multi) and the timer; no callback
 * runs after this. Call before fp_curl_uv_close; free after the loop has ended. */
void fp_rcache_close(fp_rcache *c);
void fp_rcache_free(fp_rcache *c);
/* The robots.txt product token of a user agent: its first word up to '/', lower-case
 * ("fetchpool/1.2 (...)" -> "fetchpool"); "fetchpool" if it has none. */
void fp_rcache_token(const char *user_agent, char *out, size_t outlen);

#endif
