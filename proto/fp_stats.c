/* fp_stats.c - histogram and summary math (see fp_stats.h). */
#include "fp_stats.h"

#include <math.h>
#include <stdlib.h>

#define LINEAR 64   /* below this many microseconds every value has its own bucket */
#define GROWTH 1.02 /* each bucket above is 2% wider than the one before */

uint32_t fp_stats_bucket(uint64_t us)
{
    if (us < LINEAR)
        return (uint32_t)us;
    return LINEAR + (uint32_t)floor(log((double)us / LINEAR) / log(GROWTH));
}

uint64_t fp_stats_bucket_value(uint32_t bucket)
{
    if (bucket < LINEAR)
        return bucket;
    return (uint64_t)llround(LINEAR * pow(GROWTH, (double)(bucket - LINEAR) + 0.5));
}

const double fp_prom_le[FP_PROM_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                            0.5,   1,    2.5,   5,    10};

int fp_stats_prom_index(uint32_t bucket)
{
    uint64_t us = fp_stats_bucket_value(bucket);
    int i;

    for (i = 0; i < FP_PROM_BUCKETS; i++)
        if ((double)us <= fp_prom_le[i] * 1e6)
            return i;
    return FP_PROM_BUCKETS;
}

static int cmp_bucket(const void *a, const void *b)
{
    uint32_t x = ((const fp_hist_entry *)a)->bucket, y = ((const fp_hist_entry *)b)->bucket;
    return (x > y) - (x < y);
}

uint64_t fp_stats_percentile(fp_hist_entry *e, size_t n, double p)
{
    uint64_t total = 0, rank, seen = 0;
    size_t i;

    for (i = 0; i < n; i++)
        total += e[i].count;
    if (total == 0)
        return 0;
    qsort(e, n, sizeof(*e), cmp_bucket);
    rank = (uint64_t)ceil(p / 100.0 * (double)total);
    if (rank < 1)
        rank = 1;
    for (i = 0; i < n; i++) {
        seen += e[i].count;
        if (seen >= rank)
            return fp_stats_bucket_value(e[i].bucket);
    }
    return fp_stats_bucket_value(e[n - 1].bucket);
}

void fp_summary_finish(fp_summary *s, fp_hist_entry *e, size_t n)
{
    double wall = (double)s->wall_us / 1e6;

    s->speedup = s->wall_us ? (double)s->sum_us / (double)s->wall_us : 0.0;
    s->files_per_s = wall > 0 ? (double)s->ok / wall : 0.0;
    s->mb_per_s = wall > 0 ? (double)s->bytes / 1e6 / wall : 0.0;
    s->p50_us = fp_stats_percentile(e, n, 50);
    s->p95_us = fp_stats_percentile(e, n, 95);
    s->p99_us = fp_stats_percentile(e, n, 99);
}
