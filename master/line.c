/* line.c - the URL list line classifier (see line.h). */
#include "line.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fp_record.h"
#include "fp_text.h"

static fp_line_kind invalid(char *out, size_t outlen, const char *why)
{
    snprintf(out, outlen, "%s", why);
    return FP_LINE_INVALID;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

fp_line_kind fp_line_parse(const char *line, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[FP_URL_MAX * 3 + 1];
    size_t i, n = 0;
    CURLU *u;
    CURLUcode rc;
    char *scheme = NULL, *host = NULL, *norm = NULL;
    fp_line_kind kind;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > FP_LINE_MAX)
        return invalid(out, outlen, "line longer than 8192 bytes");
    if (memchr(line, '\0', len))
        return invalid(out, outlen, "NUL byte in line");
    /* A UTF-8 byte order mark, as Windows editors write at the start of a file. */
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3, len -= 3;
    while (len > 0 && is_blank(line[0]))
        line++, len--;
    while (len > 0 && is_blank(line[len - 1]))
        len--;
    if (len == 0 || line[0] == '#')
        return FP_LINE_SKIP;
    if (!fp_text_utf8_valid(line, len))
        return invalid(out, outlen, "not valid UTF-8");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            return invalid(out, outlen, "control character in line");
        if (c == ' ')
            return invalid(out, outlen, "space inside URL");
        /* Non-ASCII text is percent-encoded as browsers do, so libcurl sees ASCII. */
        if (c >= 0x80) {
            buf[n++] = '%';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n] = '\0';

    u = curl_url();
    if (u == NULL)
        return invalid(out, outlen, "out of memory");
    rc = curl_url_set(u, CURLUPART_URL, buf, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        kind = invalid(out, outlen, "not a URL");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        kind = invalid(out, outlen, "unsupported scheme (only http and https)");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        kind = invalid(out, outlen, "URL without a host");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_URL, &norm, 0) != CURLUE_OK) {
        kind = invalid(out, outlen, "not a URL");
        goto done;
    }
    if (strlen(norm) > FP_URL_MAX || strlen(norm) >= outlen ||
        !fp_text_valid(norm, strlen(norm), 0)) {
        kind = invalid(out, outlen, "URL too long after normalisation");
        goto done;
    }
    strcpy(out, norm);
    kind = FP_LINE_URL;
done:
    curl_free(norm);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return kind;
}

uint64_t fp_line_numbered(const char *line, size_t len, size_t *skip)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < len && i < 19 && line[i] >= '0' && line[i] <= '9'; i++)
        n = n * 10 + (uint64_t)(line[i] - '0');
    if (i == 0 || i >= len || line[i] != '\t' || n == 0)
        return 0;
    *skip = i + 1;
    return n;
}
