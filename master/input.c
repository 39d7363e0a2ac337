/* input.c - a job's input file in the master's jobs folder, read in batches of lines.
 *
 * A job may name a file (job field `input`) instead of uploading its lines through Redis:
 * the master reads it from the byte offset it last committed (field in_off), so Redis
 * holds none of it and a restart resumes exactly there. Lines are cut as scripts/submit
 * cuts them, so both ways give the same tasks and the same results files. The name is
 * untrusted: it must resolve (symlinks followed) to a regular file inside the folder. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fp_log.h"
#include "line.h"
#include "master.h"

#define CHUNK (64 * 1024)

#define ERR(...) snprintf(err, errlen, __VA_ARGS__)

char *fpm_input_resolve(const char *jobs_dir, const char *name, char *err, size_t errlen)
{
    char root[PATH_MAX], *joined = NULL, *real = NULL;
    struct stat st;
    size_t rl;

    if (jobs_dir == NULL) {
        ERR("this master has no --jobs-dir, so a job cannot name an input file");
        return NULL;
    }
    if (name[0] == '\0' || name[0] == '/' || strlen(name) > PATH_MAX / 2) {
        ERR("input name must be a relative path inside the jobs folder");
        return NULL;
    }
    if (realpath(jobs_dir, root) == NULL) {
        ERR("jobs folder %s: %s", jobs_dir, strerror(errno));
        return NULL;
    }
    if (asprintf(&joined, "%s/%s", root, name) < 0)
        fp_oom("for an input path");
    real = realpath(joined, NULL);
    free(joined);
    if (real == NULL) {
        ERR("input file: %s", strerror(errno));
        return NULL;
    }
    rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && strcmp(root, "/") != 0)) {
        ERR("input file is outside the jobs folder");
        free(real);
        return NULL;
    }
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        ERR("input is not a regular file");
        free(real);
        return NULL;
    }
    return real;
}

void fpm_lines_free(fpm_lines *l)
{
    free(l->line);
    free(l->len);
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

/* The lines are stored one after the other in buf; offsets first, pointers at the end. */
typedef struct acc {
    fpm_lines *l;
    size_t used, cap, max;
    size_t *off;
    size_t cur; /* bytes kept of the line being read */
    int started;
} acc;

static void acc_put(acc *a, const char *p, size_t n)
{
    a->started = 1;
    if (n > FP_LINE_CUT - a->cur)
        n = FP_LINE_CUT - a->cur;
    /* An empty line, or the rest of one past the cut: nothing to copy. buf is still NULL
     * if a batch begins with an empty line, and memcpy(NULL, p, 0) is undefined (UBSan
     * stops the master there). */
    if (n == 0)
        return;
    if (a->used + n > a->cap) {
        a->cap = (a->used + n) * 2;
        if ((a->l->buf = realloc(a->l->buf, a->cap)) == NULL)
            fp_oom("while reading an input file");
    }
    memcpy(a->l->buf + a->used, p, n);
    a->used += n;
    a->cur += n;
}

static void acc_end(acc *a)
{
    a->off[a->l->n] = a->used - a->cur;
    a->l->len[a->l->n] = a->cur;
    a->l->n++;
    a->cur = 0;
    a->started = 0;
}

int fpm_input_read(const char *path, uint64_t off, size_t max, fpm_lines *out, uint64_t *next,
                   int *eof, char *err, size_t errlen)
{
    static char chunk[CHUNK];
    acc a = {out, 0, 0, max, NULL, 0, 0};
    uint64_t pos = off, end = off;
    ssize_t n;
    size_t i;
    int fd;

    memset(out, 0, sizeof(*out));
    *eof = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        ERR("%s: %s", path, strerror(errno));
        return -1;
    }
    out->line = calloc(max + 1, sizeof(*out->line));
    out->len = calloc(max + 1, sizeof(*out->len));
    a.off = calloc(max + 1, sizeof(*a.off));
    if (out->line == NULL || out->len == NULL || a.off == NULL)
        fp_oom("while reading an input file");
    while (out->n < max) {
        if ((n = pread(fd, chunk, sizeof(chunk), (off_t)pos)) < 0) {
            if (errno == EINTR)
                continue;
            ERR("%s: %s", path, strerror(errno));
            close(fd);
            free(a.off);
            fpm_lines_free(out);
            return -1;
        }
        if (n == 0) {
            if (a.started)
                acc_end(&a); /* a last line without '\n' */
            end = pos;
            *eof = 1;
            break;
        }
        for (i = 0; i < (size_t)n && out->n < max;) {
            const char *nl = memchr(chunk + i, '\n', (size_t)n - i);
            size_t seg = nl ? (size_t)(nl - chunk) - i : (size_t)n - i;
            acc_put(&a, chunk + i, seg);
            i += seg;
            if (nl) {
                acc_end(&a);
                i++;
                end = pos + i;
            }
        }
        pos += i;
    }
    close(fd);
    for (i = 0; i < out->n; i++)
        out->line[i] = out->buf ? out->buf + a.off[i] : "";
    free(a.off);
    *next = end;
    return 0;
}
