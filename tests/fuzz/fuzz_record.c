/* fuzz_record.c - libFuzzer target: task and result decoders on arbitrary bytes; whatever
 * decodes must encode again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fp_task t;
    static fp_result r;
    static char buf[FP_RECORD_MAX], err[256];
    int n;

    if (fp_task_decode(&t, (const char *)data, size, err, sizeof(err)) == 0) {
        n = fp_task_encode(&t, buf, sizeof(buf));
        if (n < 0 || (size_t)n != size || memcmp(buf, data, size) != 0)
            abort();
    }
    if (fp_result_decode(&r, (const char *)data, size, err, sizeof(err)) == 0) {
        n = fp_result_encode(&r, buf, sizeof(buf));
        if (n < 0 || (size_t)n != size || memcmp(buf, data, size) != 0)
            abort();
    }
    return 0;
}
