/* test_store.c - content-addressed names, atomic publish, spill to disk, temp sweeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static char root[256];

static int setup(void **state)
{
    const char *dir = getenv("FP_STORE_TEST_DIR"); /* ctest runs it on /tmp and /dev/shm */

    (void)state;
    snprintf(root, sizeof(root), "%s/fp-store-test-XXXXXX", dir ? dir : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void read_file(const char *path, unsigned char *buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, *len, f);
    fclose(f);
}

static void names_and_publishes(void **state)
{
    fp_store s;
    fp_body b;
    char rel[128], sha[65], path[512], tmp[300];
    unsigned char got[16];
    size_t len = sizeof(got);

    (void)state;
    assert_int_equal(fp_store_open(&s, root, "w1", 0, 600), 0);
    assert_int_equal(fp_body_init(&b), 0);
    assert_int_equal(fp_body_begin(&s, &b), 0);
    /* An empty chunk first, before the body has memory (UBSan: no memcpy from NULL). */
    assert_int_equal(fp_body_append(&s, &b, "", 0), 0);
    assert_int_equal(fp_body_append(&s, &b, "abc", 3), 0);
    assert_int_equal(fp_store_commit(&s, &b, "jpg", rel, sha), 0);
    /* SHA-256("abc") */
    assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(rel,
                        "ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.jpg");
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    read_file(path, got, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "abc", 3);
    snprintf(tmp, sizeof(tmp), "%s/.tmp", root);
    assert_int_equal(count_entries(tmp), 0); /* no temp left behind */
    snprintf(tmp, sizeof(tmp), "%s/ff", root);
    assert_int_equal(count_entries(tmp), 0); /* shards exist */

    /* The same bytes again land on the same name: nothing new is written. */
    assert_int_equal(fp_body_begin(&s, &b), 0);
    assert_int_equal(fp_body_append(&s, &b, "ab", 2), 0);
    assert_int_equal(fp_body_append(&s, &b, "c", 1), 0);
    assert_int_equal(fp_store_commit(&s, &b, "jpg", rel, sha), 0);
    snprintf(tmp, sizeof(tmp), "%s/ba", root);
    assert_int_equal(count_entries(tmp), 1);
    fp_body_free(&b);
    fp_store_close(&s);
}

static void large_bodies_spill_to_a_temp_file(void **state)
{
    fp_store s;
    fp_body b;
    char rel[128], sha[65], path[512], tmp[300];
    static unsigned char chunk[10000], got[5 * FP_BODY_MEM];
    size_t i, len = sizeof(got), total = 0;

    (void)state;
    assert_int_equal(fp_store_open(&s, root, "w2", 1, 600), 0); /* with fsync */
    assert_int_equal(fp_body_init(&b), 0);
    assert_int_equal(fp_body_begin(&s, &b), 0);
    for (i = 0; i < sizeof(chunk); i++)
        chunk[i] = (unsigned char)(i * 7);
    while (total < 3 * FP_BODY_MEM) {
        assert_int_equal(fp_body_append(&s, &b, chunk, sizeof(chunk)), 0);
        total += sizeof(chunk);
    }
    assert_true(b.fd >= 0); /* spilled */
    snprintf(tmp, sizeof(tmp), "%s/.tmp", root);
    assert_int_equal(count_entries(tmp), 1);
    assert_int_equal(fp_store_commit(&s, &b, "png", rel, sha), 0);
    assert_int_equal(count_entries(tmp), 0);
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    read_file(path, got, &len);
    assert_int_equal(len, total);
    assert_memory_equal(got, chunk, sizeof(chunk));

    /* A discarded body leaves nothing behind either. */
    assert_int_equal(fp_body_begin(&s, &b), 0);
    while (b.fd < 0)
        assert_int_equal(fp_body_append(&s, &b, chunk, sizeof(chunk)), 0);
    assert_int_equal(count_entries(tmp), 1);
    fp_body_discard(&b);
    assert_int_equal(count_entries(tmp), 0);
    fp_body_free(&b);
    fp_store_close(&s);
}

static void sweeps_stale_temps_only(void **state)
{
    fp_store s;
    char old[300], fresh[300], other[300];
    struct timeval tv[2];
    int fd;

    (void)state;
    assert_int_equal(fp_store_open(&s, root, "w3", 0, 600), 0);
    fp_store_close(&s);
    snprintf(old, sizeof(old), "%s/.tmp/dead.1.part", root);
    snprintf(fresh, sizeof(fresh), "%s/.tmp/live.1.part", root);
    snprintf(other, sizeof(other), "%s/.tmp/keep.txt", root);
    assert_true((fd = open(old, O_CREAT | O_WRONLY, 0644)) >= 0);
    close(fd);
    assert_true((fd = open(fresh, O_CREAT | O_WRONLY, 0644)) >= 0);
    close(fd);
    assert_true((fd = open(other, O_CREAT | O_WRONLY, 0644)) >= 0);
    close(fd);
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 3600;
    tv[1] = tv[0];
    assert_int_equal(utimes(old, tv), 0);
    utimes(other, tv);
    assert_int_equal(fp_store_open(&s, root, "w3", 0, 600), 0);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0); /* not ours: left alone */
    fp_store_close(&s);
}

static void refuses_to_follow_a_planted_link(void **state)
{
    fp_store s;
    fp_body b;
    char link[300], target[300], rel[128], sha[65];
    static unsigned char big[FP_BODY_MEM + 10];

    (void)state;
    assert_int_equal(fp_store_open(&s, root, "w4", 0, 600), 0);
    /* The next temp name is w4.1.part: plant a symlink there. */
    snprintf(link, sizeof(link), "%s/.tmp/w4.1.part", root);
    snprintf(target, sizeof(target), "%s/victim", root);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(fp_body_init(&b), 0);
    assert_int_equal(fp_body_begin(&s, &b), 0);
    assert_true(fp_body_append(&s, &b, big, sizeof(big)) < 0);
    assert_int_equal(access(target, F_OK), -1);
    fp_body_discard(&b);
    /* The next body gets a fresh name and works. */
    assert_int_equal(fp_body_begin(&s, &b), 0);
    assert_int_equal(fp_body_append(&s, &b, "x", 1), 0);
    assert_int_equal(fp_store_commit(&s, &b, "gif", rel, sha), 0);
    fp_body_free(&b);
    fp_store_close(&s);
}

static void store_abc(fp_store *s, char *path, size_t pathlen)
{
    fp_body b;
    char rel[128], sha[65];

    assert_int_equal(fp_body_init(&b), 0);
    assert_int_equal(fp_body_begin(s, &b), 0);
    assert_int_equal(fp_body_append(s, &b, "abcdef", 6), 0);
    assert_int_equal(fp_store_commit(s, &b, "jpg", rel, sha), 0);
    fp_body_free(&b);
    snprintf(path, pathlen, "%s/%s", root, rel);
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A stored file deleted or truncated behind the worker's back is written again by the next
 * body with that content: on the recent-digest path, on linkat's EEXIST path (a store
 * whose cache never saw it), on the temp-file-and-rename path; a removed shard folder is
 * made again. With fsync on, the same; and each both ways of naming an unnamed file
 * (linkat of the file itself, and through /proc). A removed folder does not make the
 * store give up the first way. */
static void a_damaged_file_is_written_again(void **state)
{
    fp_store s, fresh;
    char path[512], dir[512];
    int fsync_on, way, flink;

    (void)state;
    for (way = 0; way < 4; way++) {
        fsync_on = way & 1;
        assert_int_equal(fp_store_open(&s, root, "w6", fsync_on, 600), 0);
        s.flink = way >> 1;
        store_abc(&s, path, sizeof(path));
        flink = s.flink; /* 0 here if this kernel does not allow the first way */
        assert_int_equal(size_of(path), 6);
        assert_int_equal(unlink(path), 0); /* deleted: the cache must not be trusted */
        store_abc(&s, path, sizeof(path));
        assert_int_equal(size_of(path), 6);
        assert_int_equal(truncate(path, 2), 0); /* truncated, cache hit */
        store_abc(&s, path, sizeof(path));
        assert_int_equal(size_of(path), 6);
        store_abc(&s, path, sizeof(path)); /* intact: left as it is */
        assert_int_equal(size_of(path), 6);

        assert_int_equal(fp_store_open(&fresh, root, "w7", fsync_on, 600), 0);
        fresh.flink = flink;
        assert_int_equal(truncate(path, 0), 0); /* truncated, linkat says EEXIST */
        store_abc(&fresh, path, sizeof(path));
        assert_int_equal(size_of(path), 6);
        fresh.tmpfile = 0; /* the temp file + rename way */
        assert_int_equal(truncate(path, 3), 0);
        store_abc(&fresh, path, sizeof(path));
        assert_int_equal(size_of(path), 6);
        fp_store_close(&fresh);

        snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0); /* its shard folder removed */
        store_abc(&s, path, sizeof(path));
        assert_int_equal(size_of(path), 6);
        assert_int_equal(s.flink, flink);
        snprintf(dir, sizeof(dir), "%s/.tmp", root);
        assert_int_equal(count_entries(dir), 0);
        assert_int_equal(unlink(path), 0);
        fp_store_close(&s);
    }
}

static int open_fds(void)
{
    return count_entries("/proc/self/fd");
}

/* The shard folders are kept open: at most one descriptor each, all closed again by
 * fp_store_close; a whole output folder removed and made again by the probe gets the
 * next files, not the removed one. */
static void shard_folders_kept_open(void **state)
{
    fp_store s;
    fp_body b;
    char rel[128], sha[65], path[512], data[16], cmd[1700], dir[512], old[1100];
    int base = open_fds(), i;

    (void)state;
    assert_int_equal(fp_store_open(&s, root, "w8", 0, 600), 0);
    assert_int_equal(fp_body_init(&b), 0);
    for (i = 0; i < 2000; i++) {
        snprintf(data, sizeof(data), "body %d", i);
        assert_int_equal(fp_body_begin(&s, &b), 0);
        assert_int_equal(fp_body_append(&s, &b, data, strlen(data)), 0);
        assert_int_equal(fp_store_commit(&s, &b, "jpg", rel, sha), 0);
    }
    assert_true(open_fds() <= base + 256);
    /* A shard folder replaced by another (renamed away, or mounted over): the kept one
     * still exists, so nothing fails and files land there until the folders are opened
     * again (every SHARDS_KEPT_S); then the next file lands in the new folder. */
    store_abc(&s, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
    snprintf(old, sizeof(old), "%s.old%s", dir, strrchr(path, '/'));
    snprintf(cmd, sizeof(cmd), "mv '%s' '%s.old' && mkdir '%s'", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    s.shards_until = time(NULL) + 3600; /* still kept */
    store_abc(&s, path, sizeof(path));
    assert_int_equal(size_of(old), 6);
    assert_int_equal(size_of(path), -1);
    assert_int_equal(unlink(old), 0);
    s.shards_until = 0; /* opened again */
    store_abc(&s, path, sizeof(path));
    assert_int_equal(size_of(path), 6);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(fp_store_probe(&s), 0);
    store_abc(&s, path, sizeof(path));
    assert_int_equal(size_of(path), 6);
    fp_body_free(&b);
    fp_store_close(&s);
    assert_int_equal(open_fds(), base);
}

/* Which errors pause the worker, and the probe that ends the pause. */
static void unwritable_errors_and_the_probe(void **state)
{
    fp_store s;
    char tmp[300];

    (void)state;
    assert_int_equal(fp_store_unwritable(-ENOSPC), FP_R_DISK_FULL);
    assert_int_equal(fp_store_unwritable(-EDQUOT), FP_R_DISK_FULL);
    assert_int_equal(fp_store_unwritable(-EROFS), FP_R_IO);
    assert_int_equal(fp_store_unwritable(-EIO), FP_R_IO);
    assert_int_equal(fp_store_unwritable(-EACCES), FP_R_IO);
    assert_int_equal(fp_store_unwritable(-ENOENT), FP_R_IO);     /* the folder was removed */
    assert_int_equal(fp_store_unwritable(-ENAMETOOLONG), FP_OK); /* this body's own */
    assert_int_equal(fp_store_reason(-ENAMETOOLONG), FP_R_IO);
    assert_int_equal(fp_store_reason(-ENOSPC), FP_R_DISK_FULL);
    assert_int_equal(fp_store_open(&s, root, "w5", 0, 600), 0);
    assert_int_equal(fp_store_probe(&s), 0);
    snprintf(tmp, sizeof(tmp), "%s/.tmp", root);
    assert_int_equal(count_entries(tmp), 0); /* the probe leaves nothing */
    s.tmpfile = 0;                           /* the named-file way leaves nothing either */
    assert_int_equal(fp_store_probe(&s), 0);
    assert_int_equal(count_entries(tmp), 0);
    /* A folder that is gone is made again by the probe. */
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(fp_store_probe(&s), 0);
    assert_int_equal(count_entries(tmp), 0);
    fp_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(names_and_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(large_bodies_spill_to_a_temp_file, setup, teardown),
        cmocka_unit_test_setup_teardown(sweeps_stale_temps_only, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_to_follow_a_planted_link, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_errors_and_the_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_file_is_written_again, setup, teardown),
        cmocka_unit_test_setup_teardown(shard_folders_kept_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
