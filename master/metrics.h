/* metrics.h - the master's Prometheus endpoint (--metrics ADDR:PORT): GET /metrics answers
 * in the text exposition format, served by libmicrohttpd on a thread of its own.
 *
 * That thread has its own Redis connection and reads everything with one read-only script
 * (fp_call_snapshot), so a scrape never waits for the master's loop and the loop never
 * waits for a scrape. What only the master knows (its Redis reconnects) it reads from
 * counters the loop bumps atomically. Counters that must never go back (downloads, bytes,
 * the latency histogram) are those of every job folded into fp:stats at completion plus
 * those of the jobs still active, read in the same atomic snapshot. */
#ifndef FPM_METRICS_H
#define FPM_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fp_redis_url.h"

typedef struct fpm_metrics fpm_metrics;

/* Parses "PORT", "ADDR:PORT" or "[IPV6]:PORT" (numeric addresses; PORT alone means
 * 127.0.0.1). 0, or -1 with a message in err. */
int fpm_metrics_addr(const char *s, struct sockaddr_storage *sa, socklen_t *salen, char *err,
                     size_t errlen);

/* Starts serving at addr; reads Redis at url. *reconnects is the master's count of Redis
 * reconnects (read atomically). NULL with a message in err if it cannot listen. */
fpm_metrics *fpm_metrics_start(const char *addr, const fp_redis_url *url,
                               const uint64_t *reconnects, char *err, size_t errlen);
/* Stops the thread and frees everything (NULL is fine). */
void fpm_metrics_stop(fpm_metrics *mx);

#endif
