/* fp_opt.c - option and environment values (see fp_opt.h). */
#include "fp_opt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
