/* guard.h - the SSRF guard: which addresses a worker may connect to.
 *
 * The check runs on the address libcurl is about to connect to (open-socket callback)
 * and again on the address of the connection a request goes out on (pre-request
 * callback, which also covers reused connections and every redirect), never on URL
 * text: 2130706433, 127.1, 0x7f.1 and DNS rebinding all resolve to an address first. */
#ifndef FP_GUARD_H
#define FP_GUARD_H

#include <sys/socket.h>

#include <stdint.h>

/* An address range the operator allows although the guard would block it. */
typedef struct fp_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} fp_cidr;

/* Parses "a.b.c.d/n", "x:y::z/n" or a bare address (all bits). 0 or -1. */
int fp_guard_cidr_parse(const char *s, fp_cidr *out);
/* 1 if the address is inside one of the n ranges. */
int fp_guard_cidr_match(const fp_cidr *list, int n, const struct sockaddr *sa);
int fp_guard_cidr_match_text(const fp_cidr *list, int n, const char *ip);

/* NULL if the address is public, else the name of the range that blocks it
 * ("loopback", "private", "link_local", ...). */
const char *fp_guard_classify(const struct sockaddr *sa);
/* The same for an address in text form (as CURLINFO_PRIMARY_IP gives it); an address
 * that does not parse is blocked as "unparsable". */
const char *fp_guard_classify_text(const char *ip);

#endif
