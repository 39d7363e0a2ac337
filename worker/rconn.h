/* rconn.h - one async Redis connection on a libuv loop that comes back by itself.
 *
 * General plumbing, nothing of fetchpool's protocol (that is link.c). fp_rconn_open
 * connects through hiredis with redis_uv.h, with TCP keepalive on (what finds a dead idle
 * connection); a connect that neither succeeds nor fails in 5 s (a black-holed address) is
 * given up. Once connected it sends AUTH (with the ACL user if the URL names one) and
 * SELECT, and the owner's up callback runs once they are accepted (a refusal is logged
 * once and retried like a lost connection; a login not answered in the same 5 s is given
 * up too). While a reply is awaited, nothing read for the reply deadline
 * (FP_RCONN_DEADLINE_MS, plus what fp_rconn_set_deadline adds for the owner's blocking
 * commands) means the link is dead or half-open (a NAT dropped it silently, the Redis host
 * vanished, Redis hangs): the connection is dropped like a lost one. A lost connection is
 * logged once, the owner's down callback runs, and it reconnects with exponential backoff
 * (FP_REDIS_BACKOFF_*: 100 ms doubling to 2 s, as the master's connection), logging its
 * return once. Commands sent before a loss get a NULL reply from hiredis; one a dropped
 * link had already delivered may still run in Redis later.
 *
 * Lifetime: fp_rconn_init starts two libuv timers; fp_rconn_close stops reconnecting,
 * disconnects (hiredis first writes what is queued and waits for the replies, at most the
 * deadline), calls down if it was up, and calls closed(arg) once its timers are closed. The
 * fp_rconn itself is the owner's memory. */
#ifndef FP_RCONN_H
#define FP_RCONN_H

#include <hiredis/async.h>
#include <uv.h>

#include "fp_redis_url.h"

/* About two heartbeats (FP_HEARTBEAT_MS): a worker whose command connection died notices
 * and heartbeats again well within the heartbeat's expiry (FP_HEARTBEAT_TTL_MS). */
#define FP_RCONN_DEADLINE_MS 2000

typedef struct fp_rconn fp_rconn;
typedef void (*fp_rconn_cb)(fp_rconn *c, void *arg);

struct fp_rconn {
    redisAsyncContext *ac; /* NULL while down */
    int up;                /* connected; commands may be sent */
    const char *name;      /* for log lines */
    /* private */
    uv_loop_t *loop;
    const fp_redis_url *url;
    int connected;      /* TCP up; logging in while !up */
    int hello_pending;  /* AUTH/SELECT replies still to come */
    int refused;        /* this connection's login was refused */
    int refused_logged; /* ... and said so, in this outage */
    int down_logged, closing, open_timers;
    long backoff_ms, deadline_ms;
    uint64_t busy_since; /* uv_now() when replies were first seen awaited, 0 if none are */
    const char *why;     /* why the connection is being dropped, for the log */
    uv_timer_t timer;    /* backoff, or the connect timeout */
    uv_timer_t watch;    /* the reply deadline, while up */
    fp_rconn_cb up_cb, down_cb, closed_cb;
    void *arg;
};

void fp_rconn_init(fp_rconn *c, uv_loop_t *loop, const fp_redis_url *url, const char *name,
                   fp_rconn_cb up, fp_rconn_cb down, void *arg);
void fp_rconn_open(fp_rconn *c);
/* Reply deadline: FP_RCONN_DEADLINE_MS plus extra_ms (the longest the owner's commands may
 * block in Redis, as BLMOVE does). */
void fp_rconn_set_deadline(fp_rconn *c, long extra_ms);
/* Drops a live connection to reconnect with backoff (e.g. after a LOADING reply). */
void fp_rconn_drop(fp_rconn *c);
void fp_rconn_close(fp_rconn *c, fp_rconn_cb closed);

#endif
