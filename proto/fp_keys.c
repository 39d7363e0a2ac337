/* fp_keys.c - builds the per-job and per-worker Redis key names. */
#include "fp_keys.h"

#include <inttypes.h>
#include <stdio.h>

char *fp_key_job(char *buf, uint64_t job, fp_job_key which)
{
    static const char *const suffix[] = {"",         ":in",   ":out",      ":lat",
                                         ":summary", ":wake", ":throttle", ":down",
                                         ":parts",   ":rows", ":writer"};

    snprintf(buf, FP_KEY_MAX, "fp:job:%" PRIu64 "%s", job, suffix[which]);
    return buf;
}

char *fp_key_proc(char *buf, const char *worker)
{
    snprintf(buf, FP_KEY_MAX, "fp:proc:%s", worker);
    return buf;
}

char *fp_key_heartbeat(char *buf, const char *worker)
{
    snprintf(buf, FP_KEY_MAX, "fp:worker:%s", worker);
    return buf;
}

char *fp_key_seen(char *buf, uint64_t job, uint64_t part)
{
    snprintf(buf, FP_KEY_MAX, "fp:job:%" PRIu64 ":seen:%" PRIu64, job, part);
    return buf;
}

char *fp_key_lost(char *buf, uint64_t job, uint64_t part)
{
    snprintf(buf, FP_KEY_MAX, "fp:job:%" PRIu64 ":lost:%" PRIu64, job, part);
    return buf;
}
