/* test_robots.c - robots.txt parsing and matching (RFC 9309 groups, longest match,
 * wildcards), Crawl-delay, status outcomes, and hostile files: huge, binary, patterns
 * built to make a naive matcher exponential. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rcache.h"
#include "robots.h"

static fp_robots r;

static void parse(const char *text)
{
    fp_robots_parse(&r, text, strlen(text), "fetchpool");
}

static void groups_and_longest_match(void **state)
{
    (void)state;
    parse("# comment\n"
          "User-agent: *\n"
          "Disallow: /\n"
          "\n"
          "User-agent: otherbot\n"
          "User-agent: FetchPool/2.0\n"
          "Disallow: /private/   # trailing comment\n"
          "Allow: /private/public\n"
          "Disallow: /*.gif$\n"
          "Disallow: /tmp*/x\n"
          "Crawl-delay: 2.5\n"
          "Sitemap: http://example.test/s.xml\n");
    assert_int_equal(r.kind, FP_ROBOTS_RULES);
    assert_int_equal(r.nrules, 4);
    /* Our group applies, not "*": "/" stays allowed. */
    assert_true(fp_robots_allowed(&r, "/"));
    assert_true(fp_robots_allowed(&r, "/img/1.jpg"));
    assert_false(fp_robots_allowed(&r, "/private/a.jpg"));
    assert_true(fp_robots_allowed(&r, "/private/public/a.jpg")); /* longer Allow wins */
    assert_false(fp_robots_allowed(&r, "/a/b.gif"));
    assert_true(fp_robots_allowed(&r, "/a/b.gif?x=1")); /* '$' anchors the end */
    assert_false(fp_robots_allowed(&r, "/tmp123/x/y"));
    assert_true(fp_robots_allowed(&r, "/robots.txt"));
    assert_true(r.crawl_delay > 2.49 && r.crawl_delay < 2.51);
}

static void star_group_when_none_names_us(void **state)
{
    (void)state;
    parse("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /cgi\nAllow: /\n");
    assert_int_equal(r.kind, FP_ROBOTS_RULES);
    assert_false(fp_robots_allowed(&r, "/cgi-bin/x"));
    assert_true(fp_robots_allowed(&r, "/img.jpg"));
    assert_true(r.crawl_delay < 0);
    /* A tie of equal length: Allow wins. */
    parse("User-agent: *\nDisallow: /a\nAllow: /a\n");
    assert_true(fp_robots_allowed(&r, "/a"));
    /* Our groups merge; empty Disallow is no rule; unknown and malformed lines skipped. */
    parse("User-agent: fetchpool\nDisallow:\nfoo bar\nNoindex: /x\n\n"
          "User-agent: fetchpool\nDisallow: /x\n");
    assert_int_equal(r.nrules, 1);
    assert_false(fp_robots_allowed(&r, "/x/1"));
    assert_true(fp_robots_allowed(&r, "/y"));
}

static void nothing_for_us(void **state)
{
    (void)state;
    parse("User-agent: otherbot\nDisallow: /\n");
    assert_int_equal(r.kind, FP_ROBOTS_ALLOW_ALL);
    assert_true(fp_robots_allowed(&r, "/anything"));
    parse("");
    assert_true(fp_robots_allowed(&r, "/anything"));
    parse("Disallow: /\n"); /* a rule before any user-agent line belongs to no group */
    assert_true(fp_robots_allowed(&r, "/anything"));
}

static void status_outcomes(void **state)
{
    (void)state;
    fp_robots_for_status(&r, 404);
    assert_true(fp_robots_allowed(&r, "/a"));
    fp_robots_for_status(&r, 503);
    assert_false(fp_robots_allowed(&r, "/a"));
    assert_true(fp_robots_allowed(&r, "/robots.txt"));
    fp_robots_for_status(&r, 0); /* unreachable */
    assert_false(fp_robots_allowed(&r, "/a"));
}

static void binary_is_ignored(void **state)
{
    static const char bin[] = "User-agent: *\nDisallow: /\n\0\x89PNG";

    (void)state;
    fp_robots_parse(&r, bin, sizeof(bin) - 1, "fetchpool");
    assert_int_equal(r.kind, FP_ROBOTS_ALLOW_ALL);
    assert_true(fp_robots_allowed(&r, "/a"));
}

static void huge_is_bounded(void **state)
{
    size_t n = FP_ROBOTS_MAX + 100000, i, used = 0;
    char *t = malloc(n);
    const char *head = "User-agent: *\n";
    const char *line = "Disallow: /d\n";

    (void)state;
    assert_non_null(t);
    memcpy(t, head, strlen(head));
    used = strlen(head);
    for (i = 0; used + strlen(line) <= n; i++, used += strlen(line))
        memcpy(t + used, line, strlen(line));
    memset(t + used, '\n', n - used);
    /* Past the bound: a rule that must not be seen. */
    memcpy(t + n - 20, "Disallow: /late\n", 16);
    fp_robots_parse(&r, t, n, "fetchpool");
    assert_int_equal(r.nrules, FP_ROBOTS_RULES_MAX);
    assert_false(fp_robots_allowed(&r, "/d"));
    assert_true(fp_robots_allowed(&r, "/late"));
    free(t);
}

static void hostile_patterns_stay_fast(void **state)
{
    char text[4096], path[4096];
    size_t i;

    (void)state;
    /* A slash, 200 times "star a", then "star b": exponential for a naive backtracking
     * matcher on a long run of a. */
    strcpy(text, "User-agent: *\nDisallow: /");
    for (i = 0; i < 200; i++)
        strcat(text, "*a");
    strcat(text, "*b\n");
    path[0] = '/';
    memset(path + 1, 'a', 3000);
    path[3001] = '\0';
    parse(text);
    assert_true(fp_robots_allowed(&r, path));
    path[3000] = 'b';
    assert_false(fp_robots_allowed(&r, path));
}

/* The worker's token is its user agent's product name (rcache.c). */
static void token_of_user_agent(void **state)
{
    char t[64];

    (void)state;
    fp_rcache_token("fetchpool/1.2.3 (image downloader)", t, sizeof(t));
    assert_string_equal(t, "fetchpool");
    fp_rcache_token("My_Bot-2/1 (+https://x)", t, sizeof(t));
    assert_string_equal(t, "my_bot-2");
    fp_rcache_token("/x", t, sizeof(t));
    assert_string_equal(t, "fetchpool");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(groups_and_longest_match),
        cmocka_unit_test(star_group_when_none_names_us),
        cmocka_unit_test(nothing_for_us),
        cmocka_unit_test(status_outcomes),
        cmocka_unit_test(binary_is_ignored),
        cmocka_unit_test(huge_is_bounded),
        cmocka_unit_test(hostile_patterns_stay_fast),
        cmocka_unit_test(token_of_user_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
