/* test_hostgroup.c - a URL's host budget by registered domain (master/hostgroup.c): the
 * input line as the master normalises it (line.c), libpsl's label count for the task
 * flags, and the key the scripts derive from it (the same rules as fp_polite.h's Lua). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fp_record.h"
#include "hostgroup.h"
#include "line.h"

static fpm_hostgroup *g;
static char url[FP_URL_MAX + 1], host[FP_URL_MAX + 1], key[FP_URL_MAX + 1];

static int setup(void **state)
{
    (void)state;
    g = fpm_hostgroup_new();
    return g == NULL;
}

static int teardown(void **state)
{
    (void)state;
    fpm_hostgroup_free(g);
    return 0;
}

/* The budget key of an input line's URL, as the master feeds it and the scripts read it. */
static const char *key_of(const char *line, unsigned *labels)
{
    assert_int_equal(fp_line_parse(line, strlen(line), url, sizeof(url)), FP_LINE_URL);
    *labels = fpm_hostgroup_labels(g, url);
    assert_true(fpm_hostgroup_host(url, host, sizeof(host)) > 0);
    return fp_task_host_key(host, *labels << FP_TASK_GROUP_SHIFT, key, sizeof(key));
}

static void key_is(const char *line, const char *want, unsigned want_labels)
{
    unsigned labels;

    assert_string_equal(key_of(line, &labels), want);
    assert_int_equal(labels, want_labels);
}

static void subdomains_share_their_domain(void **state)
{
    (void)state;
    key_is("http://a.img.example.com/1.jpg", "example.com", 2);
    key_is("https://b.img.example.com:8443/2.jpg?x=1", "example.com", 2);
    key_is("http://www.example.com/", "example.com", 2);
    key_is("http://example.com/", "example.com", 0); /* the host is its domain */
    key_is("http://user:pw@a.b.c.example.org/x", "example.org", 2);
}

static void multi_label_suffixes(void **state)
{
    (void)state;
    key_is("http://a.img.example.co.uk/1.jpg", "example.co.uk", 3);
    key_is("http://www.bbc.co.uk/", "bbc.co.uk", 3);
    key_is("http://co.uk/", "co.uk", 0);               /* a public suffix: no registered domain */
    key_is("http://x.a.github.io/", "a.github.io", 3); /* the list's private part */
    key_is("http://a.github.io/", "a.github.io", 0);
}

static void ip_literals_stay_themselves(void **state)
{
    (void)state;
    key_is("http://192.168.1.1/a.jpg", "192.168.1.1", 0);
    key_is("http://127.0.0.1:8080/a.jpg", "127.0.0.1", 0);
    key_is("http://[::1]:8080/a.jpg", "[::1]", 0);
    key_is("http://[2001:db8::1]/a.jpg", "[2001:db8::1]", 0);
    key_is("http://[::ffff:192.168.1.1]/a.jpg", "[::ffff:192.168.1.1]", 0);
    key_is("http://localhost/", "localhost", 0);
}

static void trailing_dot_and_case(void **state)
{
    unsigned labels;

    (void)state;
    key_is("http://a.example.com./x", "example.com", 2);
    key_is("http://example.com./x", "example.com", 2); /* joins example.com */
    assert_string_equal(key_of("http://A.Img.EXAMPLE.Com/x", &labels), "example.com");
    assert_string_equal(key_of("HTTP://WWW.BBC.CO.UK/", &labels), "bbc.co.uk");
}

static void unknown_tld_takes_the_default_rule(void **state)
{
    (void)state;
    /* The list's "*" rule: an unknown top-level domain is a public suffix of one label. */
    key_is("http://a.cdn.example/1.jpg", "cdn.example", 2);
    key_is("http://b.cdn.example/2.jpg", "cdn.example", 2);
    key_is("http://h1.img.test/x", "img.test", 2);
    key_is("http://cdn.example/", "cdn.example", 0);
    key_is("http://example/", "example", 0);
}

static void the_host_as_the_lua_takes_it(void **state)
{
    (void)state;
    assert_int_equal(fpm_hostgroup_host("http://u@v@Host.X:80/p", host, sizeof(host)), 6);
    assert_string_equal(host, "host.x");
    assert_int_equal(fpm_hostgroup_host("https://[::1]:80/", host, sizeof(host)), 5);
    assert_string_equal(host, "[::1]");
    assert_int_equal(fpm_hostgroup_host("http:///p", host, sizeof(host)), 0);
    assert_int_equal(fpm_hostgroup_host("nota url", host, sizeof(host)), 0);
    assert_int_equal(fpm_hostgroup_host("http://abc/", host, 3), 0); /* does not fit */
    assert_int_equal(fpm_hostgroup_labels(g, "not a url"), 0);
    assert_int_equal(fpm_hostgroup_labels(NULL, "http://a.example.com/"), 0);
}

static void key_rules(void **state)
{
    (void)state;
    /* Other flags are not labels. */
    assert_string_equal(
        fp_task_host_key("a.b.c", FP_TASK_ROBOTS | FP_TASK_ALLOW_SVG, key, sizeof(key)), "a.b.c");
    assert_string_equal(
        fp_task_host_key("x.a.b.c", FP_TASK_ROBOTS | (2u << FP_TASK_GROUP_SHIFT), key, sizeof(key)),
        "b.c");
    assert_string_equal(fp_task_host_key("a.b.c", 2u << FP_TASK_GROUP_SHIFT, key, sizeof(key)),
                        "b.c");
    assert_string_equal(fp_task_host_key("a.b.c.", 2u << FP_TASK_GROUP_SHIFT, key, sizeof(key)),
                        "b.c");
    assert_string_equal(fp_task_host_key("b.c", 2u << FP_TASK_GROUP_SHIFT, key, sizeof(key)),
                        "b.c");
    assert_string_equal(fp_task_host_key("c", 3u << FP_TASK_GROUP_SHIFT, key, sizeof(key)), "c");
    assert_string_equal(fp_task_host_key("a.b.c.", 0u << FP_TASK_GROUP_SHIFT, key, sizeof(key)),
                        "a.b.c.");
    assert_string_equal(fp_task_host_key("a..b", 2u << FP_TASK_GROUP_SHIFT, key, sizeof(key)),
                        ".b");
}

static void many_hosts_and_long_ones(void **state)
{
    char line[600];
    unsigned labels;
    int i;

    (void)state;
    /* More hosts than the table has slots, twice: every answer stays right. */
    for (i = 0; i < 5000; i++) {
        snprintf(line, sizeof(line), "http://h%d.img%d.example.org/x", i, i % 7);
        assert_string_equal(key_of(line, &labels), "example.org");
        snprintf(line, sizeof(line), "http://h%d.img.test/x", i);
        assert_string_equal(key_of(line, &labels), "img.test");
    }
    /* A host name too long for the table is looked up every time. */
    memset(line, 0, sizeof(line));
    strcpy(line, "http://");
    for (i = 0; i < 40; i++)
        strcat(line, "abcdef.");
    strcat(line, "example.net/x");
    assert_string_equal(key_of(line, &labels), "example.net");
    assert_string_equal(key_of(line, &labels), "example.net");
}

static void label_count_fits_the_flags(void **state)
{
    char buf[FP_RECORD_MAX];
    fp_task t = {.job = 1, .attempt = 1, .max_attempts = 3, .url = "http://a.b.example.co.uk/"}, d;
    char err[128];
    int n;

    (void)state;
    t.flags = FP_TASK_ROBOTS | (3u << FP_TASK_GROUP_SHIFT);
    assert_true((n = fp_task_encode(&t, buf, sizeof(buf))) > 0);
    assert_int_equal(fp_task_decode(&d, buf, (size_t)n, err, sizeof(err)), 0);
    assert_int_equal(d.flags, t.flags);
    assert_int_equal((d.flags & FP_TASK_GROUP_MASK) >> FP_TASK_GROUP_SHIFT, 3);
    t.flags = FP_TASK_GROUP_MASK;
    assert_true(fp_task_encode(&t, buf, sizeof(buf)) > 0);
}

static void group_option_values(void **state)
{
    (void)state;
    assert_int_equal(fpm_group_parse("host", 4), FPM_GROUP_HOST);
    assert_int_equal(fpm_group_parse("domain", 6), FPM_GROUP_DOMAIN);
    assert_int_equal(fpm_group_parse("domains", 7), -1);
    assert_int_equal(fpm_group_parse("Host", 4), -1);
    assert_int_equal(fpm_group_parse("", 0), -1);
    assert_string_equal(fpm_group_str(FPM_GROUP_DOMAIN), "domain");
    assert_string_equal(fpm_group_str(FPM_GROUP_HOST), "host");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subdomains_share_their_domain),
        cmocka_unit_test(multi_label_suffixes),
        cmocka_unit_test(ip_literals_stay_themselves),
        cmocka_unit_test(trailing_dot_and_case),
        cmocka_unit_test(unknown_tld_takes_the_default_rule),
        cmocka_unit_test(the_host_as_the_lua_takes_it),
        cmocka_unit_test(key_rules),
        cmocka_unit_test(many_hosts_and_long_ones),
        cmocka_unit_test(label_count_fits_the_flags),
        cmocka_unit_test(group_option_values),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
