/* test_eval_cli.c — `sdc eval` on the fixtures' tiny pipeline.
 *
 * Inputs named after diffusers' forward arguments are written to a
 * safetensors file from the goldens, `sdc eval` runs the component in the
 * interpreter, and its `out` (and `logvar`) must match diffusers' output
 * within 1e-4 relative: the UNet with a scalar timestep, a per-row integer
 * timestep vector and a fractional timestep on a non-square latent; the VAE
 * decoder and encoder; the text encoder, with and without --clip-skip. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "test.h"

static char fx[512];
static const char *tmp;
static StFile gold[3];

static const StTensor *find(const char *name, const StFile **file)
{
    for (int i = 0; i < 3; i++) {
        const StTensor *t = st_find(&gold[i], name);
        if (t) return *file = &gold[i], t;
    }
    fprintf(stderr, "golden %s missing\n", name);
    test_failures++;
    return NULL;
}

/* An input entry from a golden tensor, under a new name (raw bytes kept). */
static StEntry from_golden(const char *golden, const char *as)
{
    const StFile *f;
    const StTensor *t = find(golden, &f);
    StEntry e = {.name = as};
    if (!t) return e;
    e.dtype = t->dtype;
    e.ndim = t->ndim;
    memcpy(e.shape, t->shape, sizeof e.shape);
    e.data = st_data(f, t);
    return e;
}

static float *read_f32(const StFile *f, const char *name, int64_t *n)
{
    SdcErr err = {{0}};
    const StTensor *t = st_find(f, name);
    if (!t) return NULL;
    *n = st_numel(t);
    float *v = malloc(sizeof(float) * (size_t)*n);
    st_read_f32(f, t, v, &err);
    return v;
}

/* Runs sdc eval on entries and compares output `name` with the golden. */
static void eval_case(const char *component, int n, const StEntry *in, const char *extra, const char *out_name,
                      const char *golden, double tol)
{
    char ip[600], op[600], cmd[2048];
    snprintf(ip, sizeof ip, "%s/in.safetensors", tmp);
    snprintf(op, sizeof op, "%s/out.safetensors", tmp);
    SdcErr err = {{0}};
    CHECK_MSG(st_write(ip, n, in, &err) == 0, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "%s/sdc eval %s/tiny-sd --component %s --inputs %s --out %s %s", SDC_BINARY_DIR, fx,
             component, ip, op, extra);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s", cmd);
    StFile f;
    if (rc || st_open(&f, op, &err) < 0) return;
    const StFile *gf;
    const StTensor *gt = find(golden, &gf);
    int64_t n1 = 0, n2 = 0;
    float *got = read_f32(&f, out_name, &n1), *want = gt ? read_f32(gf, golden, &n2) : NULL;
    CHECK_MSG(got && want && n1 == n2, "%s: %s missing or of the wrong size", component, out_name);
    if (got && want && n1 == n2) {
        double rel = test_rel_err(got, want, (size_t)n1);
        fprintf(stderr, "  %-13s %-8s vs %-32s rel err %.3g\n", component, out_name, golden, rel);
        CHECK_MSG(rel < tol, "%s %s: relative error %.3g", component, golden, rel);
    }
    free(got), free(want);
    st_close(&f);
}

static void test_unet(void)
{
    float t500 = 500.0f, t250 = 250.5f;
    int64_t tv[2] = {1, 999};
    StEntry in[3] = {from_golden("unet_b2_sample", "sample"), from_golden("unet_b2_ehs", "encoder_hidden_states"),
                     {.name = "timestep", .dtype = DT_F32, .ndim = 0, .data = &t500}};
    eval_case("unet", 3, in, "", "out", "unet_b2_t500_out", 1e-4);
    in[2] = (StEntry){.name = "timestep", .dtype = DT_I64, .ndim = 1, .shape = {2}, .data = tv};
    eval_case("unet", 3, in, "", "out", "unet_b2_tvec_1_999_out", 1e-4);
    StEntry ns[3] = {from_golden("unet_b1ns_sample", "sample"), from_golden("unet_b1ns_ehs", "encoder_hidden_states"),
                     {.name = "timestep", .dtype = DT_F32, .ndim = 1, .shape = {1}, .data = &t250}};
    eval_case("unet", 3, ns, "--passes=canonicalize,cse,attention-fusion,dce", "out", "unet_b1ns_t250p5_out", 1e-4);
}

static void test_vae(void)
{
    StEntry dec = from_golden("vae_latents", "latents");
    eval_case("vae-decoder", 1, &dec, "", "out", "vae_decode_raw", 1e-4);
    StEntry dec_ns = from_golden("vae_ns_latents", "latents");
    eval_case("vae-decoder", 1, &dec_ns, "", "out", "vae_ns_decode_raw", 1e-4);
    StEntry enc = from_golden("vae_image", "sample");
    eval_case("vae-encoder", 1, &enc, "", "out", "vae_encode_mean", 1e-4);
    eval_case("vae-encoder", 1, &enc, "", "logvar", "vae_encode_logvar", 1e-4);
}

static void test_text_encoder(void)
{
    StEntry ids = from_golden("te_input_ids", "input_ids");
    eval_case("text-encoder", 1, &ids, "", "out", "te_last_hidden_state", 1e-4);
    /* --clip-skip 1: the penultimate hidden state through the final layer norm,
     * computed here from the golden and the fixture's norm weights */
    char ip[600], op[600], wp[600], cmd[2048];
    snprintf(ip, sizeof ip, "%s/ids.safetensors", tmp);
    snprintf(op, sizeof op, "%s/skip.safetensors", tmp);
    snprintf(wp, sizeof wp, "%s/tiny-sd/text_encoder/model.safetensors", fx);
    SdcErr err = {{0}};
    CHECK(st_write(ip, 1, &ids, &err) == 0);
    snprintf(cmd, sizeof cmd, "%s/sdc eval %s/tiny-sd --component text-encoder --clip-skip 1 --inputs %s --out %s",
             SDC_BINARY_DIR, fx, ip, op);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    StFile w, o;
    const StFile *gf;
    if (st_open(&w, wp, &err) < 0 || st_open(&o, op, &err) < 0) {
        test_failures++;
        return;
    }
    int64_t n = 0, ng = 0, nb = 0, nx = 0;
    float *gamma = read_f32(&w, "text_model.final_layer_norm.weight", &ng);
    float *beta = read_f32(&w, "text_model.final_layer_norm.bias", &nb);
    const StTensor *pt = find("te_penultimate_hidden_state", &gf);
    float *pen = pt ? read_f32(gf, "te_penultimate_hidden_state", &n) : NULL;
    float *got = read_f32(&o, "out", &nx);
    CHECK(gamma && beta && pen && got && nx == n && ng == nb);
    if (gamma && beta && pen && got && nx == n) {
        for (int64_t r = 0; r < n / ng; r++) {
            float *x = pen + r * ng;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < ng; i++) mean += x[i] / (double)ng;
            for (int64_t i = 0; i < ng; i++) var += (x[i] - mean) * (x[i] - mean) / (double)ng;
            for (int64_t i = 0; i < ng; i++) x[i] = (float)((x[i] - mean) / sqrt(var + 1e-5) * gamma[i] + beta[i]);
        }
        double rel = test_rel_err(got, pen, (size_t)n);
        fprintf(stderr, "  text-encoder --clip-skip 1 vs final_layer_norm(penultimate) rel err %.3g\n", rel);
        CHECK(rel < 1e-4);
    }
    free(gamma), free(beta), free(pen), free(got);
    st_close(&w), st_close(&o);
}

int main(void)
{
    snprintf(fx, sizeof fx, "%s", test_need_fixtures());
    tmp = test_tmpdir();
    const char *files[3] = {"unet", "vae", "text_encoder"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        SdcErr err = {{0}};
        snprintf(p, sizeof p, "%s/tiny-sd-golden/%s.safetensors", fx, files[i]);
        if (st_open(&gold[i], p, &err) < 0) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    RUN(test_unet);
    RUN(test_vae);
    RUN(test_text_encoder);
    for (int i = 0; i < 3; i++) st_close(&gold[i]);
    return test_finish();
}
