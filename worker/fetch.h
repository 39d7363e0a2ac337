/* fetch.h - drives libcurl's multi interface from a libuv loop.
 *
 * The multi-uv.c pattern, with one change: libcurl's sockets sit in an epoll set of
 * fetch's own, which libuv watches as one descriptor (fetch.c says why). One
 * non-repeating uv_timer_t follows CURLMOPT_TIMERFUNCTION. A connection socket stays in
 * the set while it idles in libcurl's pool and leaves it when libcurl closes it (the
 * callbacks set by fp_fetch_attach). After every curl_multi_socket_action the finished
 * transfers are handed to done_cb, which must read what it needs from the easy handle
 * and then call fp_fetch_remove. All transfers share the multi handle's connection pool
 * and DNS cache. Linux only (epoll), as the containers it ships in. */
#ifndef FP_FETCH_H
#define FP_FETCH_H

#include <curl/curl.h>
#include <uv.h>

typedef struct fp_fetch fp_fetch;
typedef void (*fp_fetch_done_cb)(void *arg, CURL *easy, CURLcode result);
typedef void (*fp_fetch_closed_cb)(void *arg);

/* max_conns: size of the connection cache (connections kept for reuse). NULL on failure. */
fp_fetch *fp_fetch_new(uv_loop_t *loop, long max_conns, fp_fetch_done_cb done, void *arg);
/* Once per easy handle before its first fp_fetch_add: sets CURLOPT_SOCKOPTFUNCTION and
 * CURLOPT_CLOSESOCKETFUNCTION (and their data), so those are fetch's, not the caller's. */
void fp_fetch_attach(fp_fetch *f, CURL *easy);
/* 0, or -1 if libcurl refused the handle. */
int fp_fetch_add(fp_fetch *f, CURL *easy);
void fp_fetch_remove(fp_fetch *f, CURL *easy);
/* Closes every handle; f is freed once the last libuv close callback ran, then closed(arg).
 * Every easy handle must have been removed first. */
void fp_fetch_close(fp_fetch *f, fp_fetch_closed_cb closed, void *arg);

#endif
