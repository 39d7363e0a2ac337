/* sniff.c - image signature matching (see sniff.h). */
#include "sniff.h"

#include <string.h>

static int has(const unsigned char *p, size_t len, size_t off, const char *sig, size_t n)
{
    return len >= off + n && memcmp(p + off, sig, n) == 0;
}

/* The ISO-BMFF ftyp box: size(4) "ftyp" major-brand(4). */
static fp_image_type ftyp(const unsigned char *p, size_t len)
{
    if (!has(p, len, 4, "ftyp", 4))
        return FP_IMG_NONE;
    if (has(p, len, 8, "avif", 4) || has(p, len, 8, "avis", 4))
        return FP_IMG_AVIF;
    if (has(p, len, 8, "heic", 4) || has(p, len, 8, "heix", 4) || has(p, len, 8, "mif1", 4) ||
        has(p, len, 8, "msf1", 4))
        return FP_IMG_HEIF;
    return FP_IMG_NONE;
}

/* SVG: optional BOM and whitespace, then "<svg" or an XML declaration / comment / doctype
 * followed somewhere in the sniffed bytes by "<svg". Kept strict on purpose. */
static fp_image_type svg(const unsigned char *p, size_t len, int final)
{
    size_t i = 0;

    if (has(p, len, 0, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i == len)
        return final ? FP_IMG_NONE : FP_IMG_UNKNOWN;
    if (p[i] != '<')
        return FP_IMG_NONE;
    if (len - i < 5)
        return final ? FP_IMG_NONE : FP_IMG_UNKNOWN;
    if (memcmp(p + i, "<svg", 4) == 0 && (p[i + 4] == ' ' || p[i + 4] == '>' || p[i + 4] == '\n' ||
                                          p[i + 4] == '\t' || p[i + 4] == '\r'))
        return FP_IMG_SVG;
    if (memcmp(p + i, "<?xml", 5) == 0)
        return FP_IMG_SVG; /* an XML document: accepted only because SVG was asked for */
    return FP_IMG_NONE;
}

fp_image_type fp_sniff(const unsigned char *p, size_t len, int final, int allow_svg)
{
    fp_image_type t;

    if (has(p, len, 0, "\xFF\xD8\xFF", 3))
        return FP_IMG_JPEG;
    if (has(p, len, 0, "\x89PNG\r\n\x1A\n", 8))
        return FP_IMG_PNG;
    if (has(p, len, 0, "GIF87a", 6) || has(p, len, 0, "GIF89a", 6))
        return FP_IMG_GIF;
    if (has(p, len, 0, "RIFF", 4) && has(p, len, 8, "WEBPVP", 6))
        return FP_IMG_WEBP;
    if (has(p, len, 0, "BM", 2))
        return FP_IMG_BMP;
    if (has(p, len, 0, "\x00\x00\x01\x00", 4))
        return FP_IMG_ICO;
    if (has(p, len, 0, "II*\x00", 4) || has(p, len, 0, "MM\x00*", 4))
        return FP_IMG_TIFF;
    if ((t = ftyp(p, len)) != FP_IMG_NONE)
        return t;
    /* The longest fixed signature needs 14 bytes (WebP); wait for them unless done. */
    if (!final && len < 14)
        return FP_IMG_UNKNOWN;
    if (allow_svg)
        return svg(p, len, final || len >= FP_SNIFF_BYTES);
    return FP_IMG_NONE;
}

const char *fp_sniff_ext(fp_image_type t)
{
    static const char *const ext[] = {
        [FP_IMG_UNKNOWN] = "bin", [FP_IMG_NONE] = "bin",  [FP_IMG_JPEG] = "jpg",
        [FP_IMG_PNG] = "png",     [FP_IMG_GIF] = "gif",   [FP_IMG_WEBP] = "webp",
        [FP_IMG_BMP] = "bmp",     [FP_IMG_ICO] = "ico",   [FP_IMG_TIFF] = "tif",
        [FP_IMG_AVIF] = "avif",   [FP_IMG_HEIF] = "heic", [FP_IMG_SVG] = "svg"};
    return (unsigned)t <= FP_IMG_SVG ? ext[t] : "bin";
}
