/* fp_text.c - strict number parsing and UTF-8 validation for untrusted bytes. */
#include "fp_text.h"

#include <stdio.h>
#include <string.h>

int fp_text_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1; /* one spelling per number: no leading zeros */
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t fp_text_utf8_first_invalid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], need, min, cp, k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, min = 0x80, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, min = 0x800, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return i;
        }
        if (i + need >= len)
            return i;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += need + 1;
    }
    return len;
}

int fp_text_utf8_valid(const char *s, size_t len)
{
    return fp_text_utf8_first_invalid(s, len) == len;
}

int fp_text_valid(const char *s, size_t len, int allow_space)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (c == ' ' && !allow_space))
            return 0;
    }
    return fp_text_utf8_valid(s, len);
}

int fp_text_url_redact(char *dst, size_t dstlen, const char *url)
{
    const char *auth = strstr(url, "://"), *end, *at = NULL, *colon = NULL, *p;

    if (dstlen == 0)
        return 0;
    if (auth == NULL || strcspn(url, "/?#") < (size_t)(auth - url)) {
        snprintf(dst, dstlen, "%s", url);
        return 0;
    }
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    /* The last '@' ends the user info (an unencoded '@' in a password is not rare). */
    for (p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL) {
        snprintf(dst, dstlen, "%s", url);
        return 0;
    }
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon)
        snprintf(dst, dstlen, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(dst, dstlen, "%.*s***%s", (int)(auth - url), url, at);
    return 1;
}
