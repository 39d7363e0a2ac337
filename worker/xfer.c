/* xfer.c - easy handle options, receive-time checks and result classification. */
#include "xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "fp_log.h"
#include "fp_text.h"
#include "guard.h"

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    fp_xfer *x = userp;
    size_t n = size * nmemb;
    int rc;

    if (!x->code_checked) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        x->discard = code < 200 || code >= 300;
        x->code_checked = 1;
    }
    if (x->discard) {
        x->body.bytes += n;
        return x->body.bytes > FP_ERROR_BODY_MAX ? 0 : n;
    }
    if (x->optout && !(x->task.flags & FP_TASK_IGNORE_OPTOUT)) {
        x->abort_reason = FP_R_OPTOUT;
        return 0;
    }
    if (x->body.bytes + n > x->conf->max_size) {
        x->abort_reason = FP_R_TOO_LARGE;
        return 0;
    }
    if (x->type == FP_IMG_UNKNOWN) {
        size_t take = sizeof(x->head) - x->headlen;
        if (take > n)
            take = n;
        memcpy(x->head + x->headlen, data, take);
        x->headlen += take;
        x->type = fp_sniff(x->head, x->headlen, 0, x->task.flags & FP_TASK_ALLOW_SVG);
        if (x->type == FP_IMG_NONE) {
            x->abort_reason = FP_R_NOT_AN_IMAGE;
            return 0;
        }
    }
    if ((rc = fp_body_append(x->store, &x->body, data, n)) != 0) {
        x->abort_reason = fp_store_reason(rc);
        x->abort_errno = -rc;
        x->store_err = rc;
        return 0;
    }
    return n;
}

static int header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Case-insensitive search for a token in a header value. */
static int contains_token(const char *v, size_t len, const char *tok)
{
    size_t n = strlen(tok), i;

    for (i = 0; i + n <= len; i++) {
        if (strncasecmp(v + i, tok, n) == 0 &&
            (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',' || v[i - 1] == ':' || v[i - 1] == '\t') &&
            (i + n == len || v[i + n] == ' ' || v[i + n] == ',' || v[i + n] == '\r' ||
             v[i + n] == '\n' || v[i + n] == '\t' || v[i + n] == ';'))
            return 1;
    }
    return 0;
}

static size_t header_cb(char *line, size_t size, size_t nmemb, void *userp)
{
    fp_xfer *x = userp;
    size_t len = size * nmemb;

    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100): forget the last one's headers. */
        x->optout = 0;
        x->retry_after_s = -1;
        x->code_checked = 0;
    } else if (header_is(line, len, "X-Robots-Tag")) {
        if (contains_token(line, len, "noai") || contains_token(line, len, "noimageai"))
            x->optout = 1;
    } else if (header_is(line, len, "Retry-After")) {
        const char *p = line + 12;
        long v = 0;
        int digits = 0;
        while (p < line + len && (*p == ' ' || *p == '\t'))
            p++;
        while (p < line + len && *p >= '0' && *p <= '9' && v < 1000000) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if (digits) {
            x->retry_after_s = v;
        } else if (p < line + len) {
            /* An HTTP-date (RFC 9110 10.2.3): seconds from now, by this machine's clock. */
            char date[128];
            size_t n = (size_t)(line + len - p);
            time_t t;
            if (n >= sizeof(date))
                n = sizeof(date) - 1;
            memcpy(date, p, n);
            while (n > 0 && (date[n - 1] == '\r' || date[n - 1] == '\n' || date[n - 1] == ' '))
                n--;
            date[n] = '\0';
            if ((t = curl_getdate(date, NULL)) != -1)
                x->retry_after_s = t > time(NULL) ? (long)(t - time(NULL)) : 0;
        }
    }
    return len;
}

/* Check the address libcurl is about to connect to, after DNS. */
static curl_socket_t opensocket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    fp_xfer *x = userp;
    const char *blocked;
    int fd;

    if (purpose == CURLSOCKTYPE_IPCXN && !x->conf->allow_private &&
        (blocked = fp_guard_classify(&a->addr)) != NULL &&
        !fp_guard_cidr_match(x->conf->allow, x->conf->nallow, &a->addr)) {
        x->blocked = blocked;
        return CURL_SOCKET_BAD;
    }
    x->tried = 1;
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Check again right before each request: covers reused connections and redirects. */
static int prereq_cb(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    fp_xfer *x = userp;
    const char *blocked;

    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    if (!x->conf->allow_private && (blocked = fp_guard_classify_text(conn_primary_ip)) != NULL &&
        !fp_guard_cidr_match_text(x->conf->allow, x->conf->nallow, conn_primary_ip)) {
        x->blocked = blocked;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

fp_xfer *fp_xfer_new(const fp_conf *conf, fp_store *store)
{
    fp_xfer *x = calloc(1, sizeof(*x));
    CURL *e;

    if (x == NULL)
        return NULL;
    if (fp_body_init(&x->body) != 0 || (e = curl_easy_init()) == NULL) {
        fp_body_free(&x->body);
        free(x);
        return NULL;
    }
    x->easy = e;
    x->conf = conf;
    x->store = store;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* 64 KB instead of 16 KB: a typical image arrives in one recv, not two. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conf->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, conf->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, conf->low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, conf->low_speed_time);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)conf->max_size);
    curl_easy_setopt(e, CURLOPT_USERAGENT, x->conf->user_agent);
    /* One CA file and no CA folder: libcurl then parses the CAs once and keeps them
     * (CURLOPT_CA_CACHE_TIMEOUT). Debian's default adds the folder /etc/ssl/certs, which
     * turns that cache off and costs a parse of every CA per new TLS connection:
     * 16 ms of CPU per image on a list of many hosts. */
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    if (conf->ca_bundle[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, conf->ca_bundle);
    if (conf->resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, conf->resolve);
    return x;
}

void fp_xfer_free(fp_xfer *x)
{
    if (x == NULL)
        return;
    curl_easy_cleanup(x->easy);
    fp_body_free(&x->body);
    free(x->shown_buf);
    free(x);
}

void fp_xfer_set_task(fp_xfer *x, const fp_task *t)
{
    x->task = *t;
    x->task.url = x->task.buf;
    x->shown = x->task.url;
    if (strchr(x->task.url, '@') == NULL)
        return;
    if (x->shown_buf == NULL && (x->shown_buf = malloc(FP_URL_MAX + 1)) == NULL) {
        x->shown = "(URL hidden: out of memory)"; /* never the credentials */
        return;
    }
    if (fp_text_url_redact(x->shown_buf, FP_URL_MAX + 1, x->task.url))
        x->shown = x->shown_buf;
}

int fp_xfer_begin(fp_xfer *x)
{
    x->headlen = 0;
    x->type = FP_IMG_UNKNOWN;
    x->abort_reason = FP_OK;
    x->abort_errno = 0;
    x->store_err = 0;
    x->code_checked = x->discard = x->optout = 0;
    x->retry_after_s = -1;
    x->blocked = NULL;
    x->tried = 0;
    x->errbuf[0] = '\0';
    if (fp_body_begin(x->store, &x->body) != 0)
        return -1;
    /* Over TLS the server may offer HTTP/2: wait for the connection being set up to say
     * so and multiplex on it, instead of a handshake per transfer. Not for plain http,
     * which is HTTP/1.1 here: there it would queue transfers behind busy connections. */
    curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, (long)(strncasecmp(x->task.url, "https:", 6) == 0));
    return curl_easy_setopt(x->easy, CURLOPT_URL, x->task.url) == CURLE_OK ? 0 : -1;
}

static fp_reason classify(fp_xfer *x, CURLcode rc, char *err, size_t errlen)
{
    fp_outcome o = {.rc = rc,
                    .aborted = x->abort_reason,
                    .aborted_errno = x->abort_errno,
                    .discarding = x->discard,
                    .blocked = x->blocked,
                    .tried = x->tried,
                    .curl_error = x->errbuf};

    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &o.os_errno);
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &o.http_code);
    return fp_classify(&o, err, errlen);
}

static uint64_t info_us(CURL *e, CURLINFO what)
{
    curl_off_t v = 0;
    curl_easy_getinfo(e, what, &v);
    return v > 0 ? (uint64_t)v : 0;
}

/* What every result of the transfer says, whatever its outcome. */
static void fill(fp_xfer *x, fp_result *r, long *code)
{
    const char *ctype = NULL;

    memset(r, 0, offsetof(fp_result, url));
    r->job = x->task.job;
    r->idx = x->task.idx;
    r->line = x->task.line;
    r->attempts = x->task.attempt;
    snprintf(r->worker, sizeof(r->worker), "%s", x->conf->id);
    snprintf(r->url, sizeof(r->url), "%s", x->shown);
    r->error[0] = '\0';

    *code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, code);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
    r->http_code = (*code > 0 && *code < 1000) ? (uint32_t)*code : 0;
    r->total_us = info_us(x->easy, CURLINFO_TOTAL_TIME_T);
    r->dns_us = info_us(x->easy, CURLINFO_NAMELOOKUP_TIME_T);
    r->connect_us = info_us(x->easy, CURLINFO_CONNECT_TIME_T);
    r->ttfb_us = info_us(x->easy, CURLINFO_STARTTRANSFER_TIME_T);
    if (ctype)
        fp_sanitize(r->content_type, sizeof(r->content_type), ctype, strlen(ctype));
}

fp_reason fp_xfer_result(fp_xfer *x, CURLcode rc, fp_result *r)
{
    char err[FP_ERROR_MAX + 1] = "";
    long code;
    fp_reason reason;
    int src;

    fill(x, r, &code);
    reason = classify(x, rc, err, sizeof(err));
    if (reason != FP_OK)
        fp_debug("%s: libcurl code %d (%s)", x->shown, (int)rc, x->errbuf);
    if (reason == FP_OK && (code < 200 || code >= 300))
        reason = FP_R_HTTP;
    if (reason == FP_OK && x->optout && !(x->task.flags & FP_TASK_IGNORE_OPTOUT))
        reason = FP_R_OPTOUT;
    if (reason == FP_OK && x->body.bytes == 0)
        reason = FP_R_EMPTY;
    if (reason == FP_OK && x->type == FP_IMG_UNKNOWN)
        x->type = fp_sniff(x->head, x->headlen, 1, x->task.flags & FP_TASK_ALLOW_SVG);
    if (reason == FP_OK && (x->type == FP_IMG_NONE || x->type == FP_IMG_UNKNOWN))
        reason = FP_R_NOT_AN_IMAGE;
    if (reason == FP_OK && x->conf->s3.on) {
        /* The upload is the caller's (s3.c); the body stays until it is done. */
        r->bytes = x->body.bytes;
        if (fp_body_digest(&x->body, r->sha256) != 0) {
            reason = FP_R_INTERNAL;
            snprintf(err, sizeof(err), "digest failed");
            r->sha256[0] = '\0';
            fp_body_discard(&x->body);
        }
    } else if (reason == FP_OK) {
        r->bytes = x->body.bytes;
        src = fp_store_commit(x->store, &x->body, fp_sniff_ext(x->type), r->path, r->sha256);
        if (src != 0) {
            reason = fp_store_reason(src);
            x->store_err = src;
            snprintf(err, sizeof(err), "storing: %s", strerror(-src));
            r->path[0] = r->sha256[0] = '\0';
        }
    } else {
        fp_body_discard(&x->body);
    }

    fp_reason_format(reason, r->http_code, r->status, sizeof(r->status));
    if (reason != FP_OK && err[0] == '\0') {
        if (reason == FP_R_HTTP)
            snprintf(err, sizeof(err), "HTTP %ld", code);
        else if (x->errbuf[0])
            snprintf(err, sizeof(err), "%s", x->errbuf);
        else if (rc != CURLE_OK)
            snprintf(err, sizeof(err), "%s", curl_easy_strerror(rc));
        else
            snprintf(err, sizeof(err), "%s", fp_reason_str(reason));
    }
    fp_sanitize(r->error, sizeof(r->error), err, strlen(err));
    return reason;
}

fp_reason fp_xfer_store_failed(fp_xfer *x, const char *note, fp_result *r)
{
    char err[FP_ERROR_MAX + 1];
    fp_reason reason = fp_store_reason(x->store_err);
    long code;

    fill(x, r, &code);
    fp_reason_format(reason, r->http_code, r->status, sizeof(r->status));
    snprintf(err, sizeof(err), "storing: %s (%s)", strerror(-x->store_err), note);
    fp_sanitize(r->error, sizeof(r->error), err, strlen(err));
    return reason;
}
