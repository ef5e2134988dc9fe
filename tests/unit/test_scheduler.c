/* test_scheduler.c — the samplers against diffusers 0.27.2 goldens and against
 * formulas derived here independently (for what the goldens do not cover:
 * Karras sigmas, ddim eta > 0, v_prediction, other spacings).
 *
 * The fixture files are read with a small safetensors reader of this test's
 * own (8-byte little-endian header length, JSON header, data offsets
 * relative to the end of the header), so that this test does not depend on
 * runtime/safetensors.c. */
#include "scheduler.h"

#include "rng.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* Python's json writes -Infinity (lambda_min_clipped): make it JSON cJSON reads */
static void fix_infinity(char *text)
{
    for (char *p = strstr(text, "-Infinity"); p; p = strstr(p, "-Infinity")) memcpy(p, "-1e999   ", 9);
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[len] = 0;
    if (len_out) *len_out = (size_t)len;
    return buf;
}

typedef struct MiniSt {
    char *bytes;
    size_t len;
    cJSON *header;
    const char *data; /* start of the data section */
} MiniSt;

static int minist_open(MiniSt *st, const char *path)
{
    memset(st, 0, sizeof *st);
    st->bytes = read_file(path, &st->len);
    if (!st->bytes || st->len < 8) return -1;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)st->bytes[i];
    if (8 + hlen > st->len) return -1;
    char *h = malloc(hlen + 1);
    memcpy(h, st->bytes + 8, hlen);
    h[hlen] = 0;
    st->header = cJSON_Parse(h);
    free(h);
    st->data = st->bytes + 8 + hlen;
    return st->header ? 0 : -1;
}

static void minist_close(MiniSt *st)
{
    cJSON_Delete(st->header);
    free(st->bytes);
}

/* A float32 tensor by name (malloc'd copy), its element count in *n; NULL if absent. */
static float *minist_f32(const MiniSt *st, const char *name, int64_t *n)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(st->header, name);
    if (!t) {
        fprintf(stderr, "fixture tensor %s missing\n", name);
        return NULL;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0 || cJSON_GetArraySize(off) != 2) return NULL;
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    float *out = malloc(e - b + sizeof(float));
    memcpy(out, st->data + b, e - b);
    if (n) *n = (int64_t)((e - b) / sizeof(float));
    return out;
}

static int rel_close(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(b), 1e-30); }

static double max_rel_elem(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(fabs((double)b[i]), 1e-12);
        if (d > m) m = d;
    }
    return m;
}

static SchedPlan make_plan(const SchedConfig *c, int steps, double eta)
{
    SchedPlan p;
    SdcErr err;
    int rc = sched_plan(&p, c, steps, eta, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) exit(test_finish());
    return p;
}

/* The SD1 training schedule in double, derived from its definition (no torch
 * float emulation): betas = linspace(sqrt(b0), sqrt(b1), 1000) ** 2. */
static void ref_alphas_cumprod(double *ac)
{
    double a = sqrt(0.00085), b = sqrt(0.012), acc = 1;
    for (int i = 0; i < 1000; i++) {
        double r = a + (b - a) * i / 999.0;
        acc *= 1 - r * r;
        ac[i] = acc;
    }
}

static double ref_sigma(const double *ac, int t) { return sqrt((1 - ac[t]) / ac[t]); }

/* ---------------------------------------------------------------- names and config */

static void test_names(void)
{
    for (int k = 0; k < SAMPLER_COUNT; k++) {
        SamplerKind back;
        CHECK(sampler_from_name(sampler_name((SamplerKind)k), &back) == 0 && back == (SamplerKind)k);
    }
    SamplerKind k;
    CHECK(sampler_from_name("dpm++", &k) == -1);
    CHECK(sampler_from_class_name("PNDMScheduler", &k) == 0 && k == SAMPLER_PNDM);
    CHECK(sampler_from_class_name("EulerAncestralDiscreteScheduler", &k) == 0 && k == SAMPLER_EULER_A);
    CHECK(sampler_from_class_name("DPMSolverMultistepScheduler", &k) == 0 && k == SAMPLER_DPMPP_2M);
    CHECK(sampler_from_class_name("UniPCMultistepScheduler", &k) == -1);
}

/* from_config semantics: missing keys take the class's own defaults */
static void test_config_class_defaults(void)
{
    SchedConfig c;
    SdcErr err;
    CHECK(sched_config_parse(&c, "{}", "x.json", SAMPLER_DDIM, &err) == 0);
    CHECK(c.spacing == SCHED_SPACING_LEADING && c.clip_sample && c.set_alpha_to_one && c.steps_offset == 0);
    CHECK(c.beta_schedule == SCHED_BETA_LINEAR && c.beta_start == 0.0001 && c.beta_end == 0.02);
    CHECK(sched_config_parse(&c, "{}", "x.json", SAMPLER_LMS, &err) == 0);
    CHECK(c.spacing == SCHED_SPACING_LINSPACE && !c.use_karras_sigmas);
    CHECK(sched_config_parse(&c, "{}", "x.json", SAMPLER_DPMPP_2M_KARRAS, &err) == 0);
    CHECK(c.use_karras_sigmas && c.final_sigma_zero && c.lower_order_final && !c.euler_at_final && !c.dpm_heun);
    CHECK(isinf(c.lambda_min_clipped) && c.lambda_min_clipped < 0);
    /* a key its class does not read is neither used nor value-checked ... */
    CHECK(sched_config_parse(&c, "{\"algorithm_type\": \"whatever\", \"clip_sample\": true}", "x.json", SAMPLER_EULER,
                             &err) == 0);
    /* ... but its type is */
    CHECK(sched_config_parse(&c, "{\"clip_sample\": 1}", "x.json", SAMPLER_EULER, &err) == -1);
    CHECK_MSG(strcmp(err.msg, "x.json: clip_sample: expected a boolean, got a number") == 0, "%s", err.msg);
    /* pndm without skip_prk_steps would run PRK steps: refused */
    CHECK(sched_config_parse(&c, "{}", "s/c.json", SAMPLER_PNDM, &err) == -1);
    CHECK_MSG(strstr(err.msg, "s/c.json: skip_prk_steps:") == err.msg, "%s", err.msg);
    /* the SD1.5 defaults */
    sched_config_default(&c, SAMPLER_PNDM);
    CHECK(c.beta_schedule == SCHED_BETA_SCALED_LINEAR && c.steps_offset == 1 && !c.set_alpha_to_one);
    sched_config_default(&c, SAMPLER_DDIM);
    CHECK(!c.clip_sample && !c.set_alpha_to_one && c.spacing == SCHED_SPACING_LEADING);
}

static void expect_error(const char *json, SamplerKind kind, const char *want)
{
    SchedConfig c;
    SdcErr err = {{0}};
    int rc = sched_config_parse(&c, json, "scheduler/scheduler_config.json", kind, &err);
    CHECK_MSG(rc == -1 && strcmp(err.msg, want) == 0, "%s -> rc %d, \"%s\", want \"%s\"", json, rc, err.msg, want);
}

static void test_config_errors(void)
{
    const char *f = "scheduler/scheduler_config.json";
    char want[512];
#define WANT(...) (snprintf(want, sizeof want, __VA_ARGS__), want)
    expect_error("{\"beta_schedule\": \"foo\"}", SAMPLER_DDIM, WANT("%s: beta_schedule: unknown value \"foo\"", f));
    expect_error("{\"beta_schedule\": 3}", SAMPLER_LMS, WANT("%s: beta_schedule: expected a string, got a number", f));
    expect_error("{\"steps_offset\": \"1\"}", SAMPLER_EULER, WANT("%s: steps_offset: expected an integer, got a string", f));
    expect_error("{\"steps_offset\": 1.5}", SAMPLER_EULER, WANT("%s: steps_offset: expected an integer, got 1.5", f));
    expect_error("{\"num_train_timesteps\": null}", SAMPLER_EULER,
                 WANT("%s: num_train_timesteps: expected an integer, got null", f));
    expect_error("{\"timestep_spacing\": \"even\"}", SAMPLER_EULER_A,
                 WANT("%s: timestep_spacing: unknown value \"even\"", f));
    expect_error("{\"prediction_type\": \"x0\"}", SAMPLER_DDIM, WANT("%s: prediction_type: unknown value \"x0\"", f));
    expect_error("{\"prediction_type\": \"sample\"}", SAMPLER_EULER_A,
                 WANT("%s: prediction_type: \"sample\" is not supported by EulerAncestralDiscreteScheduler", f));
    expect_error("{\"thresholding\": true}", SAMPLER_DDIM, WANT("%s: thresholding: dynamic thresholding is not supported", f));
    expect_error("{\"trained_betas\": [0.1, 0.2]}", SAMPLER_LMS, WANT("%s: trained_betas: not supported (use beta_schedule)", f));
    expect_error("{\"rescale_betas_zero_snr\": true}", SAMPLER_EULER, WANT("%s: rescale_betas_zero_snr: not supported", f));
    expect_error("{\"final_sigmas_type\": \"one\"}", SAMPLER_DPMPP_2M, WANT("%s: final_sigmas_type: unknown value \"one\"", f));
    expect_error("{\"use_lu_lambdas\": true}", SAMPLER_DPMPP_2M_KARRAS, WANT("%s: use_lu_lambdas: not supported", f));
    expect_error("{\"variance_type\": \"learned_range\"}", SAMPLER_DPMPP_2M,
                 WANT("%s: variance_type: learned variance (\"learned_range\") is not supported", f));
    expect_error("{\"timestep_type\": \"continuous\"}", SAMPLER_EULER,
                 WANT("%s: timestep_type: \"continuous\" is not supported", f));
    expect_error("[1, 2]", SAMPLER_DDIM, WANT("%s: expected a JSON object", f));
    expect_error("{\"beta_end\": 0.012,}", SAMPLER_DDIM, WANT("%s: not valid JSON", f));
#undef WANT
    SchedConfig c;
    SdcErr err;
    CHECK(sched_config_load(&c, "/nonexistent/scheduler_config.json", SAMPLER_DDIM, &err) == -1);
    CHECK_MSG(strcmp(err.msg, "/nonexistent/scheduler_config.json: cannot open") == 0, "%s", err.msg);
    SchedPlan p;
    sched_config_default(&c, SAMPLER_EULER);
    CHECK(sched_plan(&p, &c, 0, 0, &err) == -1);
    CHECK(sched_plan(&p, &c, 10, 0.5, &err) == -1); /* eta is ddim's */
}

/* ---------------------------------------------------------------- spacings */

static void test_spacings(void)
{
    SchedConfig c;
    SdcErr err;
    /* trailing, 10 steps: 999, 899, ..., 99 for every sampler that spaces by timestep */
    const SamplerKind kinds[] = {SAMPLER_DDIM, SAMPLER_LMS, SAMPLER_EULER, SAMPLER_EULER_A, SAMPLER_DPMPP_2M};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sched_config_default(&c, kinds[k]);
        c.spacing = SCHED_SPACING_TRAILING;
        SchedPlan p = make_plan(&c, 10, 0);
        CHECK(p.n_evals == 10);
        for (int i = 0; i < 10; i++)
            CHECK_MSG(p.timesteps[i] == 999 - 100 * i, "%s ts[%d] = %g", sampler_name(kinds[k]), i, p.timesteps[i]);
        sched_plan_free(&p);
    }
    /* pndm trailing: _timesteps 99..999, PLMS order 999, 899, 899, 799, ..., 99 */
    sched_config_default(&c, SAMPLER_PNDM);
    c.spacing = SCHED_SPACING_TRAILING;
    SchedPlan p = make_plan(&c, 10, 0);
    CHECK(p.n_evals == 11);
    const float want_pndm[11] = {999, 899, 899, 799, 699, 599, 499, 399, 299, 199, 99};
    for (int i = 0; i < 11; i++) CHECK(p.timesteps[i] == want_pndm[i]);
    sched_plan_free(&p);
    /* ddim linspace: round(linspace(0, 999, 10)) reversed */
    sched_config_default(&c, SAMPLER_DDIM);
    c.spacing = SCHED_SPACING_LINSPACE;
    p = make_plan(&c, 10, 0);
    for (int i = 0; i < 10; i++) CHECK(p.timesteps[i] == 999 - 111 * i);
    sched_plan_free(&p);
    /* euler leading (steps_offset 1): 901, 801, ..., 1, init sigma sqrt(max^2 + 1) */
    sched_config_default(&c, SAMPLER_EULER);
    c.spacing = SCHED_SPACING_LEADING;
    p = make_plan(&c, 10, 0);
    double ac[1000];
    ref_alphas_cumprod(ac);
    for (int i = 0; i < 10; i++) {
        CHECK(p.timesteps[i] == 901 - 100 * i);
        CHECK(rel_close(p.sigmas[i], ref_sigma(ac, 901 - 100 * i), 2e-6));
    }
    CHECK(rel_close(p.init_noise_sigma, sqrt(pow(ref_sigma(ac, 901), 2) + 1), 2e-6));
    sched_plan_free(&p);
    /* pndm with one step has a single eval */
    sched_config_default(&c, SAMPLER_PNDM);
    p = make_plan(&c, 1, 0);
    CHECK(p.n_evals == 1 && p.timesteps[0] == 1);
    sched_plan_free(&p);
    /* an offset that pushes a timestep past the table is refused */
    sched_config_default(&c, SAMPLER_DDIM);
    c.steps_offset = 99;
    CHECK(sched_plan(&p, &c, 10, 0, &err) == 0 && p.timesteps[0] == 999);
    sched_plan_free(&p);
    c.steps_offset = 100;
    CHECK_MSG(sched_plan(&p, &c, 10, 0, &err) == -1 && strstr(err.msg, "1000"), "%s", err.msg);
}

/* ---------------------------------------------------------------- independent formulas */

/* DPM++ 2M Karras: sigmas from the Karras formula over the training sigma
 * range, timesteps the rounded inverse of the log-sigma interpolation. */
static void test_karras(void)
{
    SchedConfig c;
    sched_config_default(&c, SAMPLER_DPMPP_2M_KARRAS);
    /* diffusers' sigma range comes from the float32 alphas_cumprod (which
     * test_goldens checks bit for bit); 1 - ac[0] in float32 is off by 1e-5
     * relative from the double value, so the range is taken from that table */
    double ac[1000];
    float betas_f[1000], ac_f[1000];
    sched_train_schedule(&c, betas_f, ac_f);
    for (int t = 0; t < 1000; t++) ac[t] = ac_f[t];
    const int steps = 12;
    SchedPlan p = make_plan(&c, steps, 0);
    CHECK(p.n_evals == steps);
    double smin = ref_sigma(ac, 0), smax = ref_sigma(ac, 999);
    for (int i = 0; i < steps; i++) {
        double ramp = (double)i / (steps - 1);
        double want = pow(pow(smax, 1 / 7.0) + ramp * (pow(smin, 1 / 7.0) - pow(smax, 1 / 7.0)), 7);
        CHECK_MSG(rel_close(p.sigmas[i], want, 2e-6), "karras sigma[%d] %.9g vs %.9g", i, p.sigmas[i], want);
        /* t with log sigma(t) piecewise linear between integer timesteps */
        double ls = log(want), t = 0;
        for (int k = 0; k < 999; k++) {
            double a = log(ref_sigma(ac, k)), b = log(ref_sigma(ac, k + 1));
            if (ls >= a && ls <= b) t = k + (ls - a) / (b - a);
        }
        if (ls > log(smax)) t = 999;
        CHECK(p.timesteps[i] == p.timesteps[i] - fmod(p.timesteps[i], 1.0)); /* integers */
        if (fabs(t - floor(t) - 0.5) > 1e-3) CHECK_MSG(p.timesteps[i] == nearbyint(t), "t[%d] %g vs %g", i, p.timesteps[i], t);
    }
    CHECK(p.sigmas[steps] == 0.0f);
    /* a zero final sigma makes the last step first order: x = x0 */
    const float *r = p.coef + (size_t)(steps - 1) * SCHED_NCOEF;
    CHECK(r[SCHED_C_DPM_MAX_ORDER] == 1.0f && r[SCHED_C_DPM_C_SAMPLE] == 0.0f && r[SCHED_C_DPM_C_D0] == -1.0f);
    sched_plan_free(&p);

    /* euler with karras sigmas: the same formula over its interpolated sigmas,
     * fractional timesteps */
    sched_config_default(&c, SAMPLER_EULER);
    c.use_karras_sigmas = 1;
    p = make_plan(&c, steps, 0);
    int fractional = 0;
    for (int i = 0; i < steps; i++) {
        double ramp = (double)i / (steps - 1);
        double want = pow(pow(smax, 1 / 7.0) + ramp * (pow(smin, 1 / 7.0) - pow(smax, 1 / 7.0)), 7);
        CHECK(rel_close(p.sigmas[i], want, 2e-6));
        fractional |= p.timesteps[i] != floorf(p.timesteps[i]);
    }
    CHECK(fractional);
    sched_plan_free(&p);
}

/* one step of each sampler with v_prediction against the textbook formulas */
static void test_v_prediction(void)
{
    enum { N = 64 };
    float x[N], v[N], x_start[N], out[N], want[N];
    test_fill_randn(x_start, N, 1.0f);
    test_fill_randn(v, N, 1.0f);
    double ac[1000];
    ref_alphas_cumprod(ac);
    SchedConfig c;

    /* ddim: x0 = sqrt(a) x - sqrt(1-a) v, eps = sqrt(a) v + sqrt(1-a) x */
    sched_config_default(&c, SAMPLER_DDIM);
    c.prediction = SCHED_PRED_V;
    SchedPlan p = make_plan(&c, 10, 0);
    SchedState *s = sched_state_new(&p, N);
    memcpy(x, x_start, sizeof x);
    sched_step_with_noise(&p, s, 0, v, x, N, NULL, out);
    double a = ac[901], ap = ac[801];
    for (int k = 0; k < N; k++) {
        double x0 = sqrt(a) * x_start[k] - sqrt(1 - a) * v[k], eps = sqrt(a) * v[k] + sqrt(1 - a) * x_start[k];
        want[k] = (float)(sqrt(ap) * x0 + sqrt(1 - ap) * eps);
        CHECK(fabs(out[k] - x0) < 1e-5);
    }
    CHECK_REL(x, want, N, 1e-5);
    sched_state_free(s);
    sched_plan_free(&p);

    /* euler: x0 = x / (s^2 + 1) - s / sqrt(s^2 + 1) v; x += (x - x0) / s * (s_next - s) */
    sched_config_default(&c, SAMPLER_EULER);
    c.prediction = SCHED_PRED_V;
    p = make_plan(&c, 10, 0);
    s = sched_state_new(&p, N);
    memcpy(x, x_start, sizeof x);
    sched_step_with_noise(&p, s, 0, v, x, N, NULL, NULL);
    double sg = ref_sigma(ac, 999), sn = p.sigmas[1]; /* timestep 888 */
    for (int k = 0; k < N; k++) {
        double x0 = x_start[k] / (sg * sg + 1) - sg / sqrt(sg * sg + 1) * v[k];
        want[k] = (float)(x_start[k] + (x_start[k] - x0) / sg * (sn - sg));
    }
    CHECK_REL(x, want, N, 1e-5);
    sched_state_free(s);
    sched_plan_free(&p);

    /* dpm++ first step: x0 = alpha x - sigma v; x' = (sigma'/sigma) x - alpha' (e^-h - 1) x0 */
    sched_config_default(&c, SAMPLER_DPMPP_2M);
    c.prediction = SCHED_PRED_V;
    p = make_plan(&c, 10, 0);
    s = sched_state_new(&p, N);
    memcpy(x, x_start, sizeof x);
    sched_step_with_noise(&p, s, 0, v, x, N, NULL, NULL);
    double al0 = sqrt(ac[999]), si0 = sqrt(1 - ac[999]), al1 = sqrt(ac[899]), si1 = sqrt(1 - ac[899]);
    double h = log(al1 / si1) - log(al0 / si0);
    for (int k = 0; k < N; k++) {
        double x0 = al0 * x_start[k] - si0 * v[k];
        want[k] = (float)(si1 / si0 * x_start[k] - al1 * (exp(-h) - 1) * x0);
    }
    CHECK_REL(x, want, N, 1e-5);
    sched_state_free(s);
    sched_plan_free(&p);

    /* pndm's first step: eps = sqrt(a) v + sqrt(1-a) x, then the DDIM-like PNDM transfer */
    sched_config_default(&c, SAMPLER_PNDM);
    c.prediction = SCHED_PRED_V;
    p = make_plan(&c, 10, 0);
    s = sched_state_new(&p, N);
    memcpy(x, x_start, sizeof x);
    sched_step_with_noise(&p, s, 0, v, x, N, NULL, NULL);
    for (int k = 0; k < N; k++) {
        double eps = sqrt(a) * v[k] + sqrt(1 - a) * x_start[k];
        double x0 = (x_start[k] - sqrt(1 - a) * eps) / sqrt(a);
        want[k] = (float)(sqrt(ap) * x0 + sqrt(1 - ap) * eps); /* PNDM's transfer is exact DDIM for eta 0 */
    }
    CHECK_REL(x, want, N, 1e-5);
    sched_state_free(s);
    sched_plan_free(&p);
}

/* ddim with eta > 0 (and clip_sample) against the DDIM paper's formula (16) */
static void test_ddim_eta(void)
{
    enum { N = 128 };
    float x[N], eps[N], noise[N], x_start[N], want[N];
    test_fill_randn(x_start, N, 1.0f);
    test_fill_randn(eps, N, 1.0f);
    test_fill_randn(noise, N, 1.0f);
    double ac[1000];
    ref_alphas_cumprod(ac);
    SchedConfig c;
    sched_config_default(&c, SAMPLER_DDIM);
    c.clip_sample = 1;
    c.clip_sample_range = 1.5;
    const double eta = 0.7;
    SchedPlan p = make_plan(&c, 20, eta);
    CHECK(p.noise == SCHED_NOISE_USED);
    SchedState *s = sched_state_new(&p, N);
    const int i0 = 0;
    memcpy(x, x_start, sizeof x);
    sched_step_with_noise(&p, s, i0, eps, x, N, noise, NULL);
    double a = ac[951], ap = ac[901];
    double var = (1 - ap) / (1 - a) * (1 - a / ap), std = eta * sqrt(var);
    int clipped = 0;
    for (int k = 0; k < N; k++) {
        double x0 = (x_start[k] - sqrt(1 - a) * eps[k]) / sqrt(a);
        if (fabs(x0) > 1.5) clipped = 1, x0 = x0 > 0 ? 1.5 : -1.5;
        want[k] = (float)(sqrt(ap) * x0 + sqrt(1 - ap - std * std) * eps[k] + std * noise[k]);
    }
    CHECK(clipped);
    CHECK_REL(x, want, N, 1e-5);

    /* sched_step draws its noise from the generator: same as drawing it ourselves */
    TorchGen g1, g2;
    torch_gen_seed(&g1, 42);
    torch_gen_seed(&g2, 42);
    float x2[N], drawn[N];
    memcpy(x, want, sizeof x);
    memcpy(x2, want, sizeof x2);
    sched_step(&p, s, 1, eps, x, N, &g1);
    SchedState *s2 = sched_state_new(&p, N);
    torch_randn(&g2, drawn, N);
    sched_step_with_noise(&p, s2, 1, eps, x2, N, drawn, NULL);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    sched_state_free(s2);
    sched_state_free(s);
    sched_plan_free(&p);
}

/* the generator is consumed the way diffusers consumes it */
static void test_noise_draws(void)
{
    enum { N = 64 };
    float x[N], mo[N], a[N], b[N];
    test_fill_randn(x, N, 1.0f);
    test_fill_randn(mo, N, 1.0f);
    SchedConfig c;
    /* euler draws (and ignores) n values per step */
    sched_config_default(&c, SAMPLER_EULER);
    SchedPlan p = make_plan(&c, 5, 0);
    CHECK(p.noise == SCHED_NOISE_DISCARDED);
    SchedState *s = sched_state_new(&p, N);
    TorchGen g, ref;
    torch_gen_seed(&g, 7);
    torch_gen_seed(&ref, 7);
    sched_step(&p, s, 0, mo, x, N, &g);
    torch_randn(&ref, a, N);
    torch_randn(&ref, a, N);
    torch_randn(&g, b, N);
    CHECK(memcmp(a, b, sizeof a) == 0);
    sched_state_free(s);
    sched_plan_free(&p);
    /* lms and dpm++ draw nothing */
    sched_config_default(&c, SAMPLER_LMS);
    p = make_plan(&c, 5, 0);
    CHECK(p.noise == SCHED_NOISE_NONE);
    sched_plan_free(&p);
}

/* LMS coefficients: the integrals of a partition of unity sum to the interval,
 * and each matches a fine composite Simpson rule of the Lagrange basis */
static void test_lms_coefficients(void)
{
    SchedConfig c;
    sched_config_default(&c, SAMPLER_LMS);
    SchedPlan p = make_plan(&c, 12, 0);
    for (int i = 0; i < p.n_evals; i++) {
        const float *r = p.coef + (size_t)i * SCHED_NCOEF;
        int order = (int)r[SCHED_C_LMS_ORDER];
        CHECK(order == (i + 1 < 4 ? i + 1 : 4));
        double sum = 0;
        for (int j = 0; j < order; j++) {
            double a = p.sigmas[i], b = p.sigmas[i + 1], simpson = 0;
            const int m = 2000;
            for (int q = 0; q <= m; q++) {
                double tau = a + (b - a) * q / m, prod = 1;
                for (int k = 0; k < order; k++)
                    if (k != j) prod *= (tau - p.sigmas[i - k]) / ((double)p.sigmas[i - j] - p.sigmas[i - k]);
                simpson += prod * (q == 0 || q == m ? 1 : q % 2 ? 4 : 2);
            }
            simpson *= (b - a) / (3.0 * m);
            CHECK_MSG(fabs(r[SCHED_C_LMS_COEF + j] - simpson) <= 1e-6 * fmax(1, fabs(simpson)),
                      "lms coef i=%d j=%d %.9g vs %.9g", i, j, r[SCHED_C_LMS_COEF + j], simpson);
            sum += r[SCHED_C_LMS_COEF + j];
        }
        CHECK(fabs(sum - ((double)p.sigmas[i + 1] - p.sigmas[i])) < 1e-5 * fabs(p.sigmas[i]));
    }
    sched_plan_free(&p);
}

/* img2img: get_timesteps and add_noise */
static void test_img2img(void)
{
    enum { N = 32 };
    float x0[N], noise[N], x[N];
    test_fill_randn(x0, N, 1.0f);
    test_fill_randn(noise, N, 1.0f);
    double ac[1000];
    ref_alphas_cumprod(ac);
    SchedConfig c;
    sched_config_default(&c, SAMPLER_DDIM);
    SchedPlan p = make_plan(&c, 10, 0);
    CHECK(sched_img2img_start(&p, 0.75) == 3);
    CHECK(sched_img2img_start(&p, 1.0) == 0);
    CHECK(sched_img2img_start(&p, 0.0) == 10);
    int i = sched_img2img_start(&p, 0.75);
    sched_add_noise(&p, i, x0, noise, x, N);
    for (int k = 0; k < N; k++) {
        double want = sqrt(ac[601]) * x0[k] + sqrt(1 - ac[601]) * noise[k];
        CHECK(fabs(x[k] - want) < 1e-5);
    }
    sched_plan_free(&p);
    sched_config_default(&c, SAMPLER_EULER_A);
    p = make_plan(&c, 10, 0);
    sched_add_noise(&p, 3, x0, noise, x, N);
    for (int k = 0; k < N; k++) CHECK(x[k] == x0[k] + noise[k] * p.sigmas[3]);
    sched_plan_free(&p);

    /* a multistep sampler started in the middle begins with its first-order
     * step, as diffusers' counters do: LMS at i = 5 uses one derivative */
    sched_config_default(&c, SAMPLER_LMS);
    p = make_plan(&c, 10, 0);
    SchedState *s = sched_state_new(&p, N);
    memcpy(x, x0, sizeof x);
    sched_step_with_noise(&p, s, 5, noise, x, N, NULL, NULL);
    const float *r = p.coef + 5 * SCHED_NCOEF;
    for (int k = 0; k < N; k++) {
        float d = (x0[k] - (x0[k] - r[SCHED_C_LMS_SIGMA] * noise[k])) / r[SCHED_C_LMS_SIGMA];
        CHECK(x[k] == x0[k] + r[SCHED_C_LMS_COEF] * d);
    }
    sched_state_free(s);
    sched_plan_free(&p);
}

/* The configs where diffusers itself fails: leading spacing with steps_offset
 * 1 at 1000 steps indexes alphas_cumprod[1000] (ddim, pndm) or repeats the
 * top sigma (lms: a zero Lagrange denominator); dpm++ at 1000 steps rounds
 * two timesteps to the same value (h = 0 divides); euler_a's sigma_down is
 * the square root of a float32 rounding below zero for the cosine schedule's
 * huge first sigma with 3 trailing steps. */
static int degenerate(SamplerKind k, SchedSpacing sp, SchedBetaSchedule bs, int steps)
{
    if (steps == 1000 && sp == SCHED_SPACING_LEADING && (k == SAMPLER_DDIM || k == SAMPLER_PNDM || k == SAMPLER_LMS))
        return 1;
    if (steps == 1000 && sp != SCHED_SPACING_TRAILING && (k == SAMPLER_DPMPP_2M || k == SAMPLER_DPMPP_2M_KARRAS))
        return k == SAMPLER_DPMPP_2M;
    return k == SAMPLER_EULER_A && steps == 3 && sp == SCHED_SPACING_TRAILING && bs == SCHED_BETA_SQUAREDCOS_CAP_V2;
}

/* every table stays finite (the backend prints them as constants) over many configs */
static void test_plans_finite(void)
{
    const int steps_list[] = {1, 2, 3, 7, 14, 15, 25, 50, 1000};
    for (int k = 0; k < SAMPLER_COUNT; k++) {
        for (int sp = 0; sp < 3; sp++) {
            for (int bs = 0; bs < 3; bs++) {
                for (size_t si = 0; si < sizeof steps_list / sizeof steps_list[0]; si++) {
                    SchedConfig c;
                    sched_config_default(&c, (SamplerKind)k);
                    c.spacing = (SchedSpacing)sp;
                    c.beta_schedule = (SchedBetaSchedule)bs;
                    if (sp != SCHED_SPACING_LEADING) c.steps_offset = 0;
                    SchedPlan p;
                    SdcErr err;
                    int steps = steps_list[si];
                    if (sched_plan(&p, &c, steps, 0, &err) != 0) {
                        CHECK_MSG(degenerate((SamplerKind)k, c.spacing, c.beta_schedule, steps), "%s %d steps: %s",
                                  sampler_name((SamplerKind)k), steps, err.msg);
                        continue;
                    }
                    CHECK_MSG(!degenerate((SamplerKind)k, c.spacing, c.beta_schedule, steps), "%s %d %d %d accepted",
                              sampler_name((SamplerKind)k), sp, bs, steps);
                    CHECK(p.n_evals >= 1);
                    sched_plan_free(&p);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- goldens */

static const char *golden_names[] = {"ddim", "pndm", "lms", "euler", "euler_a", "dpmpp_2m"};

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int has_bool(const cJSON *o, const char *k, int want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return !v || (cJSON_IsBool(v) && cJSON_IsTrue(v) == want);
}

/* our resolved config against diffusers' effective config */
static void check_effective_config(const SchedConfig *c, const cJSON *eff, const char *what)
{
    static const char *const spacing[] = {"linspace", "leading", "trailing"};
    static const char *const pred[] = {"epsilon", "v_prediction", "sample"};
    static const char *const beta[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    const cJSON *v;
    CHECK_MSG(strcmp(str_of(eff, "timestep_spacing"), spacing[c->spacing]) == 0, "%s spacing", what);
    CHECK_MSG(strcmp(str_of(eff, "prediction_type"), pred[c->prediction]) == 0, "%s prediction", what);
    CHECK_MSG(strcmp(str_of(eff, "beta_schedule"), beta[c->beta_schedule]) == 0, "%s beta_schedule", what);
    CHECK((v = cJSON_GetObjectItem(eff, "num_train_timesteps")) && v->valuedouble == c->num_train_timesteps);
    CHECK((v = cJSON_GetObjectItem(eff, "steps_offset")) && v->valuedouble == c->steps_offset);
    CHECK((v = cJSON_GetObjectItem(eff, "beta_start")) && v->valuedouble == c->beta_start);
    CHECK((v = cJSON_GetObjectItem(eff, "beta_end")) && v->valuedouble == c->beta_end);
    if (c->kind == SAMPLER_DDIM) {
        CHECK_MSG(has_bool(eff, "clip_sample", c->clip_sample), "%s clip_sample", what);
        CHECK_MSG(has_bool(eff, "set_alpha_to_one", c->set_alpha_to_one), "%s set_alpha_to_one", what);
        CHECK((v = cJSON_GetObjectItem(eff, "clip_sample_range")) && v->valuedouble == c->clip_sample_range);
    }
    if (c->kind == SAMPLER_PNDM) CHECK(has_bool(eff, "set_alpha_to_one", c->set_alpha_to_one));
    CHECK_MSG(has_bool(eff, "use_karras_sigmas", c->use_karras_sigmas), "%s karras", what);
    if (c->kind == SAMPLER_DPMPP_2M) {
        CHECK(strcmp(str_of(eff, "algorithm_type"), "dpmsolver++") == 0);
        CHECK(strcmp(str_of(eff, "solver_type"), c->dpm_heun ? "heun" : "midpoint") == 0);
        CHECK(strcmp(str_of(eff, "final_sigmas_type"), c->final_sigma_zero ? "zero" : "sigma_min") == 0);
        CHECK(has_bool(eff, "lower_order_final", c->lower_order_final));
        CHECK(has_bool(eff, "euler_at_final", c->euler_at_final));
        CHECK((v = cJSON_GetObjectItem(eff, "solver_order")) && v->valuedouble == 2);
    }
}

static void golden_one(const MiniSt *st, const cJSON *info, const char *cfg_path, SamplerKind kind, int steps)
{
    char key[128], nm[192];
    snprintf(key, sizeof key, "sched_%s_n%d", sampler_name(kind), steps);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(info, key);
    CHECK_MSG(g != NULL, "schedulers.json lacks %s", key);
    if (!g) return;
    SchedConfig c;
    SdcErr err;
    int rc = sched_config_load(&c, cfg_path, kind, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    check_effective_config(&c, cJSON_GetObjectItemCaseSensitive(g, "effective_config"), key);
    SchedPlan p = make_plan(&c, steps, 0);

#define T(suffix) (snprintf(nm, sizeof nm, "%s_%s", key, suffix), minist_f32(st, nm, &len))
    int64_t len = 0;
    /* timesteps: exact for the integer ones, 1e-6 for linspace floats */
    float *ts = T("timesteps");
    CHECK_MSG(ts && len == p.n_evals, "%s: %d evals, golden %d", key, p.n_evals, (int)len);
    for (int i = 0; ts && i < len && i < p.n_evals; i++)
        CHECK_MSG(rel_close(p.timesteps[i], ts[i], 1e-6), "%s ts[%d] %.9g vs %.9g", key, i, p.timesteps[i], ts[i]);
    /* the JSON copy */
    const cJSON *jts = cJSON_GetObjectItemCaseSensitive(g, "timesteps");
    CHECK(cJSON_GetArraySize(jts) == p.n_evals);
    for (int i = 0; i < cJSON_GetArraySize(jts) && i < p.n_evals; i++)
        CHECK(rel_close(p.timesteps[i], cJSON_GetArrayItem(jts, i)->valuedouble, 1e-6));
    free(ts);
    float *sig = p.sigmas ? T("sigmas") : NULL;
    if (p.sigmas) {
        CHECK(sig && len == p.n_evals + 1);
        for (int i = 0; sig && i < len; i++)
            CHECK_MSG(rel_close(p.sigmas[i], sig[i], 1e-6), "%s sigma[%d] %.9g vs %.9g", key, i, p.sigmas[i], sig[i]);
        if (sig) fprintf(stderr, "  %s sigmas max rel err %.2g\n", key, max_rel_elem(p.sigmas, sig, (int)len));
    }
    free(sig);
    float *ins = T("init_noise_sigma");
    CHECK_MSG(ins && rel_close(p.init_noise_sigma, ins[0], 1e-6), "%s init sigma %.9g", key, p.init_noise_sigma);
    free(ins);

    /* step 0 on a fresh state */
    int64_t n = 0;
    float *sample = minist_f32(st, "sched_step_sample", &n);
    float *mo = minist_f32(st, "sched_step_model_output", NULL);
    float *x = malloc(sizeof(float) * (size_t)n), *x0 = malloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++) x[k] = sample[k] * p.in_scale[0];
    float *want = T("step0_scaled_input");
    CHECK_REL(x, want, (size_t)n, 1e-6);
    free(want);
    float *noise = p.noise == SCHED_NOISE_USED ? T("step0_noise") : NULL;
    SchedState *s = sched_state_new(&p, n);
    memcpy(x, sample, sizeof(float) * (size_t)n);
    sched_step_with_noise(&p, s, 0, mo, x, n, noise, x0);
    want = T("step0_prev_sample");
    CHECK_REL(x, want, (size_t)n, 1e-6);
    if (want) fprintf(stderr, "  %s step0 prev_sample rel err %.2g\n", key, test_rel_err(x, want, (size_t)n));
    free(want);
    if (kind != SAMPLER_PNDM && kind != SAMPLER_DPMPP_2M) {
        want = T("step0_pred_original_sample");
        CHECK_REL(x0, want, (size_t)n, 1e-6);
        free(want);
    }
    sched_state_free(s);
    free(noise);

    /* the whole trajectory with the stored model outputs */
    float *traj_in = T("traj_scaled_input");
    float *traj_mo = T("traj_model_output");
    float *traj_x = T("traj_x");
    float *traj_noise = p.noise == SCHED_NOISE_USED ? T("traj_noise") : NULL;
    float *xi = T("traj_x_init");
    if (xi && traj_in && traj_mo && traj_x) {
        s = sched_state_new(&p, n);
        memcpy(x, xi, sizeof(float) * (size_t)n);
        double worst = 0;
        for (int i = 0; i < p.n_evals; i++) {
            for (int64_t k = 0; k < n; k++) x0[k] = x[k] * p.in_scale[i];
            CHECK_MSG(test_rel_err(x0, traj_in + i * n, (size_t)n) < 1e-5, "%s scaled input %d", key, i);
            sched_step_with_noise(&p, s, i, traj_mo + i * n, x, n, traj_noise ? traj_noise + i * n : NULL, NULL);
            double e = test_rel_err(x, traj_x + i * n, (size_t)n);
            CHECK_MSG(e < 1e-5, "%s trajectory step %d: rel err %.3g", key, i, e);
            worst = e > worst ? e : worst;
        }
        fprintf(stderr, "  %s trajectory worst rel err %.2g\n", key, worst);
        sched_state_free(s);
    }
    free(xi), free(traj_in), free(traj_mo), free(traj_x), free(traj_noise);
#undef T
    free(sample), free(mo), free(x), free(x0);
    sched_plan_free(&p);
}

static void test_goldens(void)
{
    const char *fx = test_fixtures();
    if (!fx) {
        fprintf(stderr, "SDC_FIXTURES is not set: skipping the diffusers goldens\n");
        return;
    }
    char path[1024], cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/tiny-sd/scheduler/scheduler_config.json", fx);
    snprintf(path, sizeof path, "%s/tiny-sd-golden/schedulers.safetensors", fx);
    MiniSt st;
    CHECK_MSG(minist_open(&st, path) == 0, "cannot read %s", path);
    snprintf(path, sizeof path, "%s/tiny-sd-golden/schedulers.json", fx);
    char *text = read_file(path, NULL);
    if (text) fix_infinity(text);
    cJSON *json = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(json != NULL, "cannot read %s", path);
    if (!json || !st.header) return;
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(json, "schedulers");

    /* the training schedule, bit for bit (torch.linspace float32, cumprod in double) */
    SchedConfig c;
    CHECK(sched_config_load(&c, cfg, SAMPLER_PNDM, NULL) == 0);
    float betas[1000], ac[1000];
    sched_train_schedule(&c, betas, ac);
    int64_t len;
    float *gb = minist_f32(&st, "sched_betas", &len), *gac = minist_f32(&st, "sched_alphas_cumprod", NULL);
    if (gb && gac && len == 1000) {
        int exact_b = 0, exact_ac = 0;
        for (int i = 0; i < 1000; i++) exact_b += betas[i] == gb[i], exact_ac += ac[i] == gac[i];
        fprintf(stderr, "  training schedule: %d/1000 betas and %d/1000 alphas_cumprod bit-exact\n", exact_b, exact_ac);
        CHECK(max_rel_elem(betas, gb, 1000) < 1e-6 && max_rel_elem(ac, gac, 1000) < 1e-6);
        CHECK(exact_b == 1000 && exact_ac == 1000);
    }
    free(gb), free(gac);

    for (size_t k = 0; k < sizeof golden_names / sizeof golden_names[0]; k++) {
        SamplerKind kind;
        CHECK(sampler_from_name(golden_names[k], &kind) == 0);
        golden_one(&st, info, cfg, kind, 20);
        golden_one(&st, info, cfg, kind, 7);
    }
    cJSON_Delete(json);
    free(text);
    minist_close(&st);

    /* the pipeline goldens' timesteps (10 steps) */
    snprintf(path, sizeof path, "%s/tiny-sd-golden/pipeline.json", fx);
    text = read_file(path, NULL);
    json = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(json != NULL, "cannot read %s", path);
    const char *pipes[] = {"pndm", "ddim", "euler_a"};
    for (size_t k = 0; json && k < 3; k++) {
        SamplerKind kind;
        sampler_from_name(pipes[k], &kind);
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(json, pipes[k]);
        const cJSON *jts = cJSON_GetObjectItemCaseSensitive(pj, "timesteps");
        CHECK(sched_config_load(&c, cfg, kind, NULL) == 0);
        check_effective_config(&c, cJSON_GetObjectItemCaseSensitive(pj, "effective_config"), pipes[k]);
        SchedPlan p = make_plan(&c, 10, 0);
        CHECK(cJSON_GetArraySize(jts) == p.n_evals);
        for (int i = 0; i < p.n_evals && i < cJSON_GetArraySize(jts); i++)
            CHECK_MSG(p.timesteps[i] == (float)cJSON_GetArrayItem(jts, i)->valuedouble, "pipeline %s ts[%d]", pipes[k], i);
        sched_plan_free(&p);
    }
    cJSON_Delete(json);
    free(text);
}

int main(void)
{
    RUN(test_names);
    RUN(test_config_class_defaults);
    RUN(test_config_errors);
    RUN(test_spacings);
    RUN(test_karras);
    RUN(test_v_prediction);
    RUN(test_ddim_eta);
    RUN(test_noise_draws);
    RUN(test_lms_coefficients);
    RUN(test_img2img);
    RUN(test_plans_finite);
    RUN(test_goldens);
    return test_finish();
}
