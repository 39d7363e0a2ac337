/* fp_opt.h - option and environment values, read the same way by master and worker.
 *
 * Both programs take each setting as a flag or, in containers, as a FETCHPOOL_* variable;
 * a bad value of either is a usage error (the program exits 2 saying which), never
 * silently ignored. */
#ifndef FP_OPT_H
#define FP_OPT_H

#include <stddef.h>

/* The program name usage errors start with ("fetchpool-worker"). */
void fp_opt_init(const char *prog);
/* A decimal number in [min, max] (a fraction only if !whole); no sign, blanks or trailing
 * text. 0, or -1 with a message naming what on stderr. */
int fp_opt_num(const char *what, const char *s, double min, double max, int whole, double *out);
/* The same for environment variable name; 0 also if it is unset or empty (out untouched). */
int fp_opt_env_num(const char *name, double min, double max, int whole, double *out);
/* 1 if the variable says 1, true or yes. */
int fp_opt_env_flag(const char *name);
/* The variable's value, or NULL if unset or empty. */
const char *fp_opt_env(const char *name);
/* A secret setting, read as Docker secrets are mounted: the variable name, or else the
 * contents of the file named by name_FILE (FETCHPOOL_REDIS_FILE, AWS_SECRET_ACCESS_KEY_FILE),
 * trailing newlines dropped, into buf. *out is the value (the variable's, or buf), or
 * NULL if neither is set. -1, with a message on stderr that names the variable and the
 * file but never shows the contents, if both are set, or the file cannot be read, is
 * empty or does not fit buf. */
int fp_opt_env_secret(const char *name, char *buf, size_t buflen, const char **out);
/* The usage error for getopt_long's '?' or ':' (call it with opterr = 0 and an optstring
 * that starts with ':'), naming the option but never a value given with '=': a
 * --redis=URL holds a password. */
void fp_opt_bad(char *const *argv, int ch);
/* The usage error for a stray argument, with anything that could be a URL's user info
 * (redis://user:pw@h given without --redis) shown as ***. */
void fp_opt_unexpected(const char *arg);

#endif
