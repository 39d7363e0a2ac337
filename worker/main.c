/* main.c - fetchpool-worker: options, then the worker loop (worker.c). */
#include <curl/curl.h>
#include <signal.h>

#include "conf.h"
#include "fp_log.h"
#include "worker.h"

int main(int argc, char **argv)
{
    fp_conf conf;
    int rc;

    rc = fp_conf_parse(&conf, argc, argv);
    if (rc != 0) {
        fp_conf_free(&conf);
        return rc > 0 ? 0 : 2;
    }
    fp_log_init("worker", conf.verbose);
    fp_log_fatal_signals();
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fp_error("curl_global_init failed");
        return 2;
    }
    rc = fp_worker_run(&conf);
    fp_conf_free(&conf);
    curl_global_cleanup();
    return rc;
}
