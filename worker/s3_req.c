/* s3_req.c - object store location, keys, signed request setup and answers (s3_req.h). */
#include "s3_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* S3's bucket naming rules: 3-63 of [a-z0-9.-], starting and ending alphanumeric. */
static int bucket_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 3 || len > 63)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
              s[i] == '-'))
            return 0;
    return s[0] != '.' && s[0] != '-' && s[len - 1] != '.' && s[len - 1] != '-';
}

/* A prefix holds what a result's path may hold (fp_record.c): no escaping ever needed,
 * never "..", no empty segment. */
static int prefix_valid(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '/' || ch == '-'))
            return 0;
        if (ch == '.' && i + 1 < len && s[i + 1] == '.')
            return 0;
        if (ch == '/' && (i == 0 || s[i - 1] == '/'))
            return 0;
    }
    return 1;
}

static int parse_endpoint(fp_s3_conf *c, const char *endpoint, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL;
    int rc = -1;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "S3 endpoint is not a URL: '%.200s'", endpoint);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(err, errlen, "S3 endpoint must be http:// or https://");
        goto out;
    }
    if ((path && strcmp(path, "/") != 0) || user || query) {
        snprintf(err, errlen, "S3 endpoint is scheme://host[:port] only (no path, user or query)");
        goto out;
    }
    if (strlen(host) >= sizeof(c->host)) {
        snprintf(err, errlen, "S3 endpoint host too long");
        goto out;
    }
    snprintf(c->scheme, sizeof(c->scheme), "%s", scheme);
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->port = port ? atoi(port) : 0;
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(user);
    curl_free(query);
    curl_url_cleanup(u);
    return rc;
}

int fp_s3_conf_parse(fp_s3_conf *c, const char *output, const char *endpoint, const char *region,
                     const char *addressing, const char *key_id, const char *secret,
                     const char *token, char *err, size_t errlen)
{
    const char *b, *slash, *p;
    size_t blen, plen;

    memset(c, 0, sizeof(*c));
    if (strncmp(output, "s3://", 5) != 0) {
        snprintf(err, errlen, "not an s3:// output");
        return -1;
    }
    b = output + 5;
    slash = strchr(b, '/');
    blen = slash ? (size_t)(slash - b) : strlen(b);
    if (!bucket_valid(b, blen)) {
        snprintf(err, errlen, "bad S3 bucket name in --output (3-63 of a-z 0-9 . -)");
        return -1;
    }
    memcpy(c->bucket, b, blen);
    p = slash ? slash + 1 : "";
    plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    if (plen > FP_S3_PREFIX_MAX || !prefix_valid(p, plen)) {
        snprintf(err, errlen,
                 "bad S3 key prefix in --output (up to %d of A-Z a-z 0-9 . _ - /, no '..' or '//')",
                 FP_S3_PREFIX_MAX);
        return -1;
    }
    memcpy(c->prefix, p, plen);

    region = region && *region ? region : "us-east-1";
    if (strlen(region) >= sizeof(c->region) ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)) {
        snprintf(err, errlen, "bad S3 region '%.63s'", region);
        return -1;
    }
    snprintf(c->region, sizeof(c->region), "%s", region);
    snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:s3", c->region);

    if (endpoint && *endpoint) {
        if (parse_endpoint(c, endpoint, err, errlen) != 0)
            return -1;
    } else {
        snprintf(c->scheme, sizeof(c->scheme), "https");
        snprintf(c->host, sizeof(c->host), "s3.%s.amazonaws.com", c->region);
    }
    if (addressing == NULL || *addressing == '\0' || strcmp(addressing, "auto") == 0)
        c->addressing = (endpoint && *endpoint) ? FP_S3_PATH : FP_S3_VIRTUAL;
    else if (strcmp(addressing, "path") == 0)
        c->addressing = FP_S3_PATH;
    else if (strcmp(addressing, "virtual") == 0)
        c->addressing = FP_S3_VIRTUAL;
    else {
        snprintf(err, errlen, "S3 addressing must be path, virtual or auto");
        return -1;
    }
    if (c->addressing == FP_S3_VIRTUAL && strchr(c->bucket, '.') &&
        strcmp(c->scheme, "https") == 0) {
        /* bucket.with.dots.s3... fails the certificate's one-label wildcard */
        snprintf(err, errlen, "a bucket name with dots needs path-style addressing over https");
        return -1;
    }

    if (key_id == NULL || *key_id == '\0' || secret == NULL || *secret == '\0') {
        snprintf(err, errlen, "S3 output needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return -1;
    }
    if (strchr(key_id, ':') || snprintf(c->userpwd, sizeof(c->userpwd), "%s:%s", key_id, secret) >=
                                   (int)sizeof(c->userpwd)) {
        snprintf(err, errlen, "AWS_ACCESS_KEY_ID holds ':' or the credentials are too long");
        return -1;
    }
    if (token && *token) {
        if (strlen(token) >= sizeof(c->token) || strpbrk(token, "\r\n")) {
            snprintf(err, errlen, "AWS_SESSION_TOKEN too long or not one line");
            return -1;
        }
        snprintf(c->token, sizeof(c->token), "%s", token);
    }
    c->on = 1;
    return 0;
}

void fp_s3_key(const fp_s3_conf *c, const char *sha, const char *ext, char *key)
{
    snprintf(key, FP_S3_KEY_MAX + 1, "%s%s%.2s/%.64s.%.8s", c->prefix, c->prefix[0] ? "/" : "", sha,
             sha, ext);
}

void fp_s3_path(const fp_s3_conf *c, const char *key, char *out)
{
    snprintf(out, FP_PATH_MAX + 1, "s3://%s/%s", c->bucket, key);
}

int fp_s3_url(const fp_s3_conf *c, const char *key, char *out, size_t outlen)
{
    char port[16] = "";
    int n;

    if (c->port)
        snprintf(port, sizeof(port), ":%d", c->port);
    if (c->addressing == FP_S3_VIRTUAL)
        n = snprintf(out, outlen, "%s://%s.%s%s/%s", c->scheme, c->bucket, c->host, port, key);
    else
        n = snprintf(out, outlen, "%s://%s%s/%s/%s", c->scheme, c->host, port, c->bucket, key);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

const char *fp_s3_content_type(const char *ext)
{
    static const char *const map[][2] = {
        {"jpg", "image/jpeg"},  {"png", "image/png"},    {"gif", "image/gif"},
        {"webp", "image/webp"}, {"bmp", "image/bmp"},    {"ico", "image/x-icon"},
        {"tif", "image/tiff"},  {"tiff", "image/tiff"},  {"avif", "image/avif"},
        {"heic", "image/heic"}, {"svg", "image/svg+xml"}};
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(ext, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

int fp_s3_setup(CURL *e, const fp_s3_conf *c, fp_s3_method m, const char *key,
                const char *payload_sha, curl_off_t size, const char *content_type,
                struct curl_slist **hdrs)
{
    char url[FP_S3_KEY_MAX + 512], h[2200];
    struct curl_slist *l = NULL, *t;

    curl_slist_free_all(*hdrs);
    *hdrs = NULL;
    if (fp_s3_url(c, key, url, sizeof(url)) != 0)
        return -1;
    snprintf(h, sizeof(h), "x-amz-content-sha256: %s", m == FP_S3_PUT ? payload_sha : EMPTY_SHA256);
    if ((l = curl_slist_append(l, h)) == NULL)
        goto err;
    if (c->token[0]) {
        snprintf(h, sizeof(h), "x-amz-security-token: %s", c->token);
        if ((t = curl_slist_append(l, h)) == NULL)
            goto err;
        l = t;
    }
    if (m == FP_S3_PUT) {
        snprintf(h, sizeof(h), "Content-Type: %s", content_type);
        if ((t = curl_slist_append(l, h)) == NULL)
            goto err;
        l = t;
        /* Not "Expect:" to save the 100-continue round trip before bodies over 1 MB:
         * libcurl 7.88 signs the removed header as "expect" with an empty value, which
         * the request then lacks (tests/unit/test_s3.c caught it). */
    }
    *hdrs = l;
    if (m == FP_S3_PUT) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, size);
    } else {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 0L);
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, c->userpwd);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    return curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK ? 0 : -1;
err:
    curl_slist_free_all(l);
    return -1;
}

fp_s3_answer fp_s3_judge(fp_s3_method m, CURLcode rc, long code)
{
    switch (rc) {
    case CURLE_OK: break;
    case CURLE_READ_ERROR:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_ABORTED_BY_CALLBACK: return FP_S3_LOCAL;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_LOGIN_DENIED: return FP_S3_DENIED; /* configuration, not an outage */
    default: return FP_S3_RETRY;                  /* refused, timed out, reset, DNS, ... */
    }
    if (code >= 200 && code < 300)
        return FP_S3_DONE;
    /* HEAD answers 403 for a missing object to whom may not list the bucket: a key that
     * may write but not list must still PUT. The PUT's own 403 is the refusal. */
    if (m == FP_S3_HEAD && (code == 404 || code == 403))
        return FP_S3_MISSING;
    if (code >= 500 || code == 429 || code == 408)
        return FP_S3_RETRY;
    return FP_S3_DENIED;
}

void fp_s3_error_code(const char *body, size_t len, char *out, size_t outlen)
{
    const char *p, *end = body + len;
    size_t n = 0;

    out[0] = '\0';
    for (p = body; p + 6 <= end; p++)
        if (memcmp(p, "<Code>", 6) == 0)
            break;
    if (p + 6 > end)
        return;
    for (p += 6; p < end && *p != '<' && n + 1 < outlen; p++)
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
            out[n++] = *p;
    out[n] = '\0';
}
