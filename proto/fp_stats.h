/* fp_stats.h - latency histogram buckets, percentiles and the job summary math.
 *
 * Workers put each successful download's total time into a log-scale bucket (about 2%
 * wide) kept in a Redis hash, so a job of a million URLs needs a few hundred counters,
 * not a million samples. The master turns the buckets and counters into the summary. */
#ifndef FP_STATS_H
#define FP_STATS_H

#include <stddef.h>
#include <stdint.h>

uint32_t fp_stats_bucket(uint64_t us);
/* A value inside the bucket (its geometric middle), in microseconds. */
uint64_t fp_stats_bucket_value(uint32_t bucket);

typedef struct fp_hist_entry {
    uint32_t bucket;
    uint64_t count;
} fp_hist_entry;

/* Nearest-rank percentile (0 < p <= 100) over the histogram; sorts e in place.
 * Returns 0 for an empty histogram. */
uint64_t fp_stats_percentile(fp_hist_entry *e, size_t n, double p);

typedef struct fp_summary {
    uint64_t total, ok, failed, bytes;
    uint64_t wall_us, sum_us;
    double speedup;     /* sum of single download times / wall time */
    double files_per_s; /* successful files per second of wall time */
    double mb_per_s;    /* 10^6 bytes per second of wall time */
    uint64_t p50_us, p95_us, p99_us;
} fp_summary;

/* Prometheus's default histogram bounds (le, in seconds) for download latency. A fine
 * bucket counts under the first bound its value (fp_stats_bucket_value) is at most;
 * FP_PROM_BUCKETS means only +Inf. Exact to the fine buckets' 2 %. */
#define FP_PROM_BUCKETS 11
extern const double fp_prom_le[FP_PROM_BUCKETS];
int fp_stats_prom_index(uint32_t bucket);

/* Fills the derived fields of s from its counters and the histogram (sorted in place). */
void fp_summary_finish(fp_summary *s, fp_hist_entry *e, size_t n);

#endif
