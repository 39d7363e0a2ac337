/* test_sniff.c - image signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sniff.h"

#define S(lit) (const unsigned char *)(lit), sizeof(lit) - 1

static void known_signatures(void **state)
{
    (void)state;
    assert_int_equal(fp_sniff(S("\xFF\xD8\xFF\xE0rest"), 0, 0), FP_IMG_JPEG);
    assert_int_equal(fp_sniff(S("\x89PNG\r\n\x1A\n\0\0\0\rIHDR"), 0, 0), FP_IMG_PNG);
    assert_int_equal(fp_sniff(S("GIF89a........"), 0, 0), FP_IMG_GIF);
    assert_int_equal(fp_sniff(S("GIF87a........"), 0, 0), FP_IMG_GIF);
    assert_int_equal(fp_sniff(S("RIFF\x10\0\0\0WEBPVP8 "), 0, 0), FP_IMG_WEBP);
    assert_int_equal(fp_sniff(S("BM\x36\0\0\0\0\0\0\0\x36\0\0\0"), 0, 0), FP_IMG_BMP);
    assert_int_equal(fp_sniff(S("\0\0\1\0\1\0\x10\x10\0\0\1\0 \0"), 0, 0), FP_IMG_ICO);
    assert_int_equal(fp_sniff(S("II*\0\x08\0\0\0\0\0\0\0\0\0"), 0, 0), FP_IMG_TIFF);
    assert_int_equal(fp_sniff(S("MM\0*\0\0\0\x08\0\0\0\0\0\0"), 0, 0), FP_IMG_TIFF);
    assert_int_equal(fp_sniff(S("\0\0\0\x1C"
                                "ftypavif\0\0\0\0"),
                              0, 0),
                     FP_IMG_AVIF);
    assert_int_equal(fp_sniff(S("\0\0\0\x18"
                                "ftypheic\0\0\0\0"),
                              0, 0),
                     FP_IMG_HEIF);
    assert_int_equal(fp_sniff(S("\0\0\0\x18"
                                "ftypmif1\0\0\0\0"),
                              0, 0),
                     FP_IMG_HEIF);
    assert_string_equal(fp_sniff_ext(FP_IMG_JPEG), "jpg");
    assert_string_equal(fp_sniff_ext(FP_IMG_NONE), "bin");
}

static void not_images(void **state)
{
    (void)state;
    assert_int_equal(fp_sniff(S("<!DOCTYPE html><html>"), 0, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("{\"json\": true, \"x\": 1}"), 0, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("\0\0\0\x18"
                                "ftypmp42\0\0\0\0"),
                              0, 0),
                     FP_IMG_NONE); /* video */
    assert_int_equal(fp_sniff(S("RIFF\x10\0\0\0WAVEfmt "), 0, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("%PDF-1.7 ......."), 0, 0), FP_IMG_NONE);
}

static void waits_for_enough_bytes(void **state)
{
    (void)state;
    assert_int_equal(fp_sniff(S("RIFF"), 0, 0), FP_IMG_UNKNOWN);
    assert_int_equal(fp_sniff(S("RIFF"), 1, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("\xFF\xD8"), 0, 0), FP_IMG_UNKNOWN);
    assert_int_equal(fp_sniff(S("\xFF\xD8"), 1, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("<h"), 0, 0), FP_IMG_UNKNOWN);
    assert_int_equal(fp_sniff((const unsigned char *)"", 0, 1, 0), FP_IMG_NONE);
}

static void svg_only_when_allowed(void **state)
{
    (void)state;
    assert_int_equal(fp_sniff(S("<svg xmlns=\"http://www.w3.org/2000/svg\">"), 1, 0), FP_IMG_NONE);
    assert_int_equal(fp_sniff(S("<svg xmlns=\"http://www.w3.org/2000/svg\">"), 1, 1), FP_IMG_SVG);
    assert_int_equal(fp_sniff(S("\xEF\xBB\xBF  <?xml version=\"1.0\"?><svg>"), 1, 1), FP_IMG_SVG);
    assert_int_equal(fp_sniff(S("<html><body>not svg</body></html>"), 1, 1), FP_IMG_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_signatures),
        cmocka_unit_test(not_images),
        cmocka_unit_test(waits_for_enough_bytes),
        cmocka_unit_test(svg_only_when_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
