/* fuzz_sniff.c - libFuzzer target: the image sniffer on every prefix length. Feeding bytes
 * one at a time must reach the same verdict as seeing them all at once. */
#include <stdint.h>
#include <stdlib.h>

#include "sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size < FP_SNIFF_BYTES ? size : FP_SNIFF_BYTES, i;
    int svg = size > 0 && (data[0] & 1);
    fp_image_type whole = fp_sniff(data, n, 1, svg), t = FP_IMG_UNKNOWN;

    if (whole == FP_IMG_UNKNOWN)
        abort(); /* a final verdict is always a verdict */
    for (i = 0; i <= n && t == FP_IMG_UNKNOWN; i++)
        t = fp_sniff(data, i, i == n, svg);
    if (t != whole)
        abort();
    (void)fp_sniff_ext(t);
    return 0;
}
