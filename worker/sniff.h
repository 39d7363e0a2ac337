/* sniff.h - tells images from everything else by their first bytes (WHATWG mimesniff
 * signatures). The declared Content-Type is never trusted. */
#ifndef FP_SNIFF_H
#define FP_SNIFF_H

#include <stddef.h>

#define FP_SNIFF_BYTES 32 /* enough bytes to decide every signature */

typedef enum fp_image_type {
    FP_IMG_UNKNOWN = 0, /* not decided yet: more bytes needed */
    FP_IMG_NONE,        /* decided: not an image */
    FP_IMG_JPEG,
    FP_IMG_PNG,
    FP_IMG_GIF,
    FP_IMG_WEBP,
    FP_IMG_BMP,
    FP_IMG_ICO,
    FP_IMG_TIFF,
    FP_IMG_AVIF,
    FP_IMG_HEIF,
    FP_IMG_SVG
} fp_image_type;

/* Looks at the first len bytes. final: no more bytes will come (short body).
 * SVG counts only if allow_svg. Returns FP_IMG_UNKNOWN only while !final and more bytes
 * could change the answer. */
fp_image_type fp_sniff(const unsigned char *p, size_t len, int final, int allow_svg);

/* File extension without the dot ("jpg"), or "bin" for non-images. */
const char *fp_sniff_ext(fp_image_type t);

#endif
