/* test_parts.c - a job's spools and part files on disk (master/parts.c): order, duplicate
 * slots, a torn spool line and a stale temp file after a crash, missing slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fp_record.h"
#include "parts.h"

static char root[64];
static char recbuf[8][FP_RECORD_MAX];

static fpm_rec rec(uint64_t idx)
{
    static fp_result r;
    char *buf = recbuf[idx % 8];
    fpm_rec out;
    int n;

    memset(&r, 0, sizeof(r));
    r.job = 3;
    r.idx = idx;
    r.line = idx + 10;
    strcpy(r.status, "ok");
    r.http_code = 200;
    r.attempts = 1;
    strcpy(r.worker, "w1");
    snprintf(r.url, sizeof(r.url), "http://h/%d.jpg", (int)idx);
    n = fp_result_encode(&r, buf, FP_RECORD_MAX);
    assert_true(n > 0);
    out.data = buf;
    out.len = (size_t)n;
    out.idx = idx;
    return out;
}

static char *slurp(const char *name)
{
    static char buf[65536];
    char path[256];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/3/%s", root, name);
    if ((f = fopen(path, "rb")) == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void append_raw(const char *name, const char *s)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/3/%s", root, name);
    assert_non_null(f = fopen(path, "ab"));
    fputs(s, f);
    fclose(f);
}

static void spool_write_and_recover(void **state)
{
    char err[256], *s;
    fpm_rec b1[4];
    uint64_t full[4], *found, missing;
    fpm_parts *ps;

    (void)state;
    snprintf(root, sizeof(root), "/tmp/fp-test-parts-XXXXXX");
    assert_non_null(mkdtemp(root));
    assert_non_null(ps = fpm_parts_open(root, 3, FPM_TSV, 4, err, sizeof(err)));

    /* Out of order, two parts, then a duplicate. */
    b1[0] = rec(5);
    b1[1] = rec(4);
    b1[2] = rec(7);
    b1[3] = rec(1);
    assert_int_equal(fpm_parts_append(ps, b1, 4, err, sizeof(err)), 4);
    assert_int_equal(fpm_parts_drained(ps), 4);
    b1[0] = rec(5);
    assert_int_equal(fpm_parts_append(ps, b1, 1, err, sizeof(err)), 0);
    assert_int_equal(fpm_parts_full(ps, full, 4), 0);
    b1[0] = rec(6);
    assert_int_equal(fpm_parts_append(ps, b1, 1, err, sizeof(err)), 1);
    assert_int_equal(fpm_parts_full(ps, full, 4), 1);
    assert_int_equal(full[0], 1);

    /* Written in input order, no header after part 0, spool gone. */
    assert_int_equal(fpm_parts_write(ps, 1, 4, 0, &missing, err, sizeof(err)), 0);
    assert_int_equal(missing, 0);
    assert_non_null(s = slurp("part-000001.tsv"));
    assert_int_equal(strncmp(s, "14\thttp://h/4.jpg\t", 18), 0);
    assert_non_null(strstr(s, "\n15\thttp://h/5.jpg\tok\t"));
    assert_non_null(strstr(s, "\n17\thttp://h/7.jpg\tok\t"));
    assert_true(strstr(s, "h/6.jpg") < strstr(s, "h/7.jpg"));
    assert_null(slurp(".part-000001.spool"));
    assert_true(fpm_parts_written(ps, 1));
    /* A late duplicate of a part written out is ignored. */
    b1[0] = rec(6);
    assert_int_equal(fpm_parts_append(ps, b1, 1, err, sizeof(err)), 0);
    fpm_parts_free(ps);

    /* A crash: a torn last spool line, the same batch spooled twice, a stale temp file. */
    s = slurp(".part-000000.spool");
    assert_non_null(s);
    {
        char copy[4096];
        size_t n = strlen(s);

        assert_true(n < sizeof(copy));
        memcpy(copy, s, n + 1);
        append_raw(".part-000000.spool", copy);
    }
    append_raw(".part-000000.spool", "R1\t3\t0\t10\tok");
    append_raw(".part-000000.tmp", "junk");
    assert_non_null(ps = fpm_parts_open(root, 3, FPM_TSV, 4, err, sizeof(err)));
    assert_null(slurp(".part-000000.tmp"));
    assert_int_equal(fpm_parts_drained(ps), 4 + 1);
    assert_int_equal(fpm_parts_found(ps, &found), 1);
    assert_int_equal(found[0], 1);
    free(found);
    b1[0] = rec(1);
    assert_int_equal(fpm_parts_append(ps, b1, 1, err, sizeof(err)), 0);

    /* The last part of a job of 3 slots: slot 0 never came, slot 2 neither. */
    assert_int_equal(fpm_parts_write(ps, 0, 3, 0, &missing, err, sizeof(err)), 0);
    assert_int_equal(missing, 2);
    assert_non_null(s = slurp("part-000000.tsv"));
    assert_int_equal(strncmp(s, "line\turl\tstatus\t", 16), 0);
    assert_non_null(strstr(s, "\n\t\tmissing\t"));
    assert_non_null(strstr(s, "no result for task 0\n11\thttp://h/1.jpg\tok\t"));
    assert_non_null(strstr(s, "no result for task 2\n"));
    assert_null(strstr(strstr(s, "h/1.jpg") + 1, "h/1.jpg")); /* written once */
    fpm_parts_free(ps);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        assert_int_equal(system(cmd), 0);
    }
}

/* Which worker_lost results Redis has replaced since they were spooled (results.c waits
 * for the replacement before it writes the part). */
static void lost_agree(void **state)
{
    char err[256];
    fpm_rec b1[2];
    fpm_parts *ps;
    static char lost[FP_RECORD_MAX];
    fp_result r;
    int n;
    unsigned char bits[2] = {0, 0};

    (void)state;
    snprintf(root, sizeof(root), "/tmp/fp-test-parts-XXXXXX");
    assert_non_null(mkdtemp(root));
    assert_non_null(ps = fpm_parts_open(root, 3, FPM_TSV, 16, err, sizeof(err)));
    assert_true(fpm_parts_lost_agree(ps, 0, NULL, 0)); /* nothing spooled */
    memset(&r, 0, sizeof(r));
    r.job = 3;
    r.idx = 9;
    r.line = 19;
    strcpy(r.status, "worker_lost");
    strcpy(r.worker, "w1");
    strcpy(r.url, "http://h/9.jpg");
    assert_true((n = fp_result_encode(&r, lost, sizeof(lost))) > 0);
    b1[0] = rec(1);
    b1[1].data = lost;
    b1[1].len = (size_t)n;
    b1[1].idx = 9;
    assert_int_equal(fpm_parts_append(ps, b1, 2, err, sizeof(err)), 2);
    assert_false(fpm_parts_lost_agree(ps, 0, NULL, 0));
    assert_false(fpm_parts_lost_agree(ps, 0, bits, 2));
    bits[1] = 0x80 >> 1; /* slot 9 is bit 1 of byte 1, high bit first */
    assert_true(fpm_parts_lost_agree(ps, 0, bits, 2));
    assert_false(fpm_parts_lost_agree(ps, 0, bits, 1)); /* a shorter bitmap: zeros */
    bits[1] = 0x01;
    assert_false(fpm_parts_lost_agree(ps, 0, bits, 2));
    assert_true(fpm_parts_lost_agree(ps, 1, NULL, 0)); /* another part */
    /* Its real result comes: nothing left to wait for. */
    b1[0] = rec(9);
    assert_int_equal(fpm_parts_append(ps, b1, 1, err, sizeof(err)), 0);
    assert_true(fpm_parts_lost_agree(ps, 0, NULL, 0));
    fpm_parts_free(ps);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        assert_int_equal(system(cmd), 0);
    }
}

static void bad_root(void **state)
{
    char err[256];

    (void)state;
    assert_null(fpm_parts_open("/proc/self/no/such", 1, FPM_TSV, 4, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot create"));
}

/* The fields the drain reads of a record: its slot, and a success's total time. */
static void record_fields(void **state)
{
    static fp_result r;
    static char buf[FP_RECORD_MAX];
    uint64_t v = 7;
    int n;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.job = 3;
    r.idx = 41;
    strcpy(r.status, "ok");
    r.total_us = 123456;
    strcpy(r.worker, "w1");
    strcpy(r.url, "http://h/1.jpg");
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(fpm_rec_idx(buf, (size_t)n, &v), 0);
    assert_int_equal(v, 41);
    assert_int_equal(fpm_rec_ok_us(buf, (size_t)n, &v), 1);
    assert_int_equal(v, 123456);
    strcpy(r.status, "okay"); /* a reason that starts like ok is not a success */
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_int_equal(fpm_rec_ok_us(buf, (size_t)n, &v), 0);
    strcpy(r.status, "http_404");
    n = fp_result_encode(&r, buf, sizeof(buf));
    assert_int_equal(fpm_rec_ok_us(buf, (size_t)n, &v), 0);
    assert_int_equal(fpm_rec_ok_us("R1\t3\t41\t1\tok\t200\t0\tx\t0", 22, &v), 0);
    assert_int_equal(fpm_rec_ok_us("R1\t3\t41\t1\tok\t200\t0\t5", 20, &v), 0); /* cut */
    assert_int_equal(fpm_rec_ok_us("", 0, &v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spool_write_and_recover),
        cmocka_unit_test(lost_agree),
        cmocka_unit_test(bad_root),
        cmocka_unit_test(record_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
