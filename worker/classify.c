/* classify.c - failure reasons and retry delays (see classify.h). */
#include "classify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define RETRY_AFTER_MAX_S 60
#define BACKOFF_BASE_MS   1000
#define BACKOFF_MAX_MS    30000

fp_reason fp_classify(const fp_outcome *o, char *err, size_t errlen)
{
    switch (o->rc) {
    case CURLE_OK: return FP_OK;
    case CURLE_WRITE_ERROR:
        if (o->aborted != FP_OK) {
            if (o->aborted_errno)
                snprintf(err, errlen, "storing: %s", strerror(o->aborted_errno));
            return o->aborted;
        }
        if (o->discarding) {
            snprintf(err, errlen, "error body over %d bytes", FP_ERROR_BODY_MAX);
            return FP_R_HTTP;
        }
        return FP_R_INTERNAL;
    case CURLE_COULDNT_RESOLVE_HOST: return FP_R_DNS;
    case CURLE_COULDNT_CONNECT:
        /* Blocked only if no address passed the guard: otherwise the last one that
         * was tried says why (refused, unreachable). */
        if (o->blocked && !o->tried) {
            snprintf(err, errlen, "address is %s (SSRF guard)", o->blocked);
            return FP_R_BLOCKED_ADDRESS;
        }
        return o->os_errno == ECONNREFUSED ? FP_R_CONNECT_REFUSED : FP_R_CONNECT;
    case CURLE_ABORTED_BY_CALLBACK:
        if (o->blocked) {
            snprintf(err, errlen, "address is %s (SSRF guard)", o->blocked);
            return FP_R_BLOCKED_ADDRESS;
        }
        return FP_R_INTERNAL;
    case CURLE_OPERATION_TIMEDOUT:
        /* libcurl's words for a lookup that ran out of the connect timeout. */
        return strncmp(o->curl_error, "Resolving timed out", 19) == 0 ? FP_R_DNS : FP_R_TIMEOUT;
    case CURLE_RECV_ERROR:
        /* libcurl also says RECV_ERROR for a response it cannot parse (huge headers, a
         * bad chunk size, HTTP/2 frames nghttp2 rejects such as an endless header
         * block): with no socket error the peer is broken, not the connection, and a
         * retry would not help. */
        if (o->os_errno == 0 && (o->http_code > 0 || strstr(o->curl_error, "nghttp2")))
            return FP_R_PROTOCOL;
        return FP_R_RESET;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        /* A GOAWAY that left the stream unprocessed, a stream reset by the peer: the
         * request can be sent again on a new connection. */
        return FP_R_RESET;
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return FP_R_RESET;
    case CURLE_SSL_CONNECT_ERROR:
        /* A handshake cut off by the peer is a lost connection, worth another try; a
         * handshake that failed on its merits (no common cipher, bad alert) is not. */
        if (o->os_errno == ECONNRESET || o->os_errno == EPIPE ||
            strstr(o->curl_error, "reset by peer") || strstr(o->curl_error, "unexpected eof"))
            return FP_R_RESET;
        return FP_R_TLS;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: return FP_R_TLS;
    case CURLE_TOO_MANY_REDIRECTS: return FP_R_TOO_MANY_REDIRECTS;
    case CURLE_UNSUPPORTED_PROTOCOL: return FP_R_BAD_SCHEME;
    case CURLE_FILESIZE_EXCEEDED: return FP_R_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        /* Also what libcurl says for a header line over its limit. */
        return o->http_code > 0 ? FP_R_PROTOCOL : FP_R_INTERNAL;
    default: return FP_R_PROTOCOL;
    }
}

long fp_retry_delay_ms(uint32_t attempt, long retry_after_s, long rnd)
{
    long d;

    if (retry_after_s >= 0)
        return (retry_after_s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : retry_after_s) * 1000;
    d = BACKOFF_BASE_MS << (attempt > 1 ? (attempt - 1 < 5 ? attempt - 1 : 5) : 0);
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d * 3 / 4 + (rnd < 0 ? -rnd : rnd) % (d / 2 + 1); /* +-25% jitter */
}
