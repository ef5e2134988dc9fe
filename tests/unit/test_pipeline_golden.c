/* test_pipeline_golden.c — compiled executables against diffusers' pipeline.
 *
 * The tiny pipeline of the fixtures is compiled with `sdc compile` for
 * PNDM, DDIM and Euler ancestral (64x64, 10 steps, guidance 7.5) and run
 * with seed 0 on "a photo of a cat" (negative ""): the final latents must
 * match diffusers' within 1e-4 relative and the PNG within 2e-3 of its
 * [0,1] float image.  The same executable must give byte-identical PNGs on
 * two runs and with --threads 1 and --threads 2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "image.h"
#include "safetensors.h"
#include "test.h"

static char fx[512];
static const char *tmp;
static StFile golden;

static float *golden_f32(const char *name, int64_t *numel)
{
    SdcErr err = {{0}};
    const StTensor *t = st_find(&golden, name);
    CHECK_MSG(t != NULL, "golden %s missing", name);
    if (!t) return NULL;
    *numel = st_numel(t);
    float *v = xmalloc(sizeof(float) * (size_t)*numel);
    CHECK(st_read_f32(&golden, t, v, &err) == 0);
    return v;
}

static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s", cmd);
    return rc;
}

static void check_sampler(const char *sampler)
{
    char exe[600], png[600], lat[600], name[128];
    snprintf(exe, sizeof exe, "%s/t2i-%s", tmp, sampler);
    snprintf(png, sizeof png, "%s/%s.png", tmp, sampler);
    snprintf(lat, sizeof lat, "%s/%s.safetensors", tmp, sampler);
    char model[600];
    snprintf(model, sizeof model, "%s/tiny-sd", fx);
    if (sh(SDC_BINARY_DIR "/sdc compile %s --width 64 --height 64 --steps 10 --guidance 7.5 --quiet -o %s --sampler %s",
           model, exe, sampler))
        return;
    if (sh("%s --prompt 'a photo of a cat' --negative '' --seed 0 --quiet --out %s --save-latents %s", exe, png, lat))
        return;
    /* latents */
    SdcErr err = {{0}};
    StFile f;
    int64_t n = 0, ni = 0;
    snprintf(name, sizeof name, "pipe_%s_latents", sampler);
    float *want = golden_f32(name, &n);
    CHECK_MSG(st_open(&f, lat, &err) == 0, "%s", err.msg);
    const StTensor *t = st_find(&f, "latents");
    CHECK(t && st_numel(t) == n);
    if (t && want && st_numel(t) == n) {
        float *got = xmalloc(sizeof(float) * (size_t)n);
        st_read_f32(&f, t, got, &err);
        double rel = test_rel_err(got, want, (size_t)n);
        fprintf(stderr, "  %-8s latents rel err %.3g", sampler, rel);
        CHECK_REL(got, want, (size_t)n, 1e-4);
        free(got);
    }
    st_close(&f);
    free(want);
    /* image: PNG bytes / 255 against the float image (NHWC) */
    snprintf(name, sizeof name, "pipe_%s_image", sampler);
    float *img = golden_f32(name, &ni);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    CHECK_MSG(image_read_png(png, &rgb, &w, &h, &err) == 0, "%s", err.msg);
    CHECK_MSG(img && w == 64 && h == 64 && ni == 64 * 64 * 3, "%s: image %dx%d, golden %lld values", sampler, w, h,
              (long long)ni);
    if (rgb && img && w == 64 && h == 64 && ni == 64 * 64 * 3) {
        double worst = 0;
        for (int64_t i = 0; i < ni; i++) {
            double d = fabs(rgb[i] / 255.0 - img[i]);
            if (d > worst) worst = d;
        }
        fprintf(stderr, ", image max abs diff %.5f\n", worst);
        CHECK_MSG(worst < 2e-3, "%s: image differs by %g", sampler, worst);
    }
    free(rgb), free(img);
}

static void test_pndm(void) { check_sampler("pndm"); }
static void test_ddim(void) { check_sampler("ddim"); }
static void test_euler_a(void) { check_sampler("euler_a"); }

/* Same executable and seed: the same bytes, whatever the run or thread count. */
static void test_determinism(void)
{
    char exe[600], a[600], b[600], c[600];
    snprintf(exe, sizeof exe, "%s/t2i-euler_a", tmp);
    snprintf(a, sizeof a, "%s/d1.png", tmp);
    snprintf(b, sizeof b, "%s/d2.png", tmp);
    snprintf(c, sizeof c, "%s/d3.png", tmp);
    if (!path_exists(exe)) return;
    sh("%s --prompt 'determinism' --seed 7 --quiet --threads 1 --out %s%s", exe, a, "");
    sh("%s --prompt 'determinism' --seed 7 --quiet --threads 2 --out %s%s", exe, b, "");
    sh("%s --prompt 'determinism' --seed 7 --quiet --threads 2 --out %s%s", exe, c, "");
    size_t na = 0, nb = 0, nc = 0;
    char *x = file_read_all(a, &na, NULL), *y = file_read_all(b, &nb, NULL), *z = file_read_all(c, &nc, NULL);
    CHECK(x && y && z);
    CHECK_MSG(x && y && na == nb && memcmp(x, y, na) == 0, "threads 1 and 2 differ");
    CHECK_MSG(y && z && nb == nc && memcmp(y, z, nb) == 0, "two runs differ");
    free(x), free(y), free(z);
}

int main(void)
{
    snprintf(fx, sizeof fx, "%s", test_need_fixtures());
    tmp = test_tmpdir();
    char path[600];
    SdcErr err = {{0}};
    snprintf(path, sizeof path, "%s/tiny-sd-golden/pipeline.safetensors", fx);
    if (st_open(&golden, path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    RUN(test_pndm);
    RUN(test_ddim);
    RUN(test_euler_a);
    RUN(test_determinism);
    st_close(&golden);
    return test_finish();
}
