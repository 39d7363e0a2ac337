/* rfetch.h - one robots.txt fetch for the robots cache (rcache.h): an easy handle on the
 * worker's curl multi, with the transfers' guard and options, its body bounded by
 * FP_ROBOTS_MAX (RFC 9309 2.5), and the value its outcome gives fp:robots:<origin>:
 * "<http code> <expiry, unix s> <note>\n<body>" (code 0: no answer, note says why; 310:
 * more than 5 redirects; the body only for 2xx text). The caller owns the fetch. */
#ifndef FP_RFETCH_H
#define FP_RFETCH_H

#include <curl/curl.h>
#include <stddef.h>

#include "conf.h"
#include "curl_uv.h"
#include "robots.h"

#define FP_RFETCH_VALUE_MAX (FP_ROBOTS_MAX + 512)

typedef struct fp_rfetch {
    struct fp_rfetch *next; /* the caller's list */
    void *owner;
    CURL *easy;
    const fp_conf *conf;
    char *body;
    size_t len;
    int truncated;
    const char *blocked; /* why the guard refused the address, or NULL */
    char errbuf[CURL_ERROR_SIZE];
} fp_rfetch;

/* Starts GET <origin>/robots.txt on curl; NULL if it could not. */
fp_rfetch *fp_rfetch_start(fp_curl_uv *curl, const fp_conf *conf, const char *origin, void *owner);
/* The finished fetch (rc its result): takes its handle off the multi, writes the value
 * (at most FP_RFETCH_VALUE_MAX bytes) and returns its length. *ttl_s holds how long a
 * good answer is kept; it becomes fail_ttl_s for 5xx, 1xx or no answer. Logs failures. */
size_t fp_rfetch_value(fp_rfetch *f, fp_curl_uv *curl, CURLcode rc, const char *origin, char *value,
                       long *ttl_s, long fail_ttl_s);
/* Frees f; its handle must be off the multi (fp_rfetch_value, or fp_curl_uv_remove). */
void fp_rfetch_free(fp_rfetch *f);

#endif
