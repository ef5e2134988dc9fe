/* image.c — PNG reading and writing with libpng, diffusers' pixel maps.
 *
 * libpng reports errors by calling an error function that must not return;
 * ours copies the message into a PngCtx and longjmps back to the setjmp in
 * the function that owns the png struct, which frees everything it holds
 * (the pointers it assigns after setjmp are volatile so that they survive
 * the jump) and returns the message as an SdcErr.  Warnings are dropped:
 * library code never prints. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct PngCtx {
    char msg[512]; /* why libpng (or we) gave up */
    int ours;      /* msg is ours (png_fail), not libpng's */
} PngCtx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    PngCtx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Our own reason to stop, taking the same way out as a libpng error. */
static void png_fail(png_structp png, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void png_fail(png_structp png, const char *fmt, ...)
{
    PngCtx *ctx = png_get_error_ptr(png);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    ctx->ours = 1;
    png_longjmp(png, 1);
}

/* ---- writing ------------------------------------------------------------ */

/* PNG keywords: 1..79 Latin-1 characters, no leading, trailing or double
 * spaces; we also keep them to printable ASCII. */
static int key_is_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 79 || key[0] == ' ' || key[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        if (key[i] < 32 || key[i] > 126) return 0;
        if (key[i] == ' ' && key[i + 1] == ' ') return 0;
    }
    return 1;
}

/* Decodes UTF-8 s; returns -1 if it is not valid UTF-8, else 1 if every
 * code point fits Latin-1 (and then writes the Latin-1 bytes to latin1, which
 * has room for strlen(s) + 1), else 0. */
static int utf8_to_latin1(const char *s, char *latin1)
{
    const unsigned char *p = (const unsigned char *)s;
    int fits = 1;
    size_t o = 0;
    while (*p) {
        uint32_t cp;
        int extra;
        if (*p < 0x80) {
            cp = *p, extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f, extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f, extra = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07, extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80) return -1;
            cp = (cp << 6) | (*p & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
        if (cp > 0xff) fits = 0;
        if (fits) latin1[o++] = (char)cp;
    }
    latin1[o] = 0;
    return fits;
}

static int write_png_stream(FILE *f, const char *path, const uint8_t *rgb, int w, int h, png_text *text,
                            int n_text, SdcErr *err)
{
    PngCtx ctx = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    if (!png) return sdc_err(err, "%s: cannot initialise libpng", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return sdc_err(err, "%s: cannot initialise libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return sdc_err(err, "%s: writing PNG failed (%s)", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) png_set_text(png, info, text, n_text);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int image_write_png(const char *path, const uint8_t *rgb, int w, int h, int n_text, const char *const *keys,
                    const char *const *vals, SdcErr *err)
{
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        return sdc_err(err, "%s: cannot write a %dx%d image (each side must be 1..%d)", path, w, h,
                       IMAGE_MAX_SIDE);

    /* Text chunks, prepared before any file is touched. */
    png_text *text = n_text > 0 ? xcalloc((size_t)n_text, sizeof *text) : NULL;
    char **owned = n_text > 0 ? xcalloc((size_t)n_text, sizeof *owned) : NULL;
    int rc = 0;
    for (int i = 0; i < n_text && rc == 0; i++) {
        if (!key_is_valid(keys[i])) {
            rc = sdc_err(err, "%s: text key \"%s\": must be 1..79 printable ASCII characters", path, keys[i]);
            break;
        }
        owned[i] = xmalloc(strlen(vals[i]) + 1);
        int fits = utf8_to_latin1(vals[i], owned[i]);
        if (fits < 0) {
            rc = sdc_err(err, "%s: text \"%s\": value is not valid UTF-8", path, keys[i]);
            break;
        }
        text[i].key = (char *)keys[i];
        if (fits) { /* tEXt holds Latin-1 */
            text[i].compression = PNG_TEXT_COMPRESSION_NONE;
            text[i].text = owned[i];
            text[i].text_length = strlen(owned[i]);
        } else { /* iTXt holds UTF-8 */
            text[i].compression = PNG_ITXT_COMPRESSION_NONE;
            text[i].text = (char *)vals[i];
            text[i].itxt_length = strlen(vals[i]);
            text[i].lang = "";
            text[i].lang_key = "";
        }
    }

    char *tmp = NULL;
    if (rc == 0) {
        size_t len = strlen(path) + 32;
        tmp = xmalloc(len);
        snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (!f) {
            rc = sdc_err(err, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        } else {
            rc = write_png_stream(f, path, rgb, w, h, text, n_text, err);
            if (fclose(f) != 0 && rc == 0) rc = sdc_err(err, "%s: writing %s: %s", path, tmp, strerror(errno));
            if (rc == 0 && rename(tmp, path) != 0)
                rc = sdc_err(err, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
            if (rc != 0) remove(tmp);
        }
    }
    for (int i = 0; i < n_text; i++) free(owned[i]);
    free(owned);
    free(text);
    free(tmp);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int read_png_stream(FILE *f, const char *path, uint8_t **rgb_out, int *w_out, int *h_out, SdcErr *err)
{
    PngCtx ctx = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    if (!png) return sdc_err(err, "%s: cannot initialise libpng", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sdc_err(err, "%s: cannot initialise libpng", path);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (ctx.ours) return sdc_err(err, "%s: %s", path, ctx.msg);
        return sdc_err(err, "%s: corrupt or truncated PNG (%s)", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), color = png_get_color_type(png, info);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        png_fail(png, "image is %lux%lu, larger than the %d pixel limit", (unsigned long)w, (unsigned long)h,
                 IMAGE_MAX_SIDE);

    /* Everything to 8-bit RGB. */
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* palette_to_rgb also turns a tRNS chunk into alpha: drop that too. */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3 || png_get_bit_depth(png, info) != 8)
        png_fail(png, "cannot convert color type %d, bit depth %d to 8-bit RGB", color, depth);

    pixels = xmalloc((size_t)w * h * 3);
    rows = xmalloc((size_t)h * sizeof *rows);
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* reads up to IEND: a cut file fails here */

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *rgb_out = pixels;
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
}

int image_read_png(const char *path, uint8_t **rgb, int *w, int *h, SdcErr *err)
{
    *rgb = NULL;
    *w = *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sdc_err(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, sizeof sig, f) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(f);
        return sdc_err(err, "%s: not a PNG file", path);
    }
    int rc = read_png_stream(f, path, rgb, w, h, err);
    fclose(f);
    return rc;
}

/* ---- diffusers' pixel maps -------------------------------------------- */

void image_from_nchw(const float *x, int c, int h, int w, uint8_t *rgb)
{
    SDC_ASSERT(c == 3 || c == 1);
    size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++) {
        for (int ch = 0; ch < 3; ch++) {
            float v = x[(size_t)(c == 3 ? ch : 0) * plane + p] / 2.0f + 0.5f;
            if (!(v >= 0.0f)) v = 0.0f; /* also NaN */
            if (v > 1.0f) v = 1.0f;
            /* numpy: (images * 255).round() in float32, half to even */
            rgb[p * 3 + ch] = (uint8_t)nearbyintf(v * 255.0f);
        }
    }
}

void image_to_nchw(const uint8_t *rgb, int h, int w, float *x)
{
    size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < 3; ch++) {
            float u = (float)rgb[p * 3 + ch] / 255.0f; /* np.float32 array / 255.0 */
            x[(size_t)ch * plane + p] = 2.0f * u - 1.0f; /* torch: 2.0 * images - 1.0 */
        }
}
