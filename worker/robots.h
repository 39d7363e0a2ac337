/* robots.h - robots.txt rules for one agent token (RFC 9309), a pure parser and matcher.
 *
 * The parser reads at most FP_ROBOTS_MAX bytes (the RFC asks crawlers to parse at least
 * 500 KiB) and keeps at most FP_ROBOTS_RULES_MAX rules; a file with a NUL byte in that
 * part is not text and gives no rules at all. Rules point into the caller's text, which
 * must outlive the fp_robots (no heap memory is owned). Groups: the user-agent lines
 * naming the token (case-insensitively, as a product token: "fetchpool/1.0" names
 * "fetchpool") apply, all of them merged; only if none does, the "*" groups do. A path
 * matches a rule when the rule's pattern ('*' any run, '$' the end) matches its start;
 * the longest pattern wins, and Allow wins a tie. /robots.txt itself is always allowed.
 *
 * Fetching and caching are the caller's: fp_robots_for_status turns an HTTP outcome into
 * rules as the RFC says (4xx: no rules; 5xx or unreachable: everything disallowed for a
 * while). */
#ifndef FP_ROBOTS_H
#define FP_ROBOTS_H

#include <stddef.h>
#include <stdint.h>

#define FP_ROBOTS_MAX       (500 * 1024)
#define FP_ROBOTS_RULES_MAX 1024

typedef enum fp_robots_kind {
    FP_ROBOTS_RULES,       /* the rules below decide */
    FP_ROBOTS_ALLOW_ALL,   /* no robots.txt (4xx), not text, or no group for us */
    FP_ROBOTS_DISALLOW_ALL /* 5xx or unreachable: assume everything is disallowed */
} fp_robots_kind;

typedef struct fp_robots_rule {
    uint32_t off, len; /* the pattern, in the text */
    int allow;
} fp_robots_rule;

typedef struct fp_robots {
    fp_robots_kind kind;
    double crawl_delay; /* seconds from the group that applies; -1 if none */
    const char *text;
    size_t nrules;
    fp_robots_rule rule[FP_ROBOTS_RULES_MAX];
} fp_robots;

/* Parses text (len bytes, not NUL-terminated) for token (lower-case letters, digits, '_'
 * and '-'). Never fails: bad lines are skipped. */
void fp_robots_parse(fp_robots *r, const char *text, size_t len, const char *token);
/* Rules for a robots.txt that could not be had: 400-499 allow all, anything else
 * (5xx, 0 for no answer) disallows all. */
void fp_robots_for_status(fp_robots *r, long http_code);
/* 1 if path (from the first '/', query included) may be fetched. */
int fp_robots_allowed(const fp_robots *r, const char *path);

#endif
