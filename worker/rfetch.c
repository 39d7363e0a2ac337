/* rfetch.c - fetching one robots.txt (see rfetch.h). */
#include "rfetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fp_log.h"
#include "guard.h"

#define FETCH_MAX_MS 30000L
#define URL_MAX      (300 + 16)

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    fp_rfetch *f = userp;
    size_t n = size * nmemb, take = n;
    char *p;

    if (f->len + take > FP_ROBOTS_MAX) {
        take = FP_ROBOTS_MAX - f->len;
        f->truncated = 1;
    }
    if (take && (p = realloc(f->body, f->len + take)) != NULL) {
        f->body = p;
        memcpy(f->body + f->len, data, take);
        f->len += take;
    } else if (take) {
        return 0;
    }
    return f->truncated ? 0 : n; /* the rest is not read (RFC 9309 2.5: 500 KiB are enough) */
}

static curl_socket_t opensocket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    fp_rfetch *f = userp;
    const fp_conf *conf = f->conf;
    const char *blocked;
    int fd;

    if (purpose == CURLSOCKTYPE_IPCXN && !conf->allow_private &&
        (blocked = fp_guard_classify(&a->addr)) != NULL &&
        !fp_guard_cidr_match(conf->allow, conf->nallow, &a->addr)) {
        f->blocked = blocked;
        return CURL_SOCKET_BAD;
    }
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

void fp_rfetch_free(fp_rfetch *f)
{
    if (f == NULL)
        return;
    curl_easy_cleanup(f->easy);
    free(f->body);
    free(f);
}

fp_rfetch *fp_rfetch_start(fp_curl_uv *curl, const fp_conf *conf, const char *origin, void *owner)
{
    char url[URL_MAX];
    fp_rfetch *f = calloc(1, sizeof(*f));
    CURL *h;

    if (f == NULL || (h = curl_easy_init()) == NULL) {
        free(f);
        return NULL;
    }
    f->owner = owner;
    f->conf = conf;
    f->easy = h;
    snprintf(url, sizeof(url), "%s/robots.txt", origin);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, f);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L); /* RFC 9309 2.3.1.2 */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, conf->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     conf->timeout_ms < FETCH_MAX_MS ? conf->timeout_ms : FETCH_MAX_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, conf->user_agent);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    if (conf->ca_bundle[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, conf->ca_bundle);
    if (conf->resolve)
        curl_easy_setopt(h, CURLOPT_RESOLVE, conf->resolve);
    fp_curl_uv_attach(curl, h);
    if (fp_curl_uv_add(curl, h) != 0) {
        fp_rfetch_free(f);
        return NULL;
    }
    fp_debug("fetching %s", url);
    return f;
}

size_t fp_rfetch_value(fp_rfetch *f, fp_curl_uv *curl, CURLcode rc, const char *origin, char *value,
                       long *ttl_s, long fail_ttl_s)
{
    char note[160] = "";
    long code = 0;
    size_t n, blen = 0;

    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    fp_curl_uv_remove(curl, f->easy);
    if (rc == CURLE_TOO_MANY_REDIRECTS) {
        code = 310;
    } else if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && f->truncated)) {
        code = 0;
        if (f->blocked)
            snprintf(note, sizeof(note), "address refused by the guard: %.100s", f->blocked);
        else
            snprintf(note, sizeof(note), "%.150s",
                     f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
        for (n = 0; note[n]; n++)
            if ((unsigned char)note[n] < 0x20)
                note[n] = ' ';
    }
    if (code == 0 || code >= 500 || (code > 0 && code < 200))
        *ttl_s = fail_ttl_s;
    if (code >= 200 && code < 300 && memchr(f->body ? f->body : "", '\0', f->len) == NULL)
        blen = f->len; /* not text (a NUL byte): no rules, nothing kept */
    n = (size_t)snprintf(value, 512, "%ld %lld %s\n", code, (long long)time(NULL) + *ttl_s, note);
    if (blen)
        memcpy(value + n, f->body, blen);
    n += blen;
    if (*ttl_s == fail_ttl_s)
        fp_warn("robots.txt of %s: %s%s%ld: its URLs are disallowed for %ld s (RFC 9309 2.3.1.4)",
                origin, note, note[0] ? "; HTTP " : "HTTP ", code, *ttl_s);
    else if (f->truncated)
        fp_info("robots.txt of %s: longer than %d bytes; only those are read", origin,
                FP_ROBOTS_MAX);
    return n;
}
