/* fetch.c - libcurl multi + libuv glue (see fetch.h). */
#include "fetch.h"

#include <stdlib.h>

#include "fp_log.h"

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    fp_fetch *f;
    struct poll_ctx *prev, *next; /* every open poll, for closing them all at the end */
} poll_ctx;

struct fp_fetch {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    fp_fetch_done_cb done;
    void *arg;
    poll_ctx *polls;
    int closing;
    int open_handles; /* libuv handles not yet closed (timer + polls) */
    fp_fetch_closed_cb closed;
    void *closed_arg;
};

static void maybe_free(fp_fetch *f)
{
    if (f->open_handles == 0 && f->multi == NULL) {
        fp_fetch_closed_cb cb = f->closed;
        void *arg = f->closed_arg;
        free(f);
        if (cb)
            cb(arg);
    }
}

static void poll_close_cb(uv_handle_t *h)
{
    poll_ctx *c = h->data;
    fp_fetch *f = c->f;

    free(c);
    f->open_handles--;
    maybe_free(f);
}

static void timer_close_cb(uv_handle_t *h)
{
    fp_fetch *f = h->data;

    f->open_handles--;
    maybe_free(f);
}

static void poll_close(fp_fetch *f, poll_ctx *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        f->polls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, poll_close_cb);
}

/* Hands every finished transfer to the owner. */
static void drain(fp_fetch *f)
{
    CURLMsg *msg;
    int left;

    while (f->multi && (msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            f->done(f->arg, msg->easy_handle, msg->data.result);
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    poll_ctx *c = h->data;
    fp_fetch *f = c->f;
    int flags = 0, running;

    /* A poll error (EBADF after a reset, libuv #3796) is curl's to handle. */
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(f->multi, c->fd, flags, &running);
    drain(f);
}

static void timeout_cb(uv_timer_t *t)
{
    fp_fetch *f = t->data;
    int running;

    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(f);
}

/* Never calls into libcurl: 0 ms becomes a timer that fires on the next loop turn. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    fp_fetch *f = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    fp_fetch *f = userp;
    poll_ctx *c = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            curl_multi_assign(f->multi, s, NULL);
            poll_close(f, c);
        }
        return 0;
    }
    if (c == NULL) {
        if (f->closing)
            return 0;
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return -1;
        if (uv_poll_init_socket(f->loop, &c->poll, s) != 0) {
            fp_error("uv_poll_init_socket failed for fd %d", (int)s);
            free(c);
            return -1;
        }
        c->fd = s;
        c->f = f;
        c->poll.data = c;
        c->next = f->polls;
        if (f->polls)
            f->polls->prev = c;
        f->polls = c;
        f->open_handles++;
        curl_multi_assign(f->multi, s, c);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&c->poll, events, poll_cb);
    return 0;
}

fp_fetch *fp_fetch_new(uv_loop_t *loop, long max_conns, fp_fetch_done_cb done, void *arg)
{
    fp_fetch *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->loop = loop;
    f->done = done;
    f->arg = arg;
    if ((f->multi = curl_multi_init()) == NULL) {
        free(f);
        return NULL;
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f; /* without it timeouts would never fire (curl #19462) */
    f->open_handles = 1;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, max_conns);
    return f;
}

int fp_fetch_add(fp_fetch *f, CURL *easy)
{
    return curl_multi_add_handle(f->multi, easy) == CURLM_OK ? 0 : -1;
}

void fp_fetch_remove(fp_fetch *f, CURL *easy)
{
    curl_multi_remove_handle(f->multi, easy);
}

void fp_fetch_close(fp_fetch *f, fp_fetch_closed_cb closed, void *arg)
{
    f->closed = closed;
    f->closed_arg = arg;
    f->closing = 1;
    /* Stop watching every socket while its fd is still open (libuv #1495), then let
     * libcurl close the cached connections; its REMOVE calls then find no context. */
    while (f->polls) {
        curl_multi_assign(f->multi, f->polls->fd, NULL);
        poll_close(f, f->polls);
    }
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, timer_close_cb);
}
