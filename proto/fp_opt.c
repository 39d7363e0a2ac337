/* fp_opt.c - option and environment values (see fp_opt.h). */
#include "fp_opt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fp_redis_url.h"

static const char *prog = "fetchpool";

void fp_opt_init(const char *name)
{
    prog = name;
}

int fp_opt_num(const char *what, const char *s, double min, double max, int whole, double *out)
{
    char *end;
    double v;

    if ((s[0] < '0' || s[0] > '9') && s[0] != '.') /* strtod would take a sign or blanks */
        goto bad;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max || (whole && v != floor(v)))
        goto bad;
    *out = v;
    return 0;
bad:
    if (whole)
        fprintf(stderr, "%s: bad value for %s: '%s' (want a whole number from %.0f to %.0f)\n",
                prog, what, s, min, max);
    else
        fprintf(stderr, "%s: bad value for %s: '%s' (want a number from %g to %g)\n", prog, what, s,
                min, max);
    return -1;
}

const char *fp_opt_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int fp_opt_env_num(const char *name, double min, double max, int whole, double *out)
{
    const char *v = fp_opt_env(name);
    return v ? fp_opt_num(name, v, min, max, whole, out) : 0;
}

int fp_opt_env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

int fp_opt_env_secret(const char *name, char *buf, size_t buflen, const char **out)
{
    char fname[128];
    const char *v = fp_opt_env(name), *path;
    ssize_t n;
    size_t len = 0;
    int fd, e;

    *out = NULL;
    snprintf(fname, sizeof(fname), "%s_FILE", name);
    path = fp_opt_env(fname);
    if (v && path) {
        fprintf(stderr, "%s: both %s and %s are set; give one\n", prog, name, fname);
        return -1;
    }
    if (path == NULL) {
        *out = v;
        return 0;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "%s: cannot read %s '%s': %s\n", prog, fname, path, strerror(errno));
        return -1;
    }
    while (len < buflen && (n = read(fd, buf + len, buflen - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            close(fd);
            fprintf(stderr, "%s: cannot read %s '%s': %s\n", prog, fname, path, strerror(e));
            return -1;
        }
        len += (size_t)n;
    }
    close(fd);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len == buflen || memchr(buf, '\0', len) != NULL) {
        fprintf(stderr, "%s: %s '%s' is too long or not text\n", prog, fname, path);
        return -1;
    }
    if (len == 0) {
        fprintf(stderr, "%s: %s '%s' is empty\n", prog, fname, path);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

void fp_opt_bad(char *const *argv, int ch)
{
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;

    if (arg && strncmp(arg, "--", 2) == 0)
        fprintf(stderr, "%s: %s option '%.*s'\n", prog,
                ch == ':' ? "a value is missing for" : "unknown, ambiguous or misused",
                (int)strcspn(arg, "="), arg);
    else if (optopt > 0 && optopt < 127 && optopt > ' ')
        fprintf(stderr, "%s: %s option '-%c'\n", prog,
                ch == ':' ? "a value is missing for" : "unknown", optopt);
    else
        fprintf(stderr, "%s: bad option\n", prog);
}

void fp_opt_unexpected(const char *arg)
{
    char shown[512];

    fp_redis_url_shown(shown, sizeof(shown), arg);
    fprintf(stderr, "%s: unexpected argument '%s'\n", prog, shown);
}
