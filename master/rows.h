/* rows.h - one result record (R1) as a line of the results file, TSV or JSONL.
 *
 * The formats are the ones README.md documents ("Results"), byte for byte what
 * scripts/submit wrote from Redis before the master wrote results files: TSV with one
 * header line (only at the top of part 0, so the parts concatenated are the whole file),
 * times in ms with 3 decimals; JSONL with the same keys, times as the shortest decimal
 * (Python's float repr). A record that does not decode becomes a "missing" row. */
#ifndef FPM_ROWS_H
#define FPM_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "fp_record.h"

typedef enum fpm_format { FPM_TSV, FPM_JSONL } fpm_format;

/* Enough for any row of a valid record. */
#define FPM_ROW_MAX (2 * FP_RECORD_MAX + 1024)

/* "tsv" or "jsonl" (NULL or "" is tsv); -1 for anything else. */
int fpm_format_parse(const char *s, size_t len, fpm_format *out);
const char *fpm_format_ext(fpm_format f);
/* The TSV header line ("" for JSONL), with its '\n'. */
const char *fpm_rows_header(fpm_format f);
/* Writes the row of result record rec (len bytes) with its '\n' into out. Returns the
 * length, or -1 if out is too small. A record that does not decode gives the missing row
 * of slot idx (the caller's idea of its slot). */
int fpm_row_format(fpm_format f, const char *rec, size_t len, uint64_t idx, char *out,
                   size_t outlen);
/* The row of a slot that has no result: status "missing", the reason in error. */
int fpm_row_missing(fpm_format f, const char *why, char *out, size_t outlen);

#endif
