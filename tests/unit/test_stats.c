/* test_stats.c - latency buckets, percentiles and the summary math. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "fp_stats.h"

static void buckets_are_monotonic_and_tight(void **state)
{
    uint64_t us;
    uint32_t last = 0;

    (void)state;
    for (us = 0; us < 100000000; us = us < 100 ? us + 1 : us + us / 7) {
        uint32_t b = fp_stats_bucket(us);
        uint64_t v = fp_stats_bucket_value(b);
        double err = us ? (double)(v > us ? v - us : us - v) / (double)us : 0;
        assert_true(b >= last);
        assert_true(err <= 0.021);
        last = b;
    }
    assert_int_equal(fp_stats_bucket(5), 5);
    assert_int_equal(fp_stats_bucket_value(5), 5);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void percentiles_match_exact_nearest_rank(void **state)
{
    enum { N = 5000 };
    static uint64_t v[N];
    static fp_hist_entry e[N];
    size_t n = 0, i, j;
    const double ps[] = {50, 95, 99, 100};

    (void)state;
    srand(7);
    for (i = 0; i < N; i++)
        v[i] = 1000 + (uint64_t)(rand() % 500000);
    for (i = 0; i < N; i++) {
        uint32_t b = fp_stats_bucket(v[i]);
        for (j = 0; j < n && e[j].bucket != b; j++)
            ;
        if (j == n)
            e[n++] = (fp_hist_entry){b, 0};
        e[j].count++;
    }
    qsort(v, N, sizeof(v[0]), cmp_u64);
    for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        size_t rank = (size_t)((ps[i] / 100.0) * N + 0.999999);
        uint64_t exact = v[rank - 1], got = fp_stats_percentile(e, n, ps[i]);
        double err = (double)(got > exact ? got - exact : exact - got) / (double)exact;
        assert_true(err <= 0.021);
    }
}

static void percentile_edge_cases(void **state)
{
    fp_hist_entry one = {fp_stats_bucket(200000), 1};
    fp_hist_entry two[2] = {{fp_stats_bucket(100), 99}, {fp_stats_bucket(1000000), 1}};

    (void)state;
    assert_true(fp_stats_percentile(NULL, 0, 50) == 0);
    assert_true(fp_stats_percentile(&one, 1, 50) == fp_stats_percentile(&one, 1, 99));
    /* 99 fast and 1 slow: p99 is still fast, p100 is the slow one. */
    assert_true(fp_stats_percentile(two, 2, 99) < 200);
    assert_true(fp_stats_percentile(two, 2, 100) > 900000);
}

static void summary_math(void **state)
{
    fp_summary s = {.total = 50,
                    .ok = 48,
                    .failed = 2,
                    .bytes = 48 * 16384,
                    .wall_us = 500000,
                    .sum_us = 10000000};
    fp_hist_entry e[1] = {{fp_stats_bucket(200000), 48}};

    (void)state;
    fp_summary_finish(&s, e, 1);
    assert_true(s.speedup > 19.99 && s.speedup < 20.01);
    assert_true(s.files_per_s > 95.99 && s.files_per_s < 96.01);
    assert_true(s.mb_per_s > 1.57 && s.mb_per_s < 1.58);
    assert_true(s.p50_us > 196000 && s.p50_us < 204000);

    s = (fp_summary){0};
    fp_summary_finish(&s, NULL, 0); /* an empty job divides by nothing */
    assert_true(s.speedup == 0 && s.files_per_s == 0 && s.p99_us == 0);
}

/* Every latency lands under the first Prometheus bound at or above it, give or take the
 * fine buckets' 2 %. */
static void prometheus_buckets_follow_the_bounds(void **state)
{
    uint64_t us;
    int i, last = 0;

    (void)state;
    for (us = 1; us < 100000000; us += us / 50 + 1) {
        int k = fp_stats_prom_index(fp_stats_bucket(us));
        double s = (double)us / 1e6;
        assert_true(k >= last);
        last = k;
        if (k < FP_PROM_BUCKETS)
            assert_true(s <= fp_prom_le[k] * 1.021);
        if (k > 0)
            assert_true(s >= fp_prom_le[k - 1] * 0.979);
    }
    assert_int_equal(last, FP_PROM_BUCKETS);
    assert_int_equal(fp_stats_prom_index(fp_stats_bucket(1000)), 0);      /* 1 ms */
    assert_int_equal(fp_stats_prom_index(fp_stats_bucket(200000)), 5);    /* 200 ms: le 0.25 */
    assert_int_equal(fp_stats_prom_index(fp_stats_bucket(30000000)), 11); /* 30 s: +Inf */
    for (i = 1; i < FP_PROM_BUCKETS; i++)
        assert_true(fp_prom_le[i] > fp_prom_le[i - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_are_monotonic_and_tight),
        cmocka_unit_test(percentiles_match_exact_nearest_rank),
        cmocka_unit_test(percentile_edge_cases),
        cmocka_unit_test(summary_math),
        cmocka_unit_test(prometheus_buckets_follow_the_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
