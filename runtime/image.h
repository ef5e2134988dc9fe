/* image.h — PNG files and the diffusers pixel conventions.
 *
 * PNG reading and writing go through libpng.  The two conversions between
 * bytes and the model's [-1, 1] NCHW floats reproduce diffusers'
 * VaeImageProcessor (postprocess / preprocess) bit for bit, so that an sdc
 * image and a diffusers image made from the same latents are the same file. */
#ifndef SDC_IMAGE_H
#define SDC_IMAGE_H

#include <stdint.h>

#include "err.h"

/* Largest width or height read or written; bigger files are refused as
 * malformed or hostile (SD works at <= 2048). */
#define IMAGE_MAX_SIDE 16384

/* Writes 8-bit RGB (rgb: h*w*3 bytes, row-major) to path, first into
 * "<path>.tmp.<pid>" and then renamed over path, so that path is either the
 * old file or the complete new one.  n_text key/value pairs (UTF-8) become
 * tEXt chunks (value stored as Latin-1) or, when a value has characters
 * beyond Latin-1, iTXt chunks (UTF-8).  Keys: 1..79 printable ASCII. */
int image_write_png(const char *path, const uint8_t *rgb, int w, int h, int n_text, const char *const *keys,
                    const char *const *vals, SdcErr *err);

/* Reads any PNG (gray, gray+alpha, palette, RGB, RGBA, 1..16 bits,
 * interlaced) as 8-bit RGB: alpha is dropped (not composited), 16-bit
 * samples keep their high byte (as PIL does), no gamma correction.
 * *rgb (h*w*3 bytes) is xmalloc-ed; the caller frees it. */
int image_read_png(const char *path, uint8_t **rgb, int *w, int *h, SdcErr *err);

/* diffusers' postprocess for one batch item: x is CHW float (c = 3, or 1
 * for gray) in [-1, 1]; v = clamp(x / 2 + 0.5, 0, 1) in float; byte =
 * round-half-to-even(v * 255) as numpy's .round() does.  NaN gives 0. */
void image_from_nchw(const float *x, int c, int h, int w, uint8_t *rgb);

/* diffusers' preprocess (img2img): RGB8 (h*w*3) -> CHW float in [-1, 1],
 * x = 2 * (byte / 255) - 1, each step rounded to float like numpy/torch. */
void image_to_nchw(const uint8_t *rgb, int h, int w, float *x);

#endif
