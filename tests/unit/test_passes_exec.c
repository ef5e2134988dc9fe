/* test_passes_exec.c — executables built with and without the passes agree.
 *
 * A random tiny model is compiled twice, with the default pipeline and with
 * only canonicalize,dce (no fusion, no specialisation), and both are run
 * with the same seed and prompt: the final latents must agree within the
 * fp32 tolerance (relative error below 1e-5), and each pass switched off
 * alone (--disable-pass) must give the same latents as well.  The images
 * (the VAE decoder, fused or not) must agree too: 8-bit PNGs, so values
 * within one level, and a level of difference only where rounding tips
 * (under 1% of the bytes). */
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "image.h"
#include "pass.h"
#include "safetensors.h"
#include "test.h"

static const char *tmp;
static char model[600];

static float *latents(const char *extra, const char *tag, int64_t *n)
{
    char exe[700], lat[700], cmd[4096];
    snprintf(exe, sizeof exe, "%s/t2i-%s", tmp, tag);
    snprintf(lat, sizeof lat, "%s/%s.safetensors", tmp, tag);
    snprintf(cmd, sizeof cmd,
             "%s/sdc compile %s --width 32 --height 48 --steps 3 --sampler dpmpp_2m --quiet %s -o %s && "
             "%s --prompt 'a red cube' --seed 11 --quiet --out %s/%s.png --save-latents %s",
             SDC_BINARY_DIR, model, extra, exe, exe, tmp, tag, lat);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s", cmd);
    if (rc) return NULL;
    SdcErr err = {{0}};
    StFile f;
    if (st_open(&f, lat, &err) < 0) return NULL;
    const StTensor *t = st_find(&f, "latents");
    float *v = NULL;
    if (t) {
        *n = st_numel(t);
        v = xmalloc(sizeof(float) * (size_t)*n);
        st_read_f32(&f, t, v, &err);
    }
    st_close(&f);
    return v;
}

static void same_image(const char *a, const char *b)
{
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/%s.png", tmp, a);
    snprintf(pb, sizeof pb, "%s/%s.png", tmp, b);
    SdcErr err = {{0}};
    uint8_t *x = NULL, *y = NULL;
    int wx = 0, hx = 0, wy = 0, hy = 0;
    CHECK_MSG(image_read_png(pa, &x, &wx, &hx, &err) == 0, "%s", err.msg);
    CHECK_MSG(image_read_png(pb, &y, &wy, &hy, &err) == 0, "%s", err.msg);
    CHECK_MSG(x && y && wx == 32 && hx == 48 && wy == wx && hy == hx, "%s vs %s: image sizes", a, b);
    if (x && y && wx == wy && hx == hy) {
        size_t n = (size_t)wx * hx * 3, differ = 0;
        int worst = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)x[i] - (int)y[i]);
            differ += d != 0;
            worst = d > worst ? d : worst;
        }
        CHECK_MSG(worst <= 1 && differ * 100 < n, "%s vs %s: images differ (max %d levels, %zu of %zu bytes)", a, b,
                  worst, differ, n);
    }
    free(x), free(y);
}

static void test_with_and_without_passes(void)
{
    int64_t n = 0, m = 0;
    float *all = latents("", "all", &n);
    float *none = latents("--passes=canonicalize,dce", "none", &m);
    CHECK(all && none && n == m && n > 0);
    if (all && none && n == m) CHECK_REL(none, all, (size_t)n, 1e-5);
    same_image("all", "none");
    /* each pass off alone */
    char *list = xstrdup(pass_default_pipeline());
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char extra[128];
        snprintf(extra, sizeof extra, "--disable-pass=%s", p);
        int64_t k = 0;
        float *v = latents(extra, p, &k);
        CHECK_MSG(v && k == n, "without %s", p);
        if (v && all && k == n) {
            double rel = test_rel_err(v, all, (size_t)n);
            CHECK_MSG(rel < 1e-5, "without %s: relative error %.3g", p, rel);
        }
        free(v);
    }
    free(list);
    free(all), free(none);
}

int main(void)
{
    tmp = test_tmpdir();
    snprintf(model, sizeof model, "%s/tiny", tmp);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/sdc random-model tiny -o %s --seed 3 --quiet", SDC_BINARY_DIR, model);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the random model: %s\n", cmd);
        return 1;
    }
    RUN(test_with_and_without_passes);
    return test_finish();
}
