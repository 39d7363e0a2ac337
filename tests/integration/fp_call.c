/* fp_call.c - prints one script call as the fp_call_* builders make it, so that
 * test_scripts.py (and test_writer.py) can run a script against a real Redis with the real calling
 * convention (written once, in proto/fp_scripts.c) and judge every key it leaves behind.
 *
 *   fp-call finish WORKER TASK JOB IDX RESULT OK STATUS BYTES TOTAL_US [...]
 *           (one group of 8 per result, in one call as the worker batches them;
 *            TASK "" for none)
 *   fp-call take WORKER N RECOVERED_SLOTS LEASE_MS [CHECK [SPARE CONCURRENCY]]
 *   fp-call abandon WORKER TASK JOB IDX RESULT STATUS
 *   fp-call retry WORKER JOB TASK NEXT DELAY_MS STATUS RETRY_AFTER_S
 *   fp-call trim JOB WRITER N LAST LEASE_MS [HIST]  (HIST: "<bucket> <count> ...")
 *   fp-call group LINE  (not a call: the task URL the master makes of an input line, its
 *            host's label count for a job with host_group=domain, and the budget key
 *            the master expects the scripts to derive: master/line.c, hostgroup.c)
 *
 * Writes each argument of the command (EVAL, the script, ...) followed by a NUL byte.
 * Exit status 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_record.h"
#include "fp_scripts.h"
#include "hostgroup.h"
#include "line.h"

#define GROUP 8

static void put(const char *s, size_t len)
{
    fwrite(s, 1, len, stdout);
    fputc('\0', stdout);
}

static void put_call(const fp_call *c, int from, int to)
{
    int i;

    for (i = from; i < to; i++)
        put(c->argv[i], c->len[i]);
}

static uint64_t num(const char *s)
{
    return strtoull(s, NULL, 10);
}

static void part_of(fp_call *c, char **g)
{
    fp_finish f = {.task = g[0][0] ? g[0] : NULL,
                   .task_len = strlen(g[0]),
                   .job = num(g[1]),
                   .idx = num(g[2]),
                   .result = g[3],
                   .result_len = strlen(g[3]),
                   .ok = atoi(g[4]),
                   .status = g[5],
                   .bytes = num(g[6]),
                   .total_us = num(g[7])};

    fp_call_finish_part(c, &f);
}

static int finish(int argc, char **argv)
{
    static fp_call head, part;
    int n = (argc - 3) / GROUP, i;

    if (argc < 3 + GROUP || (argc - 3) % GROUP != 0)
        return 2;
    fp_call_finish_head(&head, argv[2], n);
    put_call(&head, 0, head.argc);
    for (i = 0; i < n; i++) {
        part_of(&part, argv + 3 + GROUP * i);
        put_call(&part, 0, FP_FINISH_KEYS);
    }
    for (i = 0; i < n; i++) {
        part_of(&part, argv + 3 + GROUP * i);
        put_call(&part, FP_FINISH_KEYS, part.argc);
    }
    return 0;
}

static int group(const char *line)
{
    static char url[FP_URL_MAX + 1], host[FP_URL_MAX + 1], key[FP_URL_MAX + 1];
    fpm_hostgroup *g;
    unsigned labels;

    if (fp_line_parse(line, strlen(line), url, sizeof(url)) != FP_LINE_URL ||
        (g = fpm_hostgroup_new()) == NULL)
        return 2;
    labels = fpm_hostgroup_labels(g, url);
    fpm_hostgroup_host(url, host, sizeof(host));
    fp_task_host_key(host, labels << FP_TASK_GROUP_SHIFT, key, sizeof(key));
    put(url, strlen(url));
    printf("%u", labels);
    put("", 0);
    put(key, strlen(key));
    fpm_hostgroup_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    static fp_call c;
    int rc = 2;

    if (argc >= 2 && strcmp(argv[1], "finish") == 0) {
        rc = finish(argc, argv);
    } else if ((argc == 6 || argc == 7 || argc == 9) && strcmp(argv[1], "take") == 0) {
        const char *check = argc >= 7 && argv[6][0] ? argv[6] : NULL;
        fp_call_take(&c, argv[2], atoi(argv[3]), argc == 9 ? atoi(argv[7]) : 0,
                     argc == 9 ? atoi(argv[8]) : 0, atoi(argv[4]), atol(argv[5]), check,
                     check ? strlen(check) : 0);
        put_call(&c, 0, c.argc);
        rc = 0;
    } else if (argc == 8 && strcmp(argv[1], "abandon") == 0) {
        fp_call_abandon(&c, argv[2], argv[3], strlen(argv[3]), num(argv[4]), num(argv[5]), argv[6],
                        strlen(argv[6]), argv[7]);
        put_call(&c, 0, c.argc);
        rc = 0;
    } else if (argc == 9 && strcmp(argv[1], "retry") == 0) {
        fp_call_retry(&c, argv[2], num(argv[3]), argv[4], strlen(argv[4]), argv[5], strlen(argv[5]),
                      atol(argv[6]), argv[7], atol(argv[8]));
        put_call(&c, 0, c.argc);
        rc = 0;
    } else if (argc == 3 && strcmp(argv[1], "promote") == 0) {
        fp_call_promote(&c, atoi(argv[2]));
        put_call(&c, 0, c.argc);
        rc = 0;
    } else if (argc == 3 && strcmp(argv[1], "group") == 0) {
        rc = group(argv[2]);
    } else if ((argc == 7 || argc == 8) && strcmp(argv[1], "trim") == 0) {
        const char *hist = argc == 8 ? argv[7] : "";
        fp_call_trim(&c, num(argv[2]), argv[3], num(argv[4]), argv[5], strlen(argv[5]),
                     atol(argv[6]), hist, strlen(hist));
        put_call(&c, 0, c.argc);
        rc = 0;
    }
    if (rc == 2)
        fprintf(stderr, "usage: fp-call finish|take|abandon|retry|trim|promote|group ... (see "
                        "tests/integration/fp_call.c)\n");
    return rc;
}
