/* test_metrics.c - the --metrics address parser and the service scripts' calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "fp_service.h"
#include "metrics.h"

static int port_of(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static void addresses(void **state)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char err[256], shown[64];

    (void)state;
    assert_int_equal(fpm_metrics_addr("9108", &sa, &len, err, sizeof(err)), 0);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(port_of(&sa), 9108);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, shown, sizeof(shown));
    assert_string_equal(shown, "127.0.0.1"); /* a port alone: loopback */
    assert_int_equal(fpm_metrics_addr("0.0.0.0:80", &sa, &len, err, sizeof(err)), 0);
    assert_int_equal(port_of(&sa), 80);
    assert_int_equal(fpm_metrics_addr("[::1]:9100", &sa, &len, err, sizeof(err)), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    assert_int_equal(port_of(&sa), 9100);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(fpm_metrics_addr("::1:9100", &sa, &len, err, sizeof(err)), 0);
    assert_int_equal(sa.ss_family, AF_INET6);

    assert_int_equal(fpm_metrics_addr("", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr("0", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr("65536", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr("127.0.0.1:", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr(":9100", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr("localhost:9100", &sa, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "numeric"));
    assert_int_equal(fpm_metrics_addr("1.2.3.4:9x", &sa, &len, err, sizeof(err)), -1);
    assert_int_equal(fpm_metrics_addr("[]:1", &sa, &len, err, sizeof(err)), -1);
}

static void arg_is(const fp_call *c, int i, const char *s)
{
    assert_true(i < c->argc);
    assert_int_equal(c->len[i], strlen(s));
    assert_memory_equal(c->argv[i], s, c->len[i]);
}

static void service_calls(void **state)
{
    static fp_call c;

    (void)state;
    fp_call_cancel(&c, 42);
    assert_int_equal(c.argc, 11);
    arg_is(&c, 2, "5");
    arg_is(&c, 3, "fp:job:42");
    arg_is(&c, 4, "fp:tasks");
    arg_is(&c, 5, "fp:retry");
    arg_is(&c, 6, "fp:cancelled");
    arg_is(&c, 7, "fp:job:42:in");
    arg_is(&c, 8, "42");
    arg_is(&c, 9, "T1\t42\t"); /* not T1\t421\t... */
    fp_call_fold(&c, 7, 1);
    arg_is(&c, 3, "fp:job:7");
    arg_is(&c, 4, "fp:job:7:lat");
    arg_is(&c, 5, "fp:stats");
    arg_is(&c, 7, "1");
    fp_call_snapshot(&c, 0, 5);
    assert_int_equal(c.argc, 13);
    arg_is(&c, 11, "1");
    arg_is(&c, 12, "5");
    fp_call_drop(&c, "w1", "T1\tx", 4);
    arg_is(&c, 3, "fp:proc:w1");
    assert_int_equal(c.task_at, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses),
        cmocka_unit_test(service_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
