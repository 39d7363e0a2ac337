/* test_classify.c - failure reasons from what libcurl and the kernel said, retry delays. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"

typedef struct row {
    fp_outcome o;
    fp_reason want;
    const char *err; /* expected detail, or NULL for none */
} row;

static void reasons(void **state)
{
    static const row rows[] = {
        {{.rc = CURLE_OK, .curl_error = ""}, FP_OK, NULL},
        {{.rc = CURLE_COULDNT_RESOLVE_HOST, .curl_error = ""}, FP_R_DNS, NULL},
        {{.rc = CURLE_OPERATION_TIMEDOUT, .curl_error = "Resolving timed out after 3000 ms"},
         FP_R_DNS,
         NULL},
        {{.rc = CURLE_OPERATION_TIMEDOUT, .curl_error = "Operation timed out after 2000 ms"},
         FP_R_TIMEOUT,
         NULL},
        {{.rc = CURLE_COULDNT_CONNECT, .os_errno = ECONNREFUSED, .curl_error = ""},
         FP_R_CONNECT_REFUSED,
         NULL},
        {{.rc = CURLE_COULDNT_CONNECT, .os_errno = ENETUNREACH, .curl_error = ""},
         FP_R_CONNECT,
         NULL},
        /* Only blocked addresses: blocked. One blocked, the next refused: refused. */
        {{.rc = CURLE_COULDNT_CONNECT, .blocked = "loopback", .curl_error = ""},
         FP_R_BLOCKED_ADDRESS,
         "address is loopback (SSRF guard)"},
        {{.rc = CURLE_COULDNT_CONNECT,
          .blocked = "loopback",
          .tried = 1,
          .os_errno = ECONNREFUSED,
          .curl_error = ""},
         FP_R_CONNECT_REFUSED,
         NULL},
        {{.rc = CURLE_ABORTED_BY_CALLBACK, .blocked = "private", .curl_error = ""},
         FP_R_BLOCKED_ADDRESS,
         "address is private (SSRF guard)"},
        {{.rc = CURLE_ABORTED_BY_CALLBACK, .curl_error = ""}, FP_R_INTERNAL, NULL},
        {{.rc = CURLE_WRITE_ERROR, .aborted = FP_R_TOO_LARGE, .curl_error = ""},
         FP_R_TOO_LARGE,
         NULL},
        {{.rc = CURLE_WRITE_ERROR,
          .aborted = FP_R_DISK_FULL,
          .aborted_errno = ENOSPC,
          .curl_error = ""},
         FP_R_DISK_FULL,
         "storing: No space left on device"},
        {{.rc = CURLE_WRITE_ERROR, .discarding = 1, .curl_error = ""},
         FP_R_HTTP,
         "error body over 65536 bytes"},
        /* An unparsable response (status line seen, no socket error) is the peer's fault. */
        {{.rc = CURLE_RECV_ERROR, .http_code = 200, .curl_error = ""}, FP_R_PROTOCOL, NULL},
        {{.rc = CURLE_RECV_ERROR, .os_errno = ECONNRESET, .curl_error = ""}, FP_R_RESET, NULL},
        {{.rc = CURLE_RECV_ERROR,
          .curl_error = "h2_process_pending_input: nghttp2_session_mem_recv() returned -905"},
         FP_R_PROTOCOL,
         NULL},
        {{.rc = CURLE_HTTP2, .curl_error = ""}, FP_R_RESET, NULL},
        {{.rc = CURLE_HTTP2_STREAM, .curl_error = ""}, FP_R_RESET, NULL},
        {{.rc = CURLE_GOT_NOTHING, .curl_error = ""}, FP_R_RESET, NULL},
        {{.rc = CURLE_SSL_CONNECT_ERROR, .os_errno = ECONNRESET, .curl_error = ""},
         FP_R_RESET,
         NULL},
        {{.rc = CURLE_SSL_CONNECT_ERROR, .curl_error = "OpenSSL: unexpected eof while reading"},
         FP_R_RESET,
         NULL},
        {{.rc = CURLE_SSL_CONNECT_ERROR, .curl_error = "no shared cipher"}, FP_R_TLS, NULL},
        {{.rc = CURLE_PEER_FAILED_VERIFICATION, .curl_error = ""}, FP_R_TLS, NULL},
        {{.rc = CURLE_TOO_MANY_REDIRECTS, .curl_error = ""}, FP_R_TOO_MANY_REDIRECTS, NULL},
        {{.rc = CURLE_UNSUPPORTED_PROTOCOL, .curl_error = ""}, FP_R_BAD_SCHEME, NULL},
        {{.rc = CURLE_FILESIZE_EXCEEDED, .curl_error = ""}, FP_R_TOO_LARGE, NULL},
        {{.rc = CURLE_OUT_OF_MEMORY, .http_code = 200, .curl_error = ""}, FP_R_PROTOCOL, NULL},
        {{.rc = CURLE_OUT_OF_MEMORY, .curl_error = ""}, FP_R_INTERNAL, NULL},
        {{.rc = CURLE_WEIRD_SERVER_REPLY, .curl_error = ""}, FP_R_PROTOCOL, NULL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[128] = "";
        fp_reason got = fp_classify(&rows[i].o, err, sizeof(err));
        if (got != rows[i].want)
            fail_msg("row %zu: %s, want %s", i, fp_reason_str(got), fp_reason_str(rows[i].want));
        assert_string_equal(err, rows[i].err ? rows[i].err : "");
    }
}

static void retry_delays(void **state)
{
    uint32_t a;

    (void)state;
    /* Retry-After wins, capped at 60 s. */
    assert_int_equal(fp_retry_delay_ms(1, 0, 12345), 0);
    assert_int_equal(fp_retry_delay_ms(1, 7, 12345), 7000);
    assert_int_equal(fp_retry_delay_ms(3, 3600, 0), 60000);
    /* 1 s, 2 s, 4 s ... with +-25 %: rnd 0 gives the low end. */
    assert_int_equal(fp_retry_delay_ms(1, -1, 0), 750);
    assert_int_equal(fp_retry_delay_ms(2, -1, 0), 1500);
    assert_int_equal(fp_retry_delay_ms(3, -1, 0), 3000);
    assert_int_equal(fp_retry_delay_ms(1, -1, 500), 1250); /* the high end */
    for (a = 1; a < 40; a++) {
        long d = fp_retry_delay_ms(a, -1, 987654321);
        assert_true(d >= 750 && d <= 30000 * 5 / 4);
    }
    assert_int_equal(fp_retry_delay_ms(30, -1, 0), 22500); /* capped at 30 s - 25 % */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reasons),
        cmocka_unit_test(retry_delays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
