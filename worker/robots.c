/* robots.c - robots.txt parsing and matching (see robots.h). */
#include "robots.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int lower_eq(const char *a, size_t alen, const char *b)
{
    size_t i;

    for (i = 0; i < alen; i++)
        if (b[i] == '\0' || tolower((unsigned char)a[i]) != b[i])
            return 0;
    return b[alen] == '\0';
}

static void trim(const char **p, const char **end)
{
    while (*p < *end && (**p == ' ' || **p == '\t'))
        (*p)++;
    while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
        (*end)--;
}

/* The product token of a user-agent value ("FetchPool/2.1 (+x)" -> "fetchpool"), compared
 * with token; "*" is reported separately. */
static int names_token(const char *v, size_t n, const char *token, int *star)
{
    size_t k = 0;

    while (k < n && (isalnum((unsigned char)v[k]) || v[k] == '_' || v[k] == '-'))
        k++;
    if (k == 0) {
        *star = n >= 1 && v[0] == '*';
        return 0;
    }
    return lower_eq(v, k, token);
}

/* Crawl-delay: a decimal number of seconds, at most a day; anything else is ignored. */
static double delay_of(const char *v, size_t n)
{
    char buf[32], *end;
    double d;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    d = strtod(buf, &end);
    if (*end != '\0' || !(d >= 0 && d <= 86400))
        return -1;
    return d;
}

void fp_robots_parse(fp_robots *r, const char *text, size_t len, const char *token)
{
    /* Two passes over the groups: ours (0), then "*" (1) if ours is not there. */
    const char *end = text + (len > FP_ROBOTS_MAX ? FP_ROBOTS_MAX : len);
    int pass, found = 0;

    memset(r, 0, sizeof(*r));
    r->text = text;
    r->crawl_delay = -1;
    r->kind = FP_ROBOTS_ALLOW_ALL;
    if (memchr(text, '\0', (size_t)(end - text)))
        return; /* not text: no rules */
    for (pass = 0; pass < 2 && !found; pass++) {
        const char *p = text;
        int in_agents = 0, applies = 0;
        while (p < end) {
            const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon, *hash, *k, *ke, *v, *ve;
            int star = 0;
            if (eol == NULL)
                eol = end;
            hash = memchr(p, '#', (size_t)(eol - p));
            ve = hash ? hash : eol;
            colon = memchr(p, ':', (size_t)(ve - p));
            k = p;
            p = eol + (eol < end);
            if (colon == NULL)
                continue;
            ke = colon;
            v = colon + 1;
            trim(&k, &ke);
            trim(&v, &ve);
            if (lower_eq(k, (size_t)(ke - k), "user-agent")) {
                int ours = names_token(v, (size_t)(ve - v), token, &star);
                if (!in_agents)
                    applies = 0; /* a new group starts */
                in_agents = 1;
                if ((pass == 0 && ours) || (pass == 1 && star))
                    applies = 1;
                continue;
            }
            in_agents = 0;
            if (!applies)
                continue;
            found = 1;
            if (lower_eq(k, (size_t)(ke - k), "crawl-delay")) {
                double d = delay_of(v, (size_t)(ve - v));
                if (d >= 0)
                    r->crawl_delay = d;
            } else if (lower_eq(k, (size_t)(ke - k), "allow") ||
                       lower_eq(k, (size_t)(ke - k), "disallow")) {
                if (ve == v || r->nrules == FP_ROBOTS_RULES_MAX)
                    continue; /* "Disallow:" with no path is no rule */
                r->rule[r->nrules].off = (uint32_t)(v - text);
                r->rule[r->nrules].len = (uint32_t)(ve - v);
                r->rule[r->nrules].allow = tolower((unsigned char)*k) == 'a';
                r->nrules++;
            }
        }
    }
    if (r->nrules > 0)
        r->kind = FP_ROBOTS_RULES;
}

void fp_robots_for_status(fp_robots *r, long http_code)
{
    memset(r, 0, sizeof(*r));
    r->crawl_delay = -1;
    r->kind = http_code >= 400 && http_code < 500 ? FP_ROBOTS_ALLOW_ALL : FP_ROBOTS_DISALLOW_ALL;
}

/* Does pattern ('*' any run, a final '$' the end) match the start of s? The classic
 * wildcard walk that only ever backs up to the last '*': O(pattern x path), so no pattern
 * of a hostile robots.txt can make it exponential. */
static int match(const char *pat, size_t plen, const char *s)
{
    int anchored = plen > 0 && pat[plen - 1] == '$';
    size_t i = 0, star = (size_t)-1;
    const char *after = NULL;

    if (anchored)
        plen--;
    for (;;) {
        if (i == plen && !anchored)
            return 1; /* the whole pattern matched a prefix */
        if (*s == '\0')
            break;
        if (i < plen && pat[i] == '*') {
            star = i++;
            after = s;
        } else if (i < plen && pat[i] == *s) {
            i++;
            s++;
        } else if (star != (size_t)-1) {
            i = star + 1;
            s = ++after;
        } else {
            return 0;
        }
    }
    while (i < plen && pat[i] == '*')
        i++;
    return i == plen;
}

int fp_robots_allowed(const fp_robots *r, const char *path)
{
    size_t i, best = 0;
    int allow = 1, any = 0;

    if (strcmp(path, "/robots.txt") == 0)
        return 1;
    if (r->kind != FP_ROBOTS_RULES)
        return r->kind == FP_ROBOTS_ALLOW_ALL;
    for (i = 0; i < r->nrules; i++) {
        const fp_robots_rule *u = &r->rule[i];
        if (!match(r->text + u->off, u->len, path))
            continue;
        if (!any || u->len > best || (u->len == best && u->allow && !allow)) {
            best = u->len;
            allow = u->allow;
            any = 1;
        }
    }
    return allow;
}
