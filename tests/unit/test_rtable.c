/* test_rtable.c - the robots cache's table (worker/rtable.c): bounded by entries and by
 * bytes, least recently used evicted first, entries in use never dropped, expired ones
 * swept, chains short at the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rtable.h"

typedef struct item {
    fp_rtable_node node;
    int busy, expired;
    char key[48];
} item;

static size_t live; /* items allocated and not dropped */

static int idle_fn(const fp_rtable_node *n, void *arg)
{
    const item *it = (const item *)n;

    (void)arg;
    if (it->busy)
        return FP_RTABLE_BUSY;
    return it->expired ? FP_RTABLE_EXPIRED : FP_RTABLE_IDLE;
}

static void drop_fn(fp_rtable_node *n, void *arg)
{
    (void)arg;
    free(n);
    live--;
}

static item *add(fp_rtable *t, int i, size_t bytes)
{
    item *it = calloc(1, sizeof(*it));

    assert_non_null(it);
    live++;
    snprintf(it->key, sizeof(it->key), "https://host-%d.example", i);
    it->node.key = it->key;
    fp_rtable_add(t, &it->node, bytes);
    return it;
}

static item *get(fp_rtable *t, int i)
{
    char key[48];

    snprintf(key, sizeof(key), "https://host-%d.example", i);
    return (item *)fp_rtable_get(t, key);
}

static void cap_evicts_least_recently_used(void **state)
{
    fp_rtable t;
    int i;

    (void)state;
    live = 0;
    assert_int_equal(fp_rtable_init(&t, 100, 0, idle_fn, drop_fn, NULL), 0);
    for (i = 0; i < 100; i++)
        add(&t, i, 300);
    assert_non_null(get(&t, 0)); /* 0 is now the most recently used, 1 the least */
    for (i = 100; i < 150; i++)
        add(&t, i, 300);
    assert_int_equal(t.n, 100);
    assert_int_equal(live, 100);
    assert_int_equal(t.bytes, 100 * 300);
    assert_int_equal(t.evicted, 50);
    assert_non_null(get(&t, 0));
    for (i = 1; i <= 50; i++)
        assert_null(get(&t, i));
    for (i = 51; i < 150; i++)
        assert_non_null(get(&t, i));
    fp_rtable_clear(&t);
    assert_int_equal(live, 0);
}

static void busy_entries_are_never_evicted(void **state)
{
    fp_rtable t;
    item *keep[10];
    int i;

    (void)state;
    live = 0;
    assert_int_equal(fp_rtable_init(&t, 10, 0, idle_fn, drop_fn, NULL), 0);
    for (i = 0; i < 10; i++) {
        keep[i] = add(&t, i, 1);
        keep[i]->busy = 1; /* a fetch in flight, tasks waiting */
    }
    for (i = 10; i < 1010; i++)
        add(&t, i, 1);
    /* the ten busy ones and the newest: over the bound, as long as they are in use */
    assert_int_equal(t.n, 11);
    for (i = 0; i < 10; i++)
        assert_ptr_equal(get(&t, i), keep[i]);
    assert_non_null(get(&t, 1009));
    for (i = 0; i < 5; i++)
        keep[i]->busy = 0;
    add(&t, 2000, 1); /* 12 entries: the two least recent idle ones (0, 1) go now */
    assert_int_equal(t.n, 10);
    assert_null(get(&t, 0));
    assert_null(get(&t, 1));
    for (i = 2; i < 10; i++)
        assert_ptr_equal(get(&t, i), keep[i]);
    assert_non_null(get(&t, 1009));
    assert_non_null(get(&t, 2000));
    fp_rtable_clear(&t);
    assert_int_equal(live, 0);
}

static void bytes_bound(void **state)
{
    fp_rtable t;
    item *big;
    int i;

    (void)state;
    live = 0;
    assert_int_equal(fp_rtable_init(&t, 8192, 10000, idle_fn, drop_fn, NULL), 0);
    for (i = 0; i < 1000; i++)
        add(&t, i, 300);
    assert_true(t.bytes <= 10000);
    assert_int_equal(t.n, 10000 / 300);
    /* an entry whose rules grew: the others make room, it stays */
    big = get(&t, 999);
    fp_rtable_resize(&t, &big->node, 9000);
    assert_true(t.bytes <= 10000);
    assert_ptr_equal(get(&t, 999), big);
    assert_int_equal(t.n, 4); /* 9000 + 3 x 300 */
    /* bigger than the bound alone: kept while it is the newest */
    fp_rtable_resize(&t, &big->node, 20000);
    assert_int_equal(t.n, 1);
    assert_ptr_equal(get(&t, 999), big);
    add(&t, 5000, 300); /* now it is not the newest: it goes */
    assert_null(get(&t, 999));
    assert_int_equal(t.n, 1);
    fp_rtable_clear(&t);
    assert_int_equal(live, 0);
}

static void sweep_drops_expired_idle(void **state)
{
    fp_rtable t;
    item *it[20];
    int i;

    (void)state;
    live = 0;
    assert_int_equal(fp_rtable_init(&t, 100, 0, idle_fn, drop_fn, NULL), 0);
    for (i = 0; i < 20; i++)
        it[i] = add(&t, i, 1);
    for (i = 0; i < 20; i += 2)
        it[i]->expired = 1;
    it[0]->busy = 1; /* expired, but a refresh is under way: kept */
    assert_int_equal(fp_rtable_sweep(&t), 9);
    assert_int_equal(t.n, 11);
    assert_int_equal(live, 11);
    assert_ptr_equal(get(&t, 0), it[0]);
    for (i = 1; i < 20; i++)
        if (i % 2)
            assert_ptr_equal(get(&t, i), it[i]);
        else
            assert_null(get(&t, i));
    assert_int_equal(t.expired, 9);
    fp_rtable_clear(&t);
    assert_int_equal(live, 0);
}

static void chains_stay_short(void **state)
{
    fp_rtable t;
    size_t b, longest = 0, len;
    fp_rtable_node *n;
    int i;

    (void)state;
    live = 0;
    assert_int_equal(fp_rtable_init(&t, 8192, 0, idle_fn, drop_fn, NULL), 0);
    assert_true(t.mask + 1 >= 8192);
    for (i = 0; i < 100000; i++) /* a broad crawl: far more origins than the bound */
        add(&t, i, 300);
    assert_int_equal(t.n, 8192);
    assert_int_equal(live, 8192);
    for (b = 0; b <= t.mask; b++) {
        for (len = 0, n = t.bucket[b]; n; n = n->hnext)
            len++;
        if (len > longest)
            longest = len;
    }
    assert_true(longest <= 12); /* about 1 on average; FNV-1a over similar names */
    fp_rtable_clear(&t);
    assert_int_equal(live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_evicts_least_recently_used),
        cmocka_unit_test(busy_entries_are_never_evicted),
        cmocka_unit_test(bytes_bound),
        cmocka_unit_test(sweep_drops_expired_idle),
        cmocka_unit_test(chains_stay_short),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
