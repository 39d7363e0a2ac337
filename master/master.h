/* master.h - what the parts of fetchpool-master share: its settings, the Redis connection,
 * the table of active jobs, and one function per step of the main loop (main.c).
 *
 * Every step returns how much it did (0 = nothing, so the loop may idle) or FPM_LOST when
 * the Redis connection broke; the loop then reconnects and reloads the job table from
 * Redis, which holds all the state. A Redis error reply is logged and counted in
 * m->errors; the loop then pauses a moment and reloads, so a bad key cannot spin it. */
#ifndef FPM_MASTER_H
#define FPM_MASTER_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_redis_url.h"
#include "fp_scripts.h"
#include "hostgroup.h"
#include "rows.h"

#define FPM_LOST          (-1)
#define FPM_PART_SIZE_MAX FP_PART_SIZE_MAX /* result slots per part (fp_keys.h) */

typedef struct fpm_config {
    const char *redis_url;
    long queue_depth;        /* refill fp:tasks while it is shorter than this */
    long feed_batch;         /* input lines taken from one job per turn */
    long retention;          /* seconds a finished job's keys are kept */
    long window;             /* most tasks of one job in Redis at once, as tasks or results */
    long part_size;          /* result slots per results part, for jobs taken from now on */
    const char *results_dir; /* <dir>/<job>/part-NNNNNN.<tsv|jsonl> */
    const char *jobs_dir;    /* input files a job may name; NULL: none allowed */
    int verbose;
    int allow_eviction;  /* run although Redis may evict keys (warn instead) */
    const char *metrics; /* [ADDR:]PORT of the Prometheus endpoint, or NULL */
    long host_conns;     /* default per-job cap of transfers in flight per host (0: none) */
    double host_rate;    /* default per-job cap of requests per second per host (0: none) */
    int host_group;      /* default per-job host budget: FPM_GROUP_HOST or FPM_GROUP_DOMAIN */
} fpm_config;

/* The master's copy of a job's feeding state. The master is the only writer of fed, total
 * and sealed, so the copy stays right; it is reloaded from Redis after any doubt. */
typedef struct fpm_job {
    uint64_t id;
    uint64_t lines;    /* input lines the client pushed */
    uint64_t fed;      /* input lines consumed */
    uint64_t total;    /* tasks created, invalid lines included */
    uint32_t attempts; /* max attempts per URL */
    uint32_t flags;    /* task flags */
    int sealed;
    int paused;          /* not fed until resumed (field paused in the job hash) */
    int numbered;        /* lines come as "<line number>\t<line>" (field numbered) */
    int group;           /* FPM_GROUP_DOMAIN: tasks carry their host's label count (hostgroup.h) */
    uint64_t checked_ms; /* a paused job's fields were last read then (control.c) */
    int uploading;       /* the client is still pushing lines (upload=open) */
    int from_file;       /* input is a file in the jobs folder, read by the master */
    uint64_t in_off;     /* bytes of that file consumed */
    uint64_t part_size;  /* result slots per results part */
    fpm_format format;   /* of the results files */
    char *input;         /* the file's path (from_file), owned by the table */
} fpm_job;

typedef struct fpm_out fpm_out; /* results.c: a job's results files being written */

typedef struct fpm {
    fpm_config cfg;
    fp_redis_url url;
    redisContext *rc;
    fpm_job *jobs; /* active jobs, in intake order */
    size_t njobs, capjobs;
    size_t next;           /* round-robin cursor into jobs */
    int errors;            /* Redis error replies seen in this loop round */
    int resync;            /* reload the job table from Redis before the next step */
    int done_empty;        /* report.c found fp:done empty: the idle wait watches it */
    uint64_t connected_ms; /* monotonic time of the last (re)connect */
    /* Monotonic time of the last reason to doubt that an expired heartbeat means a dead
     * worker: a (re)connect, a reply that took over FPM_STALL_MS (Redis stalled: DEBUG
     * SLEEP, CLIENT PAUSE, a slow disk), a jump of Redis's clock. The reaper waits a full
     * heartbeat lifetime after it. */
    uint64_t doubt_ms;
    int64_t clock_offset_ms; /* Redis TIME minus our monotonic clock, at the last look */
    uint64_t reconnects;     /* read by the metrics thread: only atomic access */
    fpm_out *outs;           /* results.c's table, kept across reloads of the job table */
    size_t nouts, capouts;
    fpm_hostgroup *hostgroup; /* loaded for the first job with host_group=domain */
    int hostgroup_tried;      /* the load was tried (it logs if there is no list) */
} fpm;

#define FPM_STALL_MS 1000

/* Set by the SIGTERM/SIGINT handler; steps stop early, the loop exits. */
extern volatile sig_atomic_t fpm_stop;

/* redis.c: connection, reconnect with backoff, commands. */
int fpm_redis_open(fpm *m, char *err, size_t errlen);
int fpm_redis_reconnect(fpm *m); /* 0 connected again, -1 asked to stop */
void fpm_redis_close(fpm *m);
/* A command; NULL when the connection broke (the caller returns FPM_LOST). */
redisReply *fpm_redis_cmd(fpm *m, const char *fmt, ...);
/* Pipelining: queue commands, then read one reply per command (NULL: connection broke). */
int fpm_redis_append(fpm *m, const char *fmt, ...);
int fpm_redis_append_argv(fpm *m, int argc, const char **argv, const size_t *lens);
int fpm_redis_append_call(fpm *m, fp_call *c);
/* A script's call, by its SHA1 (fp_call_by_sha; sent again with the source after NOSCRIPT). */
redisReply *fpm_redis_call(fpm *m, fp_call *c);
redisReply *fpm_redis_reply(fpm *m);
/* 1 (and logs, counts) if r is an error reply; what names the step for the log. */
int fpm_redis_failed(fpm *m, const redisReply *r, const char *what);
/* Monotonic milliseconds. */
uint64_t fpm_now_ms(void);
/* Sleeps ms milliseconds, or less if a signal arrives (the caller checks fpm_stop). */
void fpm_nap_ms(long ms);
/* Keeps a value that does not decode in the dead-letter list fp:dead (capped). */
int fpm_dead_letter(fpm *m, const char *s, size_t len);
/* Reads a reply string or integer as an unsigned number; def if nil or not a number. */
uint64_t fpm_reply_u64(const redisReply *r, uint64_t def);

/* intake.c: the active job table, intake of new jobs, resume after start or reconnect. */
int fpm_intake_step(fpm *m);
int fpm_intake_take(fpm *m, const redisReply *id); /* a job id already moved to active */
int fpm_intake_resume(fpm *m);
fpm_job *fpm_job_find(fpm *m, uint64_t id);
void fpm_job_remove(fpm *m, uint64_t id);

/* feed.c: turns input lines into tasks while the queue is short. */
int fpm_feed_step(fpm *m);

/* results.c: results from Redis to the results files. pending: results of the job not yet
 * on the master's disk (counted against the window). complete: drains everything and
 * writes every part; 1 when the files are complete, 0 if not yet (an error was logged),
 * FPM_LOST. */
int fpm_results_step(fpm *m);
uint64_t fpm_results_pending(fpm *m, const fpm_job *j);
int fpm_results_complete(fpm *m, uint64_t job, fpm_format fmt, uint64_t psize, uint64_t total,
                         int cancelled);
void fpm_results_free(fpm *m);

/* relay.c: results files to clients that cannot see the results folder (fp:relay). */
int fpm_relay_step(fpm *m);

/* input.c: lines of an input file in the jobs folder. */
typedef struct fpm_lines {
    size_t n;
    const char **line;
    size_t *len;
    char *buf; /* holds the lines */
} fpm_lines;
/* Resolves a job's input name inside the jobs folder into a malloc'd absolute path; NULL
 * (why in err) if it is absent, escapes the folder or is not a regular file. */
char *fpm_input_resolve(const char *jobs_dir, const char *name, char *err, size_t errlen);
/* Reads up to max lines from byte off, as scripts/submit cuts them (FP_LINE_CUT bytes, a
 * last line without '\n' counts). *next: the offset after them; *eof set at the end.
 * Returns 0, or -1 (err set). */
int fpm_input_read(const char *path, uint64_t off, size_t max, fpm_lines *out, uint64_t *next,
                   int *eof, char *err, size_t errlen);
void fpm_lines_free(fpm_lines *l);

/* report.c: completed jobs get their summary, wake-up and expiry. */
int fpm_report_step(fpm *m);
/* The same for a job cancelled (control.c), with the results it has. */
int fpm_report_cancelled(fpm *m, uint64_t id);

/* control.c: pause, resume and cancel, as clients ask through fp:ctl. */
int fpm_control_step(fpm *m);
/* Applies a job hash's paused/cancelled fields; 1 if the job was cancelled. */
int fpm_control_apply(fpm *m, uint64_t id, int paused, int cancelled);
/* Looks at a paused job's fields again (at most once a second); 1 if it left the table. */
int fpm_control_recheck(fpm *m, fpm_job *j);
/* Sets the job's copy of paused, logging a change. */
void fpm_control_paused(fpm_job *j, int paused);

/* upkeep.c: due retries back to the queue; tasks of dead workers back too (the reaper). */
int fpm_promote_step(fpm *m);
int fpm_reap_dead_workers_step(fpm *m);

#endif
