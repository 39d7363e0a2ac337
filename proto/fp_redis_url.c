/* fp_redis_url.c - Redis address parsing shared by master and worker. */
#include <stddef.h>

#include "fp_redis_url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_text.h"

int fp_redis_url_parse(const char *url, fp_redis_url *out, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *pass = NULL;
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
        fp_text_url_redact(shown, sizeof(shown), url); /* no password in an error message */
        snprintf(err, errlen, "bad Redis URL '%s' (want redis://[:password@]host[:port][/db])",
                 shown);
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
    if (curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE) == CURLUE_OK) {
        if (strlen(pass) >= sizeof(out->password)) {
            snprintf(err, errlen, "password in Redis URL too long");
            goto done;
        }
        strcpy(out->password, pass);
    }
    rc = 0;
done:
    curl_free(pass);
    curl_free(path);
    curl_free(port);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}
