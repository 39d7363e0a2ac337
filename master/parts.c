/* parts.c - spools and part files of a job's results (parts.h).
 *
 * Crash safety comes from the order of the steps, not from locks: a spool line is
 * durable before Redis forgets it; a part file exists only complete (rename of a fsynced
 * temp file); a spool is deleted only after its part file is durable; and every step can
 * be done again after a crash with the same outcome. */
#define _GNU_SOURCE
#include "parts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fp_log.h"
#include "fp_text.h"

#define WRITE_BUF (256 * 1024)

typedef struct part {
    uint64_t no, count;
    uint8_t *bits; /* part_size bits: slots spooled */
    uint8_t *lost; /* part_size bits: ... and what was spooled is a worker_lost result */
} part;

struct fpm_parts {
    char dir[PATH_MAX];
    int dirfd;
    uint64_t job, psize, drained;
    fpm_format fmt;
    part *open;
    size_t nopen, capopen;
    uint64_t *found;
    size_t nfound, capfound;
};

#define ERR(...) snprintf(err, errlen, __VA_ARGS__)

static void path_of(const fpm_parts *ps, char *buf, size_t len, uint64_t no, const char *kind)
{
    if (strcmp(kind, "final") == 0)
        snprintf(buf, len, "part-%06" PRIu64 ".%s", no, fpm_format_ext(ps->fmt));
    else
        snprintf(buf, len, ".part-%06" PRIu64 ".%s", no, kind);
}

int fpm_rec_idx(const char *s, size_t len, uint64_t *idx)
{
    const char *a, *b, *end = s + len;

    if ((a = memchr(s, '\t', len)) == NULL ||
        (a = memchr(a + 1, '\t', (size_t)(end - a - 1))) == NULL)
        return -1;
    a++;
    b = memchr(a, '\t', (size_t)(end - a));
    if (b == NULL)
        return -1;
    return fp_text_u64(a, (size_t)(b - a), idx);
}

int fpm_rec_ok_us(const char *s, size_t len, uint64_t *us)
{
    const char *f[9], *end = s + len, *p = s;
    int k = 0;

    /* f[k]: where field k starts; fields 4 (status) and 7 (total_us) are read */
    f[k++] = p;
    while (k < 9 && (p = memchr(p, '\t', (size_t)(end - p))) != NULL)
        f[k++] = ++p;
    if (k < 9)
        return 0;
    return f[5] - f[4] == 3 && memcmp(f[4], "ok", 2) == 0 &&
           fp_text_u64(f[7], (size_t)(f[8] - f[7] - 1), us) == 0;
}

static part *find_open(fpm_parts *ps, uint64_t no)
{
    size_t i;

    for (i = 0; i < ps->nopen; i++)
        if (ps->open[i].no == no)
            return &ps->open[i];
    return NULL;
}

static part *add_open(fpm_parts *ps, uint64_t no)
{
    part *p;

    if (ps->nopen == ps->capopen) {
        size_t cap = ps->capopen ? ps->capopen * 2 : 8;
        part *n = realloc(ps->open, cap * sizeof(*n));
        if (n == NULL)
            fp_oom("for the results parts");
        ps->open = n;
        ps->capopen = cap;
    }
    p = &ps->open[ps->nopen++];
    p->no = no;
    p->count = 0;
    if ((p->bits = calloc(ps->psize / 8 + 1, 1)) == NULL ||
        (p->lost = calloc(ps->psize / 8 + 1, 1)) == NULL)
        fp_oom("for the results parts");
    return p;
}

static void drop_open(fpm_parts *ps, uint64_t no)
{
    part *p = find_open(ps, no);

    if (p == NULL)
        return;
    free(p->bits);
    free(p->lost);
    *p = ps->open[--ps->nopen];
}

/* 1 if the record is a worker_lost result (its status, the fifth field). */
static int rec_lost(const char *s, size_t len)
{
    static const char want[] = "\tworker_lost\t";
    const char *p = s, *end = s + len;
    int tabs = 0;

    while (p < end && tabs < 4)
        if (*p++ == '\t')
            tabs++;
    return tabs == 4 && (size_t)(end - p + 1) >= sizeof(want) - 1 &&
           memcmp(p - 1, want, sizeof(want) - 1) == 0;
}

/* Marks slot idx of part p: 1 if new, 2 if it replaces a worker_lost result (the worker
 * was only frozen: its real result wins, as in the finish script), 0 if a duplicate. */
static int mark(fpm_parts *ps, part *p, uint64_t idx, int lost)
{
    uint64_t s = idx - p->no * ps->psize;
    uint8_t bit = (uint8_t)(1u << (s & 7));

    if (p->bits[s >> 3] & bit) {
        if (lost || !(p->lost[s >> 3] & bit))
            return 0;
        p->lost[s >> 3] &= (uint8_t)~bit;
        return 2;
    }
    p->bits[s >> 3] |= bit;
    if (lost)
        p->lost[s >> 3] |= bit;
    p->count++;
    ps->drained++;
    return 1;
}

int fpm_parts_written(const fpm_parts *ps, uint64_t no)
{
    char name[64];
    struct stat st;

    path_of(ps, name, sizeof(name), no, "final");
    return fstatat(ps->dirfd, name, &st, 0) == 0;
}

/* Loads the spool of part no: cuts a torn last line, marks every slot it holds. */
static int load_spool(fpm_parts *ps, uint64_t no, char *err, size_t errlen)
{
    char name[64];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t good = 0;
    uint64_t idx;
    FILE *f;
    int fd;
    part *p;

    path_of(ps, name, sizeof(name), no, "spool");
    if ((fd = openat(ps->dirfd, name, O_RDWR | O_CLOEXEC)) < 0 || (f = fdopen(fd, "r")) == NULL) {
        ERR("%s/%s: %s", ps->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    p = find_open(ps, no) ? find_open(ps, no) : add_open(ps, no);
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* torn: the batch was never acknowledged, Redis still has it */
        good += n;
        if (fpm_rec_idx(line, (size_t)n - 1, &idx) == 0 && idx / ps->psize == no)
            mark(ps, p, idx, rec_lost(line, (size_t)n - 1));
    }
    free(line);
    if (ferror(f) || ftruncate(fd, good) != 0) {
        ERR("%s/%s: %s", ps->dir, name, strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

static int parse_name(const char *name, const char *prefix, const char *suffix, uint64_t *no)
{
    size_t lp = strlen(prefix), ls = strlen(suffix), ln = strlen(name), i;

    if (ln <= lp + ls || strncmp(name, prefix, lp) != 0 || strcmp(name + ln - ls, suffix) != 0)
        return -1;
    /* Zero-padded, so not fp_text_u64 (which refuses leading zeros). */
    for (*no = 0, i = lp; i < ln - ls; i++) {
        if (name[i] < '0' || name[i] > '9' || *no > UINT64_MAX / 10 - 1)
            return -1;
        *no = *no * 10 + (uint64_t)(name[i] - '0');
    }
    return 0;
}

static void found_add(fpm_parts *ps, uint64_t no)
{
    if (ps->nfound == ps->capfound) {
        size_t cap = ps->capfound ? ps->capfound * 2 : 16;
        uint64_t *n = realloc(ps->found, cap * sizeof(*n));
        if (n == NULL)
            fp_oom("for the results parts");
        ps->found = n;
        ps->capfound = cap;
    }
    ps->found[ps->nfound++] = no;
}

static int mkdir_synced(const char *path, char *err, size_t errlen)
{
    char parent[PATH_MAX], *slash;
    int fd;

    if (mkdir(path, 0755) == 0) {
        snprintf(parent, sizeof(parent), "%s", path);
        slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof(parent), ".");
        if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
            fsync(fd);
            close(fd);
        }
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    ERR("cannot create %s: %s", path, strerror(errno));
    return -1;
}

fpm_parts *fpm_parts_open(const char *root, uint64_t job, fpm_format f, uint64_t part_size,
                          char *err, size_t errlen)
{
    char spool_ext[16], final_ext[16];
    fpm_parts *ps = calloc(1, sizeof(*ps));
    struct dirent *e;
    uint64_t no, *spools = NULL;
    size_t nspools = 0, capspools = 0, i;
    DIR *d;

    if (ps == NULL)
        fp_oom("for the results parts");
    ps->job = job;
    ps->fmt = f;
    ps->psize = part_size ? part_size : 1;
    ps->dirfd = -1;
    snprintf(ps->dir, sizeof(ps->dir), "%s/%" PRIu64, root, job);
    if (mkdir_synced(root, err, errlen) || mkdir_synced(ps->dir, err, errlen))
        goto fail;
    if ((ps->dirfd = open(ps->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (d = fdopendir(dup(ps->dirfd))) == NULL) {
        ERR("%s: %s", ps->dir, strerror(errno));
        goto fail;
    }
    snprintf(spool_ext, sizeof(spool_ext), ".spool");
    snprintf(final_ext, sizeof(final_ext), ".%s", fpm_format_ext(f));
    while ((e = readdir(d)) != NULL) {
        if (parse_name(e->d_name, ".part-", ".tmp", &no) == 0) {
            unlinkat(ps->dirfd, e->d_name, 0);
        } else if (parse_name(e->d_name, "part-", final_ext, &no) == 0) {
            found_add(ps, no);
            ps->drained += ps->psize;
        } else if (parse_name(e->d_name, ".part-", spool_ext, &no) == 0) {
            if (nspools == capspools) {
                capspools = capspools ? capspools * 2 : 16;
                if ((spools = realloc(spools, capspools * sizeof(*spools))) == NULL)
                    fp_oom("for the results parts");
            }
            spools[nspools++] = no;
        }
    }
    closedir(d);
    for (i = 0; i < nspools; i++) {
        char name[64];
        if (fpm_parts_written(ps, spools[i])) { /* died between the rename and the unlink */
            path_of(ps, name, sizeof(name), spools[i], "spool");
            unlinkat(ps->dirfd, name, 0);
        } else if (load_spool(ps, spools[i], err, errlen) != 0) {
            free(spools);
            goto fail;
        }
    }
    free(spools);
    return ps;
fail:
    fpm_parts_free(ps);
    return NULL;
}

void fpm_parts_free(fpm_parts *ps)
{
    size_t i;

    if (ps == NULL)
        return;
    for (i = 0; i < ps->nopen; i++) {
        free(ps->open[i].bits);
        free(ps->open[i].lost);
    }
    free(ps->open);
    free(ps->found);
    if (ps->dirfd >= 0)
        close(ps->dirfd);
    free(ps);
}

uint64_t fpm_parts_drained(const fpm_parts *ps)
{
    return ps->drained;
}

uint64_t fpm_parts_part_size(const fpm_parts *ps)
{
    return ps->psize;
}

const char *fpm_parts_dir(const fpm_parts *ps)
{
    return ps->dir;
}

size_t fpm_parts_found(fpm_parts *ps, uint64_t **nos)
{
    size_t n = ps->nfound;

    *nos = ps->found;
    ps->found = NULL;
    ps->nfound = ps->capfound = 0;
    return n;
}

int fpm_parts_lost_agree(const fpm_parts *ps, uint64_t no, const unsigned char *bits, size_t len)
{
    const part *p = find_open((fpm_parts *)ps, no);
    uint64_t s;

    for (s = 0; p && s < ps->psize; s++)
        if ((p->lost[s >> 3] & (1u << (s & 7))) &&
            ((s >> 3) >= len || !(bits[s >> 3] & (0x80u >> (s & 7)))))
            return 0;
    return 1;
}

size_t fpm_parts_full(const fpm_parts *ps, uint64_t *nos, size_t max)
{
    size_t i, n = 0;

    for (i = 0; i < ps->nopen && n < max; i++)
        if (ps->open[i].count >= ps->psize)
            nos[n++] = ps->open[i].no;
    return n;
}

static int write_all(int fd, const char *p, size_t len)
{
    ssize_t w;

    while (len > 0) {
        if ((w = write(fd, p, len)) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Appends the taken records of part no to its spool, fsynced. */
static int spool_write(fpm_parts *ps, uint64_t no, const fpm_rec *recs, const uint8_t *take,
                       size_t n, char *err, size_t errlen)
{
    char name[64], *buf = NULL;
    size_t i, len = 0, at = 0;
    struct stat st;
    int fd, fresh, rc = -1;

    for (i = 0; i < n; i++)
        if (take[i] && recs[i].idx / ps->psize == no)
            len += recs[i].len + 1;
    if ((buf = malloc(len ? len : 1)) == NULL)
        fp_oom("while spooling results");
    for (i = 0; i < n; i++)
        if (take[i] && recs[i].idx / ps->psize == no) {
            memcpy(buf + at, recs[i].data, recs[i].len);
            at += recs[i].len;
            buf[at++] = '\n';
        }
    path_of(ps, name, sizeof(name), no, "spool");
    fresh = fstatat(ps->dirfd, name, &st, 0) != 0;
    fd = openat(ps->dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        ERR("%s/%s: %s", ps->dir, name, strerror(errno));
    } else if (fresh && fsync(ps->dirfd) != 0) {
        ERR("%s: fsync: %s", ps->dir, strerror(errno));
    } else {
        rc = 0;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        ERR("%s/%s: %s", ps->dir, name, strerror(errno));
        rc = -1;
    }
    free(buf);
    return rc;
}

long fpm_parts_append(fpm_parts *ps, const fpm_rec *recs, size_t n, char *err, size_t errlen)
{
    uint8_t *take = calloc(n + 1, 1), *done = calloc(n + 1, 1);
    long fresh = 0;
    size_t i, k;
    part *p;

    if (take == NULL || done == NULL)
        fp_oom("while spooling results");
    for (i = 0; i < n; i++) {
        uint64_t no = recs[i].idx / ps->psize;
        if ((p = find_open(ps, no)) == NULL) {
            if (fpm_parts_written(ps, no))
                continue; /* a duplicate of a result already written out */
            p = add_open(ps, no);
        }
        switch (mark(ps, p, recs[i].idx, rec_lost(recs[i].data, recs[i].len))) {
        case 1: fresh++; /* fall through */
        case 2: take[i] = 1; break;
        default: break;
        }
    }
    /* One append and fsync per part the batch touches (usually one or two). */
    for (i = 0; i < n; i++) {
        uint64_t no = recs[i].idx / ps->psize;
        if (!take[i] || done[i])
            continue;
        for (k = i; k < n; k++)
            if (recs[k].idx / ps->psize == no)
                done[k] = 1;
        if (spool_write(ps, no, recs, take, n, err, errlen) != 0) {
            fresh = -1;
            break;
        }
    }
    free(take);
    free(done);
    return fresh;
}

/* Where each slot's record sits in the spool (first copy wins, a copy is a duplicate;
 * but a worker_lost result gives way to a later real one). */
typedef struct slot {
    uint64_t off; /* offset + 1; 0: no record */
    uint32_t len;
    int lost;
} slot;

static int index_spool(fpm_parts *ps, uint64_t no, int fd, slot *slots, uint64_t nslots)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t off = 0, idx;
    FILE *f;
    int dupfd = dup(fd);

    if (dupfd < 0 || (f = fdopen(dupfd, "r")) == NULL) {
        if (dupfd >= 0)
            close(dupfd);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n' && fpm_rec_idx(line, (size_t)n - 1, &idx) == 0 &&
            idx / ps->psize == no && idx - no * ps->psize < nslots &&
            n - 1 <= (ssize_t)FP_RECORD_MAX) {
            slot *sl = &slots[idx - no * ps->psize];
            int lost = rec_lost(line, (size_t)n - 1);
            if (sl->off == 0 || (sl->lost && !lost)) {
                sl->off = off + 1;
                sl->len = (uint32_t)(n - 1);
                sl->lost = lost;
            }
        }
        off += (uint64_t)n;
    }
    free(line);
    n = ferror(f);
    fclose(f);
    return n ? -1 : 0;
}

static int write_rows(fpm_parts *ps, uint64_t no, int sfd, const slot *slots, uint64_t nslots,
                      int drop_missing, FILE *out, uint64_t *missing)
{
    static char rec[FP_RECORD_MAX + 1], row[FPM_ROW_MAX], why[64];
    uint64_t i;
    int len;

    if (no == 0 && fputs(fpm_rows_header(ps->fmt), out) == EOF)
        return -1;
    for (i = 0; i < nslots; i++) {
        uint64_t idx = no * ps->psize + i;
        if (slots[i].off == 0 ||
            pread(sfd, rec, slots[i].len, (off_t)(slots[i].off - 1)) != (ssize_t)slots[i].len) {
            (*missing)++;
            if (drop_missing)
                continue;
            snprintf(why, sizeof(why), "no result for task %" PRIu64, idx);
            len = fpm_row_missing(ps->fmt, why, row, sizeof(row));
        } else {
            len = fpm_row_format(ps->fmt, rec, slots[i].len, idx, row, sizeof(row));
        }
        if (len < 0 || fwrite(row, 1, (size_t)len, out) != (size_t)len)
            return -1;
    }
    return 0;
}

int fpm_parts_write(fpm_parts *ps, uint64_t no, uint64_t nslots, int drop_missing,
                    uint64_t *missing, char *err, size_t errlen)
{
    char spool[64], tmp[64], final[64];
    slot *slots = calloc(nslots + 1, sizeof(*slots));
    int sfd, tfd = -1, rc = -1;
    FILE *out = NULL;
    part *p;

    if (slots == NULL)
        fp_oom("while writing results");
    *missing = 0;
    path_of(ps, spool, sizeof(spool), no, "spool");
    path_of(ps, tmp, sizeof(tmp), no, "tmp");
    path_of(ps, final, sizeof(final), no, "final");
    sfd = openat(ps->dirfd, spool, O_RDONLY | O_CLOEXEC);
    if (sfd < 0 && errno != ENOENT) {
        ERR("%s/%s: %s", ps->dir, spool, strerror(errno));
        goto out;
    }
    if (sfd >= 0 && index_spool(ps, no, sfd, slots, nslots) != 0) {
        ERR("%s/%s: read: %s", ps->dir, spool, strerror(errno));
        goto out;
    }
    if ((tfd = openat(ps->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
        (out = fdopen(tfd, "w")) == NULL) {
        ERR("%s/%s: %s", ps->dir, tmp, strerror(errno));
        goto out;
    }
    tfd = -1; /* out owns it */
    setvbuf(out, NULL, _IOFBF, WRITE_BUF);
    if (write_rows(ps, no, sfd, slots, nslots, drop_missing, out, missing) != 0 ||
        fflush(out) != 0 || fsync(fileno(out)) != 0) {
        ERR("%s/%s: %s", ps->dir, tmp, strerror(errno));
        goto out;
    }
    if (fclose(out) != 0) {
        out = NULL;
        ERR("%s/%s: %s", ps->dir, tmp, strerror(errno));
        goto out;
    }
    out = NULL;
    if (renameat(ps->dirfd, tmp, ps->dirfd, final) != 0 || fsync(ps->dirfd) != 0) {
        ERR("%s/%s: %s", ps->dir, final, strerror(errno));
        goto out;
    }
    /* The part is durable; the spool is not needed any more (a crash before this unlink
     * is cleaned up by the next open). */
    if (sfd >= 0)
        unlinkat(ps->dirfd, spool, 0);
    if ((p = find_open(ps, no)) != NULL)
        ps->drained += ps->psize - p->count;
    else
        ps->drained += ps->psize;
    drop_open(ps, no);
    rc = 0;
out:
    if (out)
        fclose(out);
    if (tfd >= 0)
        close(tfd);
    if (rc != 0)
        unlinkat(ps->dirfd, tmp, 0);
    if (sfd >= 0)
        close(sfd);
    free(slots);
    return rc;
}
