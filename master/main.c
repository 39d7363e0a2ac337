/* main.c - fetchpool-master: options, signals and the main loop.
 *
 * The master keeps the task queue fed from every submitted job and writes each job's
 * summary when its last result is in (PROTOCOL.md, "Flow"). One loop round runs each
 * step once; when no step had anything to do it waits briefly in BLMOVE on fp:jobs:new (on
 * fp:done while it has jobs, idle() says why), so a new job starts at once, a finished one
 * is reported at once, and an idle master costs nothing. Signal handlers only set a flag:
 * SIGTERM/SIGINT let the current step finish, then the master exits 0. Each step commits
 * with one MULTI or script, so stopping or crashing anywhere loses nothing. */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_log.h"
#include "fp_opt.h"
#include "fp_redis_sync.h"
#include "master.h"
#include "metrics.h"

#define DEFAULT_QUEUE_DEPTH 500
#define DEFAULT_FEED_BATCH  500
#define DEFAULT_RETENTION   86400
/* Per-host limits for every job that does not set its own: what one browser does to a
 * host (six connections, the HTTP/1.1 convention every browser keeps, and a gallery's
 * worth of images a second), however many workers join. A site that serves images to
 * the public takes that from each visitor; own servers are opened up per job. */
#define DEFAULT_HOST_CONNS  6
#define DEFAULT_HOST_RATE   10
#define DEFAULT_WINDOW      100000
#define DEFAULT_RESULTS_DIR "./results"
#define ERROR_PAUSE_MS      1000    /* after a Redis error reply, before trying again */
#define IDLE_WAIT_S         "0.05"  /* BLMOVE timeout when idle; well below the reply timeout */
#define FEED_WAIT_S         "0.005" /* the same while jobs wait for room in the queue */

volatile sig_atomic_t fpm_stop;

static void on_stop_cb(int sig)
{
    (void)sig;
    fpm_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fetchpool-master [options]\n"
            "Feeds the fetchpool task queue from submitted jobs and writes each job's\n"
            "summary when it completes.\n"
            "\n"
            "  --redis URL        " FP_REDIS_URL_FORM "\n"
            "                     (env FETCHPOOL_REDIS, or FETCHPOOL_REDIS_FILE naming a file\n"
            "                     that holds it; default " FP_REDIS_URL_DEFAULT ")\n"
            "  --queue-depth N    refill " FP_KEY_TASKS " while it holds fewer than N tasks\n"
            "                     (env FETCHPOOL_QUEUE_DEPTH, default %d)\n"
            "  --feed-batch N     input lines taken from one job per turn\n"
            "                     (env FETCHPOOL_FEED_BATCH, default %d)\n"
            "  --retention SEC    keep a finished job's keys this long\n"
            "                     (env FETCHPOOL_RETENTION, default %d)\n"
            "  --metrics [ADDR:]PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
            "                     (env FETCHPOOL_METRICS; off by default; 127.0.0.1 when only\n"
            "                     a port is given)\n"
            "  --host-conns N     default cap of transfers in flight to one host, for the\n"
            "                     whole cluster (env FETCHPOOL_HOST_CONNS, default %d; 0: none)\n"
            "  --host-rate R      default cap of requests per second to one host, for the\n"
            "                     whole cluster (env FETCHPOOL_HOST_RATE, default %d; 0: none);\n"
            "                     a job may set its own (scripts/submit --host-conns/--host-rate)\n"
            "  --host-group host|domain  what those caps count per, unless a job says: the\n"
            "                     URL's host name (default), or its registered domain from\n"
            "                     the public suffix list (libpsl), so a.cdn.example and\n"
            "                     b.cdn.example share one budget (env FETCHPOOL_HOST_GROUP)\n"
            "  --window N         at most N tasks of a job in Redis at once: queued, taken,\n"
            "                     waiting for a retry, or as results not yet written out\n"
            "                     (env FETCHPOOL_WINDOW, default %d)\n"
            "  --results-dir DIR  each job's results go to DIR/<job>/part-NNNNNN.tsv|jsonl\n"
            "                     (env FETCHPOOL_RESULTS_DIR, default " DEFAULT_RESULTS_DIR ")\n"
            "  --part-size N      result slots per part file (env FETCHPOOL_PART_SIZE,\n"
            "                     default %d)\n"
            "  --jobs-dir DIR     jobs may name an input file inside DIR, which the master\n"
            "                     reads itself (env FETCHPOOL_JOBS_DIR; default: none)\n"
            "  --allow-eviction   run even if Redis's maxmemory-policy is not noeviction, with\n"
            "                     a warning (env FETCHPOOL_ALLOW_EVICTION=1); keys may be lost\n"
            "  --verbose          debug logging\n"
            "  --help             this text\n"
            "\n"
            "Exits 0 on SIGTERM or SIGINT, 2 on bad options or if Redis is unusable at\n"
            "start (unreachable, older than 7.0, evicting keys, a refused login); later\n"
            "Redis outages are waited out.\n",
            DEFAULT_QUEUE_DEPTH, DEFAULT_FEED_BATCH, DEFAULT_RETENTION, DEFAULT_HOST_CONNS,
            DEFAULT_HOST_RATE, DEFAULT_WINDOW, FP_PART_SIZE_DEFAULT);
}

static int num(const char *what, const char *s, long min, long max, long *out)
{
    double v;

    if (fp_opt_num(what, s, (double)min, (double)max, 1, &v))
        return -1;
    *out = (long)v;
    return 0;
}

static int env_num(const char *name, long min, long max, long *out)
{
    double v = -1;

    if (fp_opt_env_num(name, (double)min, (double)max, 1, &v))
        return -1;
    if (v >= 0)
        *out = (long)v;
    return 0;
}

static int group_opt(const char *what, const char *s, int *out)
{
    int g = fpm_group_parse(s, strlen(s));

    if (g < 0) {
        fprintf(stderr, "fetchpool-master: bad value for %s: '%s' (want host or domain)\n", what,
                s);
        return -1;
    }
    *out = g;
    return 0;
}

static int parse_args(int argc, char **argv, fpm_config *cfg)
{
    static const struct option opts[] = {{"redis", required_argument, NULL, 'r'},
                                         {"queue-depth", required_argument, NULL, 'q'},
                                         {"feed-batch", required_argument, NULL, 'b'},
                                         {"retention", required_argument, NULL, 't'},
                                         {"host-conns", required_argument, NULL, 'c'},
                                         {"host-rate", required_argument, NULL, 'R'},
                                         {"host-group", required_argument, NULL, 'g'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"part-size", required_argument, NULL, 'p'},
                                         {"results-dir", required_argument, NULL, 'o'},
                                         {"jobs-dir", required_argument, NULL, 'j'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"allow-eviction", no_argument, NULL, 'e'},
                                         {"metrics", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static char redis_buf[1024];
    const char *env, *res = fp_opt_env("FETCHPOOL_RESULTS_DIR"), *grp;
    int c;

    fp_opt_init("fetchpool-master");
    if (fp_opt_env_secret("FETCHPOOL_REDIS", redis_buf, sizeof(redis_buf), &env))
        return 2;
    cfg->redis_url = env ? env : FP_REDIS_URL_DEFAULT;
    cfg->queue_depth = DEFAULT_QUEUE_DEPTH;
    cfg->feed_batch = DEFAULT_FEED_BATCH;
    cfg->retention = DEFAULT_RETENTION;
    cfg->window = DEFAULT_WINDOW;
    cfg->part_size = FP_PART_SIZE_DEFAULT;
    cfg->results_dir = res ? res : DEFAULT_RESULTS_DIR;
    cfg->jobs_dir = fp_opt_env("FETCHPOOL_JOBS_DIR");
    cfg->allow_eviction = fp_opt_env_flag("FETCHPOOL_ALLOW_EVICTION");
    cfg->metrics = fp_opt_env("FETCHPOOL_METRICS");
    cfg->host_conns = DEFAULT_HOST_CONNS;
    cfg->host_rate = DEFAULT_HOST_RATE;
    if (env_num("FETCHPOOL_QUEUE_DEPTH", 1, 10000000, &cfg->queue_depth) ||
        env_num("FETCHPOOL_FEED_BATCH", 1, 100000, &cfg->feed_batch) ||
        env_num("FETCHPOOL_RETENTION", 1, 315360000, &cfg->retention) ||
        env_num("FETCHPOOL_HOST_CONNS", 0, 100000, &cfg->host_conns) ||
        fp_opt_env_num("FETCHPOOL_HOST_RATE", 0, 1000000, 0, &cfg->host_rate) ||
        env_num("FETCHPOOL_WINDOW", 1, 100000000, &cfg->window) ||
        env_num("FETCHPOOL_PART_SIZE", 1, FPM_PART_SIZE_MAX, &cfg->part_size))
        return 2;
    if ((grp = fp_opt_env("FETCHPOOL_HOST_GROUP")) != NULL &&
        group_opt("FETCHPOOL_HOST_GROUP", grp, &cfg->host_group))
        return 2;
    opterr = 0; /* fp_opt_bad says it without echoing a --redis=URL */
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'r': cfg->redis_url = optarg; break;
        case 'q':
            if (num("--queue-depth", optarg, 1, 10000000, &cfg->queue_depth))
                return 2;
            break;
        case 'b':
            if (num("--feed-batch", optarg, 1, 100000, &cfg->feed_batch))
                return 2;
            break;
        case 't':
            if (num("--retention", optarg, 1, 315360000, &cfg->retention))
                return 2;
            break;
        case 'c':
            if (num("--host-conns", optarg, 0, 100000, &cfg->host_conns))
                return 2;
            break;
        case 'R':
            if (fp_opt_num("--host-rate", optarg, 0, 1000000, 0, &cfg->host_rate))
                return 2;
            break;
        case 'g':
            if (group_opt("--host-group", optarg, &cfg->host_group))
                return 2;
            break;
        case 'w':
            if (num("--window", optarg, 1, 100000000, &cfg->window))
                return 2;
            break;
        case 'p':
            if (num("--part-size", optarg, 1, FPM_PART_SIZE_MAX, &cfg->part_size))
                return 2;
            break;
        case 'o': cfg->results_dir = optarg; break;
        case 'j': cfg->jobs_dir = optarg; break;
        case 'v': cfg->verbose = 1; break;
        case 'e': cfg->allow_eviction = 1; break;
        case 'm': cfg->metrics = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fp_opt_bad(argv, c);
            usage(stderr);
            return 2;
        }
    }
    if (cfg->metrics && cfg->metrics[0]) {
        struct sockaddr_storage sa;
        socklen_t salen;
        char err[256];
        if (fpm_metrics_addr(cfg->metrics, &sa, &salen, err, sizeof(err)) != 0) {
            fprintf(stderr, "fetchpool-master: %s\n", err);
            return 2;
        }
    } else {
        cfg->metrics = NULL;
    }
    if (optind < argc) {
        fp_opt_unexpected(argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

static void signals_init(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_cb;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a backoff sleep must end when the signal comes. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* A write to a closed Redis socket must fail with EPIPE, not kill the master. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Nothing to do: wait a little for a new job, taking it at once if one comes. While jobs
 * still have lines to feed (the queue is full), look again sooner: the wait bounds how
 * fast a full queue is refilled (queue depth per wait). While this master has jobs and
 * fp:done is empty, wait on fp:done instead, so a job is reported the moment its last
 * result is in rather than when the wait times out: a blocking LMOVE of the list onto
 * itself (LEFT LEFT) moves nothing, it only returns when there is something to report.
 * A new job is then taken at the end of the wait, which a busy Redis ends early anyway
 * (an idle one times blocked clients out on its cron tick, 100 ms at hz 10). */
static int idle(fpm *m)
{
    const char *wait = IDLE_WAIT_S;
    redisReply *r;
    size_t i;
    int rc = 0;

    for (i = 0; i < m->njobs; i++)
        if (!m->jobs[i].sealed && !m->jobs[i].paused)
            wait = FEED_WAIT_S;
    if (m->njobs > 0 && m->done_empty) {
        r = fpm_redis_cmd(m, "BLMOVE %s %s LEFT LEFT %s", FP_KEY_DONE, FP_KEY_DONE, wait);
        if (r == NULL)
            return FPM_LOST;
        fpm_redis_failed(m, r, "waiting for completions");
        freeReplyObject(r);
        return 0;
    }
    r = fpm_redis_cmd(m, "BLMOVE %s %s LEFT RIGHT %s", FP_KEY_JOBS_NEW, FP_KEY_JOBS_ACTIVE, wait);
    if (r == NULL)
        return FPM_LOST;
    if (!fpm_redis_failed(m, r, "waiting for jobs"))
        rc = fpm_intake_take(m, r);
    freeReplyObject(r);
    return rc;
}

static void run(fpm *m)
{
    typedef int (*step_fn)(fpm *);
    static const step_fn steps[] = {fpm_control_step, fpm_intake_step,           fpm_results_step,
                                    fpm_report_step,  fpm_promote_step,          fpm_feed_step,
                                    fpm_relay_step,   fpm_reap_dead_workers_step};
    size_t i;
    int did, rc;

    m->resync = 1; /* resume whatever is in fp:jobs:active */
    while (!fpm_stop) {
        did = 0;
        rc = m->resync ? fpm_intake_resume(m) : 0;
        for (i = 0; i < sizeof(steps) / sizeof(steps[0]) && rc != FPM_LOST && !fpm_stop; i++)
            if ((rc = steps[i](m)) > 0)
                did += rc;
        if (rc != FPM_LOST && !did && !fpm_stop && !m->errors)
            rc = idle(m);
        if (rc == FPM_LOST) {
            if (fpm_redis_reconnect(m) != 0)
                break;
            m->resync = 1;
        }
        if (m->errors) {
            fpm_nap_ms(ERROR_PAUSE_MS);
            m->errors = 0;
            m->resync = 1;
        }
    }
}

int main(int argc, char **argv)
{
    fpm_metrics *mx = NULL;
    fpm m;
    char err[512];
    int rc;

    memset(&m, 0, sizeof(m));
    if ((rc = parse_args(argc, argv, &m.cfg)) >= 0)
        return rc;
    fp_log_init("master", m.cfg.verbose);
    fp_log_fatal_signals();
    if (fp_redis_url_parse(m.cfg.redis_url, &m.url, err, sizeof(err)) != 0) {
        fprintf(stderr, "fetchpool-master: %s\n", err);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "fetchpool-master: libcurl initialisation failed\n");
        return 1;
    }
    signals_init();
    if (fpm_redis_open(&m, err, sizeof(err)) != 0) {
        fp_error("%s", err);
        curl_global_cleanup();
        return 2;
    }
    if (fp_redis_require_noeviction(m.rc, m.cfg.allow_eviction) != 0 ||
        fp_redis_require_version(m.rc) != 0) {
        fpm_redis_close(&m);
        curl_global_cleanup();
        return 2;
    }
    if (m.cfg.metrics &&
        (mx = fpm_metrics_start(m.cfg.metrics, &m.url, &m.reconnects, err, sizeof(err))) == NULL) {
        fp_error("%s", err);
        fpm_redis_close(&m);
        curl_global_cleanup();
        return 2;
    }
    fp_info("started: Redis %s:%d db %d, queue depth %ld, feed batch %ld, retention %ld s, "
            "per %s %ld in flight and %g/s unless a job says otherwise (0: no cap)%s%s; "
            "window %ld, results in %s (parts of %ld), jobs folder %s",
            m.url.host, m.url.port, m.url.db, m.cfg.queue_depth, m.cfg.feed_batch, m.cfg.retention,
            m.cfg.host_group == FPM_GROUP_DOMAIN ? "registered domain" : "host", m.cfg.host_conns,
            m.cfg.host_rate, mx ? ", metrics on " : "", mx ? m.cfg.metrics : "", m.cfg.window,
            m.cfg.results_dir, m.cfg.part_size, m.cfg.jobs_dir ? m.cfg.jobs_dir : "(none)");
    run(&m);
    fp_info("stopping");
    fpm_metrics_stop(mx);
    fpm_redis_close(&m);
    fpm_results_free(&m);
    fpm_hostgroup_free(m.hostgroup);
    while (m.njobs > 0)
        fpm_job_remove(&m, m.jobs[0].id);
    free(m.jobs);
    curl_global_cleanup();
    return 0;
}
