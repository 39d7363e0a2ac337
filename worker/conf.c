/* conf.c - worker options: getopt_long with FETCHPOOL_* environment fallbacks, so the same
 * binary is configured by flags on a shell and by variables in a container. */
#include "conf.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fp_opt.h"

static const char usage[] =
    "usage: fetchpool-worker [options]\n"
    "\n"
    "Takes download tasks from Redis, fetches them with libcurl (many at once on one\n"
    "libuv loop), stores each image as <output>/<ab>/<sha256>.<ext> and sends a result\n"
    "per task back through Redis.\n"
    "\n"
    "  -r, --redis URL           " FP_REDIS_URL_FORM "\n"
    "                            (env FETCHPOOL_REDIS, or FETCHPOOL_REDIS_FILE naming a file\n"
    "                            that holds it; default " FP_REDIS_URL_DEFAULT ")\n"
    "  -o, --output DIR|s3://BUCKET[/PREFIX]\n"
    "                            where images are stored (env FETCHPOOL_OUTPUT; default\n"
    "                            ./images): a folder, or an S3-compatible bucket (keys\n"
    "                            PREFIX/ab/<sha256>.<ext>; credentials from AWS_ACCESS_KEY_ID,\n"
    "                            AWS_SECRET_ACCESS_KEY and optional AWS_SESSION_TOKEN)\n"
    "      --s3-endpoint URL     S3 API endpoint, http(s)://host[:port] (env AWS_ENDPOINT_URL_S3\n"
    "                            or AWS_ENDPOINT_URL; default AWS's for the region)\n"
    "      --s3-region NAME      signing region (env AWS_REGION or AWS_DEFAULT_REGION;\n"
    "                            default us-east-1)\n"
    "      --s3-addressing path|virtual|auto  host/bucket/key or bucket.host/key (env\n"
    "                            FETCHPOOL_S3_ADDRESSING; auto: path with --s3-endpoint)\n"
    "      --spool DIR           with S3 output, where bodies too big for memory wait for their\n"
    "                            upload (env FETCHPOOL_SPOOL; default $TMPDIR/fetchpool-spool)\n"
    "      --store-wait S        how long a task waits for its store: an output folder that\n"
    "                            cannot take files (full, out of inodes, read-only) or an\n"
    "                            unreachable S3 store pauses the worker; its held tasks fail\n"
    "                            as disk_full/io_error/store_unavailable after this long\n"
    "                            (env FETCHPOOL_STORE_WAIT; default 300; 0: a task whose file\n"
    "                            the folder cannot take fails at once)\n"
    "  -c, --concurrency N       transfers in flight (env FETCHPOOL_CONCURRENCY; default 64)\n"
    "      --host-conns N        transfers in flight per host in this worker, 0 for no cap\n"
    "                            (env FETCHPOOL_HOST_CONNS; default 8); the cluster-wide\n"
    "                            caps are the master's --host-conns/--host-rate\n"
    "      --idle-conns N        connections kept open for reuse, across hosts (env\n"
    "                            FETCHPOOL_IDLE_CONNS; default 4096, or 4 x concurrency if\n"
    "                            more, as far as the open-files limit leaves room). A list\n"
    "                            that returns to a host after many others reuses its\n"
    "                            connection only if it is still kept: a new TLS connection\n"
    "                            costs ms\n"
    "      --id ID               worker id (env FETCHPOOL_WORKER_ID; default host-pid)\n"
    "      --connect-timeout S   connect timeout in seconds (default 10)\n"
    "      --timeout S           whole-transfer timeout in seconds (default 60)\n"
    "      --low-speed BYTES     abort a transfer below this many bytes/s ... (default 1024)\n"
    "      --low-speed-time S    ... for this many seconds (default 15)\n"
    "      --max-size BYTES      largest body accepted (env FETCHPOOL_MAX_SIZE; default 50000000)\n"
    "      --grace S             on SIGTERM, let transfers finish this long (env FETCHPOOL_GRACE;\n"
    "                            default 20), then hand the rest back to the queue\n"
    "      --allow-private       allow loopback/private/link-local addresses (for local use;\n"
    "                            env FETCHPOOL_ALLOW_PRIVATE=1)\n"
    "      --allow-cidr CIDR     allow this range although it is private (repeatable, up to 32;\n"
    "                            env FETCHPOOL_ALLOW_CIDR, comma-separated)\n"
    "      --allow-eviction      run even if Redis's maxmemory-policy is not noeviction, with a\n"
    "                            warning (env FETCHPOOL_ALLOW_EVICTION=1); keys may be lost\n"
    "      --fsync               fsync each file before publishing it, and its folder after\n"
    "                            (env FETCHPOOL_FSYNC=1)\n"
    "      --ca-bundle FILE      PEM file of the CAs to trust instead of the system's bundle\n"
    "                            (as curl --cacert; env FETCHPOOL_CA_BUNDLE). For a private CA\n"
    "                            beside the public ones, give both in one file. Certificates\n"
    "                            are always checked\n"
    "      --user-agent UA       the User-Agent header (env FETCHPOOL_USER_AGENT; default\n"
    "                            fetchpool/<version> and what it is); keep the token\n"
    "                            " FP_ROBOTS_TOKEN " in it, robots.txt rules name it\n"
    "      --resolve HOST:PORT:ADDR  use ADDR for HOST:PORT instead of DNS (as curl --resolve;\n"
    "                            repeatable). The SSRF guard still judges ADDR.\n"
    "  -v, --verbose             log every task\n"
    "  -h, --help                this text\n"
    "\n"
    "Exits 0 after SIGTERM or SIGINT (drained), 2 on bad options, an unusable output folder\n"
    "or Redis at start (unreachable, older than 7.0, evicting keys, a refused login) or a\n"
    "live worker with the same id, 3 when another worker took over its id while it was cut\n"
    "off from Redis or frozen. Later Redis outages are waited out.\n";

enum {
    OPT_HOST_CONNS = 256,
    OPT_ID,
    OPT_CONNECT_TIMEOUT,
    OPT_TIMEOUT,
    OPT_LOW_SPEED,
    OPT_LOW_SPEED_TIME,
    OPT_MAX_SIZE,
    OPT_GRACE,
    OPT_ALLOW_PRIVATE,
    OPT_FSYNC,
    OPT_RESOLVE,
    OPT_ALLOW_CIDR,
    OPT_CA_BUNDLE,
    OPT_IDLE_CONNS,
    OPT_ALLOW_EVICTION,
    OPT_S3_ENDPOINT,
    OPT_S3_REGION,
    OPT_S3_ADDRESSING,
    OPT_SPOOL,
    OPT_STORE_WAIT,
    OPT_USER_AGENT
};

/* A header value: printable ASCII (no CR/LF, which would start another header). */
static int user_agent_set(fp_conf *c, const char *ua)
{
    const char *p;

    for (p = ua; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            break;
    if (*ua == '\0' || *p || strlen(ua) > FP_USER_AGENT_MAX) {
        fprintf(stderr, "fetchpool-worker: --user-agent wants 1 to %d printable ASCII characters\n",
                FP_USER_AGENT_MAX);
        return -1;
    }
    memcpy(c->user_agent, ua, strlen(ua) + 1);
    return 0;
}

static int add_cidr(fp_conf *c, const char *s)
{
    if (c->nallow == FP_CONF_ALLOW_MAX || fp_guard_cidr_parse(s, &c->allow[c->nallow]) != 0) {
        fprintf(stderr, "fetchpool-worker: bad or too many --allow-cidr: '%s'\n", s);
        return -1;
    }
    c->nallow++;
    return 0;
}

/* FETCHPOOL_ALLOW_CIDR: comma-separated ranges. */
static int add_cidr_list(fp_conf *c, const char *list)
{
    char buf[1024], *tok, *save = NULL;

    if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
        return -1;
    for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        if (add_cidr(c, tok) != 0)
            return -1;
    return 0;
}

/* An integer setting from the environment, if set. 0, or -1 if its value is bad. */
static int env_set(int *field, const char *name, double min, double max)
{
    double v = -1;

    if (fp_opt_env_num(name, min, max, 1, &v))
        return -1;
    if (v >= 0)
        *field = (int)v;
    return 0;
}

int fp_conf_parse(fp_conf *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},
        {"concurrency", required_argument, NULL, 'c'},
        {"host-conns", required_argument, NULL, OPT_HOST_CONNS},
        {"id", required_argument, NULL, OPT_ID},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"low-speed", required_argument, NULL, OPT_LOW_SPEED},
        {"low-speed-time", required_argument, NULL, OPT_LOW_SPEED_TIME},
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"allow-private", no_argument, NULL, OPT_ALLOW_PRIVATE},
        {"fsync", no_argument, NULL, OPT_FSYNC},
        {"resolve", required_argument, NULL, OPT_RESOLVE},
        {"allow-cidr", required_argument, NULL, OPT_ALLOW_CIDR},
        {"ca-bundle", required_argument, NULL, OPT_CA_BUNDLE},
        {"idle-conns", required_argument, NULL, OPT_IDLE_CONNS},
        {"allow-eviction", no_argument, NULL, OPT_ALLOW_EVICTION},
        {"s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT},
        {"s3-region", required_argument, NULL, OPT_S3_REGION},
        {"s3-addressing", required_argument, NULL, OPT_S3_ADDRESSING},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"store-wait", required_argument, NULL, OPT_STORE_WAIT},
        {"user-agent", required_argument, NULL, OPT_USER_AGENT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *redis, *output = fp_opt_env("FETCHPOOL_OUTPUT");
    const char *id = fp_opt_env("FETCHPOOL_WORKER_ID"), *s;
    const char *ca = fp_opt_env("FETCHPOOL_CA_BUNDLE");
    const char *ua = fp_opt_env("FETCHPOOL_USER_AGENT");
    const char *s3_endpoint = fp_opt_env("AWS_ENDPOINT_URL_S3"),
               *s3_region = fp_opt_env("AWS_REGION");
    const char *s3_addressing = fp_opt_env("FETCHPOOL_S3_ADDRESSING");
    const char *spool = fp_opt_env("FETCHPOOL_SPOOL");
    char err[512];
    double v;
    int ch;

    memset(c, 0, sizeof(*c));
    fp_opt_init("fetchpool-worker");
    if (fp_opt_env_secret("FETCHPOOL_REDIS", c->redis_url, sizeof(c->redis_url), &redis))
        return -1;
    c->concurrency = 64;
    c->host_conns = 8;
    c->connect_timeout_ms = 10000;
    c->timeout_ms = 60000;
    c->low_speed_bytes = 1024;
    c->low_speed_time = 15;
    c->max_size = 50000000;
    c->grace_ms = 20000;
    c->store_wait_ms = 300000;
    if (s3_endpoint == NULL)
        s3_endpoint = fp_opt_env("AWS_ENDPOINT_URL");
    if (s3_region == NULL)
        s3_region = fp_opt_env("AWS_DEFAULT_REGION");
    c->allow_private = fp_opt_env_flag("FETCHPOOL_ALLOW_PRIVATE");
    c->fsync = fp_opt_env_flag("FETCHPOOL_FSYNC");
    c->allow_eviction = fp_opt_env_flag("FETCHPOOL_ALLOW_EVICTION");
    /* A bad value in the environment is a usage error, as a bad flag is (v stays -1 if
     * the variable is unset). */
    if (env_set(&c->concurrency, "FETCHPOOL_CONCURRENCY", 1, 10000) ||
        env_set(&c->host_conns, "FETCHPOOL_HOST_CONNS", 0, 10000) ||
        env_set(&c->idle_conns, "FETCHPOOL_IDLE_CONNS", 1, 100000))
        return -1;
    v = -1;
    if (fp_opt_env_num("FETCHPOOL_MAX_SIZE", 1, 1e12, 1, &v))
        return -1;
    if (v >= 0)
        c->max_size = (uint64_t)v;
    v = -1;
    if (fp_opt_env_num("FETCHPOOL_GRACE", 0, 3600, 0, &v))
        return -1;
    if (v >= 0)
        c->grace_ms = (long)(v * 1000);
    if ((s = fp_opt_env("FETCHPOOL_ALLOW_CIDR")) && add_cidr_list(c, s) != 0)
        return -1;
    v = -1;
    if (fp_opt_env_num("FETCHPOOL_STORE_WAIT", 0, 86400, 0, &v))
        return -1;
    if (v >= 0)
        c->store_wait_ms = (long)(v * 1000);
    optind = 1;
    opterr = 0; /* fp_opt_bad says it without echoing a --redis=URL */
    while ((ch = getopt_long(argc, argv, ":r:o:c:vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': redis = optarg; break;
        case 'o': output = optarg; break;
        case 'c':
            if (fp_opt_num("--concurrency", optarg, 1, 10000, 1, &v))
                return -1;
            c->concurrency = (int)v;
            break;
        case OPT_HOST_CONNS:
            if (fp_opt_num("--host-conns", optarg, 0, 10000, 1, &v))
                return -1;
            c->host_conns = (int)v;
            break;
        case OPT_IDLE_CONNS:
            if (fp_opt_num("--idle-conns", optarg, 1, 100000, 1, &v))
                return -1;
            c->idle_conns = (int)v;
            break;
        case OPT_ID: id = optarg; break;
        case OPT_CONNECT_TIMEOUT:
            if (fp_opt_num("--connect-timeout", optarg, 0.001, 3600, 0, &v))
                return -1;
            c->connect_timeout_ms = (long)(v * 1000);
            break;
        case OPT_TIMEOUT:
            if (fp_opt_num("--timeout", optarg, 0.001, 86400, 0, &v))
                return -1;
            c->timeout_ms = (long)(v * 1000);
            break;
        case OPT_LOW_SPEED:
            if (fp_opt_num("--low-speed", optarg, 0, 1e9, 1, &v))
                return -1;
            c->low_speed_bytes = (long)v;
            break;
        case OPT_LOW_SPEED_TIME:
            if (fp_opt_num("--low-speed-time", optarg, 1, 3600, 1, &v))
                return -1;
            c->low_speed_time = (long)v;
            break;
        case OPT_MAX_SIZE:
            if (fp_opt_num("--max-size", optarg, 1, 1e12, 1, &v))
                return -1;
            c->max_size = (uint64_t)v;
            break;
        case OPT_GRACE:
            if (fp_opt_num("--grace", optarg, 0, 3600, 0, &v))
                return -1;
            c->grace_ms = (long)(v * 1000);
            break;
        case OPT_ALLOW_PRIVATE: c->allow_private = 1; break;
        case OPT_ALLOW_CIDR:
            if (add_cidr(c, optarg))
                return -1;
            break;
        case OPT_FSYNC: c->fsync = 1; break;
        case OPT_ALLOW_EVICTION: c->allow_eviction = 1; break;
        case OPT_CA_BUNDLE: ca = optarg; break;
        case OPT_USER_AGENT: ua = optarg; break;
        case OPT_S3_ENDPOINT: s3_endpoint = optarg; break;
        case OPT_S3_REGION: s3_region = optarg; break;
        case OPT_S3_ADDRESSING: s3_addressing = optarg; break;
        case OPT_SPOOL: spool = optarg; break;
        case OPT_STORE_WAIT:
            if (fp_opt_num("--store-wait", optarg, 0, 86400, 0, &v))
                return -1;
            c->store_wait_ms = (long)(v * 1000);
            break;
        case OPT_RESOLVE: {
            struct curl_slist *l = curl_slist_append(c->resolve, optarg);
            if (l == NULL)
                return -1;
            c->resolve = l;
            break;
        }
        case 'v': c->verbose = 1; break;
        case 'h': fputs(usage, stdout); return 1;
        default:
            fp_opt_bad(argv, ch);
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fp_opt_unexpected(argv[optind]);
        fputs(usage, stderr);
        return -1;
    }
    if (fp_redis_url_parse(redis ? redis : FP_REDIS_URL_DEFAULT, &c->redis, err, sizeof(err))) {
        fprintf(stderr, "fetchpool-worker: %s\n", err);
        return -1;
    }
    if (snprintf(c->output, sizeof(c->output), "%s", output ? output : "./images") >=
        (int)sizeof(c->output)) {
        fprintf(stderr, "fetchpool-worker: output path too long\n");
        return -1;
    }
    if (strncmp(c->output, "s3://", 5) == 0) {
        /* Each also from a file named by its _FILE variable, as Docker secrets mount. */
        static char kbuf[256], sbuf[256], tbuf[2048];
        const char *tmp = getenv("TMPDIR"), *key = NULL, *secret = NULL, *token = NULL;
        if (fp_opt_env_secret("AWS_ACCESS_KEY_ID", kbuf, sizeof(kbuf), &key) ||
            fp_opt_env_secret("AWS_SECRET_ACCESS_KEY", sbuf, sizeof(sbuf), &secret) ||
            fp_opt_env_secret("AWS_SESSION_TOKEN", tbuf, sizeof(tbuf), &token))
            return -1;
        if (fp_s3_conf_parse(&c->s3, c->output, s3_endpoint, s3_region, s3_addressing, key, secret,
                             token, err, sizeof(err)) != 0) {
            fprintf(stderr, "fetchpool-worker: %s\n", err);
            return -1;
        }
        if (snprintf(c->spool, sizeof(c->spool), "%s%s",
                     spool ? spool : (tmp && *tmp ? tmp : "/tmp"),
                     spool ? "" : "/fetchpool-spool") >= (int)sizeof(c->spool)) {
            fprintf(stderr, "fetchpool-worker: spool path too long\n");
            return -1;
        }
    }
    if (ua && user_agent_set(c, ua) != 0)
        return -1;
    if (!ua && FP_PROJECT_URL[0])
        snprintf(c->user_agent, sizeof(c->user_agent), "%s/%s (image downloader; +%s)",
                 FP_ROBOTS_TOKEN, FP_VERSION, FP_PROJECT_URL);
    else if (!ua)
        snprintf(c->user_agent, sizeof(c->user_agent), "%s/%s (image downloader)", FP_ROBOTS_TOKEN,
                 FP_VERSION);
    if (ca && *ca) {
        /* Checked now: libcurl would only say so on the first HTTPS transfer, per task. */
        if (snprintf(c->ca_bundle, sizeof(c->ca_bundle), "%s", ca) >= (int)sizeof(c->ca_bundle) ||
            access(ca, R_OK) != 0) {
            fprintf(stderr, "fetchpool-worker: cannot read --ca-bundle '%s': %s\n", ca,
                    strerror(errno ? errno : ENAMETOOLONG));
            return -1;
        }
    }
    if (gethostname(c->host, sizeof(c->host)) != 0)
        strcpy(c->host, "worker");
    c->host[sizeof(c->host) - 1] = '\0';
    if (id)
        snprintf(c->id, sizeof(c->id), "%s", id);
    else
        snprintf(c->id, sizeof(c->id), "%.40s-%d", c->host, (int)getpid());
    if (!fp_worker_id_valid(c->id, strlen(c->id))) {
        fprintf(stderr, "fetchpool-worker: worker id may hold only [A-Za-z0-9._:-]\n");
        return -1;
    }
    if (c->id[0] == '\0') {
        fprintf(stderr, "fetchpool-worker: empty worker id\n");
        return -1;
    }
    return 0;
}

void fp_conf_free(fp_conf *c)
{
    curl_slist_free_all(c->resolve);
    c->resolve = NULL;
}
