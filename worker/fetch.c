/* fetch.c - libcurl multi + libuv glue (see fetch.h). */
#include "fetch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fp_log.h"

/* One per socket libcurl has opened, from its first CURLMOPT_SOCKETFUNCTION call until
 * libcurl closes it (CURLOPT_CLOSESOCKETFUNCTION), not just while a transfer uses it.
 * libuv 1.44's uv_poll_start always deletes the fd from epoll and adds it back, and
 * creating a poll checks the fd with another add and delete: per transfer on a reused
 * connection that was four to six epoll_ctl calls. Now a context stays, keeps watching
 * for input while its connection idles in libcurl's pool, and the next transfer on it
 * usually asks for the same events again, which costs no call at all. */
typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* what libuv watches: UV_READABLE | UV_WRITABLE, 0 if stopped */
    int idle;   /* libcurl said CURL_POLL_REMOVE: no transfer is on this socket */
    int closed; /* being closed: libcurl closed the socket before it said REMOVE */
    fp_fetch *f;
} poll_ctx;

struct fp_fetch {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    fp_fetch_done_cb done;
    void *arg;
    poll_ctx **byfd; /* the context of each socket, indexed by descriptor */
    int nbyfd;
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
        free(f->byfd);
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

static poll_ctx *poll_find(fp_fetch *f, curl_socket_t s)
{
    return s >= 0 && s < f->nbyfd ? f->byfd[s] : NULL;
}

/* Must run while the descriptor is still open (libuv #1495). */
static void poll_close(fp_fetch *f, poll_ctx *c)
{
    f->byfd[c->fd] = NULL;
    c->closed = 1;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, poll_close_cb);
}

static poll_ctx *poll_new(fp_fetch *f, curl_socket_t s)
{
    poll_ctx *c;

    if (s < 0)
        return NULL;
    if (s >= f->nbyfd) {
        int n = f->nbyfd ? f->nbyfd : 64;
        poll_ctx **grown;
        while (n <= s)
            n *= 2;
        if ((grown = realloc(f->byfd, sizeof(*grown) * (size_t)n)) == NULL)
            return NULL;
        memset(grown + f->nbyfd, 0, sizeof(*grown) * (size_t)(n - f->nbyfd));
        f->byfd = grown;
        f->nbyfd = n;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    if (uv_poll_init_socket(f->loop, &c->poll, s) != 0) {
        fp_error("uv_poll_init_socket failed for fd %d", (int)s);
        free(c);
        return NULL;
    }
    c->fd = s;
    c->f = f;
    c->poll.data = c;
    f->byfd[s] = c;
    f->open_handles++;
    return c;
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

    if (c->idle) {
        /* The peer closed or wrote to a pooled connection. Stop watching so that a
         * level-triggered event does not spin; libcurl checks the connection before it
         * reuses it and closes it then. */
        uv_poll_stop(&c->poll);
        c->events = 0;
        return;
    }
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
    if (c && c->closed)
        c = NULL;
    if (what == CURL_POLL_REMOVE) {
        /* Keep a connected socket's context (see poll_ctx). A write watch may be a
         * connect that libcurl gave up: libcurl 7.88 closes such a socket without the
         * close callback and says REMOVE afterwards, so its context goes now, before
         * libuv could touch the closed descriptor. */
        if (c) {
            if (c->events & UV_WRITABLE)
                poll_close(f, c);
            else
                c->idle = 1;
        }
        return 0;
    }
    if (c == NULL) {
        if (f->closing)
            return 0;
        if ((c = poll_find(f, s)) == NULL && (c = poll_new(f, s)) == NULL)
            return -1;
        curl_multi_assign(f->multi, s, c);
    }
    c->idle = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events != c->events) {
        uv_poll_start(&c->poll, events, poll_cb);
        c->events = events;
    }
    return 0;
}

/* A new socket: a context left for the same number belongs to a socket that was closed
 * behind our back, so it must not be taken for this one. */
static int sockopt_cb(void *userp, curl_socket_t s, curlsocktype purpose)
{
    fp_fetch *f = userp;
    poll_ctx *c = poll_find(f, s);

    (void)purpose;
    if (c)
        poll_close(f, c);
    return CURL_SOCKOPT_OK;
}

static int closesocket_cb(void *userp, curl_socket_t s)
{
    fp_fetch *f = userp;
    poll_ctx *c = poll_find(f, s);

    if (c)
        poll_close(f, c);
    return close(s);
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

void fp_fetch_attach(fp_fetch *f, CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, f);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, f);
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
     * libcurl close the cached connections; its REMOVE and close callbacks then find
     * no context. */
    for (int i = 0; i < f->nbyfd; i++) {
        if (f->byfd[i]) {
            curl_multi_assign(f->multi, i, NULL);
            poll_close(f, f->byfd[i]);
        }
    }
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, timer_close_cb);
}
