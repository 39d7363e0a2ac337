/* fp_log.c - one formatted line per event, written with a single write(2) so lines from
 * several processes sharing a terminal or a container log do not interleave. */
#include "fp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "fetchpool";
static int max_level = FP_LOG_INFO;

void fp_log_init(const char *program, int verbose)
{
    prog = program;
    max_level = verbose ? FP_LOG_DEBUG : FP_LOG_INFO;
}

void fp_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n, m;

    if (level > max_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), prog, (int)getpid(), names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* Nothing useful can be done if stderr is gone. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
