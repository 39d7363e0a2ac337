/* curl_uv.c - libcurl multi + libuv glue (see curl_uv.h).
 *
 * libcurl's sockets are watched by an epoll set of our own, and libuv watches that one
 * descriptor. Why not one uv_poll_t per socket, as curl's multi-uv example does: libuv
 * applies a watch lazily, at the next turn of its loop, and abort()s if the descriptor
 * is closed by then (libuv #1495). libcurl closes descriptors without telling us: the
 * threaded resolver's wake-up socketpair (created, watched and closed within one call
 * when a name resolves from /etc/hosts or a fast cache), and connect attempts that lost.
 * A kernel epoll set needs no such care: a closed descriptor leaves it by itself, and a
 * failed epoll_ctl is an error code, not an abort. It is also cheaper: one epoll_ctl per
 * change of interest instead of libuv's delete-and-add on every uv_poll_start. */
#include "curl_uv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fp_log.h"

/* What fd_state[] keeps per descriptor. */
#define ST_IN    0x01 /* the epoll set watches for input */
#define ST_OUT   0x02 /* ... for output */
#define ST_REG   0x04 /* registered in the epoll set */
#define ST_OWNED 0x08 /* a connection socket: libcurl closes it through closesocket_cb */
#define ST_IDLE  0x10 /* registered while its connection idles in libcurl's pool */

#define EVENTS_MAX 128 /* epoll events taken per wake-up */

struct fp_curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_poll_t poll; /* on epfd */
    int epfd;
    fp_curl_uv_done_cb done;
    void *arg;
    unsigned char *fd_state;
    int nfd_state;
    int closing;
    int open_handles; /* libuv handles not yet closed (timer + poll) */
    fp_curl_uv_closed_cb closed;
    void *closed_arg;
};

static void maybe_free(fp_curl_uv *f)
{
    if (f->open_handles == 0 && f->multi == NULL) {
        fp_curl_uv_closed_cb cb = f->closed;
        void *arg = f->closed_arg;
        free(f->fd_state);
        free(f);
        if (cb)
            cb(arg);
    }
}

static void handle_close_cb(uv_handle_t *h)
{
    fp_curl_uv *f = h->data;

    if (h == (uv_handle_t *)&f->poll && f->epfd >= 0) {
        close(f->epfd);
        f->epfd = -1;
    }
    f->open_handles--;
    maybe_free(f);
}

/* The state slot of descriptor s, grown on demand; NULL if out of memory. */
static unsigned char *state_of(fp_curl_uv *f, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if (s >= f->nfd_state) {
        int n = f->nfd_state ? f->nfd_state : 256;
        unsigned char *grown;
        while (n <= s)
            n *= 2;
        if ((grown = realloc(f->fd_state, (size_t)n)) == NULL)
            return NULL;
        memset(grown + f->nfd_state, 0, (size_t)(n - f->nfd_state));
        f->fd_state = grown;
        f->nfd_state = n;
    }
    return &f->fd_state[s];
}

static void unwatch(fp_curl_uv *f, curl_socket_t s, unsigned char *st)
{
    /* EBADF/ENOENT: already closed, and so already out of the set. */
    if ((*st & ST_REG) && epoll_ctl(f->epfd, EPOLL_CTL_DEL, s, NULL) != 0 && errno != EBADF &&
        errno != ENOENT)
        fp_warn("epoll_ctl(DEL, fd %d): %s", (int)s, strerror(errno));
    *st &= ST_OWNED;
}

/* 0, or -1 if the descriptor cannot be watched (logged). */
static int watch(fp_curl_uv *f, curl_socket_t s, unsigned char *st, unsigned char want)
{
    struct epoll_event ev;
    int op = (*st & ST_REG) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, rc;

    memset(&ev, 0, sizeof(ev));
    ev.events = ((want & ST_IN) ? EPOLLIN : 0) | ((want & ST_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    rc = epoll_ctl(f->epfd, op, s, &ev);
    /* The state may be stale (a descriptor closed behind our back, its number reused):
     * the kernel knows better. */
    if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(f->epfd, EPOLL_CTL_ADD, s, &ev);
    else if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(f->epfd, EPOLL_CTL_MOD, s, &ev);
    if (rc != 0) {
        fp_error("epoll_ctl(fd %d): %s", (int)s, strerror(errno));
        *st &= ST_OWNED;
        return -1;
    }
    *st = (unsigned char)((*st & ST_OWNED) | ST_REG | want);
    return 0;
}

/* Hands every finished transfer to the owner. */
static void drain(fp_curl_uv *f)
{
    CURLMsg *msg;
    int left;

    while (f->multi && (msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            f->done(f->arg, msg->easy_handle, msg->data.result);
    }
}

static void action(fp_curl_uv *f, curl_socket_t s, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(f->multi, s, flags, &running);

    if (mc != CURLM_OK)
        fp_error("curl_multi_socket_action: %s", curl_multi_strerror(mc));
    drain(f);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    fp_curl_uv *f = h->data;
    struct epoll_event ev[EVENTS_MAX];
    int n, i;

    (void)events;
    if (status < 0) {
        fp_error("watching the epoll set: %s", uv_strerror(status));
        return;
    }
    n = epoll_wait(f->epfd, ev, EVENTS_MAX, 0);
    if (n < 0 && errno != EINTR)
        fp_error("epoll_wait: %s", strerror(errno));
    for (i = 0; i < n && f->multi; i++) {
        curl_socket_t s = ev[i].data.fd;
        unsigned char *st = state_of(f, s);
        uint32_t e = ev[i].events;
        int flags = 0;

        if (st == NULL || !(*st & ST_REG))
            continue; /* stale: an earlier event of this batch made libcurl drop it */
        if (*st & ST_IDLE) {
            /* The peer closed or wrote to a pooled connection. Stop watching so that a
             * level-triggered event does not spin; libcurl checks a connection before
             * it reuses it and closes it then. */
            unwatch(f, s, st);
            continue;
        }
        /* An error or hang-up is reported as what was watched, so that libcurl reads or
         * writes and finds the real error (refused, reset) itself. */
        if (e & (EPOLLERR | EPOLLHUP))
            e |= ((*st & ST_IN) ? EPOLLIN : 0) | ((*st & ST_OUT) ? EPOLLOUT : 0);
        if (e & EPOLLIN)
            flags |= CURL_CSELECT_IN;
        if (e & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        action(f, s, flags);
    }
}

static void timeout_cb(uv_timer_t *t)
{
    fp_curl_uv *f = t->data;

    action(f, CURL_SOCKET_TIMEOUT, 0);
}

/* Never calls into libcurl: 0 ms becomes a timer that fires on the next loop turn. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    fp_curl_uv *f = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    fp_curl_uv *f = userp;
    unsigned char *st = state_of(f, s), want = 0;

    (void)easy;
    (void)socketp;
    if (st == NULL) {
        fp_error("out of memory watching fd %d", (int)s);
        return -1;
    }
    if (what == CURL_POLL_REMOVE) {
        /* A connection socket that waited for input stays in the set while it idles in
         * the pool: the next transfer on it usually asks for the same and costs no call.
         * Anything else leaves now: the resolver's descriptors are closed right after
         * this without the close callback, and so is a connect attempt that lost (a
         * write watch). */
        if ((*st & (ST_REG | ST_OWNED | ST_OUT)) == (ST_REG | ST_OWNED))
            *st |= ST_IDLE;
        else
            unwatch(f, s, st);
        return 0;
    }
    if (f->closing)
        return 0;
    if (what & CURL_POLL_IN)
        want |= ST_IN;
    if (what & CURL_POLL_OUT)
        want |= ST_OUT;
    if ((*st & ST_REG) && (*st & (ST_IN | ST_OUT)) == want) {
        *st &= (unsigned char)~ST_IDLE;
        return 0;
    }
    /* A descriptor we cannot watch would hang its transfer; its timeout ends it. */
    (void)watch(f, s, st, want);
    return 0;
}

/* A new connection socket: whatever was recorded for this number belonged to a closed
 * descriptor, and the kernel has already dropped that one from the set. */
static int sockopt_cb(void *userp, curl_socket_t s, curlsocktype purpose)
{
    fp_curl_uv *f = userp;
    unsigned char *st = state_of(f, s);

    (void)purpose;
    if (st)
        *st = ST_OWNED;
    return CURL_SOCKOPT_OK;
}

static int closesocket_cb(void *userp, curl_socket_t s)
{
    fp_curl_uv *f = userp;
    unsigned char *st = state_of(f, s);

    if (st)
        *st = 0; /* closing takes it out of the epoll set */
    return close(s);
}

fp_curl_uv *fp_curl_uv_new(uv_loop_t *loop, long max_conns, fp_curl_uv_done_cb done, void *arg)
{
    fp_curl_uv *f = calloc(1, sizeof(*f));
    int rc;

    if (f == NULL)
        return NULL;
    f->loop = loop;
    f->done = done;
    f->arg = arg;
    if ((f->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fp_error("epoll_create1: %s", strerror(errno));
        free(f);
        return NULL;
    }
    if ((rc = uv_poll_init(loop, &f->poll, f->epfd)) != 0) {
        fp_error("uv_poll_init on the epoll set: %s", uv_strerror(rc));
        close(f->epfd);
        free(f);
        return NULL;
    }
    if ((f->multi = curl_multi_init()) == NULL) {
        fp_error("curl_multi_init failed");
        f->open_handles = 1;
        f->poll.data = f;
        uv_close((uv_handle_t *)&f->poll, handle_close_cb); /* frees f */
        return NULL;
    }
    f->poll.data = f;
    uv_poll_start(&f->poll, UV_READABLE, poll_cb);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f; /* without it timeouts would never fire (curl #19462) */
    f->open_handles = 2;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, max_conns);
    return f;
}

void fp_curl_uv_attach(fp_curl_uv *f, CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, f);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, f);
}

int fp_curl_uv_add(fp_curl_uv *f, CURL *easy)
{
    CURLMcode mc = curl_multi_add_handle(f->multi, easy);

    if (mc != CURLM_OK) {
        fp_error("curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return -1;
    }
    return 0;
}

void fp_curl_uv_remove(fp_curl_uv *f, CURL *easy)
{
    curl_multi_remove_handle(f->multi, easy);
}

void fp_curl_uv_close(fp_curl_uv *f, fp_curl_uv_closed_cb closed, void *arg)
{
    f->closed = closed;
    f->closed_arg = arg;
    f->closing = 1;
    /* libcurl closes the cached connections; the epoll set goes after libuv stopped
     * watching it (in the close callback). */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, handle_close_cb);
    uv_poll_stop(&f->poll);
    uv_close((uv_handle_t *)&f->poll, handle_close_cb);
}
