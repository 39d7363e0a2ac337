/* fp_redis_url.h - parses redis://[[user]:password@]host[:port][/db] (via libcurl's URL API).
 *
 * A user name means a Redis 6+ ACL user (AUTH user password); a password alone is the
 * default user's (AUTH password). Both are percent-decoded. The password is a secret: it
 * never appears in an error message of this module, nor should it in any log line. */
#ifndef FP_REDIS_URL_H
#define FP_REDIS_URL_H

#include <stddef.h>

typedef struct fp_redis_url {
    char host[256];
    int port;
    int db;
    char user[256];     /* "" for the default user */
    char password[256]; /* "" for none */
} fp_redis_url;

#define FP_REDIS_URL_DEFAULT "redis://127.0.0.1:6379/0"
#define FP_REDIS_URL_FORM    "redis://[[user]:password@]host[:port][/db]"

/* Returns 0, or -1 with a message in err (the URL shown without its user info). */
int fp_redis_url_parse(const char *url, fp_redis_url *out, char *err, size_t errlen);

/* Writes a URL that may be malformed into dst with anything that could be user info
 * (up to the last '@', also without a scheme, also past a '/') replaced by ***. */
void fp_redis_url_shown(char *dst, size_t dstlen, const char *url);

#endif
