/* line.h - reads one line of a submitted URL list and decides what it is.
 *
 * Input files are untrusted: each line is checked for length, NUL bytes, UTF-8 and
 * control characters, then parsed by libcurl's URL API (never by hand) and normalised.
 * Blank lines and lines starting with '#' are skipped. */
#ifndef FP_LINE_H
#define FP_LINE_H

#include <stddef.h>
#include <stdint.h>

#define FP_LINE_MAX 8192 /* longer lines are invalid input */
/* Clients cut a line to this many bytes before sending it (so do the master's input
 * files): even if the byte at the cut is a '\r', dropped as a line end, what is left is
 * still over FP_LINE_MAX, and an over-long line is never held whole. */
#define FP_LINE_CUT 8194

typedef enum fp_line_kind { FP_LINE_SKIP, FP_LINE_URL, FP_LINE_INVALID } fp_line_kind;

/* line: len raw bytes without the '\n' (a trailing '\r' is dropped). For FP_LINE_URL the
 * normalised URL is written to out; for FP_LINE_INVALID a short reason. outlen must be at
 * least FP_URL_MAX + 1 (fp_record.h). */
fp_line_kind fp_line_parse(const char *line, size_t len, char *out, size_t outlen);

/* A job submitted with numbered=1 (a retry, or submit --skip-ok) sends each line as
 * "<line number>\t<line>", so results name the line of the original file. Returns the
 * number (>= 1) and sets *skip to the prefix's length, or returns 0 if there is none. */
uint64_t fp_line_numbered(const char *line, size_t len, size_t *skip);

#endif
