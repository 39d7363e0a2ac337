/* fp_text.h - small, strict text checks shared by the record codec and the line reader. */
#ifndef FP_TEXT_H
#define FP_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Strict unsigned decimal: 1 to 20 digits, no sign, spaces, leading zeros or overflow.
 * Returns 0 or -1. */
int fp_text_u64(const char *s, size_t len, uint64_t *out);
/* Valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
int fp_text_utf8_valid(const char *s, size_t len);
/* Offset of the first byte of the first invalid sequence (len if none). */
size_t fp_text_utf8_first_invalid(const char *s, size_t len);
/* Valid UTF-8 with no control character, tab or DEL; spaces only if allow_space. */
int fp_text_valid(const char *s, size_t len, int allow_space);
/* Copies url to dst (always terminated, cut to dstlen) with the credentials of its
 * authority hidden: "user:pw@host" becomes "user:***@host", "token@host" becomes
 * "***@host". Anything else is copied as it is. Returns 1 if something was hidden. */
int fp_text_url_redact(char *dst, size_t dstlen, const char *url);

#endif
