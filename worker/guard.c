/* guard.c - address classifier for the SSRF guard (ranges from IANA's special-purpose
 * registries; see FIELD-NOTES.md). IPv6 forms that embed an IPv4 address (mapped,
 * compatible, NAT64, 6to4) are judged by the IPv4 address inside. */
#include "guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct v4_range {
    uint32_t net;
    int bits;
    const char *name;
} v4_range;

static const v4_range v4_blocked[] = {
    {0x00000000, 8, "unspecified"},    /* 0.0.0.0/8 "this network" */
    {0x0a000000, 8, "private"},        /* 10/8 */
    {0x64400000, 10, "cgnat"},         /* 100.64/10 */
    {0x7f000000, 8, "loopback"},       /* 127/8 */
    {0xa9fe0000, 16, "link_local"},    /* 169.254/16, cloud metadata */
    {0xac100000, 12, "private"},       /* 172.16/12 */
    {0xc0000000, 24, "reserved"},      /* 192.0.0/24 IETF protocol assignments */
    {0xc0000200, 24, "documentation"}, /* 192.0.2/24 */
    {0xc0586300, 24, "reserved"},      /* 192.88.99/24 6to4 relay anycast */
    {0xc0a80000, 16, "private"},       /* 192.168/16 */
    {0xc6120000, 15, "benchmark"},     /* 198.18/15 */
    {0xc6336400, 24, "documentation"}, /* 198.51.100/24 */
    {0xcb007100, 24, "documentation"}, /* 203.0.113/24 */
    {0xe0000000, 4, "multicast"},      /* 224/4 */
    {0xf0000000, 4, "reserved"},       /* 240/4, broadcast included */
};

static const char *classify_v4(uint32_t a)
{
    size_t i;

    for (i = 0; i < sizeof(v4_blocked) / sizeof(v4_blocked[0]); i++) {
        uint32_t mask = 0xffffffffu << (32 - v4_blocked[i].bits);
        if ((a & mask) == v4_blocked[i].net)
            return v4_blocked[i].name;
    }
    return NULL;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int all_zero(const uint8_t *p, size_t n)
{
    while (n--)
        if (*p++)
            return 0;
    return 1;
}

static const char *classify_v6(const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (all_zero(a, 15) && a[15] == 1)
        return "loopback";
    if (all_zero(a, 16))
        return "unspecified";
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return classify_v4(be32(a + 12));
    if (all_zero(a, 12)) /* IPv4-compatible ::a.b.c.d (deprecated) */
        return classify_v4(be32(a + 12));
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1)
        return "nat64_local";         /* 64:ff9b:1::/48 */
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 2002:V4ADDR::/48 */
        return classify_v4(be32(a + 2));
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00)
        return "teredo"; /* 2001::/32 hides the real peer */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
        return "documentation"; /* 2001:db8::/32 */
    if (a[0] == 0x01 && a[1] == 0x00 && all_zero(a + 2, 6))
        return "discard"; /* 100::/64 */
    if ((a[0] & 0xfe) == 0xfc)
        return "private"; /* fc00::/7 unique local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link_local"; /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return "site_local"; /* fec0::/10 (deprecated) */
    if (a[0] == 0xff)
        return "multicast";
    return NULL;
}

const char *fp_guard_classify(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return classify_v4(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return classify_v6(in6->sin6_addr.s6_addr);
    }
    return "not_ip";
}

const char *fp_guard_classify_text(const char *ip)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, ip, &a4) == 1)
        return classify_v4(ntohl(a4.s_addr));
    if (inet_pton(AF_INET6, ip, &a6) == 1)
        return classify_v6(a6.s6_addr);
    return "unparsable";
}

int fp_guard_cidr_parse(const char *s, fp_cidr *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    long bits;
    char *end;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET, out->bits = 32;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6, out->bits = 128;
    else
        return -1;
    if (slash) {
        bits = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || bits < 0 || bits > out->bits)
            return -1;
        out->bits = (int)bits;
    }
    return 0;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    return rest == 0 || ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

static int match(const fp_cidr *list, int n, int family, const uint8_t *addr)
{
    int i;

    for (i = 0; i < n; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, addr, list[i].bits))
            return 1;
    return 0;
}

int fp_guard_cidr_match(const fp_cidr *list, int n, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return match(list, n, AF_INET,
                     (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    if (sa->sa_family == AF_INET6)
        return match(list, n, AF_INET6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 0;
}

int fp_guard_cidr_match_text(const fp_cidr *list, int n, const char *ip)
{
    uint8_t a[16];

    if (inet_pton(AF_INET, ip, a) == 1)
        return match(list, n, AF_INET, a);
    if (inet_pton(AF_INET6, ip, a) == 1)
        return match(list, n, AF_INET6, a);
    return 0;
}
