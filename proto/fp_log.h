/* fp_log.h - log lines on stderr: "2026-11-26T14:31:23.123Z worker[pid] LEVEL message". */
#ifndef FP_LOG_H
#define FP_LOG_H

enum { FP_LOG_ERROR, FP_LOG_WARN, FP_LOG_INFO, FP_LOG_DEBUG };

void fp_log_init(const char *program, int verbose);
/* On a fatal signal (SIGABRT from an assertion in libuv or libcurl, SIGSEGV, ...) write a
 * line saying so and a backtrace to stderr, then die of the same signal. */
void fp_log_fatal_signals(void);
/* The out-of-memory policy, the same in both programs: where an allocation failure can
 * be turned into a failed step that loses nothing (a task left in the processing list for
 * the reaper, a Redis command retried), it is; where it cannot, fp_oom logs what was being
 * done and aborts. Nothing is lost by that either: a dead worker's tasks are handed out
 * again, and a restarted master carries on from what is in Redis. */
void fp_oom(const char *what) __attribute__((noreturn));
void fp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fp_error(...) fp_log(FP_LOG_ERROR, __VA_ARGS__)
#define fp_warn(...)  fp_log(FP_LOG_WARN, __VA_ARGS__)
#define fp_info(...)  fp_log(FP_LOG_INFO, __VA_ARGS__)
#define fp_debug(...) fp_log(FP_LOG_DEBUG, __VA_ARGS__)

#endif
