/* test_rows.c - results-file rows are byte for byte what scripts/submit wrote (the
 * expectations were made with submit's own parse_result/write_results). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

static const char *const recs[] = {
    "R1\t7\t0\t3\tok\t200\t16384\t12345\t0\t1000\t120001\t1\tw-1:"
    "a\tabababababababababababababababababababababababababababababababab\tab/x.jpg\timage/jpeg; "
    "q=\"1\"\thttp://h/a\\b?x=\"y\"\t",
    "R1\t7\t1\t5\thttp_404\t404\t0\t5\t999999\t1000000\t7\t3\tw1\t\t\t\thttp://h/\303\251\tnot "
    "found: \303\274n\303\257code \\ \"q\""};
static const char *const want[][2] = {
    {"3\thttp://h/"
     "a\\b?x=\"y\"\tok\t200\t16384\t12.345\t0.000\t1.000\t120.001\t1\tw-1:"
     "a\tabababababababababababababababababababababababababababababababab\tab/x.jpg\timage/jpeg; "
     "q=\"1\"\t\n",
     "{\"line\": 3, \"url\": \"http://h/a\\\\b?x=\\\"y\\\"\", \"status\": \"ok\", \"http_code\": "
     "200, \"bytes\": 16384, \"total_ms\": 12.345, \"dns_ms\": 0.0, \"connect_ms\": 1.0, "
     "\"ttfb_ms\": 120.001, \"attempts\": 1, \"worker\": \"w-1:a\", \"sha256\": "
     "\"abababababababababababababababababababababababababababababababab\", \"path\": "
     "\"ab/x.jpg\", \"content_type\": \"image/jpeg; q=\\\"1\\\"\", \"error\": \"\"}\n"},
    {"5\thttp://h/\303\251\thttp_404\t404\t0\t0.005\t999.999\t1000.000\t0.007\t3\tw1\t\t\t\tnot "
     "found: \303\274n\303\257code \\ \"q\"\n",
     "{\"line\": 5, \"url\": \"http://h/\303\251\", \"status\": \"http_404\", \"http_code\": 404, "
     "\"bytes\": 0, \"total_ms\": 0.005, \"dns_ms\": 999.999, \"connect_ms\": 1000.0, \"ttfb_ms\": "
     "0.007, \"attempts\": 3, \"worker\": \"w1\", \"sha256\": \"\", \"path\": \"\", "
     "\"content_type\": \"\", \"error\": \"not found: \303\274n\303\257code \\\\ \\\"q\\\"\"}\n"}};

static void rows_match_submit(void **state)
{
    static char row[FPM_ROW_MAX];
    size_t i;

    (void)state;
    for (i = 0; i < 2; i++) {
        assert_int_equal(fpm_row_format(FPM_TSV, recs[i], strlen(recs[i]), i, row, sizeof(row)),
                         strlen(want[i][0]));
        assert_string_equal(row, want[i][0]);
        assert_int_equal(fpm_row_format(FPM_JSONL, recs[i], strlen(recs[i]), i, row, sizeof(row)),
                         strlen(want[i][1]));
        assert_string_equal(row, want[i][1]);
    }
}

static void missing_and_malformed(void **state)
{
    static char row[FPM_ROW_MAX];

    (void)state;
    fpm_row_missing(FPM_TSV, "no result for task 9", row, sizeof(row));
    assert_string_equal(row, "\t\tmissing\t\t\t\t\t\t\t\t\t\t\t\tno result for task 9\n");
    fpm_row_missing(FPM_JSONL, "no result for task 9", row, sizeof(row));
    assert_string_equal(
        row, "{\"line\": null, \"url\": \"\", \"status\": \"missing\", \"http_code\": \"\", "
             "\"bytes\": \"\", \"total_ms\": \"\", \"dns_ms\": \"\", \"connect_ms\": \"\", "
             "\"ttfb_ms\": \"\", \"attempts\": \"\", \"worker\": \"\", \"sha256\": \"\", \"path\": "
             "\"\", \"content_type\": \"\", \"error\": \"no result for task 9\"}\n");
    fpm_row_format(FPM_TSV, "R1\tjunk", 7, 4, row, sizeof(row));
    assert_non_null(strstr(row, "\tmissing\t"));
    assert_non_null(strstr(row, "malformed result record for task 4\n"));
    /* Too small a buffer is an error, never an overflow. */
    assert_int_equal(fpm_row_format(FPM_TSV, recs[0], strlen(recs[0]), 0, row, 20), -1);
}

static void formats(void **state)
{
    fpm_format f = FPM_JSONL;

    (void)state;
    assert_int_equal(fpm_format_parse(NULL, 0, &f), 0);
    assert_int_equal(f, FPM_TSV);
    assert_int_equal(fpm_format_parse("jsonl", 5, &f), 0);
    assert_int_equal(f, FPM_JSONL);
    assert_int_equal(fpm_format_parse("csv", 3, &f), -1);
    assert_string_equal(fpm_format_ext(FPM_JSONL), "jsonl");
    assert_non_null(strstr(fpm_rows_header(FPM_TSV), "line\turl\tstatus"));
    assert_string_equal(fpm_rows_header(FPM_JSONL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_match_submit),
        cmocka_unit_test(missing_and_malformed),
        cmocka_unit_test(formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
