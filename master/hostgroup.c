/* hostgroup.c - registered domains from libpsl, as label counts for the task flags (see
 * hostgroup.h). A lookup costs about 2.5 us; a direct-mapped table of the last hosts
 * seen (fixed size, so memory stays bounded whatever the job) makes a job's repeated
 * hosts nearly free. */
#include "hostgroup.h"

#include <libpsl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_log.h"
#include "fp_record.h"

#define CACHE_SLOTS 1024 /* a power of two */
#define CACHE_HOST  112  /* longer host names are looked up every time */

typedef struct slot {
    char host[CACHE_HOST]; /* "" when empty */
    unsigned labels;
} slot;

struct fpm_hostgroup {
    const psl_ctx_t *psl;
    psl_ctx_t *owned; /* psl_latest's, freed with the group; psl_builtin's is static */
    slot cache[CACHE_SLOTS];
};

int fpm_group_parse(const char *s, size_t len)
{
    if (len == 4 && memcmp(s, "host", 4) == 0)
        return FPM_GROUP_HOST;
    if (len == 6 && memcmp(s, "domain", 6) == 0)
        return FPM_GROUP_DOMAIN;
    return -1;
}

const char *fpm_group_str(int group)
{
    return group == FPM_GROUP_DOMAIN ? "domain" : "host";
}

fpm_hostgroup *fpm_hostgroup_new(void)
{
    fpm_hostgroup *g = calloc(1, sizeof(*g));

    if (g == NULL)
        fp_oom("for the public suffix list");
    g->owned = psl_latest(NULL);
    g->psl = g->owned ? g->owned : psl_builtin();
    if (g->psl == NULL) {
        fp_warn("no public suffix list (neither %s nor one built into libpsl): jobs with "
                "host_group=domain are limited per host name",
                psl_dist_filename());
        free(g);
        return NULL;
    }
    fp_info("grouping hosts by registered domain: the newer of %s and libpsl %s's own list",
            psl_dist_filename(), psl_get_version());
    return g;
}

void fpm_hostgroup_free(fpm_hostgroup *g)
{
    if (g == NULL)
        return;
    psl_free(g->owned);
    free(g);
}

size_t fpm_hostgroup_host(const char *url, char *out, size_t outlen)
{
    const char *p = url, *a, *end, *at;
    size_t n, i;

    /* ^[%a][%w+.-]*:// */
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    for (p++; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '+' || *p == '.' || *p == '-';
         p++)
        ;
    if (strncmp(p, "://", 3) != 0)
        return 0;
    a = p + 3;
    end = a + strcspn(a, "/?#");
    for (at = a; at < end; at++)
        if (*at == '@')
            a = at + 1; /* after the last '@' */
    if (*a == '[') {
        const char *close = memchr(a, ']', (size_t)(end - a));
        if (close == NULL)
            return 0; /* not a URL curl made; no label count, so the Lua's own key */
        n = (size_t)(close - a) + 1;
    } else {
        const char *colon = memchr(a, ':', (size_t)(end - a));
        n = (size_t)((colon ? colon : end) - a);
    }
    if (n == 0 || n >= outlen)
        return 0;
    for (i = 0; i < n; i++)
        out[i] = (a[i] >= 'A' && a[i] <= 'Z') ? (char)(a[i] - 'A' + 'a') : a[i];
    out[n] = '\0';
    return n;
}

/* host: lower-cased, as fpm_hostgroup_host gives it. */
static unsigned lookup(const psl_ctx_t *psl, const char *host)
{
    char name[FP_URL_MAX + 1];
    const char *reg, *last, *p;
    size_t n = strlen(host);
    unsigned labels = 1;
    int dot = 0;

    if (n == 0 || host[0] == '[' || n >= sizeof(name))
        return 0; /* an IPv6 literal */
    memcpy(name, host, n + 1);
    if (name[n - 1] == '.') {
        name[--n] = '\0'; /* example.com. is example.com */
        dot = 1;
    }
    /* An IPv4 literal, or anything else whose last label is a number: no top-level
     * domain is, and libpsl would call 1.1 the registered domain of 192.168.1.1. */
    last = strrchr(name, '.');
    last = last ? last + 1 : name;
    if (*last == '\0' || strspn(last, "0123456789") == strlen(last))
        return 0;
    reg = psl_registrable_domain(psl, name);
    if (reg == NULL || (reg == name && !dot))
        return 0; /* none (localhost, co.uk), or the host is its registered domain */
    for (p = reg; *p; p++)
        labels += *p == '.';
    return labels <= FP_TASK_GROUP_MAX ? labels : 0;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

unsigned fpm_hostgroup_labels(fpm_hostgroup *g, const char *url)
{
    char host[FP_URL_MAX + 1];
    size_t n;
    slot *s;

    if (g == NULL || (n = fpm_hostgroup_host(url, host, sizeof(host))) == 0)
        return 0;
    if (n >= CACHE_HOST)
        return lookup(g->psl, host);
    s = &g->cache[hash(host) & (CACHE_SLOTS - 1)];
    if (strcmp(s->host, host) != 0) {
        memcpy(s->host, host, n + 1);
        s->labels = lookup(g->psl, host);
    }
    return s->labels;
}
