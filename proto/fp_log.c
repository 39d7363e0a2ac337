/* fp_log.c - one formatted line per event, written with a single write(2) so lines from
 * several processes sharing a terminal or a container log do not interleave. */
#include "fp_log.h"

#include <execinfo.h>
#include <stdlib.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

void fp_oom(const char *what)
{
    fp_log(FP_LOG_ERROR, "out of memory %s: aborting (nothing is lost: see fp_log.h)", what);
    abort();
}

/* Async-signal-safe: write(2), backtrace_symbols_fd (its first call, which may allocate,
 * is made when the handlers are installed), no stdio. */
static void put(const char *s)
{
    if (write(STDERR_FILENO, s, strlen(s)) < 0)
        return;
}

static void put_num(long v)
{
    char buf[24], *p = buf + sizeof(buf) - 1;

    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && p > buf);
    put(p);
}

static void fatal_cb(int sig)
{
    void *frames[48];
    int n;

    put(prog);
    put("[");
    put_num((long)getpid());
    put("] FATAL ");
    put(sig == SIGABRT   ? "SIGABRT (an assertion in a library, or abort())"
        : sig == SIGSEGV ? "SIGSEGV"
        : sig == SIGBUS  ? "SIGBUS"
        : sig == SIGILL  ? "SIGILL"
                         : "SIGFPE");
    put(": signal ");
    put_num(sig);
    put(", backtrace:\n");
    n = backtrace(frames, 48);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

void fp_log_fatal_signals(void)
{
    /* Under AddressSanitizer its own handlers report memory faults better. */
#if defined(__SANITIZE_ADDRESS__)
    static const int sigs[] = {SIGABRT};
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    static const int sigs[] = {SIGABRT};
#else
    static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};
#endif
#else
    static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};
#endif
    void *frame[1];
    size_t i;

    backtrace(frame, 1); /* loads libgcc now, not inside the handler */
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = fatal_cb;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}
