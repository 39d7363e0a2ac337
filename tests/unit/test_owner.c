/* test_owner.c - the heartbeat's call and its reply (owner.h): whose the id is, and when
 * a worker may trust that it is still its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "owner.h"

static redisReply reply(int type, const char *str)
{
    redisReply r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.str = (char *)str;
    r.len = str ? strlen(str) : 0;
    return r;
}

static void arg_is(const fp_call *c, int i, const char *want)
{
    assert_int_equal(c->len[i], strlen(want));
    assert_memory_equal(c->argv[i], want, strlen(want));
}

static void call_names_its_owner(void **state)
{
    static fp_conf conf;
    static fp_call c;
    fp_owner_beats b = {0};
    fp_counters s = {.inflight = 3, .done = 10, .failed = 1};
    char value[512];

    (void)state;
    strcpy(conf.id, "w1");
    strcpy(conf.host, "box");
    fp_owner_beat_call(&c, &b, &conf, "box/1/42/abcd", &s, 1000);
    assert_int_equal(c.argc, 9);
    arg_is(&c, 0, "EVAL");
    arg_is(&c, 2, "2");
    arg_is(&c, 3, "fp:worker:w1");
    arg_is(&c, 4, "fp:workers");
    arg_is(&c, 5, "owner=box/1/42/abcd "); /* with the space: box/1/42/abcd2 is not us */
    memcpy(value, c.argv[6], c.len[6]);
    value[c.len[6]] = '\0';
    assert_string_equal(value, "owner=box/1/42/abcd beat=1 inflight=3 done=10 failed=1 retried=0 "
                               "bytes=0 rate=0.0 host=box");
    arg_is(&c, 7, "5000");
    arg_is(&c, 8, "w1");
}

static void reply_says_whose(void **state)
{
    fp_owner_beats b = {0};
    char other[FP_OWNER_MAX];
    redisReply ok = reply(REDIS_REPLY_INTEGER, NULL),
               taken = reply(REDIS_REPLY_STRING, "owner=other/1/7/ff beat=9 inflight=0"),
               odd = reply(REDIS_REPLY_STRING, "garbage"),
               err = reply(REDIS_REPLY_ERROR, "OOM command not allowed");

    (void)state;
    assert_int_equal(fp_owner_beat_reply(&b, &ok, other, sizeof(other)), 0);
    assert_int_equal(fp_owner_beat_reply(&b, &taken, other, sizeof(other)), 1);
    assert_string_equal(other, "other/1/7/ff");
    assert_int_equal(fp_owner_beat_reply(&b, &odd, other, sizeof(other)), 1);
    assert_string_equal(other, "?");
    assert_int_equal(fp_owner_beat_reply(&b, &err, other, sizeof(other)), -1);
    assert_int_equal(fp_owner_beat_reply(&b, NULL, other, sizeof(other)), -1);
}

/* Fresh: a beat sent less than FP_OWNER_FRESH_MS ago was confirmed; what counts is when
 * the confirmed beat was sent, not when its reply came. */
static void fresh_by_send_time(void **state)
{
    fp_owner_beats b = {0};
    char other[FP_OWNER_MAX];
    redisReply ok = reply(REDIS_REPLY_INTEGER, NULL);

    (void)state;
    assert_false(fp_owner_fresh(&b, 1000)); /* nothing confirmed yet */
    fp_owner_beat_sent(&b, 1000);
    fp_owner_beat_sent(&b, 2000);
    assert_false(fp_owner_fresh(&b, 2000));
    assert_int_equal(fp_owner_beat_reply(&b, &ok, other, sizeof(other)), 0); /* beat 1 */
    assert_true(fp_owner_fresh(&b, 1000 + FP_OWNER_FRESH_MS - 1));
    assert_false(fp_owner_fresh(&b, 1000 + FP_OWNER_FRESH_MS)); /* a reply late by 2 s */
    assert_int_equal(fp_owner_beat_reply(&b, &ok, other, sizeof(other)), 0); /* beat 2 */
    assert_true(fp_owner_fresh(&b, 2000 + FP_OWNER_FRESH_MS - 1));
    /* A freeze: the clock jumps, the next beat goes out and its reply has not come. */
    fp_owner_beat_sent(&b, 60000);
    assert_false(fp_owner_fresh(&b, 60000));
    /* The connection dropped: its reply is NULL (no news), and a beat on the new one. */
    assert_int_equal(fp_owner_beat_reply(&b, NULL, other, sizeof(other)), -1);
    fp_owner_beat_sent(&b, 61000);
    assert_int_equal(fp_owner_beat_reply(&b, &ok, other, sizeof(other)), 0);
    assert_true(fp_owner_fresh(&b, 61500));
}

/* A beat that could not be sent has no reply: the next connection starts in step. */
static void resync_after_reconnect(void **state)
{
    fp_owner_beats b = {0};
    char other[FP_OWNER_MAX];
    redisReply ok = reply(REDIS_REPLY_INTEGER, NULL);

    (void)state;
    fp_owner_beat_sent(&b, 1000); /* its reply never comes */
    fp_owner_beat_resync(&b);
    fp_owner_beat_sent(&b, 9000);
    assert_int_equal(fp_owner_beat_reply(&b, &ok, other, sizeof(other)), 0);
    assert_true(fp_owner_fresh(&b, 9500)); /* the reply is beat 2's, not beat 1's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(call_names_its_owner),
        cmocka_unit_test(reply_says_whose),
        cmocka_unit_test(fresh_by_send_time),
        cmocka_unit_test(resync_after_reconnect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
