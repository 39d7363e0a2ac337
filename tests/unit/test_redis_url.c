/* test_redis_url.c - redis:// addresses, and option values read the same way everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    assert_string_equal(u.user, "");         /* the default user */
    /* An ACL user, percent-decoded too. */
    assert_int_equal(fp_redis_url_parse("redis://fp%20user:pw%3Ax@h/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "fp user");
    assert_string_equal(u.password, "pw:x");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.db, 2);
    assert_int_equal(fp_redis_url_parse("redis://fpuser@h", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "fpuser");
    assert_string_equal(u.password, "");
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
    /* A usage error never echoes the user info, however the URL is broken. */
    static const char *const secret[] = {"rediss://:hunter2@h:6379", "rediss://fpuser:hunter2@h",
                                         "redis://u:hunter2@h:0",    "redis://:hun/ter2@h",
                                         "hunter2@h:6379",           "redis://u:hunter2@h/x",
                                         "redis://u:hun%00ter2@h",   "redis://hun ter2@h",
                                         "http://u:hunter2@h/",      "redis://u:hunter2@:6379"};
    for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fp_redis_url_parse(secret[i], &u, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "hunter2"));
        assert_null(strstr(err, "hun"));
        assert_null(strstr(err, "fpuser"));
    }
    /* rediss:// says why fetchpool cannot take it, and what to do instead. */
    assert_int_equal(fp_redis_url_parse("rediss://h:6380", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "stunnel"));
}

static void shown_urls(void **state)
{
    char buf[256];

    (void)state;
    fp_redis_url_shown(buf, sizeof(buf), "redis://u:p@h:1/2");
    assert_string_equal(buf, "redis://***@h:1/2");
    fp_redis_url_shown(buf, sizeof(buf), "redis://h:1/2");
    assert_string_equal(buf, "redis://h:1/2");
    fp_redis_url_shown(buf, sizeof(buf), "u:p@h@i");
    assert_string_equal(buf, "***@i");
    fp_redis_url_shown(buf, sizeof(buf), "redis://:a/b@h");
    assert_string_equal(buf, "redis://***@h");
}

/* Writes a file in the test's temp dir; its path into path. */
static void write_file(char *path, size_t len, const char *name, const char *text)
{
    FILE *f;

    snprintf(path, len, "%s/fp-test-secret-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void secrets_from_files(void **state)
{
    char good[512], empty[512], big[512], buf[64], huge[200];
    const char *v = "x";

    (void)state;
    fp_opt_init("test");
    unsetenv("FP_TEST_S");
    unsetenv("FP_TEST_S_FILE");
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), 0);
    assert_null(v); /* neither set */
    setenv("FP_TEST_S", "from-env", 1);
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), 0);
    assert_string_equal(v, "from-env");
    write_file(good, sizeof(good), "good", "redis://:s3cret@h\n"); /* as echo writes it */
    setenv("FP_TEST_S_FILE", good, 1);
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), -1); /* both */
    unsetenv("FP_TEST_S");
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), 0);
    assert_string_equal(v, "redis://:s3cret@h");
    assert_ptr_equal(v, buf);
    write_file(empty, sizeof(empty), "empty", "\n");
    setenv("FP_TEST_S_FILE", empty, 1);
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), -1);
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    write_file(big, sizeof(big), "big", huge);
    setenv("FP_TEST_S_FILE", big, 1);
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), -1);
    setenv("FP_TEST_S_FILE", "/nonexistent/secret", 1);
    assert_int_equal(fp_opt_env_secret("FP_TEST_S", buf, sizeof(buf), &v), -1);
    unsetenv("FP_TEST_S_FILE");
    unlink(good);
    unlink(empty);
    unlink(big);
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
        cmocka_unit_test(good_urls),     cmocka_unit_test(bad_urls),
        cmocka_unit_test(shown_urls),    cmocka_unit_test(secrets_from_files),
        cmocka_unit_test(option_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
