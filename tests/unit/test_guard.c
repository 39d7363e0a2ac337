/* test_guard.c - the SSRF address classifier, every blocked range and the spellings that
 * defeat text checks. Addresses are only classified here, never connected to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"

typedef struct row {
    const char *addr;
    const char *want; /* NULL: public, allowed */
} row;

static const row table[] = {
    {"0.0.0.0", "unspecified"},
    {"0.1.2.3", "unspecified"},
    {"10.0.0.1", "private"},
    {"10.255.255.255", "private"},
    {"100.64.0.1", "cgnat"},
    {"100.127.255.254", "cgnat"},
    {"100.128.0.1", NULL},
    {"127.0.0.1", "loopback"},
    {"127.255.255.254", "loopback"},
    {"169.254.169.254", "link_local"},
    {"172.16.0.1", "private"},
    {"172.31.255.255", "private"},
    {"172.32.0.1", NULL},
    {"172.15.255.255", NULL},
    {"192.0.0.8", "reserved"},
    {"192.0.2.1", "documentation"},
    {"192.168.1.1", "private"},
    {"198.18.0.1", "benchmark"},
    {"198.19.255.255", "benchmark"},
    {"198.20.0.1", NULL},
    {"224.0.0.1", "multicast"},
    {"239.255.255.250", "multicast"},
    {"240.0.0.1", "reserved"},
    {"255.255.255.255", "reserved"},
    {"8.8.8.8", NULL},
    {"93.184.216.34", NULL},
    {"::1", "loopback"},
    {"::", "unspecified"},
    {"::ffff:127.0.0.1", "loopback"},
    {"::ffff:7f00:1", "loopback"},
    {"::ffff:10.1.2.3", "private"},
    {"::ffff:169.254.169.254", "link_local"},
    {"::ffff:8.8.8.8", NULL},
    {"::127.0.0.1", "loopback"},
    {"64:ff9b::127.0.0.1", "loopback"},
    {"64:ff9b::a9fe:a9fe", "link_local"},
    {"64:ff9b::8.8.8.8", NULL},
    {"64:ff9b:1::1", "nat64_local"},
    {"2002:7f00:1::1", "loopback"},
    {"2002:c0a8:101::1", "private"},
    {"2002:808:808::1", NULL},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"},
    {"2001:db8::1", "documentation"},
    {"100::1", "discard"},
    {"fc00::1", "private"},
    {"fd12:3456:789a::1", "private"},
    {"fe80::1", "link_local"},
    {"febf::1", "link_local"},
    {"fec0::1", "site_local"},
    {"ff02::1", "multicast"},
    {"2606:4700::6810:84e5", NULL},
    {"2a00:1450:4001:80b::200e", NULL},
};

static void classifies_every_range(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *got = fp_guard_classify_text(table[i].addr);
        if (table[i].want == NULL) {
            if (got != NULL)
                fail_msg("%s: want public, got %s", table[i].addr, got);
        } else if (got == NULL || strcmp(got, table[i].want) != 0) {
            fail_msg("%s: want %s, got %s", table[i].addr, table[i].want, got ? got : "public");
        }
    }
    assert_string_equal(fp_guard_classify_text("not an ip"), "unparsable");
}

/* The spellings of loopback that fool text checks all resolve to 127.0.0.1 first; the
 * guard judges the resolved socket address. getaddrinfo parses them without DNS. */
static void loopback_spellings_resolve_to_blocked(void **state)
{
    static const char *const spellings[] = {"2130706433", "127.1",      "0x7f.1",
                                            "0177.0.0.1", "0x7f000001", "127.0.1"};
    struct addrinfo hints, *res;
    size_t i;

    (void)state;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_flags = AI_NUMERICHOST;
    for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        if (getaddrinfo(spellings[i], NULL, &hints, &res) != 0)
            fail_msg("getaddrinfo could not parse %s", spellings[i]);
        assert_string_equal(fp_guard_classify(res->ai_addr), "loopback");
        freeaddrinfo(res);
    }
}

static void non_ip_families_are_blocked(void **state)
{
    struct sockaddr sa;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_string_equal(fp_guard_classify(&sa), "not_ip");
}

static void allow_list(void **state)
{
    fp_cidr l[3];
    struct sockaddr_in in4;

    (void)state;
    assert_int_equal(fp_guard_cidr_parse("10.1.0.0/16", &l[0]), 0);
    assert_int_equal(fp_guard_cidr_parse("127.0.0.2", &l[1]), 0);
    assert_int_equal(fp_guard_cidr_parse("fd00:1::/32", &l[2]), 0);
    assert_true(fp_guard_cidr_match_text(l, 3, "10.1.255.7"));
    assert_false(fp_guard_cidr_match_text(l, 3, "10.2.0.1"));
    assert_true(fp_guard_cidr_match_text(l, 3, "127.0.0.2"));
    assert_false(fp_guard_cidr_match_text(l, 3, "127.0.0.1"));
    assert_true(fp_guard_cidr_match_text(l, 3, "fd00:1:ffff::9"));
    assert_false(fp_guard_cidr_match_text(l, 3, "fd00:2::9"));
    assert_false(fp_guard_cidr_match_text(l, 3, "::ffff:10.1.0.1")); /* families kept apart */
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &in4.sin_addr);
    assert_true(fp_guard_cidr_match(l, 3, (struct sockaddr *)&in4));
    assert_int_equal(fp_guard_cidr_parse("10.0.0.0/33", &l[0]), -1);
    assert_int_equal(fp_guard_cidr_parse("10.0.0/8", &l[0]), -1);
    assert_int_equal(fp_guard_cidr_parse("/8", &l[0]), -1);
    assert_int_equal(fp_guard_cidr_parse("::1/", &l[0]), -1);
    assert_int_equal(fp_guard_cidr_parse("10.0.0.0/8x", &l[0]), -1);
    assert_int_equal(fp_guard_cidr_parse("0.0.0.0/0", &l[0]), 0);
    assert_true(fp_guard_cidr_match_text(l, 1, "8.8.8.8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classifies_every_range),
        cmocka_unit_test(loopback_spellings_resolve_to_blocked),
        cmocka_unit_test(non_ip_families_are_blocked),
        cmocka_unit_test(allow_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
