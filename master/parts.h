/* parts.h - a job's results on the master's disk: spools and the numbered part files.
 *
 * Results arrive from Redis in any order (a retried URL comes late). Each batch is
 * appended to the spool of its part (part = idx / part size), <dir>/.part-NNNNNN.spool,
 * and fsynced before the caller deletes it from Redis. A part whose every slot has a
 * result is written out in input order as <dir>/part-NNNNNN.<tsv|jsonl> (temp file,
 * fsync, rename, fsync of the folder), then its spool is deleted. Opening a job's folder
 * again after a crash sweeps temp files, drops the spools of parts already written, cuts
 * a torn last line and rebuilds each open part's bitmap of slots seen: a batch spooled
 * twice (the master died after the fsync, before the delete in Redis) is written once.
 *
 * Memory: a bitmap of part-size bits per open part; writing a part costs 12 bytes per
 * slot. No Redis here: results.c moves records between Redis and these files. */
#ifndef FPM_PARTS_H
#define FPM_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"

typedef struct fpm_parts fpm_parts;

typedef struct fpm_rec {
    const char *data; /* a result record (no '\n') */
    size_t len;
    uint64_t idx; /* its slot */
} fpm_rec;

/* Opens (creating) <root>/<job>/ and loads what an earlier run left there. NULL on error,
 * with the reason in err. Free with fpm_parts_free. */
fpm_parts *fpm_parts_open(const char *root, uint64_t job, fpm_format f, uint64_t part_size,
                          char *err, size_t errlen);
void fpm_parts_free(fpm_parts *ps);

/* Distinct results on disk (spooled, or in parts written out; those count part size). */
uint64_t fpm_parts_drained(const fpm_parts *ps);

/* Appends the records to their spools and fsyncs them; a slot already seen is skipped.
 * Returns how many were new, or -1 (err set): then the state is unknown, free ps and open
 * it again. */
long fpm_parts_append(fpm_parts *ps, const fpm_rec *recs, size_t n, char *err, size_t errlen);

/* Up to max numbers of open parts whose every slot is spooled. */
size_t fpm_parts_full(const fpm_parts *ps, uint64_t *nos, size_t max);

/* 1 unless a slot of part no whose spooled result is a worker_lost one is not set in bits
 * (len bytes; Redis's fp:job:<id>:lost:<p>, whose bit 0 is the high bit of byte 0): then
 * the finish script has replaced that result with a real one, which is still on its way. */
int fpm_parts_lost_agree(const fpm_parts *ps, uint64_t no, const unsigned char *bits, size_t len);

/* 1 if part no is written out (its file exists). */
int fpm_parts_written(const fpm_parts *ps, uint64_t no);

/* Writes part no out with its first `slots` slots (part size, or fewer for the last part
 * of a job); a slot without a result gets a "missing" row (none if drop_missing: a
 * cancelled job's results are those it has), counted in *missing. Returns
 * 0, or -1 (err set; nothing written, the spool kept). */
int fpm_parts_write(fpm_parts *ps, uint64_t no, uint64_t slots, int drop_missing, uint64_t *missing,
                    char *err, size_t errlen);

/* The parts found written out when the folder was opened (results.c makes sure Redis
 * knows them: a crash may have come between the rename and Redis). Cleared by the call. */
size_t fpm_parts_found(fpm_parts *ps, uint64_t **nos);

/* The slot of a result record (its third field, checked by the decoder later): 0, or -1
 * if it has none. */
int fpm_rec_idx(const char *s, size_t len, uint64_t *idx);
/* 1 if a result record is a success (status "ok", its fifth field), with its total_us
 * (the eighth) in *us; 0 otherwise, also when a field is missing or not a number. */
int fpm_rec_ok_us(const char *s, size_t len, uint64_t *us);

uint64_t fpm_parts_part_size(const fpm_parts *ps);
/* The folder of the job, for log lines. */
const char *fpm_parts_dir(const fpm_parts *ps);

#endif
