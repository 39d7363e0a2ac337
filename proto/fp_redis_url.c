/* fp_redis_url.c - Redis address parsing shared by master and worker. */
#include <stddef.h>

#include "fp_redis_url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fp_redis_url_shown(char *dst, size_t dstlen, const char *url)
{
    const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");

    if (dstlen == 0)
        return;
    if (at == NULL)
        snprintf(dst, dstlen, "%s", url);
    else if (scheme && scheme < at)
        snprintf(dst, dstlen, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    else
        snprintf(dst, dstlen, "***%s", at);
}

/* Copies a decoded user info part; -1 if it does not fit. */
static int take(char *dst, size_t dstlen, const char *s)
{
    if (strlen(s) >= dstlen)
        return -1;
    strcpy(dst, s);
    return 0;
}

int fp_redis_url_parse(const char *url, fp_redis_url *out, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *pass = NULL, *user = NULL;
    CURLUcode cu;
    int rc = -1;
    long v;
    char *end;

    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        strcmp(scheme, "redis") != 0) {
        char shown[512];

        fp_redis_url_shown(shown, sizeof(shown), url); /* no secret in an error message */
        if (scheme && strcmp(scheme, "rediss") == 0)
            snprintf(err, errlen,
                     "bad Redis URL '%s': fetchpool cannot speak TLS itself (hiredis 0.14); "
                     "reach a TLS Redis through a TLS client such as stunnel and give its "
                     "redis:// address (docs/compose.md)",
                     shown);
        else
            snprintf(err, errlen, "bad Redis URL '%s' (want " FP_REDIS_URL_FORM ")", shown);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || strlen(host) == 0 ||
        strlen(host) >= sizeof(out->host)) {
        snprintf(err, errlen, "bad host in Redis URL");
        goto done;
    }
    /* IPv6 literals come back bracketed; hiredis wants them bare. */
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memcpy(out->host, host + 1, strlen(host) - 2);
    } else {
        strcpy(out->host, host);
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        v = strtol(port, &end, 10);
        if (*end || v < 1 || v > 65535) {
            snprintf(err, errlen, "bad port in Redis URL");
            goto done;
        }
        out->port = (int)v;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0) {
        v = strtol(path + 1, &end, 10);
        if (*end || end == path + 1 || v < 0 || v > 1000) {
            snprintf(err, errlen, "bad database number in Redis URL");
            goto done;
        }
        out->db = (int)v;
    }
    /* A part that is there but does not decode (%00) is an error, never left out. */
    cu = curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
    if ((cu != CURLUE_OK && cu != CURLUE_NO_USER) ||
        (cu == CURLUE_OK && take(out->user, sizeof(out->user), user) != 0)) {
        snprintf(err, errlen, "bad or too long user name in Redis URL");
        goto done;
    }
    cu = curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
    if ((cu != CURLUE_OK && cu != CURLUE_NO_PASSWORD) ||
        (cu == CURLUE_OK && take(out->password, sizeof(out->password), pass) != 0)) {
        snprintf(err, errlen, "bad or too long password in Redis URL");
        goto done;
    }
    rc = 0;
done:
    curl_free(user);
    curl_free(pass);
    curl_free(path);
    curl_free(port);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}
