/* test_hosts.c - the per-host scheduler: caps, round robin, counting, dropping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hosts.h"

static fp_hosts h; /* large (its hash table): not on the stack */

static void cap_and_round_robin(void **state)
{
    fp_hosts_item it[6];
    const char *urls[6] = {"http://a/1", "http://a/2",      "http://a/3",
                           "http://B/1", "https://u:p@b/2", "http://c:81/x"};
    fp_hosts_item *got[6];
    int i;

    (void)state;
    fp_hosts_init(&h, 2);
    for (i = 0; i < 6; i++)
        assert_int_equal(fp_hosts_wait(&h, &it[i], urls[i]), 0);
    assert_int_equal(h.waiting, 6);
    /* b and B and u:p@b are one host; c:81 is its own (the port is part of it). */
    assert_ptr_equal(it[3].host, it[4].host);
    assert_ptr_not_equal(it[0].host, it[3].host);
    for (i = 0; i < 5; i++)
        assert_non_null(got[i] = fp_hosts_next(&h));
    /* Round robin over a, b, c, then a and b again; a's third waits for its cap. */
    assert_ptr_equal(got[0], &it[0]);
    assert_ptr_equal(got[1], &it[3]);
    assert_ptr_equal(got[2], &it[5]);
    assert_ptr_equal(got[3], &it[1]);
    assert_ptr_equal(got[4], &it[4]);
    assert_null(fp_hosts_next(&h));
    assert_int_equal(it[0].host->active, 2);
    fp_hosts_end(&h, &it[0]); /* a is under its cap again */
    assert_null(it[0].host);
    assert_ptr_equal(fp_hosts_next(&h), &it[2]);
    assert_int_equal(h.waiting, 0);
    for (i = 1; i < 6; i++)
        fp_hosts_end(&h, &it[i]);
    for (i = 0; i < FP_HOSTS_BUCKETS; i++)
        assert_null(h.bucket[i]); /* idle hosts are freed */
    fp_hosts_free(&h);
}

static void no_cap_and_drop(void **state)
{
    fp_hosts_item it[3];
    int i;

    (void)state;
    fp_hosts_init(&h, 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(fp_hosts_wait(&h, &it[i], "http://same/"), 0);
    assert_ptr_equal(fp_hosts_next(&h), &it[0]);
    assert_ptr_equal(fp_hosts_next(&h), &it[1]); /* no cap */
    assert_ptr_equal(fp_hosts_drop_waiting(&h), &it[2]);
    assert_null(fp_hosts_drop_waiting(&h));
    assert_int_equal(h.waiting, 0);
    fp_hosts_end(&h, &it[0]);
    fp_hosts_end(&h, &it[1]);
    for (i = 0; i < FP_HOSTS_BUCKETS; i++)
        assert_null(h.bucket[i]);
    fp_hosts_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_and_round_robin),
        cmocka_unit_test(no_cap_and_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
