/* fuzz_line.c - libFuzzer target: the URL list line classifier. A URL it accepts must be
 * clean text that the task encoder takes. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"
#include "fp_record.h"
#include "fp_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[FP_URL_MAX + 1], buf[FP_RECORD_MAX];
    static int init;
    fp_task t = {.job = 1, .attempt = 1, .max_attempts = 1};

    if (!init) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        init = 1;
    }
    if (fp_line_parse((const char *)data, size, out, sizeof(out)) == FP_LINE_URL) {
        if (!fp_text_valid(out, strlen(out), 0))
            abort();
        t.url = out;
        if (fp_task_encode(&t, buf, sizeof(buf)) < 0)
            abort();
    }
    return 0;
}
