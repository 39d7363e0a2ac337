/* curl_uv.h - libcurl's multi interface on a libuv loop (the twin of redis_uv.h).
 *
 * The multi-uv.c pattern, with one change: libcurl's sockets sit in an epoll set of
 * its own, which libuv watches as one descriptor (curl_uv.c says why). One
 * non-repeating uv_timer_t follows CURLMOPT_TIMERFUNCTION. A connection socket stays in
 * the set while it idles in libcurl's pool and leaves it when libcurl closes it (the
 * callbacks set by fp_curl_uv_attach). After every curl_multi_socket_action the finished
 * transfers are handed to done_cb, whose owner calls fp_curl_uv_remove; libcurl keeps
 * what a handle tells of its transfer (curl_easy_getinfo) until the handle's next one,
 * so that may be read after the removal. All transfers share the multi handle's
 * connection pool and DNS cache. Linux only (epoll), as the containers it ships in. */
#ifndef FP_CURL_UV_H
#define FP_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct fp_curl_uv fp_curl_uv;
typedef void (*fp_curl_uv_done_cb)(void *arg, CURL *easy, CURLcode result);
typedef void (*fp_curl_uv_closed_cb)(void *arg);

/* max_conns: size of the connection cache (connections kept for reuse). NULL on failure. */
fp_curl_uv *fp_curl_uv_new(uv_loop_t *loop, long max_conns, fp_curl_uv_done_cb done, void *arg);
/* Once per easy handle before its first fp_curl_uv_add: sets CURLOPT_SOCKOPTFUNCTION and
 * CURLOPT_CLOSESOCKETFUNCTION (and their data), so those are fetch's, not the caller's. */
void fp_curl_uv_attach(fp_curl_uv *f, CURL *easy);
/* 0, or -1 if libcurl refused the handle. */
int fp_curl_uv_add(fp_curl_uv *f, CURL *easy);
void fp_curl_uv_remove(fp_curl_uv *f, CURL *easy);
/* Closes every handle; f is freed once the last libuv close callback ran, then closed(arg).
 * Every easy handle must have been removed first. */
void fp_curl_uv_close(fp_curl_uv *f, fp_curl_uv_closed_cb closed, void *arg);

#endif
