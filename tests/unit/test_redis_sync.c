/* test_redis_sync.c - what the programs read from Redis at start: its version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fp_redis_sync.h"

static void versions(void **state)
{
    (void)state;
    assert_int_equal(fp_redis_version_parse("# Server\r\nredis_version:7.0.15\r\n"
                                            "redis_git_sha1:00000000\r\n"),
                     0x07000f);
    assert_int_equal(fp_redis_version_parse("# Server\r\nredis_version:6.2.14\r\nx:1\r\n"),
                     0x06020e);
    assert_int_equal(fp_redis_version_parse("redis_version:7.2\n"), 0x070200);
    assert_int_equal(fp_redis_version_parse("redis_version:255.255.255\r\n"), 0xffffff);
    /* Another field whose name ends in it, or none at all. */
    assert_int_equal(fp_redis_version_parse("# Server\r\nmy_redis_version:9.0.0\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("# Server\r\nredis_mode:standalone\r\n"), -1);
    assert_int_equal(fp_redis_version_parse(""), -1);
    /* Not a version. */
    assert_int_equal(fp_redis_version_parse("redis_version:\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:seven\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:7\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:7.256.0\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:7.0.\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:99999999999.0.0\r\n"), -1);
    assert_int_equal(fp_redis_version_parse("redis_version:-7.0.0\r\n"), -1);
    /* fetchpool needs 7.0 (its scripts call redis.acl_check_cmd). */
    assert_true(FP_REDIS_VERSION_MIN == 0x070000);
    assert_true(fp_redis_version_parse("redis_version:6.2.99\r\n") < FP_REDIS_VERSION_MIN);
    assert_true(fp_redis_version_parse("redis_version:7.0.0\r\n") >= FP_REDIS_VERSION_MIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
