/* test_input.c - a job's input file read in batches (master/input.c): a batch that begins
 * with an empty line (it once stopped the master under UBSan: memcpy from a NULL buffer),
 * batches of any size give the lines one read gives, lines cut as scripts/submit cuts
 * them, a last line without '\n', names that leave the jobs folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "line.h"
#include "master.h"

static char root[64], file[128];

static void put_file(const char *data, size_t len)
{
    FILE *f = fopen(file, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/fp-test-input-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(file, sizeof(file), "%s/list.txt", root);
    return 0;
}

static int teardown(void **state)
{
    char cmd[96];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Reads the whole file max lines at a time; returns the lines as "[a][b]..." */
static char *read_all(size_t max, size_t *batches)
{
    static char got[65536];
    char err[256];
    uint64_t off = 0, next;
    fpm_lines l;
    size_t i, at = 0;
    int eof = 0;

    *batches = 0;
    while (!eof) {
        assert_int_equal(fpm_input_read(file, off, max, &l, &next, &eof, err, sizeof(err)), 0);
        assert_true(l.n <= max);
        for (i = 0; i < l.n; i++) {
            assert_non_null(l.line[i]);
            at += (size_t)snprintf(got + at, sizeof(got) - at, "[%.*s]", (int)l.len[i], l.line[i]);
        }
        assert_true(next >= off);
        if (!eof)
            assert_int_equal(l.n, max); /* a short batch only at the end */
        off = next;
        fpm_lines_free(&l);
        (*batches)++;
        assert_true(*batches < 100);
    }
    return got;
}

/* The batch read from the offset of an empty line begins with it: the case that crashed. */
static void test_batch_begins_with_empty_line(void **state)
{
    const char data[] = "http://a/1\n\nhttp://a/2\n";
    char err[256];
    uint64_t next;
    fpm_lines l;
    int eof;

    (void)state;
    put_file(data, sizeof(data) - 1);
    assert_int_equal(fpm_input_read(file, 11, 1, &l, &next, &eof, err, sizeof(err)), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.len[0], 0);
    assert_non_null(l.line[0]);
    assert_int_equal(next, 12);
    assert_false(eof);
    fpm_lines_free(&l);
    /* Only empty lines: no buffer at all, and still lines. */
    put_file("\n\n\n", 3);
    assert_int_equal(fpm_input_read(file, 0, 10, &l, &next, &eof, err, sizeof(err)), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.len[2], 0);
    assert_non_null(l.line[2]);
    assert_int_equal(next, 3);
    assert_true(eof);
    fpm_lines_free(&l);
}

/* Every batch size gives the same lines, whichever line a batch begins with. */
static void test_any_batch_size_same_lines(void **state)
{
    const char data[] = "\nhttp://a/1\n# c\n\n\nhttp://a/2\r\n\nnot a url\nhttp://a/3";
    const char want[] = "[][http://a/1][# c][][][http://a/2\r][][not a url][http://a/3]";
    size_t max, batches;

    (void)state;
    put_file(data, sizeof(data) - 1);
    for (max = 1; max <= 10; max++) {
        assert_string_equal(read_all(max, &batches), want);
        assert_true(batches >= 9 / max);
    }
}

/* A line longer than the cut (and than the 64 KiB read chunk) is cut, the rest skipped. */
static void test_long_line_cut(void **state)
{
    size_t n = 200000, batches;
    char *data = malloc(n + 16), *got;

    (void)state;
    assert_non_null(data);
    memset(data, 'a', n);
    memcpy(data + n, "\n\nb\n", 4);
    put_file(data, n + 4);
    free(data);
    got = read_all(1, &batches);
    assert_int_equal(strlen(got), 1 + FP_LINE_CUT + 1 + 2 + 3);
    assert_string_equal(got + 1 + FP_LINE_CUT, "][][b]");
}

static void test_names_outside_refused(void **state)
{
    char err[256], link[160], *p;

    (void)state;
    put_file("x\n", 2);
    p = fpm_input_resolve(root, "list.txt", err, sizeof(err));
    assert_non_null(p);
    free(p);
    assert_null(fpm_input_resolve(root, "../list.txt", err, sizeof(err)));
    assert_null(fpm_input_resolve(root, "/etc/passwd", err, sizeof(err)));
    assert_null(fpm_input_resolve(root, "", err, sizeof(err)));
    assert_null(fpm_input_resolve(NULL, "list.txt", err, sizeof(err)));
    snprintf(link, sizeof(link), "%s/out", root);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    assert_null(fpm_input_resolve(root, "out", err, sizeof(err)));
    assert_non_null(strstr(err, "outside"));
    snprintf(link, sizeof(link), "%s/sub", root);
    assert_int_equal(mkdir(link, 0700), 0);
    assert_null(fpm_input_resolve(root, "sub", err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_begins_with_empty_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_batch_size_same_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_outside_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
