/* hostgroup.h - a task's host budget by registered domain (a job with host_group=domain).
 *
 * The per-host budget's key is derived in Lua from the task record (fp_polite.h's
 * fp_parse), and Lua has no public suffix list. So the master looks each task's host up
 * in libpsl's list when it feeds the task and writes into the task's flags (bits 4-7,
 * fp_record.h) how many labels of the host name its registered domain has:
 * a.img.example.co.uk -> 3 (example.co.uk). The scripts keep that many labels, so
 * a.cdn.example and b.cdn.example share one budget, and no script makes a Redis call for
 * it. A host that is an IP literal, that has no registered domain (localhost, co.uk) or
 * whose registered domain is the host name itself gets 0: its key stays the host name.
 * fp_task_host_key (fp_record.h) is the scripts' rule in C. */
#ifndef FPM_HOSTGROUP_H
#define FPM_HOSTGROUP_H

#include <stddef.h>

/* What a job's per-host budget is kept per (job field host_group: "host" or "domain"). */
enum { FPM_GROUP_HOST, FPM_GROUP_DOMAIN };
/* "host" or "domain" (len bytes): FPM_GROUP_*, or -1. */
int fpm_group_parse(const char *s, size_t len);
const char *fpm_group_str(int group);

typedef struct fpm_hostgroup fpm_hostgroup;

/* Loads the list: the newer of the system's file (Debian's publicsuffix package) and the
 * list built into libpsl (psl_latest, falling back to psl_builtin). NULL if neither is
 * there (logged); the caller frees it with fpm_hostgroup_free. */
fpm_hostgroup *fpm_hostgroup_new(void);
void fpm_hostgroup_free(fpm_hostgroup *g);

/* The label count for the flags of a task with this URL (a normalised URL, as the task
 * record holds it); 0 for none. Remembers the last hosts looked up (a small fixed table). */
unsigned fpm_hostgroup_labels(fpm_hostgroup *g, const char *url);

/* The host as fp_parse takes it from a task's URL: between "scheme://" and the first /?#,
 * after the last '@', up to a ':' (a bracketed IPv6 literal whole), lower-cased: the
 * Lua's text rules, not a URL parser's, so both find the same name in what curl_url()
 * normalised (line.c). Returns its length, 0 if there is none or it does not fit. */
size_t fpm_hostgroup_host(const char *url, char *out, size_t outlen);

#endif
