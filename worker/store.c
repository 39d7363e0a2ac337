/* store.c - atomic, content-addressed file storage (see store.h). */
#define _GNU_SOURCE /* O_TMPFILE */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fp_log.h"

#define SHARDS_KEPT_S 5 /* the kept shard folders are opened again this often */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -errno;
            buf[i] = c;
        }
    }
    return 0;
}

static void sweep(const fp_store *s, long stale_s)
{
    DIR *d = opendir(s->tmpdir);
    struct dirent *e;
    struct stat st;
    time_t now = time(NULL);
    char path[PATH_MAX];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".part") != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (now - st.st_mtime < stale_s)
            continue; /* may belong to a live worker sharing this folder */
        snprintf(path, sizeof(path), "%s/%s", s->tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* root, root/.tmp and the 256 shard folders, those that are missing. */
static int make_folders(const fp_store *s)
{
    char shard[PATH_MAX];
    int rc, i;

    if ((rc = mkdir_p(s->tmpdir)) != 0)
        return rc;
    for (i = 0; i < 256; i++) {
        snprintf(shard, sizeof(shard), "%s/%02x", s->root, i);
        if (mkdir(shard, 0755) != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

int fp_store_open(fp_store *s, const char *root, const char *worker_id, int fsync, long stale_s)
{
    int rc, i;

    memset(s, 0, sizeof(*s));
    for (i = 0; i < 256; i++)
        s->shard[i] = -1;
    if (snprintf(s->root, sizeof(s->root), "%s", root) >= (int)sizeof(s->root))
        return -ENAMETOOLONG;
    snprintf(s->tmpdir, sizeof(s->tmpdir), "%s/.tmp", s->root);
    snprintf(s->id, sizeof(s->id), "%s", worker_id);
    s->fsync = fsync;
    if ((rc = make_folders(s)) != 0)
        return rc;
    sweep(s, stale_s);
    s->tmpfile = s->flink = 1;
    if ((s->recent = calloc(FP_STORE_RECENT, 32)) == NULL)
        return -ENOMEM;
    s->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    return s->md ? 0 : -ENOSYS;
}

/* Closes kept shard folder i, or all of them: a folder removed and made again, or
 * mounted over, is a new one. */
static void forget_shard(fp_store *s, int i)
{
    if (s->shard[i] >= 0)
        close(s->shard[i]);
    s->shard[i] = -1;
}

static void forget_shards(fp_store *s)
{
    int i;

    for (i = 0; i < 256; i++)
        forget_shard(s, i);
}

void fp_store_close(fp_store *s)
{
    forget_shards(s);
    EVP_MD_free((EVP_MD *)s->md);
    s->md = NULL;
    free(s->recent);
    s->recent = NULL;
}

int fp_body_init(fp_body *b)
{
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    b->sha = EVP_MD_CTX_new();
    return b->sha ? 0 : -ENOMEM;
}

void fp_body_free(fp_body *b)
{
    fp_body_discard(b);
    EVP_MD_CTX_free(b->sha);
    free(b->mem);
    memset(b, 0, sizeof(*b));
    b->fd = -1;
}

void fp_body_discard(fp_body *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        unlink(b->tmp);
        b->fd = -1;
    }
    b->len = 0;
    b->bytes = 0;
}

int fp_body_begin(fp_store *s, fp_body *b)
{
    fp_body_discard(b);
    return EVP_DigestInit_ex(b->sha, s->md, NULL) == 1 ? 0 : -EIO;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new temp file name in <root>/.tmp (PATH_MAX bytes). */
static int temp_name(fp_store *s, char *buf)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s.%" PRIu64 ".part", s->tmpdir, s->id, ++s->seq);
    return n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

static int open_temp(fp_store *s, fp_body *b)
{
    if (temp_name(s, b->tmp) != 0)
        return -ENAMETOOLONG;
    b->fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    return b->fd < 0 ? -errno : 0;
}

int fp_body_append(fp_store *s, fp_body *b, const void *data, size_t len)
{
    int rc;

    if (len == 0) /* nothing to copy; b->mem may still be NULL (memcpy from NULL is UB) */
        return 0;
    if (EVP_DigestUpdate(b->sha, data, len) != 1)
        return -EIO;
    b->bytes += len;
    if (b->fd < 0 && b->len + len > FP_BODY_MEM) {
        /* Too big to keep in memory: move what we have to a temp file. */
        if ((rc = open_temp(s, b)) != 0)
            return rc;
        if ((rc = write_all(b->fd, b->mem, b->len)) != 0)
            return rc;
    }
    if (b->fd >= 0)
        return write_all(b->fd, data, len);
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        unsigned char *m;
        while (cap < b->len + len)
            cap *= 2;
        if ((m = realloc(b->mem, cap)) == NULL)
            return -ENOMEM;
        b->mem = m;
        b->cap = cap;
    }
    memcpy(b->mem + b->len, data, len);
    b->len += len;
    return 0;
}

/* Is the file at final the one a body of size bytes makes? Its name is the content's
 * SHA-256, so a regular file of the right size is taken for it (hashing it again would
 * cost a read per duplicate); one deleted, truncated or replaced by anything else is
 * written again. One fstatat, made only where the name is already taken. */
static int stored(const char *final, uint64_t size)
{
    struct stat st;

    return fstatat(AT_FDCWD, final, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           (uint64_t)st.st_size == size;
}

/* With --fsync: makes the name final durable too (an fsync of its folder), not only the
 * file's bytes. */
static int sync_dir(const fp_store *s, const char *final)
{
    char dir[PATH_MAX];
    int fd, rc = 0;

    if (!s->fsync)
        return 0;
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(final, '/') - final), final);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* The file at final is damaged: the new one (the open file proc names) is linked under a
 * temp name and renamed over it, so a reader sees the old file or the new, never none. */
static int replace(fp_store *s, const char *proc, const char *final)
{
    char tmp[PATH_MAX];
    int rc;

    if ((rc = temp_name(s, tmp)) != 0)
        return rc;
    if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0)
        return -errno;
    if (rename(tmp, final) != 0) {
        rc = -errno;
        unlink(tmp);
    }
    return rc;
}

/* The shard folder i (final's), kept open; made again if missing. Returns it or -errno. */
static int shard_fd(fp_store *s, int i, const char *final)
{
    char dir[PATH_MAX];
    time_t now = time(NULL);

    if (now >= s->shards_until) {
        forget_shards(s);
        s->shards_until = now + SHARDS_KEPT_S;
    }
    if (s->shard[i] >= 0)
        return s->shard[i];
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(final, '/') - final), final);
    s->shard[i] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->shard[i] < 0 && errno == ENOENT && mkdir(dir, 0755) == 0)
        s->shard[i] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return s->shard[i] >= 0 ? s->shard[i] : -errno;
}

/* Names the unnamed file fd in the folder dfd. linkat with AT_EMPTY_PATH links the open
 * file itself; kernels before 6.10 allow that only with CAP_DAC_READ_SEARCH and answer
 * ENOENT without it, which is also the answer for a folder removed. The link through
 * /proc/self/fd (a path lookup of its own) tells the two apart: if it works where the
 * first did not, AT_EMPTY_PATH is not tried again. Returns 0 or -1 with errno set. */
static int link_tmpfile(fp_store *s, int fd, int dfd, const char *name)
{
    char proc[64];

    if (s->flink) {
        if (linkat(fd, "", dfd, name, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != ENOENT)
            return -1;
    }
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) != 0)
        return -1;
    if (s->flink) {
        fp_debug("store: linkat(AT_EMPTY_PATH) not allowed here; linking through /proc");
        s->flink = 0;
    }
    return 0;
}

/* A body held in memory is written to an unnamed file in its shard folder (O_TMPFILE)
 * and linked under its final name in one step: no temp name, no rename. linkat's EEXIST
 * means stored already, unless the file there is damaged: then the new one is linked
 * under a temp name and renamed over it. Both steps go relative to the shard folder's
 * kept descriptor. A shard folder removed meanwhile (O_TMPFILE's EPERM on ext4, ENOENT
 * elsewhere; on tmpfs only linkat's ENOENT says so) is opened, or made, again once. Returns
 * -EOPNOTSUPP where O_TMPFILE is not supported, so the caller falls back to a temp file. */
static int publish_tmpfile(fp_store *s, fp_body *b, int i, const char *final)
{
    const char *name = strrchr(final, '/') + 1;
    char proc[64];
    int fd, dfd, rc, again = 1;

retry:
    if ((dfd = shard_fd(s, i, final)) < 0)
        return dfd;
    fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == ENOENT || errno == EPERM) && again) { /* removed (ext4: EPERM) */
        forget_shard(s, i);
        again = 0;
        goto retry;
    }
    if (fd < 0)
        return (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) ? -EOPNOTSUPP : -errno;
    if ((rc = write_all(fd, b->mem, b->len)) != 0)
        goto out;
    if (s->fsync && fsync(fd) != 0) {
        rc = -errno;
        goto out;
    }
    if (link_tmpfile(s, fd, dfd, name) == 0) {
        rc = sync_dir(s, final);
    } else if (errno == ENOENT && again) { /* the folder was removed: open it again */
        close(fd);
        forget_shard(s, i);
        again = 0;
        goto retry;
    } else if (errno != EEXIST) {
        rc = errno == ENOENT ? -EOPNOTSUPP : -errno; /* ENOENT: no /proc */
    } else if (!stored(final, b->len)) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if ((rc = replace(s, proc, final)) == 0)
            rc = sync_dir(s, final);
    }
out:
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    b->len = 0;
    return rc;
}

static int digest(fp_body *b, unsigned char *md, char *sha)
{
    static const char hex[] = "0123456789abcdef";
    unsigned int mdlen = 0, i;

    if (EVP_DigestFinal_ex(b->sha, md, &mdlen) != 1 || mdlen != 32)
        return -EIO;
    for (i = 0; i < 32; i++) {
        sha[2 * i] = hex[md[i] >> 4];
        sha[2 * i + 1] = hex[md[i] & 15];
    }
    sha[64] = '\0';
    return 0;
}

int fp_body_digest(fp_body *b, char *sha)
{
    unsigned char md[EVP_MAX_MD_SIZE];

    return digest(b, md, sha);
}

int fp_store_commit(fp_store *s, fp_body *b, const char *ext, char *relpath, char *sha)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char final[PATH_MAX];
    unsigned char *slot;
    int rc;

    if ((rc = digest(b, md, sha)) != 0)
        goto err;
    snprintf(relpath, 128, "%.2s/%s.%s", sha, sha, ext);
    snprintf(final, sizeof(final), "%s/%s", s->root, relpath);

    /* Stored a moment ago by this worker (a popular image) and still there: nothing to
     * write. */
    slot = s->recent[(md[0] << 4 | md[1] >> 4) & (FP_STORE_RECENT - 1)];
    if (b->fd < 0 && memcmp(slot, md, 32) == 0 && stored(final, b->len)) {
        b->len = 0;
        return 0;
    }
    if (b->fd < 0 && s->tmpfile) {
        rc = publish_tmpfile(s, b, md[0], final);
        if (rc == 0)
            memcpy(slot, md, 32);
        if (rc != -EOPNOTSUPP)
            return rc;
        s->tmpfile = 0; /* this filesystem has no O_TMPFILE: temp files from now on */
    }
    if (b->fd < 0) {
        /* The same name means the same bytes: a file already published is complete. */
        if (stored(final, b->len)) {
            b->len = 0;
            return 0;
        }
        if ((rc = open_temp(s, b)) != 0)
            goto err;
        if ((rc = write_all(b->fd, b->mem, b->len)) != 0)
            goto err;
    }
    /* A failed fsync is not retried: the page cache may have dropped the data. */
    if (s->fsync && fsync(b->fd) != 0) {
        rc = -errno;
        goto err;
    }
    rc = close(b->fd);
    b->fd = -1;
    if (rc != 0) {
        rc = -errno;
        unlink(b->tmp);
        goto err;
    }
    if (rename(b->tmp, final) != 0) {
        rc = -errno;
        unlink(b->tmp);
        goto err;
    }
    b->len = 0;
    return sync_dir(s, final);
err:
    fp_body_discard(b);
    return rc;
}

fp_reason fp_store_unwritable(int err)
{
    switch (-err) {
    case ENOSPC:
    case EDQUOT: return FP_R_DISK_FULL;
    case EROFS:
    case EIO:
    case ENOENT: /* the output folder was removed: the probe makes it again */
    case EACCES:
    case EPERM: return FP_R_IO;
    default: return FP_OK;
    }
}

fp_reason fp_store_reason(int err)
{
    return fp_store_unwritable(err) == FP_R_DISK_FULL ? FP_R_DISK_FULL : FP_R_IO;
}

int fp_store_probe(fp_store *s)
{
    static const char zeros[FP_BODY_MEM];
    char path[PATH_MAX];
    int fd, rc;

    /* Folders removed meanwhile are made again; then room for one body kept in memory,
     * and an inode: what the next task needs. */
    forget_shards(s);
    if ((rc = make_folders(s)) != 0)
        return rc;
    fd = open(s->tmpdir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    path[0] = '\0';
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        if (snprintf(path, sizeof(path), "%s/%s.probe.part", s->tmpdir, s->id) >= (int)sizeof(path))
            return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return -errno;
    rc = write_all(fd, zeros, sizeof(zeros));
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (path[0])
        unlink(path);
    return rc;
}
