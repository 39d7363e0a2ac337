/* test_redis_url.c - redis:// addresses, and option values read the same way everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fp_opt.h"
#include "fp_redis_url.h"

static void good_urls(void **state)
{
    fp_redis_url u;
    char err[256];

    (void)state;
    assert_int_equal(fp_redis_url_parse(FP_REDIS_URL_DEFAULT, &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(
        fp_redis_url_parse("redis://:p%40ss@redis.example:7000/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "p@ss"); /* percent-decoded */
    assert_int_equal(fp_redis_url_parse("redis://[::1]:6380", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1"); /* bare, as hiredis wants it */
    assert_int_equal(u.port, 6380);
}

static void bad_urls(void **state)
{
    static const char *const bad[] = {"http://127.0.0.1:6379", "redis://",    "redis://h:0",
                                      "redis://h:70000",       "redis://h/x", "redis://h/-1",
                                      "redis://h/1001",        "not a url"};
    fp_redis_url u;
    char err[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fp_redis_url_parse(bad[i], &u, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
    /* A usage error never echoes the password. */
    assert_int_equal(fp_redis_url_parse("rediss://:hunter2@h:6379", &u, err, sizeof(err)), -1);
    assert_null(strstr(err, "hunter2"));
}

static void option_values(void **state)
{
    double v = -1;

    (void)state;
    fp_opt_init("test");
    assert_int_equal(fp_opt_num("--n", "64", 1, 100, 1, &v), 0);
    assert_true(v == 64);
    assert_int_equal(fp_opt_num("--t", "0.5", 0.001, 10, 0, &v), 0);
    assert_true(v == 0.5);
    assert_int_equal(fp_opt_num("--n", "0.5", 0, 10, 1, &v), -1);  /* not whole */
    assert_int_equal(fp_opt_num("--n", "-1", -5, 10, 1, &v), -1);  /* no signs */
    assert_int_equal(fp_opt_num("--n", " 1", 0, 10, 1, &v), -1);   /* no blanks */
    assert_int_equal(fp_opt_num("--n", "1x", 0, 10, 1, &v), -1);   /* no trailing text */
    assert_int_equal(fp_opt_num("--n", "101", 1, 100, 1, &v), -1); /* range */
    assert_int_equal(fp_opt_num("--n", "", 1, 100, 1, &v), -1);
    v = -1;
    assert_int_equal(fp_opt_env_num("FP_TEST_SURELY_UNSET", 1, 10, 1, &v), 0);
    assert_true(v == -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_urls),
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(option_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
