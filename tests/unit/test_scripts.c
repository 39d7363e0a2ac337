/* test_scripts.c - the calling conventions of the Lua scripts (fp_call_* builders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fp_scripts.h"

static void arg_is(const fp_call *c, int i, const char *want)
{
    assert_true(i < c->argc);
    assert_int_equal(c->len[i], strlen(want));
    assert_memory_equal(c->argv[i], want, strlen(want));
}

static const fp_finish sample = {.task = "T1\ttask",
                                 .task_len = 7,
                                 .job = 7,
                                 .idx = 41,
                                 .result = "R1\tres",
                                 .result_len = 6,
                                 .ok = 1,
                                 .status = "ok",
                                 .bytes = 16384,
                                 .total_us = 1234};

static void finish_one(void **state)
{
    static fp_call c;

    (void)state;
    fp_call_finish(&c, "w1", &sample);
    assert_int_equal(c.argc, 3 + 2 + FP_FINISH_KEYS + FP_FINISH_ARGS);
    arg_is(&c, 0, "EVAL");
    assert_ptr_equal(c.argv[1], fp_script_finish);
    arg_is(&c, 2, "4");
    arg_is(&c, 3, "fp:proc:w1");
    arg_is(&c, 4, "fp:done");
    arg_is(&c, 5, "fp:job:7");
    arg_is(&c, 6, "fp:job:7:out");
    arg_is(&c, 7, "T1\ttask");
    assert_int_equal(c.task_at, 7);
    arg_is(&c, 8, "41");
    arg_is(&c, 9, "R1\tres");
    arg_is(&c, 10, "1");
    arg_is(&c, 11, "ok");
    arg_is(&c, 12, "16384");
    arg_is(&c, 13, "1234");
    arg_is(&c, 14, "7");
}

/* EVALSHA and back: only the first two arguments change. */
static void by_sha_and_back(void **state)
{
    static fp_call c;
    static const char one[] = "return 1";
    const char *sha;
    int argc;

    (void)state;
    /* What Redis's SCRIPT LOAD "return 1" answers. */
    assert_string_equal(fp_script_sha(one), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    assert_ptr_equal(fp_script_sha(one), fp_script_sha(one)); /* computed once */
    fp_call_take(&c, "w2", 48, 16, 64, 4, 90000, NULL, 0);
    argc = c.argc;
    assert_ptr_equal(c.script, fp_script_take);
    assert_false(fp_call_is_by_sha(&c));
    fp_call_by_sha(&c);
    assert_true(fp_call_is_by_sha(&c));
    sha = fp_script_sha(fp_script_take);
    assert_non_null(sha);
    assert_int_equal(strlen(sha), 40);
    assert_int_equal(strspn(sha, "0123456789abcdef"), 40);
    arg_is(&c, 0, "EVALSHA");
    arg_is(&c, 1, sha);
    assert_int_equal(c.argc, argc);
    arg_is(&c, 2, "4");
    arg_is(&c, 3, "fp:tasks");
    fp_call_by_source(&c);
    assert_false(fp_call_is_by_sha(&c));
    arg_is(&c, 0, "EVAL");
    assert_ptr_equal(c.argv[1], fp_script_take);
    assert_int_equal(c.len[1], strlen(fp_script_take));
    /* The finish of several results keeps its script through the parts. */
    fp_call_finish(&c, "w1", &sample);
    assert_ptr_equal(c.script, fp_script_finish);
}

static void finish_parts_and_no_task(void **state)
{
    static fp_call head, part;
    fp_finish f = sample;

    (void)state;
    fp_call_finish_head(&head, "w1", 3);
    arg_is(&head, 2, "8"); /* 2 + 3 results x 2 keys */
    assert_int_equal(head.task_at, -1);
    f.task = NULL;
    f.ok = 0;
    fp_call_finish_part(&part, &f);
    assert_int_equal(part.argc, FP_FINISH_KEYS + FP_FINISH_ARGS);
    assert_int_equal(part.task_at, -1);
    arg_is(&part, 2, "");
    arg_is(&part, 5, "0");
    arg_is(&part, 9, "7");
}

static void the_others(void **state)
{
    static fp_call c;

    (void)state;
    fp_call_take(&c, "w2", 48, 16, 64, 4, 90000, NULL, 0);
    assert_int_equal(c.argc, 15);
    arg_is(&c, 2, "4");
    arg_is(&c, 3, "fp:tasks");
    arg_is(&c, 4, "fp:proc:w2");
    arg_is(&c, 6, "fp:worker:w2");
    arg_is(&c, 7, "48");
    arg_is(&c, 8, "w2");
    arg_is(&c, 9, "4");
    arg_is(&c, 11, "90000");
    arg_is(&c, 12, "");
    arg_is(&c, 13, "16");
    arg_is(&c, 14, "64");
    fp_call_take(&c, "w2", 0, 0, 0, 0, 0, "T1\tx", 4);
    arg_is(&c, 7, "0");
    arg_is(&c, 13, "0");
    arg_is(&c, 11, "1"); /* a lease always expires */
    arg_is(&c, 12, "T1\tx");
    assert_int_equal(c.task_at, -1); /* judged, not settled */
    fp_call_seal(&c, 12);
    assert_int_equal(c.argc, 6);
    arg_is(&c, 3, "fp:job:12");
    arg_is(&c, 5, "12");
    fp_call_retry(&c, "w2", 12, "old", 3, "new", 3, -5, "http_429", -7);
    arg_is(&c, 2, "3");
    assert_int_equal(c.task_at, 6);
    arg_is(&c, 4, "fp:retry");
    arg_is(&c, 5, "fp:job:12"); /* a cancelled job's task is not retried */
    arg_is(&c, 7, "new");
    arg_is(&c, 8, "0"); /* a negative delay is no delay */
    arg_is(&c, 9, "http_429");
    arg_is(&c, 10, "-1"); /* no Retry-After */
    fp_call_retry(&c, "w2", 12, "old", 3, "new", 3, 5, "timeout", 30);
    arg_is(&c, 10, "30");
    fp_call_bury(&c, "w2", "junk", 4);
    assert_int_equal(c.task_at, 5);
    arg_is(&c, 4, "fp:dead");
    fp_call_requeue(&c, "w2", "old", 3, "new", 3);
    arg_is(&c, 5, "fp:worker:w2");
    assert_int_equal(c.task_at, 6);
    fp_call_give_back(&c, "w2", "task", 4);
    assert_int_equal(c.argc, 6);
    arg_is(&c, 3, "fp:proc:w2");
    arg_is(&c, 4, "fp:tasks");
    arg_is(&c, 5, "task");
    assert_int_equal(c.task_at, 5);
    fp_call_release(&c, "w2");
    assert_int_equal(c.argc, 5);
    assert_int_equal(c.task_at, -1);
    fp_call_forget(&c, "w2");
    arg_is(&c, 2, "3");
    arg_is(&c, 6, "w2");
    fp_call_promote(&c, 1000);
    arg_is(&c, 2, "3");
    arg_is(&c, 5, "fp:parked");
    arg_is(&c, 6, "1000");
}

static void trim(void **state)
{
    static fp_call c;

    (void)state;
    fp_call_trim(&c, 7, "m-1", 3, "R1\tlast", 7, 15000, "99 2 120 1", 10);
    assert_int_equal(c.argc, 11);
    arg_is(&c, 2, "3");
    arg_is(&c, 3, "fp:job:7:out");
    arg_is(&c, 4, "fp:job:7:writer");
    arg_is(&c, 5, "fp:job:7:lat");
    arg_is(&c, 6, "m-1");
    arg_is(&c, 7, "3");
    arg_is(&c, 8, "R1\tlast");
    arg_is(&c, 9, "15000");
    arg_is(&c, 10, "99 2 120 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finish_one),
        cmocka_unit_test(finish_parts_and_no_task),
        cmocka_unit_test(by_sha_and_back),
        cmocka_unit_test(the_others),
        cmocka_unit_test(trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
