/* conf.h - the worker's settings: defaults, command line and environment. */
#ifndef FP_WORKER_CONF_H
#define FP_WORKER_CONF_H

#include <limits.h>
#include <stdint.h>

#include <curl/curl.h>

#include "fp_record.h"
#include "guard.h"
#include "fp_redis_url.h"
#include "s3_req.h"

#define FP_CONF_ALLOW_MAX 32

/* The product token robots.txt rules name ("User-agent: fetchpool"); every default
 * User-Agent starts with it. */
#define FP_ROBOTS_TOKEN   "fetchpool"
#define FP_USER_AGENT_MAX 400

typedef struct fp_conf {
    fp_redis_url redis;
    char redis_url[1024];        /* FETCHPOOL_REDIS_FILE's contents */
    char output[PATH_MAX - 128]; /* room for the shard and file name */
    /* With --output s3://...: the store, where bodies wait for their upload (the local
     * store's root), and how long a down store is waited for. */
    fp_s3_conf s3;
    char spool[PATH_MAX - 128];
    long store_wait_ms;
    char id[FP_WORKER_ID_MAX + 1];
    char host[64];   /* this machine's name, for the heartbeat */
    int concurrency; /* transfers in flight at most */
    int host_conns;  /* transfers in flight per host at most (0: no cap) */
    int idle_conns;  /* connections kept open for reuse at most; 0: the default (worker.c) */
    long connect_timeout_ms;
    long timeout_ms;      /* whole transfer */
    long low_speed_bytes; /* abort below this many bytes/s ... */
    long low_speed_time;  /* ... for this many seconds */
    uint64_t max_size;    /* body bytes at most */
    long grace_ms;        /* drain time on SIGTERM */
    int allow_private;    /* let the SSRF guard pass private/loopback addresses */
    int fsync;            /* fsync each file before publishing it */
    int allow_eviction;   /* run although Redis may evict keys (warn instead) */
    int verbose;
    char ca_bundle[PATH_MAX]; /* --ca-bundle: CAs trusted besides the system's */
    char user_agent[FP_USER_AGENT_MAX + 1];
    struct curl_slist *resolve;       /* --resolve entries, as libcurl's CURLOPT_RESOLVE */
    fp_cidr allow[FP_CONF_ALLOW_MAX]; /* --allow-cidr ranges the SSRF guard lets through */
    int nallow;
} fp_conf;

/* Parses argv and the FETCHPOOL_* environment. Returns 0 to run, 1 if --help was printed,
 * -1 on a usage error (message printed). */
int fp_conf_parse(fp_conf *c, int argc, char **argv);
void fp_conf_free(fp_conf *c);

#endif
