/* test_record.c - task and result records: round trips and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "fp_record.h"
#include "fp_text.h"

static void task_round_trip(void **state)
{
    fp_task t = {.job = 42,
                 .idx = 7,
                 .line = 9,
                 .attempt = 2,
                 .max_attempts = 3,
                 .flags = FP_TASK_ALLOW_SVG,
                 .url = "http://example.com/a%20b.jpg?x=1"};
    fp_task d;
    char buf[FP_RECORD_MAX], err[128];
    int n;

    (void)state;
    n = fp_task_encode(&t, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "T1\t42\t7\t9\t2\t3\t1\thttp://example.com/a%20b.jpg?x=1");
    assert_int_equal(fp_task_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
    assert_true(d.job == 42 && d.idx == 7 && d.line == 9);
    assert_int_equal(d.attempt, 2);
    assert_int_equal(d.max_attempts, 3);
    assert_int_equal(d.flags, FP_TASK_ALLOW_SVG);
    assert_string_equal(d.url, t.url);
}

static void task_encode_refuses_bad_fields(void **state)
{
    char buf[FP_RECORD_MAX];
    fp_task t = {.job = 1, .attempt = 1, .max_attempts = 1, .url = "http://a/\tb"};

    (void)state;
    assert_int_equal(fp_task_encode(&t, buf, sizeof(buf)), -1); /* tab in URL */
    t.url = "http://a/ b";
    assert_int_equal(fp_task_encode(&t, buf, sizeof(buf)), -1); /* space */
    t.url = "http://a/b";
    t.attempt = 0;
    assert_int_equal(fp_task_encode(&t, buf, sizeof(buf)), -1);
    t.attempt = 1;
    t.flags = 0x100;
    assert_int_equal(fp_task_encode(&t, buf, sizeof(buf)), -1);
    t.flags = 0;
    assert_int_equal(fp_task_encode(&t, buf, 5), -1); /* buffer too small */
}

static void task_decode_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "T",
        "T2\t1\t0\t1\t1\t3\t0\thttp://a/",                    /* unknown version */
        "T1\t1\t0\t1\t1\t3\t0",                               /* too few fields */
        "T1\t1\t0\t1\t1\t3\t0\thttp://a/\textra",             /* too many */
        "T1\t-1\t0\t1\t1\t3\t0\thttp://a/",                   /* sign */
        "T1\t1\t0\t1\t0\t3\t0\thttp://a/",                    /* attempt 0 */
        "T1\t1\t0\t1\t1\t0\t0\thttp://a/",                    /* limit 0 */
        "T1\t1\t0\t1\t1\t3\t256\thttp://a/",                  /* unknown flags */
        "T1\t99999999999999999999\t0\t1\t1\t3\t0\thttp://a/", /* overflow */
        "T1\t1\t0\t1\t1\t3\t0\t",                             /* empty url */
        "T1\t1\t0\t1\t1\t3\t0\thttp://a/\x01",                /* control char */
        "T1\t1\t0\t1\t1\t3\t0\thttp://a/\xff",                /* not UTF-8 */
        "T1\t 1\t0\t1\t1\t3\t0\thttp://a/",                   /* space in number */
        "T1\t01\t0\t1\t1\t3\t0\thttp://a/",                   /* leading zero */
        "T1x\t1\t0\t1\t1\t3\t0\thttp://a/",                   /* bad version field */
        "R1\t1\t0\t1\t1\t3\t0\thttp://a/",                    /* a result, not a task */
    };
    fp_task t;
    char err[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fp_task_decode(&t, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
}

static void task_decode_embedded_nul_and_long_url(void **state)
{
    static char big[FP_URL_MAX + 64];
    const char rec[] = "T1\t1\t0\t1\t1\t3\t0\thttp://a/\0b";
    fp_task t;
    char err[128];
    int n;

    (void)state;
    assert_int_equal(fp_task_decode(&t, rec, sizeof(rec) - 1, err, sizeof(err)), -1);
    n = snprintf(big, sizeof(big), "T1\t1\t0\t1\t1\t3\t0\thttp://a/");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(fp_task_decode(&t, big, strlen(big), err, sizeof(err)), -1);
}

static fp_result sample_result(void)
{
    fp_result r;

    memset(&r, 0, sizeof(r));
    r.job = 3;
    r.idx = 10;
    r.line = 12;
    strcpy(r.status, "ok");
    r.http_code = 200;
    r.bytes = 16384;
    r.total_us = 1234;
    r.dns_us = 1;
    r.connect_us = 2;
    r.ttfb_us = 3;
    r.attempts = 1;
    strcpy(r.worker, "host-1");
    memset(r.sha256, 'a', 64);
    snprintf(r.path, sizeof(r.path), "aa/%s.jpg", r.sha256);
    strcpy(r.content_type, "image/jpeg; charset=\xc3\xa9");
    strcpy(r.url, "https://example.com/x.jpg");
    return r;
}

static void result_round_trip(void **state)
{
    fp_result r = sample_result(), d;
    char buf[FP_RECORD_MAX], err[128];
    int n;

    (void)state;
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(fp_result_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
    assert_true(d.job == 3 && d.idx == 10 && d.line == 12 && d.bytes == 16384);
    assert_true(d.total_us == 1234 && d.dns_us == 1 && d.connect_us == 2 && d.ttfb_us == 3);
    assert_int_equal(d.http_code, 200);
    assert_int_equal(d.attempts, 1);
    assert_string_equal(d.status, "ok");
    assert_string_equal(d.worker, "host-1");
    assert_string_equal(d.sha256, r.sha256);
    assert_string_equal(d.path, r.path);
    assert_string_equal(d.content_type, r.content_type);
    assert_string_equal(d.url, r.url);
    assert_string_equal(d.error, "");

    /* A failure: no sha, no path, an error text with spaces. */
    strcpy(r.status, "http_404");
    r.sha256[0] = r.path[0] = '\0';
    strcpy(r.error, "HTTP 404 not found");
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(fp_result_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
    assert_string_equal(d.status, "http_404");
    assert_string_equal(d.error, "HTTP 404 not found");
}

static void result_refuses_bad_fields(void **state)
{
    fp_result r;
    char buf[FP_RECORD_MAX], err[128];
    int n;

    (void)state;
    r = sample_result();
    strcpy(r.status, "Not OK");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    r = sample_result();
    strcpy(r.path, "../etc/passwd");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    r = sample_result();
    strcpy(r.path, "/etc/passwd");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    r = sample_result(); /* an object's URL (S3 output), but never one that climbs */
    strcpy(r.path, "s3://../x");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    strcpy(r.path, "s3:///etc/passwd");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    strcpy(r.path, "http://host/x");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    strcpy(r.path, "s3://bucket/pre/fix/aa/00.jpg");
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    {
        static fp_result d;
        assert_int_equal(fp_result_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
        assert_string_equal(d.path, "s3://bucket/pre/fix/aa/00.jpg");
    }
    r = sample_result();
    strcpy(r.sha256, "xyz");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    r = sample_result();
    strcpy(r.error, "line\nbreak");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);
    r = sample_result();
    strcpy(r.worker, "a b");
    assert_int_equal(fp_result_encode(&r, buf, sizeof(buf)), -1);

    /* Decoder: replace one field at a time with garbage. */
    r = sample_result();
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    {
        fp_result d;
        char mut[FP_RECORD_MAX];
        int i;
        for (i = 0; i < n; i++) {
            memcpy(mut, buf, (size_t)n);
            if (mut[i] == '\t') {
                mut[i] = ' '; /* merging two fields must fail */
                assert_int_equal(fp_result_decode(&d, mut, (size_t)n, err, sizeof(err)), -1);
            }
        }
        assert_int_equal(fp_result_decode(&d, buf, (size_t)n - 1, err, sizeof(err)), -1);
        assert_int_equal(fp_result_decode(&d, "R1", 2, err, sizeof(err)), -1);
    }
}

static void reasons(void **state)
{
    char s[FP_REASON_MAX + 1];

    (void)state;
    fp_reason_format(FP_R_HTTP, 404, s, sizeof(s));
    assert_string_equal(s, "http_404");
    fp_reason_format(FP_OK, 200, s, sizeof(s));
    assert_string_equal(s, "ok");
    fp_reason_format(FP_R_CONNECT_REFUSED, 0, s, sizeof(s));
    assert_string_equal(s, "connect_refused");
    assert_true(fp_reason_transient(FP_R_HTTP, 503));
    assert_true(fp_reason_transient(FP_R_HTTP, 429));
    assert_true(fp_reason_transient(FP_R_HTTP, 408));
    assert_false(fp_reason_transient(FP_R_HTTP, 404));
    assert_false(fp_reason_transient(FP_R_HTTP, 501));
    assert_true(fp_reason_transient(FP_R_TIMEOUT, 0));
    assert_true(fp_reason_transient(FP_R_DNS, 0));
    assert_false(fp_reason_transient(FP_R_NOT_AN_IMAGE, 200));
    assert_false(fp_reason_transient(FP_R_TOO_LARGE, 200));
}

static void sanitize(void **state)
{
    char out[8];

    (void)state;
    fp_sanitize(out, sizeof(out), "a\tb\nc", 5);
    assert_string_equal(out, "a?b?c");
    fp_sanitize(out, sizeof(out), "abcdefghij", 10);
    assert_string_equal(out, "abcdefg");
    /* A two-byte sequence cut in half is not left dangling. */
    fp_sanitize(out, sizeof(out), "abcdef\xc3\xa9", 8);
    assert_true(fp_text_utf8_valid(out, strlen(out)));
    fp_sanitize(out, sizeof(out), "\xff\xfe", 2);
    assert_string_equal(out, "??");
}

static void text_numbers_and_utf8(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(fp_text_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(fp_text_u64("18446744073709551616", 20, &v), -1);
    assert_int_equal(fp_text_u64("", 0, &v), -1);
    assert_int_equal(fp_text_u64("+1", 2, &v), -1);
    assert_true(fp_text_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(fp_text_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(fp_text_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(fp_text_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(fp_text_utf8_valid("\xe2\x82", 2));         /* cut short */
}

static void redact(const char *in, const char *want, int hidden)
{
    char out[256];

    assert_int_equal(fp_text_url_redact(out, sizeof(out), in), hidden);
    assert_string_equal(out, want);
}

/* A failure without a transfer: ids from the task, credentials redacted, and an error with
 * control characters and broken UTF-8 (a Redis error message) still makes a valid record. */
static void result_fail_task(void **state)
{
    fp_task t = {.job = 3,
                 .idx = 4,
                 .line = 5,
                 .attempt = 2,
                 .max_attempts = 2,
                 .url = "http://user:secret@example.com/a.jpg"};
    static fp_result r, d;
    char buf[FP_RECORD_MAX], err[128];
    int n;

    (void)state;
    fp_result_fail_task(&r, &t, FP_R_INTERNAL, "w1", "NOPERM\tno\r\n\xff\xfe rights");
    assert_int_equal(r.job, 3);
    assert_int_equal(r.idx, 4);
    assert_int_equal(r.line, 5);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.status, "internal_error");
    assert_string_equal(r.worker, "w1");
    assert_null(strstr(r.url, "secret"));
    assert_string_equal(r.error, "NOPERM?no???? rights");
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(fp_result_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
    assert_string_equal(d.error, r.error);
}

static void url_redaction(void **state)
{
    char small[12];

    (void)state;
    redact("http://user:pw@host/a.jpg", "http://user:***@host/a.jpg", 1);
    redact("https://tok@host:8443/x?y", "https://***@host:8443/x?y", 1);
    redact("http://u:p@ss@host/", "http://u:***@host/", 1); /* the last '@' ends it */
    redact("http://host/a@b.jpg", "http://host/a@b.jpg", 0);
    redact("http://host/x?u=http://a:b@c/", "http://host/x?u=http://a:b@c/", 0);
    redact("http://host?q=a@b", "http://host?q=a@b", 0);
    redact("not a url", "not a url", 0);
    redact("/path://u:p@h", "/path://u:p@h", 0);
    redact("http://:pw@host/", "http://:***@host/", 1);
    assert_int_equal(fp_text_url_redact(small, sizeof(small), "http://u:secret@h/"), 1);
    assert_string_equal(small, "http://u:**");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(task_round_trip),
        cmocka_unit_test(task_encode_refuses_bad_fields),
        cmocka_unit_test(task_decode_malformed),
        cmocka_unit_test(task_decode_embedded_nul_and_long_url),
        cmocka_unit_test(result_round_trip),
        cmocka_unit_test(result_refuses_bad_fields),
        cmocka_unit_test(reasons),
        cmocka_unit_test(sanitize),
        cmocka_unit_test(text_numbers_and_utf8),
        cmocka_unit_test(url_redaction),
        cmocka_unit_test(result_fail_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
