/* fp_redis_url.h - parses redis://[[user]:password@]host[:port][/db] (via libcurl's URL API). */
#ifndef FP_REDIS_URL_H
#define FP_REDIS_URL_H

typedef struct fp_redis_url {
    char host[256];
    int port;
    int db;
    char password[256]; /* "" for none */
} fp_redis_url;

#define FP_REDIS_URL_DEFAULT "redis://127.0.0.1:6379/0"

/* Returns 0, or -1 with a message in err. */
int fp_redis_url_parse(const char *url, fp_redis_url *out, char *err, size_t errlen);

#endif
