/* test_line.c - the URL list line classifier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <string.h>

#include "line.h"
#include "fp_record.h"

static char out[FP_URL_MAX + 1];

static fp_line_kind parse(const char *s)
{
    return fp_line_parse(s, strlen(s), out, sizeof(out));
}

static void skips_blanks_and_comments(void **state)
{
    (void)state;
    assert_int_equal(parse(""), FP_LINE_SKIP);
    assert_int_equal(parse("   \t "), FP_LINE_SKIP);
    assert_int_equal(parse("\r"), FP_LINE_SKIP);
    assert_int_equal(parse("# a comment http://x/"), FP_LINE_SKIP);
    assert_int_equal(parse("   # indented comment"), FP_LINE_SKIP);
}

static void accepts_urls(void **state)
{
    (void)state;
    assert_int_equal(parse("http://example.com/a.jpg"), FP_LINE_URL);
    assert_string_equal(out, "http://example.com/a.jpg");
    assert_int_equal(parse("  https://example.com/a.jpg?x=1&y=2  "), FP_LINE_URL);
    assert_string_equal(out, "https://example.com/a.jpg?x=1&y=2");
    assert_int_equal(parse("http://example.com/a.jpg\r"), FP_LINE_URL); /* CRLF file */
    assert_string_equal(out, "http://example.com/a.jpg");
    assert_int_equal(parse("HTTP://Example.COM:8080/x"), FP_LINE_URL);
    assert_int_equal(parse("http://example.com/caf\xc3\xa9.jpg"), FP_LINE_URL);
    assert_string_equal(out, "http://example.com/caf%C3%A9.jpg");
    assert_int_equal(parse("http://[::1]:8080/a.png"), FP_LINE_URL);
    assert_int_equal(parse("\xEF\xBB\xBFhttp://example.com/bom.jpg"), FP_LINE_URL);
    assert_string_equal(out, "http://example.com/bom.jpg");
    assert_int_equal(parse("http://2130706433/"), FP_LINE_URL); /* the guard judges addresses */
}

static void rejects_bad_lines(void **state)
{
    static char longline[FP_LINE_MAX + 100];
    const char nul[] = "http://a/\0b";

    (void)state;
    assert_int_equal(parse("ftp://example.com/a.jpg"), FP_LINE_INVALID);
    assert_true(strstr(out, "scheme") != NULL);
    assert_int_equal(parse("file:///etc/passwd"), FP_LINE_INVALID);
    assert_int_equal(parse("gopher://x/"), FP_LINE_INVALID);
    assert_int_equal(parse("example.com/a.jpg"), FP_LINE_INVALID);
    assert_int_equal(parse("not a url"), FP_LINE_INVALID);
    assert_int_equal(parse("http://exa mple.com/"), FP_LINE_INVALID);
    assert_int_equal(parse("http://a/\x01"), FP_LINE_INVALID);
    assert_int_equal(parse("http://a/\xff\xfe"), FP_LINE_INVALID);
    assert_true(strstr(out, "UTF-8") != NULL);
    assert_int_equal(fp_line_parse(nul, sizeof(nul) - 1, out, sizeof(out)), FP_LINE_INVALID);
    assert_true(strstr(out, "NUL") != NULL);

    memcpy(longline, "http://a/", 9);
    memset(longline + 9, 'x', sizeof(longline) - 10);
    longline[sizeof(longline) - 1] = '\0';
    assert_int_equal(parse(longline), FP_LINE_INVALID);
    assert_true(strstr(out, "longer") != NULL);
    /* Exactly at the limit is still read (and is a fine URL). */
    longline[FP_LINE_MAX - 200] = '\0';
    assert_int_equal(parse(longline), FP_LINE_URL);
}

static void numbered_lines(void **state)
{
    size_t skip = 0;

    (void)state;
    assert_int_equal(fp_line_numbered("17\thttp://a/b", 12, &skip), 17);
    assert_int_equal(skip, 3);
    assert_int_equal(fp_line_numbered("1\t", 2, &skip), 1);
    assert_int_equal(fp_line_numbered("0\thttp://a/", 11, &skip), 0);
    assert_int_equal(fp_line_numbered("\thttp://a/", 10, &skip), 0);
    assert_int_equal(fp_line_numbered("12", 2, &skip), 0);
    assert_int_equal(fp_line_numbered("12 http://a/", 12, &skip), 0);
    assert_int_equal(fp_line_numbered("http://a/", 9, &skip), 0);
    assert_int_equal(fp_line_numbered("99999999999999999999\tx", 22, &skip), 0); /* too long */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(skips_blanks_and_comments),
        cmocka_unit_test(accepts_urls),
        cmocka_unit_test(rejects_bad_lines),
        cmocka_unit_test(numbered_lines),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
