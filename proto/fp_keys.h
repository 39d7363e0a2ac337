/* fp_keys.h - names of every Redis key fetchpool uses (see PROTOCOL.md).
 * One prefix, "fp:", so a shared Redis can be inspected and cleaned with one pattern. */
#ifndef FP_KEYS_H
#define FP_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define FP_KEY_SEQ         "fp:seq"
#define FP_KEY_JOBS_NEW    "fp:jobs:new"
#define FP_KEY_JOBS_ACTIVE "fp:jobs:active"
#define FP_KEY_TASKS       "fp:tasks"
#define FP_KEY_WORKERS     "fp:workers"
#define FP_KEY_RETRY       "fp:retry"
#define FP_KEY_DONE        "fp:done"
#define FP_KEY_DEAD        "fp:dead"
/* Service keys (fp_service.h): counters of every completed job, cancelled jobs, control. */
#define FP_KEY_STATS     "fp:stats"
#define FP_KEY_STATS_LAT "fp:stats:lat"
#define FP_KEY_CANCELLED "fp:cancelled"
#define FP_KEY_CONTROL   "fp:ctl"
#define FP_KEY_PARKED    "fp:parked" /* hosts with parked tasks (fp_polite.h) */

/* <host>: robots.txt's Crawl-delay; probe:<origin>: its rules are being found out. */
#define FP_KEY_CRAWL_PREFIX "fp:crawl:"

#define FP_KEY_PROC_PREFIX_LEN 8          /* strlen("fp:proc:") */
#define FP_KEY_RELAY           "fp:relay" /* jobs whose results a client wants through Redis */

#define FP_KEY_MAX 128

/* A worker refreshes fp:worker:<id> this often, with this expiry; the master treats a
 * worker whose key has expired as dead. */
#define FP_HEARTBEAT_MS     1000
#define FP_HEARTBEAT_TTL_MS 5000

/* Per-job keys: fp:job:<id>, fp:job:<id>:in, :out, :lat, :summary, :wake, :throttle, :down,
 * :parts, :rows, :writer. */
typedef enum fp_job_key {
    FP_JOB_META,
    FP_JOB_IN,
    FP_JOB_OUT, /* results not yet written to the results files (a list) */
    FP_JOB_LAT,
    FP_JOB_SUMMARY,
    FP_JOB_WAKE,
    FP_JOB_THROTTLE, /* host -> times one of the job's tasks was parked for it */
    FP_JOB_DOWN,     /* hosts given up for the job (host_unavailable) */
    FP_JOB_PARTS,    /* bitmap: bit p set once the master starts writing results part p */
    FP_JOB_ROWS,     /* results files relayed to a client that cannot see them (a list) */
    FP_JOB_WRITER    /* the master writing the job's results files (a lease) */
} fp_job_key;

/* Results are written out in parts of this many result slots (idx / part size), unless
 * the job hash says otherwise (field part_size, set by the master at intake). */
#define FP_PART_SIZE_DEFAULT     65536
#define FP_PART_SIZE_DEFAULT_STR "65536" /* the same, for the Lua scripts */
/* At most this many (its seen bitmap is 2 MB): the master takes no more, and the scripts
 * refuse the results of a job whose part_size is not a whole number from 1 to this. */
#define FP_PART_SIZE_MAX     16777216
#define FP_PART_SIZE_MAX_STR "16777216"

/* Writes the key into buf (FP_KEY_MAX bytes). Returns buf. */
char *fp_key_job(char *buf, uint64_t job, fp_job_key which);
/* fp:proc:<worker> and fp:worker:<worker> (heartbeat). */
char *fp_key_proc(char *buf, const char *worker);
char *fp_key_heartbeat(char *buf, const char *worker);
/* fp:job:<id>:seen:<part>: bitmap of the result slots of a part not yet written out that
 * have a result (the finish script's duplicate check; deleted once the part is out). */
char *fp_key_seen(char *buf, uint64_t job, uint64_t part);
/* fp:job:<id>:lost:<part>: the slots of those whose result is worker_lost. */
char *fp_key_lost(char *buf, uint64_t job, uint64_t part);

#endif
