/* fp_opt.h - option and environment values, read the same way by master and worker.
 *
 * Both programs take each setting as a flag or, in containers, as a FETCHPOOL_* variable;
 * a bad value of either is a usage error (the program exits 2 saying which), never
 * silently ignored. */
#ifndef FP_OPT_H
#define FP_OPT_H

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

#endif
