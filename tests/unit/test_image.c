/* test_image.c — PNG I/O and diffusers' pixel maps.
 *
 * The PNG files of the read tests are written here with libpng directly
 * (every color type, 1..16 bits, palette with tRNS, Adam7), and the text
 * chunks sdc writes are read back with libpng directly, so each side is
 * checked against an independent implementation. */
#include "image.h"
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char *path_in(const char *dir, const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Writes a PNG with libpng: rows are packed as libpng expects for the given
 * depth and color type (16-bit samples big-endian). */
typedef struct RawPng {
    int w, h, depth, color, interlace;
    const uint8_t *data; /* h rows of rowbytes each */
    const png_color *palette;
    int n_palette;
    const uint8_t *trns;
    int n_trns;
} RawPng;

static int write_raw_png(const char *path, const RawPng *r)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)r->w, (png_uint_32)r->h, r->depth, r->color, r->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (r->palette) png_set_PLTE(png, info, r->palette, r->n_palette);
    if (r->trns) png_set_tRNS(png, info, r->trns, r->n_trns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)r->h * sizeof *rows);
    for (int y = 0; y < r->h; y++) rows[y] = (png_bytep)r->data + (size_t)y * rowbytes;
    png_write_image(png, rows); /* handles Adam7 passes */
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f);
}

/* Reads w x h RGB with image_read_png and compares with want. */
static void check_reads_as(const char *path, int w, int h, const uint8_t *want, const char *what)
{
    uint8_t *rgb = NULL;
    int rw = 0, rh = 0;
    SdcErr err = {{0}};
    int rc = image_read_png(path, &rgb, &rw, &rh, &err);
    CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
    if (rc != 0) return;
    CHECK_MSG(rw == w && rh == h, "%s: %dx%d", what, rw, rh);
    if (rw == w && rh == h) CHECK_MSG(memcmp(rgb, want, (size_t)w * h * 3) == 0, "%s: pixels differ", what);
    free(rgb);
}

/* An error names the file and is one line. */
static void check_read_fails(const char *path, const char *expect_substr)
{
    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    SdcErr err = {{0}};
    int rc = image_read_png(path, &rgb, &w, &h, &err);
    CHECK_MSG(rc == -1, "%s read without error", path);
    CHECK(rgb == NULL);
    CHECK_MSG(strstr(err.msg, path) == err.msg, "message does not start with the path: %s", err.msg);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "multi-line message: %s", err.msg);
    CHECK_MSG(strstr(err.msg, expect_substr) != NULL, "message \"%s\" lacks \"%s\"", err.msg, expect_substr);
    if (rc == 0) free(rgb);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct TextChunk {
    char key[80];
    char text[256];
    int compression;
} TextChunk;

static int read_text_chunks(const char *path, TextChunk *out, int max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    png_textp text = NULL;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int i = 0; i < n && i < max; i++) {
        snprintf(out[i].key, sizeof out[i].key, "%s", text[i].key);
        snprintf(out[i].text, sizeof out[i].text, "%s", text[i].text);
        out[i].compression = text[i].compression;
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return n;
}

static void test_round_trip(void)
{
    const char *dir = test_tmpdir();
    const char *path = path_in(dir, "out.png");
    enum { W = 37, H = 23 };
    uint8_t img[W * H * 3];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)test_uniform(0.0f, 256.0f);
    const char *keys[] = {"parameters", "Software", "Comment"};
    const char *vals[] = {"a photo of a cat\nSteps: 20, Seed: 5", "sdc caf\xc3\xa9", "\xe7\x8c\xab cat \xe2\x88\x91"};
    SdcErr err = {{0}};
    CHECK_MSG(image_write_png(path, img, W, H, 3, keys, vals, &err) == 0, "%s", err.msg);
    check_reads_as(path, W, H, img, "round trip");
    CHECK(count_dir_entries(dir) == 1); /* no temporary file left */

    TextChunk t[8];
    int n = read_text_chunks(path, t, 8);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(strcmp(t[0].key, "parameters") == 0 && strcmp(t[0].text, vals[0]) == 0);
        CHECK(t[0].compression == PNG_TEXT_COMPRESSION_NONE);
        /* Latin-1 in tEXt: é is one byte 0xE9 */
        CHECK(strcmp(t[1].key, "Software") == 0 && strcmp(t[1].text, "sdc caf\xe9") == 0);
        CHECK(t[1].compression == PNG_TEXT_COMPRESSION_NONE);
        /* beyond Latin-1: iTXt in UTF-8 */
        CHECK(strcmp(t[2].key, "Comment") == 0 && strcmp(t[2].text, vals[2]) == 0);
        CHECK(t[2].compression == PNG_ITXT_COMPRESSION_NONE);
    }

    /* Overwriting an existing file replaces it. */
    uint8_t img2[2 * 1 * 3] = {1, 2, 3, 4, 5, 6};
    CHECK_MSG(image_write_png(path, img2, 2, 1, 0, NULL, NULL, &err) == 0, "%s", err.msg);
    check_reads_as(path, 2, 1, img2, "overwrite");
    CHECK(read_text_chunks(path, t, 8) == 0);
    CHECK(count_dir_entries(dir) == 1);
}

static void test_write_errors(void)
{
    const char *dir = test_tmpdir();
    uint8_t px[3] = {1, 2, 3};
    SdcErr err = {{0}};

    const char *missing = path_in(dir, "no/such/dir/out.png");
    CHECK(image_write_png(missing, px, 1, 1, 0, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "no/such/dir/out.png") != NULL, "%s", err.msg);
    CHECK(access(missing, F_OK) != 0);
    CHECK(count_dir_entries(dir) == 0);

    const char *path = path_in(dir, "bad.png");
    CHECK(image_write_png(path, px, 0, 1, 0, NULL, NULL, &err) == -1);
    CHECK(image_write_png(path, px, IMAGE_MAX_SIDE + 1, 1, 0, NULL, NULL, &err) == -1);
    const char *bad_keys[] = {"", " lead", "a  b", "tab\tkey"};
    const char *val[] = {"v"};
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(image_write_png(path, px, 1, 1, 1, &bad_keys[i], val, &err) == -1, "key \"%s\"", bad_keys[i]);
        CHECK(strstr(err.msg, path) == err.msg);
    }
    const char *key[] = {"k"};
    const char *bad_utf8[] = {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80"};
    for (int i = 0; i < 4; i++) CHECK(image_write_png(path, px, 1, 1, 1, key, &bad_utf8[i], &err) == -1);
    CHECK(count_dir_entries(dir) == 0);

    /* A full disk, made with a file size limit: libpng's write error path
     * (longjmp) cleans up and the temporary file goes. */
    struct rlimit old_limit, small;
    getrlimit(RLIMIT_FSIZE, &old_limit);
    small = old_limit;
    small.rlim_cur = 2000;
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
        enum { W = 64, H = 64 };
        static uint8_t noise[W * H * 3];
        for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)test_uniform(0.0f, 256.0f);
        int rc = image_write_png(path, noise, W, H, 0, NULL, NULL, &err);
        setrlimit(RLIMIT_FSIZE, &old_limit);
        CHECK_MSG(rc == -1, "write past the file size limit succeeded");
        CHECK_MSG(strstr(err.msg, path) == err.msg && strstr(err.msg, "Write Error"), "%s", err.msg);
        CHECK(count_dir_entries(dir) == 0);
    }

    /* The target is a directory: rename fails, the temporary file goes. */
    const char *sub = path_in(dir, "sub.png");
    mkdir(sub, 0700);
    CHECK(image_write_png(sub, px, 1, 1, 0, NULL, NULL, &err) == -1);
    CHECK(count_dir_entries(dir) == 1);
    rmdir(sub);
}

/* ---- reading every kind of PNG ------------------------------------------ */

static void test_read_formats(void)
{
    const char *dir = test_tmpdir();
    const char *path = path_in(dir, "in.png");

    { /* gray 8-bit */
        uint8_t g[5 * 3], want[5 * 3 * 3];
        for (int i = 0; i < 15; i++) g[i] = (uint8_t)(i * 17), want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = g[i];
        RawPng r = {5, 3, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, 5, 3, want, "gray8");
    }
    { /* gray 1-bit, width not a multiple of 8: 0 -> 0, 1 -> 255 */
        uint8_t bits[2 * 2] = {0xa5, 0x80, 0x3c, 0x00}; /* rows of 9 pixels: 2 bytes each */
        uint8_t want[9 * 2 * 3];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 9; x++) {
                int b = (bits[y * 2 + x / 8] >> (7 - x % 8)) & 1;
                for (int c = 0; c < 3; c++) want[(y * 9 + x) * 3 + c] = b ? 255 : 0;
            }
        RawPng r = {9, 2, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, 9, 2, want, "gray1");
    }
    { /* palette 4-bit with tRNS: colors, transparency ignored */
        png_color pal[3] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
        uint8_t trns[2] = {0, 128};
        uint8_t idx[3 * 2] = {0x01, 0x20, 0x21, 0x00, 0x12, 0x10}; /* 4 px/row: 2 bytes, 3 rows */
        uint8_t want[4 * 3 * 3];
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++) {
                int i = (idx[y * 2 + x / 2] >> (x % 2 ? 0 : 4)) & 15;
                want[(y * 4 + x) * 3 + 0] = pal[i].red;
                want[(y * 4 + x) * 3 + 1] = pal[i].green;
                want[(y * 4 + x) * 3 + 2] = pal[i].blue;
            }
        RawPng r = {4, 3, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 3, trns, 2};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, 4, 3, want, "palette4+tRNS");
    }
    { /* 16-bit RGB: high byte kept */
        enum { W = 3, H = 2 };
        uint8_t d[W * H * 6], want[W * H * 3];
        for (int i = 0; i < W * H * 3; i++) {
            uint16_t v = (uint16_t)(i * 3001 + 255);
            d[2 * i] = (uint8_t)(v >> 8), d[2 * i + 1] = (uint8_t)v;
            want[i] = (uint8_t)(v >> 8);
        }
        RawPng r = {W, H, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, W, H, want, "rgb16");
    }
    { /* RGBA 8-bit: alpha dropped, not composited */
        uint8_t d[2 * 2 * 4], want[2 * 2 * 3];
        for (int i = 0; i < 4; i++) {
            for (int c = 0; c < 3; c++) d[i * 4 + c] = want[i * 3 + c] = (uint8_t)(i * 50 + c * 7 + 1);
            d[i * 4 + 3] = (uint8_t)(i * 60);
        }
        RawPng r = {2, 2, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, 2, 2, want, "rgba8");
    }
    { /* gray + alpha 16-bit */
        uint8_t d[3 * 1 * 4] = {0x12, 0x34, 0xff, 0xff, 0xab, 0xcd, 0x00, 0x00, 0xff, 0x01, 0x80, 0x00};
        uint8_t want[3 * 3] = {0x12, 0x12, 0x12, 0xab, 0xab, 0xab, 0xff, 0xff, 0xff};
        RawPng r = {3, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, 3, 1, want, "gray-alpha16");
    }
    { /* Adam7 interlaced RGB */
        enum { W = 13, H = 11 };
        uint8_t d[W * H * 3];
        for (int i = 0; i < W * H * 3; i++) d[i] = (uint8_t)(i * 7 + 3);
        RawPng r = {W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, d, NULL, 0, NULL, 0};
        CHECK(write_raw_png(path, &r) == 0);
        check_reads_as(path, W, H, d, "interlaced rgb8");
    }
}

/* ---- reading bad files -------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_read_errors(void)
{
    const char *dir = test_tmpdir();
    check_read_fails(path_in(dir, "missing.png"), "cannot open");

    const char *garbage = path_in(dir, "garbage.png");
    spit(garbage, "this is not a PNG file at all\n", 30);
    check_read_fails(garbage, "not a PNG");
    spit(garbage, "\x89PNG", 4);
    check_read_fails(garbage, "not a PNG");

    /* A valid file (noise, so that the IDAT is large), then cut in half. */
    const char *good = path_in(dir, "good.png");
    enum { W = 64, H = 64 };
    static uint8_t img[W * H * 3];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)test_uniform(0.0f, 256.0f);
    SdcErr err = {{0}};
    CHECK_MSG(image_write_png(good, img, W, H, 0, NULL, NULL, &err) == 0, "%s", err.msg);
    size_t n = 0;
    uint8_t *bytes = slurp(good, &n);
    CHECK(bytes && n > 1000);
    if (!bytes) return;
    const char *cut = path_in(dir, "cut.png");
    spit(cut, bytes, n / 2);
    check_read_fails(cut, "truncated");
    spit(cut, bytes, n - 6); /* only the end of IEND missing */
    check_read_fails(cut, "truncated");
    spit(cut, bytes, 8 + 10); /* signature and half an IHDR */
    check_read_fails(cut, "truncated");

    /* One flipped bit in the middle of IDAT: the CRC catches it. */
    bytes[n / 2] ^= 0x10;
    const char *flipped = path_in(dir, "flipped.png");
    spit(flipped, bytes, n);
    check_read_fails(flipped, "corrupt");
    free(bytes);

    /* Wider than the limit (a valid, tiny 1-bit file). */
    const char *wide = path_in(dir, "wide.png");
    static uint8_t row[(IMAGE_MAX_SIDE + 8) / 8 + 1];
    RawPng r = {IMAGE_MAX_SIDE + 8, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, row, NULL, 0, NULL, 0};
    CHECK(write_raw_png(wide, &r) == 0);
    check_read_fails(wide, "limit");
}

/* ---- pixel maps ----------------------------------------------------------- */

/* v * 255 exactly k + 0.5 in float: numpy rounds half to even. */
static void test_from_nchw_rounding(void)
{
    int found = 0;
    for (int k = 0; k < 255; k++) {
        float target = (float)k + 0.5f;
        float v = (float)(((double)k + 0.5) / 255.0);
        /* Walk a few ulps either way for a v with v * 255 == k + 0.5. */
        for (int step = -8; step <= 8; step++) {
            float cand = v;
            for (int s = 0; s < abs(step); s++) cand = nextafterf(cand, step < 0 ? 0.0f : 2.0f);
            if (cand * 255.0f != target) continue;
            float x = (cand - 0.5f) * 2.0f; /* x / 2 + 0.5 gives cand back? */
            if (x / 2.0f + 0.5f != cand) continue;
            float px[3] = {x, x, x};
            uint8_t out[3];
            image_from_nchw(px, 3, 1, 1, out);
            uint8_t want = (uint8_t)(k % 2 == 0 ? k : k + 1);
            CHECK_MSG(out[0] == want, "k=%d: got %d", k, out[0]);
            found++;
            break;
        }
    }
    CHECK_MSG(found > 50, "only %d half-way cases found", found);

    /* Clamping, NaN, and the CHW -> HWC layout. */
    enum { H = 2, W = 3 };
    float x[3 * H * W];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H * W; i++) x[c * H * W + i] = -1.0f + (float)(c * H * W + i) / 9.0f;
    x[0] = -1.5f, x[1] = 7.0f, x[2] = NAN, x[3] = 1.0f;
    uint8_t out[H * W * 3];
    image_from_nchw(x, 3, H, W, out);
    CHECK(out[0] == 0 && out[3] == 255 && out[6] == 0 && out[9] == 255);
    for (int c = 0; c < 3; c++)
        for (int i = 4; i < H * W; i++) {
            float v = x[c * H * W + i] / 2.0f + 0.5f;
            CHECK(out[i * 3 + c] == (uint8_t)lrint(floor((double)(v * 255.0f) + 0.5)));
        }
    /* one channel: gray to RGB */
    float g[2] = {-1.0f, 1.0f};
    uint8_t go[6];
    image_from_nchw(g, 1, 1, 2, go);
    CHECK(go[0] == 0 && go[1] == 0 && go[2] == 0 && go[3] == 255 && go[4] == 255 && go[5] == 255);
}

static void test_to_nchw(void)
{
    uint8_t all[256 * 3];
    for (int i = 0; i < 256; i++) all[i * 3] = all[i * 3 + 1] = all[i * 3 + 2] = (uint8_t)i;
    float x[3 * 256];
    image_to_nchw(all, 16, 16, x);
    for (int i = 0; i < 256; i++) {
        /* Rounded once each: byte / 255 to float, then 2u - 1 to float
         * (exact in double, so the double formula is the reference). */
        float u = (float)((double)i / 255.0);
        float want = (float)(2.0 * (double)u - 1.0);
        for (int c = 0; c < 3; c++) CHECK_MSG(x[c * 256 + i] == want, "byte %d", i);
    }
    CHECK(x[0] == -1.0f && x[255] == 1.0f);
    uint8_t back[256 * 3];
    image_from_nchw(x, 3, 16, 16, back);
    CHECK(memcmp(back, all, sizeof all) == 0);

    /* layout: HWC in, CHW out */
    uint8_t px[2 * 3] = {0, 51, 102, 153, 204, 255};
    float y[6];
    image_to_nchw(px, 1, 2, y);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 2; p++) CHECK(y[c * 2 + p] == x[px[p * 3 + c]]);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_write_errors);
    RUN(test_read_formats);
    RUN(test_read_errors);
    RUN(test_from_nchw_rounding);
    RUN(test_to_nchw);
    return test_finish();
}
