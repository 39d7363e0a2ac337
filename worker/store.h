/* store.h - puts downloaded bodies on disk under content-addressed names.
 *
 * A body is collected in memory (up to FP_BODY_MEM bytes) and hashed as it arrives; a
 * larger one spills to a temp file. On commit the file is published atomically as
 * <root>/<first two hex digits>/<sha256>.<ext>. A body in memory is written to an unnamed
 * O_TMPFILE in the shard folder and linked into place (linkat never replaces or follows
 * anything at the final name); a spilled one, or any body where O_TMPFILE is missing,
 * uses a temp file in <root>/.tmp (created with O_EXCL|O_NOFOLLOW), optional fsync,
 * rename (and with fsync, an fsync of the folder). A name already taken is checked (one
 * fstatat: a regular file of the body's size) and a damaged file is replaced. No name ever comes
 * from the URL, and the same bytes always land on the same name, so a retried task rewrites
 * nothing. */
#ifndef FP_STORE_H
#define FP_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fp_record.h"

#define FP_BODY_MEM     (64 * 1024)
#define FP_STORE_RECENT 4096

typedef struct fp_store {
    char root[PATH_MAX - 128];
    char tmpdir[PATH_MAX - 64];
    char id[80];  /* worker id, names temp files */
    uint64_t seq; /* temp file counter */
    int fsync;
    int tmpfile;    /* O_TMPFILE + linkat works here (see fp_store_commit) */
    int flink;      /* ... and linkat(AT_EMPTY_PATH) too: no path lookup in /proc */
    const void *md; /* the fetched SHA-256 implementation (EVP_MD) */
    /* Digests of recently stored bodies (direct-mapped by the first 12 bits): a body seen
     * again is not written again if its file is still there, with the right size. */
    unsigned char (*recent)[32];
    /* The shard folders, opened (O_PATH) on first use and kept, or -1: files are made
     * and named relative to them, without walking the output's path each time. Opened
     * again every few seconds, so a folder mounted over meanwhile gets the next files. */
    int shard[256];
    time_t shards_until;
} fp_store;

/* One body being received. Owned by a transfer slot and reused across transfers. */
typedef struct fp_body {
    void *sha;          /* EVP_MD_CTX */
    unsigned char *mem; /* first bytes, or all of a small body */
    size_t len, cap;
    int fd; /* temp file once spilled, else -1 */
    char tmp[PATH_MAX];
    uint64_t bytes;
} fp_body;

/* Creates root, root/.tmp and the 256 shard folders; removes temp files left by a crash
 * (older than stale_s seconds). Returns 0 or -errno. */
int fp_store_open(fp_store *s, const char *root, const char *worker_id, int fsync, long stale_s);
void fp_store_close(fp_store *s);

int fp_body_init(fp_body *b);
void fp_body_free(fp_body *b);
/* Starts a new body; drops whatever the last one left (temp file included). */
int fp_body_begin(fp_store *s, fp_body *b);
/* Returns 0 or -errno (ENOSPC for a full disk). */
int fp_body_append(fp_store *s, fp_body *b, const void *data, size_t len);
/* Publishes the body. ext: file extension. Writes "ab/<sha>.<ext>" to relpath (128 bytes)
 * and the hex digest to sha (65 bytes). Returns 0 or -errno; the temp file is gone either
 * way. */
int fp_store_commit(fp_store *s, fp_body *b, const char *ext, char *relpath, char *sha);
/* Ends the body's digest without publishing (for an upload elsewhere): the hex digest
 * into sha (65 bytes). The body stays as it is, in memory or in its temp file (b->tmp
 * while b->fd >= 0), until fp_body_discard. Returns 0 or -EIO. */
int fp_body_digest(fp_body *b, char *sha);
/* Forgets the body, removing its temp file if any. */
void fp_body_discard(fp_body *b);

/* Unwritable outputs. An error of the calls above (-errno) that says the output cannot
 * take files for now, whatever the body: full (ENOSPC, EDQUOT: bytes or inodes), read-only
 * (EROFS), failing (EIO) or not ours to write (EACCES, EPERM). Returns the reason a task
 * would fail with (FP_R_DISK_FULL or FP_R_IO), or FP_OK for an error of this body only.
 * The worker pauses on such an error (pause.h) instead of failing tasks, and asks
 * fp_store_probe when to go on; any other output (an object store) can answer the same
 * two questions. */
fp_reason fp_store_unwritable(int err);
/* The reason for any storing error: disk_full for a full disk, io_error otherwise. */
fp_reason fp_store_reason(int err);
/* Writes and drops a file of FP_BODY_MEM bytes where bodies go: 0 if the output takes
 * files again, else -errno. Costs a few syscalls; called only while paused. */
int fp_store_probe(fp_store *s);

#endif
