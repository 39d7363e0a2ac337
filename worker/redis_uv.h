/* redis_uv.h - hiredis async <-> libuv adapter (header-only, like hiredis's own).
 *
 * hiredis 0.14 ships adapters/libuv.h, but its poll callback drops every poll error: a
 * connect that is refused while Redis restarts then never completes and the connection is
 * never retried. This one hands errors to hiredis (which reads the socket error and calls
 * the connect or disconnect callback) and frees its handle only in the close callback. */
#ifndef FP_REDIS_UV_H
#define FP_REDIS_UV_H

#include <hiredis/async.h>
#include <stdlib.h>
#include <uv.h>

typedef struct fp_redis_uv {
    redisAsyncContext *ac; /* NULL once hiredis let go of us */
    uv_poll_t poll;
    int events;
    uint64_t read_ms; /* uv_now() of the last time the socket was readable */
} fp_redis_uv;

/* When the connection last had something to read (0: never), for reply deadlines. */
static inline uint64_t fp_redis_uv_read_ms(const redisAsyncContext *ac)
{
    const fp_redis_uv *p = ac->ev.data;

    return p ? p->read_ms : 0;
}

static void fp_redis_uv_poll_cb(uv_poll_t *h, int status, int events)
{
    fp_redis_uv *p = h->data;

    if (status < 0) {
        /* Let hiredis look at the socket: it finds the error and reports it. */
        if (p->ac && !(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else if (p->ac)
            redisAsyncHandleRead(p->ac);
        return;
    }
    if (events & UV_READABLE)
        p->read_ms = uv_now(h->loop);
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void fp_redis_uv_update(fp_redis_uv *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, fp_redis_uv_poll_cb);
    else
        uv_poll_stop(&p->poll);
}

static void fp_redis_uv_add_read(void *d)
{
    fp_redis_uv_update(d, UV_READABLE, 0);
}

static void fp_redis_uv_del_read(void *d)
{
    fp_redis_uv_update(d, 0, UV_READABLE);
}

static void fp_redis_uv_add_write(void *d)
{
    fp_redis_uv_update(d, UV_WRITABLE, 0);
}

static void fp_redis_uv_del_write(void *d)
{
    fp_redis_uv_update(d, 0, UV_WRITABLE);
}

static void fp_redis_uv_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void fp_redis_uv_cleanup(void *d)
{
    fp_redis_uv *p = d;

    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, fp_redis_uv_close_cb);
}

/* Returns REDIS_OK or REDIS_ERR (nothing attached then). */
static int fp_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    fp_redis_uv *p;

    if (ac->ev.data != NULL || (p = calloc(1, sizeof(*p))) == NULL)
        return REDIS_ERR;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = fp_redis_uv_add_read;
    ac->ev.delRead = fp_redis_uv_del_read;
    ac->ev.addWrite = fp_redis_uv_add_write;
    ac->ev.delWrite = fp_redis_uv_del_write;
    ac->ev.cleanup = fp_redis_uv_cleanup;
    return REDIS_OK;
}

#endif
