/* scheduler.c — diffusers 0.27.2 samplers: config, plan (compile time) and step (run time).
 *
 * The numbers must agree with diffusers to float32 rounding, so every table
 * is computed the way diffusers computes it, in the same precision:
 *  - betas / alphas_cumprod: torch float32 (torch.linspace's own float
 *    algorithm; torch.cumprod accumulates in double on CPU);
 *  - timestep and sigma tables: numpy float64 (np.linspace, np.arange,
 *    np.interp, round-half-even), cast to float32 where diffusers casts;
 *  - per-step scalars (alpha_prod_t ** 0.5, DPM's lambdas, ...): torch
 *    float32 0-dim tensors, so float arithmetic here;
 *  - the elementwise update: float32, in the order of diffusers' expression
 *    (a * x - (b * m) / c, not a simplified form).
 * The one intentional difference: LMS's coefficients, which diffusers gets
 * from scipy.integrate.quad of a float32 polynomial, are the exact integral
 * (4-point Gauss-Legendre, exact for the cubic) in double.
 *
 * Multistep samplers keep history in a SchedState; which history is used at
 * an eval depends on how many evals that state has seen (diffusers' counter,
 * lower_order_nums, len(derivatives)), so img2img, which starts in the
 * middle of the table, gets the same behaviour as diffusers. */
#include "scheduler.h"

#include "rng.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

static const char *const sampler_names[SAMPLER_COUNT] = {
    [SAMPLER_DDIM] = "ddim",         [SAMPLER_PNDM] = "pndm",
    [SAMPLER_LMS] = "lms",           [SAMPLER_EULER] = "euler",
    [SAMPLER_EULER_A] = "euler_a",   [SAMPLER_DPMPP_2M] = "dpmpp_2m",
    [SAMPLER_DPMPP_2M_KARRAS] = "dpmpp_2m_karras",
};

/* diffusers class of each sampler, as scheduler_config.json names it */
static const char *const sampler_classes[SAMPLER_COUNT] = {
    [SAMPLER_DDIM] = "DDIMScheduler",
    [SAMPLER_PNDM] = "PNDMScheduler",
    [SAMPLER_LMS] = "LMSDiscreteScheduler",
    [SAMPLER_EULER] = "EulerDiscreteScheduler",
    [SAMPLER_EULER_A] = "EulerAncestralDiscreteScheduler",
    [SAMPLER_DPMPP_2M] = "DPMSolverMultistepScheduler",
    [SAMPLER_DPMPP_2M_KARRAS] = "DPMSolverMultistepScheduler",
};

int sampler_from_name(const char *name, SamplerKind *k)
{
    for (int i = 0; i < SAMPLER_COUNT; i++) {
        if (strcmp(name, sampler_names[i]) == 0) {
            *k = (SamplerKind)i;
            return 0;
        }
    }
    return -1;
}

const char *sampler_name(SamplerKind k)
{
    SDC_ASSERT(k >= 0 && k < SAMPLER_COUNT);
    return sampler_names[k];
}

int sampler_from_class_name(const char *cls, SamplerKind *k)
{
    /* the first match: DPMSolverMultistepScheduler -> dpmpp_2m */
    for (int i = 0; i < SAMPLER_COUNT; i++) {
        if (strcmp(cls, sampler_classes[i]) == 0) {
            *k = (SamplerKind)i;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- config */

/* The classes that read a key (diffusers' from_config drops the others). */
#define CL(k) (1u << (k))
#define CL_DPM (CL(SAMPLER_DPMPP_2M) | CL(SAMPLER_DPMPP_2M_KARRAS))
#define CL_ALL ((1u << SAMPLER_COUNT) - 1)

typedef enum KeyType { KEY_BOOL, KEY_INT, KEY_NUM, KEY_NUM_OR_NULL, KEY_STR, KEY_STR_OR_NULL, KEY_ARRAY_OR_NULL } KeyType;

typedef struct KeySpec {
    const char *name;
    KeyType type;
    unsigned classes; /* the samplers whose class has this __init__ argument */
} KeySpec;

/* Every key of the six classes' __init__ in diffusers 0.27.2.  Types are
 * checked for all of them; values only where the sampler's class reads them. */
static const KeySpec key_specs[] = {
    {"num_train_timesteps", KEY_INT, CL_ALL},
    {"beta_start", KEY_NUM, CL_ALL},
    {"beta_end", KEY_NUM, CL_ALL},
    {"beta_schedule", KEY_STR, CL_ALL},
    {"trained_betas", KEY_ARRAY_OR_NULL, CL_ALL},
    {"prediction_type", KEY_STR, CL_ALL},
    {"timestep_spacing", KEY_STR, CL_ALL},
    {"steps_offset", KEY_INT, CL_ALL},
    {"clip_sample", KEY_BOOL, CL(SAMPLER_DDIM)},
    {"clip_sample_range", KEY_NUM, CL(SAMPLER_DDIM)},
    {"set_alpha_to_one", KEY_BOOL, CL(SAMPLER_DDIM) | CL(SAMPLER_PNDM)},
    {"skip_prk_steps", KEY_BOOL, CL(SAMPLER_PNDM)},
    {"thresholding", KEY_BOOL, CL(SAMPLER_DDIM) | CL_DPM},
    {"dynamic_thresholding_ratio", KEY_NUM, CL(SAMPLER_DDIM) | CL_DPM},
    {"sample_max_value", KEY_NUM, CL(SAMPLER_DDIM) | CL_DPM},
    {"rescale_betas_zero_snr", KEY_BOOL, CL(SAMPLER_DDIM) | CL(SAMPLER_EULER) | CL(SAMPLER_EULER_A) | CL_DPM},
    {"use_karras_sigmas", KEY_BOOL, CL(SAMPLER_LMS) | CL(SAMPLER_EULER) | CL_DPM},
    {"interpolation_type", KEY_STR, CL(SAMPLER_EULER)},
    {"sigma_min", KEY_NUM_OR_NULL, CL(SAMPLER_EULER)},
    {"sigma_max", KEY_NUM_OR_NULL, CL(SAMPLER_EULER)},
    {"timestep_type", KEY_STR, CL(SAMPLER_EULER)},
    {"solver_order", KEY_INT, CL_DPM},
    {"algorithm_type", KEY_STR, CL_DPM},
    {"solver_type", KEY_STR, CL_DPM},
    {"lower_order_final", KEY_BOOL, CL_DPM},
    {"euler_at_final", KEY_BOOL, CL_DPM},
    {"use_lu_lambdas", KEY_BOOL, CL_DPM},
    {"final_sigmas_type", KEY_STR, CL_DPM},
    {"lambda_min_clipped", KEY_NUM, CL_DPM},
    {"variance_type", KEY_STR_OR_NULL, CL_DPM},
    {"_class_name", KEY_STR, 0},
    {"_diffusers_version", KEY_STR, 0},
};

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static int check_type(const KeySpec *k, const cJSON *v, const char *name, SdcErr *err)
{
    int ok = 0;
    const char *want = "";
    switch (k->type) {
    case KEY_BOOL: ok = cJSON_IsBool(v); want = "a boolean"; break;
    case KEY_INT:
        ok = cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e9;
        want = "an integer";
        break;
    case KEY_NUM: ok = cJSON_IsNumber(v); want = "a number"; break;
    case KEY_NUM_OR_NULL: ok = cJSON_IsNumber(v) || cJSON_IsNull(v); want = "a number or null"; break;
    case KEY_STR: ok = cJSON_IsString(v); want = "a string"; break;
    case KEY_STR_OR_NULL: ok = cJSON_IsString(v) || cJSON_IsNull(v); want = "a string or null"; break;
    case KEY_ARRAY_OR_NULL: ok = cJSON_IsArray(v) || cJSON_IsNull(v); want = "an array or null"; break;
    }
    if (ok) return 0;
    if (cJSON_IsNumber(v) && k->type == KEY_INT)
        return sdc_err(err, "%s: %s: expected an integer, got %g", name, k->name, v->valuedouble);
    return sdc_err(err, "%s: %s: expected %s, got %s", name, k->name, want, json_type_name(v));
}

/* The key's value if the sampler's class reads it and the file sets it. */
static const cJSON *class_key(const cJSON *root, const char *key, SamplerKind kind)
{
    for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++) {
        if (strcmp(key_specs[i].name, key) == 0) {
            if (!(key_specs[i].classes & CL(kind))) return NULL;
            return cJSON_GetObjectItemCaseSensitive(root, key);
        }
    }
    SDC_ASSERT(!"key missing from key_specs");
    return NULL;
}

static int is_true(const cJSON *v) { return v && cJSON_IsTrue(v); }

/* The class's own __init__ defaults (diffusers 0.27.2). */
static void class_defaults(SchedConfig *c, SamplerKind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->num_train_timesteps = 1000;
    c->beta_start = 0.0001;
    c->beta_end = 0.02;
    c->beta_schedule = SCHED_BETA_LINEAR;
    c->prediction = SCHED_PRED_EPSILON;
    c->spacing = (kind == SAMPLER_DDIM || kind == SAMPLER_PNDM) ? SCHED_SPACING_LEADING : SCHED_SPACING_LINSPACE;
    c->steps_offset = 0;
    c->set_alpha_to_one = kind == SAMPLER_DDIM; /* DDIM True, PNDM False */
    c->clip_sample = kind == SAMPLER_DDIM;
    c->clip_sample_range = 1.0;
    c->use_karras_sigmas = kind == SAMPLER_DPMPP_2M_KARRAS;
    c->lower_order_final = 1;
    c->euler_at_final = 0;
    c->final_sigma_zero = 1;
    c->lambda_min_clipped = -INFINITY;
}

/* Python's json module writes the non-standard tokens Infinity, -Infinity
 * and NaN (diffusers saves "lambda_min_clipped": -Infinity); cJSON does not
 * read them.  Rewrites them, outside strings, to 1e999 / -1e999 (which
 * strtod reads as infinities) and null. */
static char *python_json_to_json(const char *in)
{
    size_t n = strlen(in);
    char *out = xmalloc(n + 1), *o = out;
    int in_string = 0;
    for (const char *p = in; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) *o++ = *p++;
            else if (*p == '"') in_string = 0;
            *o++ = *p++;
        } else if (*p == '"') {
            in_string = 1;
            *o++ = *p++;
        } else if (strncmp(p, "Infinity", 8) == 0) {
            memcpy(o, "1e999", 5), o += 5, p += 8;
        } else if (strncmp(p, "NaN", 3) == 0) {
            memcpy(o, "null", 4), o += 4, p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

int sched_config_parse(SchedConfig *c, const char *json, const char *name, SamplerKind kind, SdcErr *err)
{
    SDC_ASSERT(kind >= 0 && kind < SAMPLER_COUNT);
    char *text = python_json_to_json(json);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return sdc_err(err, "%s: not valid JSON", name);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sdc_err(err, "%s: expected a JSON object", name);
    }
    int rc = -1;
    const cJSON *v;

    /* types first, for every key sdc knows */
    for (const cJSON *it = root->child; it; it = it->next) {
        for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++)
            if (it->string && strcmp(it->string, key_specs[i].name) == 0 && check_type(&key_specs[i], it, name, err))
                goto done;
    }

    class_defaults(c, kind);
    const char *cls = sampler_classes[kind];

    if ((v = class_key(root, "num_train_timesteps", kind))) {
        if (v->valuedouble < 2) {
            sdc_err(err, "%s: num_train_timesteps: must be at least 2, got %g", name, v->valuedouble);
            goto done;
        }
        c->num_train_timesteps = (int)v->valuedouble;
    }
    if ((v = class_key(root, "beta_start", kind))) c->beta_start = v->valuedouble;
    if ((v = class_key(root, "beta_end", kind))) c->beta_end = v->valuedouble;
    if (!(c->beta_start >= 0 && c->beta_start < 1 && c->beta_end >= 0 && c->beta_end < 1)) {
        sdc_err(err, "%s: beta_start/beta_end: must lie in [0, 1), got %g and %g", name, c->beta_start, c->beta_end);
        goto done;
    }
    if ((v = class_key(root, "beta_schedule", kind))) {
        if (strcmp(v->valuestring, "linear") == 0) c->beta_schedule = SCHED_BETA_LINEAR;
        else if (strcmp(v->valuestring, "scaled_linear") == 0) c->beta_schedule = SCHED_BETA_SCALED_LINEAR;
        else if (strcmp(v->valuestring, "squaredcos_cap_v2") == 0) c->beta_schedule = SCHED_BETA_SQUAREDCOS_CAP_V2;
        else {
            sdc_err(err, "%s: beta_schedule: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "trained_betas", kind)) && !cJSON_IsNull(v)) {
        sdc_err(err, "%s: trained_betas: not supported (use beta_schedule)", name);
        goto done;
    }
    if ((v = class_key(root, "prediction_type", kind))) {
        if (strcmp(v->valuestring, "epsilon") == 0) c->prediction = SCHED_PRED_EPSILON;
        else if (strcmp(v->valuestring, "v_prediction") == 0) c->prediction = SCHED_PRED_V;
        else if (strcmp(v->valuestring, "sample") == 0) c->prediction = SCHED_PRED_SAMPLE;
        else {
            sdc_err(err, "%s: prediction_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
        if (c->prediction == SCHED_PRED_SAMPLE && (kind == SAMPLER_PNDM || kind == SAMPLER_EULER_A)) {
            sdc_err(err, "%s: prediction_type: \"sample\" is not supported by %s", name, cls);
            goto done;
        }
    }
    if ((v = class_key(root, "timestep_spacing", kind))) {
        if (strcmp(v->valuestring, "linspace") == 0) c->spacing = SCHED_SPACING_LINSPACE;
        else if (strcmp(v->valuestring, "leading") == 0) c->spacing = SCHED_SPACING_LEADING;
        else if (strcmp(v->valuestring, "trailing") == 0) c->spacing = SCHED_SPACING_TRAILING;
        else {
            sdc_err(err, "%s: timestep_spacing: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "steps_offset", kind))) c->steps_offset = (int)v->valuedouble;
    if ((v = class_key(root, "clip_sample", kind))) c->clip_sample = is_true(v);
    if ((v = class_key(root, "clip_sample_range", kind))) c->clip_sample_range = v->valuedouble;
    if ((v = class_key(root, "set_alpha_to_one", kind))) c->set_alpha_to_one = is_true(v);
    if (kind == SAMPLER_PNDM && !is_true(class_key(root, "skip_prk_steps", kind))) {
        sdc_err(err, "%s: skip_prk_steps: PNDM's Runge-Kutta warm-up is not supported (set it to true)", name);
        goto done;
    }
    if (is_true(class_key(root, "thresholding", kind))) {
        sdc_err(err, "%s: thresholding: dynamic thresholding is not supported", name);
        goto done;
    }
    if (is_true(class_key(root, "rescale_betas_zero_snr", kind))) {
        sdc_err(err, "%s: rescale_betas_zero_snr: not supported", name);
        goto done;
    }
    /* dpm++: the sampler's name fixes karras or not */
    if ((v = class_key(root, "use_karras_sigmas", kind)) && kind != SAMPLER_DPMPP_2M && kind != SAMPLER_DPMPP_2M_KARRAS)
        c->use_karras_sigmas = is_true(v);
    if ((v = class_key(root, "interpolation_type", kind))) {
        if (strcmp(v->valuestring, "log_linear") == 0) {
            sdc_err(err, "%s: interpolation_type: \"log_linear\" is not supported", name);
            goto done;
        }
        if (strcmp(v->valuestring, "linear") != 0) {
            sdc_err(err, "%s: interpolation_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "sigma_min", kind)) && cJSON_IsNumber(v)) {
        c->has_sigma_min = 1;
        c->sigma_min = v->valuedouble;
    }
    if ((v = class_key(root, "sigma_max", kind)) && cJSON_IsNumber(v)) {
        c->has_sigma_max = 1;
        c->sigma_max = v->valuedouble;
    }
    if ((c->has_sigma_min && !(c->sigma_min > 0)) || (c->has_sigma_max && !(c->sigma_max > 0))) {
        sdc_err(err, "%s: sigma_min/sigma_max: must be positive", name);
        goto done;
    }
    if ((v = class_key(root, "timestep_type", kind))) {
        if (strcmp(v->valuestring, "continuous") == 0) {
            sdc_err(err, "%s: timestep_type: \"continuous\" is not supported", name);
            goto done;
        }
        if (strcmp(v->valuestring, "discrete") != 0) {
            sdc_err(err, "%s: timestep_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    /* solver_order and algorithm_type are fixed by the sampler's name
     * (2M = second-order multistep DPM-Solver++); only checked here */
    if ((v = class_key(root, "solver_order", kind)) && (v->valuedouble < 1 || v->valuedouble > 3)) {
        sdc_err(err, "%s: solver_order: must be 1, 2 or 3, got %g", name, v->valuedouble);
        goto done;
    }
    if ((v = class_key(root, "algorithm_type", kind))) {
        static const char *const known[] = {"dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver", "deis"};
        int found = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) found |= strcmp(v->valuestring, known[i]) == 0;
        if (!found) {
            sdc_err(err, "%s: algorithm_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "solver_type", kind))) {
        if (strcmp(v->valuestring, "heun") == 0) c->dpm_heun = 1;
        else if (strcmp(v->valuestring, "midpoint") == 0 || strcmp(v->valuestring, "logrho") == 0 ||
                 strcmp(v->valuestring, "bh1") == 0 || strcmp(v->valuestring, "bh2") == 0)
            c->dpm_heun = 0; /* diffusers maps the last three to midpoint */
        else {
            sdc_err(err, "%s: solver_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "lower_order_final", kind))) c->lower_order_final = is_true(v);
    if ((v = class_key(root, "euler_at_final", kind))) c->euler_at_final = is_true(v);
    if (is_true(class_key(root, "use_lu_lambdas", kind))) {
        sdc_err(err, "%s: use_lu_lambdas: not supported", name);
        goto done;
    }
    if ((v = class_key(root, "final_sigmas_type", kind))) {
        if (strcmp(v->valuestring, "zero") == 0) c->final_sigma_zero = 1;
        else if (strcmp(v->valuestring, "sigma_min") == 0) c->final_sigma_zero = 0;
        else {
            sdc_err(err, "%s: final_sigmas_type: unknown value \"%s\"", name, v->valuestring);
            goto done;
        }
    }
    if ((v = class_key(root, "lambda_min_clipped", kind))) c->lambda_min_clipped = v->valuedouble;
    if ((v = class_key(root, "variance_type", kind)) && !cJSON_IsNull(v)) {
        sdc_err(err, "%s: variance_type: learned variance (\"%s\") is not supported", name, v->valuestring);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int sched_config_load(SchedConfig *c, const char *path, SamplerKind kind, SdcErr *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sdc_err(err, "%s: cannot open", path);
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) buf = xrealloc(buf, cap *= 2);
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        return sdc_err(err, "%s: read error", path);
    }
    buf[len] = 0;
    int rc = sched_config_parse(c, buf, path, kind, err);
    free(buf);
    return rc;
}

/* runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json */
static const char sd15_scheduler_config[] =
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
    " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null,"
    " \"clip_sample\": false}";

void sched_config_default(SchedConfig *c, SamplerKind kind)
{
    SdcErr err;
    int rc = sched_config_parse(c, sd15_scheduler_config, "sd15 scheduler_config.json", kind, &err);
    SDC_ASSERT(rc == 0);
}

/* ---------------------------------------------------------------- training schedule (torch float32) */

/* torch.linspace(start, end, steps, dtype=torch.float32) on CPU, bit for bit:
 * ATen's linspace kernel computes a float step, fills the first half
 * forward from start and the second half backward from end, and (AVX2
 * build, 8 floats a vector, two vectors a loop trip) does whole 16-element
 * blocks as vectors of base + k * step; the tail goes element by element.
 * That kernel is compiled with -mfma, and GCC contracts each a * b + c into
 * an FMA: hence fmaf (checked against the goldens' betas, all 1000 exact). */
static void torch_linspace_f32(float start, float end, int64_t steps, float *out)
{
    if (steps == 1) {
        out[0] = start;
        return;
    }
    const float step = (end - start) / (float)(steps - 1);
    const int64_t halfway = steps / 2;
    const int64_t nvec = steps / 16 * 16;
    for (int64_t idx = 0; idx < nvec; idx += 8) {
        float base = idx < halfway ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(steps - idx - 1), end);
        for (int k = 0; k < 8; k++) out[idx + k] = fmaf((float)k, step, base);
    }
    for (int64_t idx = nvec; idx < steps; idx++)
        out[idx] = idx < halfway ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(steps - idx - 1), end);
}

/* diffusers' betas_for_alpha_bar (cosine), in Python doubles */
static double alpha_bar_cosine(double t)
{
    const double pi = 3.141592653589793; /* math.pi */
    double c = cos((t + 0.008) / 1.008 * pi / 2);
    return c * c;
}

void sched_train_schedule(const SchedConfig *c, float *betas, float *alphas_cumprod)
{
    const int n = c->num_train_timesteps;
    switch (c->beta_schedule) {
    case SCHED_BETA_LINEAR:
        torch_linspace_f32((float)c->beta_start, (float)c->beta_end, n, betas);
        break;
    case SCHED_BETA_SCALED_LINEAR:
        torch_linspace_f32((float)pow(c->beta_start, 0.5), (float)pow(c->beta_end, 0.5), n, betas); /* beta ** 0.5 */
        for (int i = 0; i < n; i++) betas[i] = betas[i] * betas[i];
        break;
    case SCHED_BETA_SQUAREDCOS_CAP_V2:
        for (int i = 0; i < n; i++) {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            double b = 1 - alpha_bar_cosine(t2) / alpha_bar_cosine(t1);
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
        break;
    }
    /* alphas = 1.0 - betas (float32); torch.cumprod on CPU accumulates in double */
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        acc *= (double)(1.0f - betas[i]);
        alphas_cumprod[i] = (float)acc;
    }
}

/* ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 in float32 */
static void train_sigmas(const float *ac, int n, float *sig)
{
    for (int i = 0; i < n; i++) sig[i] = sqrtf((1.0f - ac[i]) / ac[i]);
}

/* ---------------------------------------------------------------- numpy helpers (float64) */

/* np.linspace(start, stop, num): i * step + start, the last one exactly stop */
static void np_linspace(double start, double stop, int num, double *out)
{
    if (num == 1) {
        out[0] = start;
        return;
    }
    double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; i++) out[i] = i * step + start;
    out[num - 1] = stop;
}

/* np.arange(start, 0, -step) for a float step: length ceil((0 - start) / -step),
 * values start + i * delta with delta = (start - step) - start, as numpy's fill
 * computes them.  Returns the length (out has room for max_len). */
static int np_arange_down(double start, double step, double *out, int max_len)
{
    double len_d = ceil((0.0 - start) / -step);
    int len = len_d > 0 ? (int)len_d : 0;
    SDC_ASSERT(len <= max_len);
    if (len > 0) out[0] = start;
    if (len > 1) out[1] = start + -step;
    double delta = len > 1 ? out[1] - out[0] : 0;
    for (int i = 2; i < len; i++) out[i] = start + i * delta;
    return len;
}

/* np.interp(x, arange(n), fp) for x in [0, n - 1] */
static double np_interp_index(double x, const float *fp, int n)
{
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    if (x == j) return fp[j];
    double slope = (double)fp[j + 1] - (double)fp[j]; /* (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]) */
    return slope * (x - j) + (double)fp[j];
}

/* diffusers' _convert_to_karras: rho = 7 between sigma_max and sigma_min */
static void karras_sigmas(double sigma_min, double sigma_max, int n, double *out)
{
    const double rho = 7.0;
    double *ramp = xmalloc(sizeof(double) * (size_t)n);
    np_linspace(0, 1, n, ramp);
    double min_inv_rho = pow(sigma_min, 1 / rho), max_inv_rho = pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; i++) out[i] = pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
    free(ramp);
}

/* diffusers' _sigma_to_t: piecewise-linear interpolation of log sigma over
 * the training timesteps.  numpy (1.x promotion) does the weight in float32
 * because log_sigmas is a float32 array; the final blend is float64. */
static double sigma_to_t(double sigma, const float *log_sigmas, int n)
{
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    int low_idx = 0; /* the last index with log_sigmas[i] <= log_sigma, else 0 */
    for (int i = 0; i < n; i++)
        if (log_sigma - (double)log_sigmas[i] >= 0) low_idx = i;
    if (low_idx > n - 2) low_idx = n - 2;
    int high_idx = low_idx + 1;
    float low = log_sigmas[low_idx], high = log_sigmas[high_idx];
    float w = (low - (float)log_sigma) / (low - high);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (double)(1.0f - w) * low_idx + (double)w * high_idx;
}

/* ---------------------------------------------------------------- timesteps (numpy) */

/* DDIMScheduler.set_timesteps: integer timesteps, descending.  Returns the count. */
static int ddim_timesteps(const SchedConfig *c, int steps, double *ts)
{
    const int N = c->num_train_timesteps;
    switch (c->spacing) {
    case SCHED_SPACING_LINSPACE: {
        double *lin = xmalloc(sizeof(double) * (size_t)steps);
        np_linspace(0, N - 1, steps, lin);
        for (int i = 0; i < steps; i++) ts[i] = nearbyint(lin[steps - 1 - i]);
        free(lin);
        return steps;
    }
    case SCHED_SPACING_LEADING: {
        int ratio = N / steps;
        for (int i = 0; i < steps; i++) ts[i] = (double)(steps - 1 - i) * ratio + c->steps_offset;
        return steps;
    }
    case SCHED_SPACING_TRAILING: {
        int len = np_arange_down(N, (double)N / steps, ts, steps + 1);
        for (int i = 0; i < len; i++) ts[i] = nearbyint(ts[i]) - 1;
        return len;
    }
    }
    return 0;
}

/* PNDMScheduler.set_timesteps with skip_prk_steps: the ascending _timesteps,
 * then PLMS's order [t_last, t_prev, t_prev, ..., t_0] (descending, the
 * second one repeated).  Returns the count (steps + 1, or 1 for one step). */
static int pndm_timesteps(const SchedConfig *c, int steps, double *ts)
{
    const int N = c->num_train_timesteps;
    double *asc = xmalloc(sizeof(double) * (size_t)(steps + 1));
    int len = steps;
    switch (c->spacing) {
    case SCHED_SPACING_LINSPACE:
        np_linspace(0, N - 1, steps, asc);
        for (int i = 0; i < steps; i++) asc[i] = nearbyint(asc[i]);
        break;
    case SCHED_SPACING_LEADING:
        for (int i = 0; i < steps; i++) asc[i] = (double)i * (N / steps) + c->steps_offset;
        break;
    case SCHED_SPACING_TRAILING: {
        double *desc = xmalloc(sizeof(double) * (size_t)(steps + 1));
        len = np_arange_down(N, (double)N / steps, desc, steps + 1);
        for (int i = 0; i < len; i++) asc[i] = nearbyint(desc[len - 1 - i]) - 1;
        free(desc);
        break;
    }
    }
    /* np.concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1] */
    double *plms = xmalloc(sizeof(double) * (size_t)(len + 1));
    int m = 0;
    for (int i = 0; i < len - 1; i++) plms[m++] = asc[i];
    if (len >= 2) plms[m++] = asc[len - 2];
    if (len >= 1) plms[m++] = asc[len - 1];
    for (int i = 0; i < m; i++) ts[i] = plms[m - 1 - i];
    free(plms);
    free(asc);
    return m;
}

/* LMS / Euler / Euler ancestral set_timesteps: float32 timesteps, descending. */
static int kdiff_timesteps(const SchedConfig *c, int steps, double *ts)
{
    const int N = c->num_train_timesteps;
    switch (c->spacing) {
    case SCHED_SPACING_LINSPACE: { /* np.linspace(..., dtype=np.float32) */
        double *lin = xmalloc(sizeof(double) * (size_t)steps);
        np_linspace(0, N - 1, steps, lin);
        for (int i = 0; i < steps; i++) ts[i] = (float)lin[steps - 1 - i];
        free(lin);
        return steps;
    }
    case SCHED_SPACING_LEADING: {
        int ratio = N / steps;
        for (int i = 0; i < steps; i++) ts[i] = (float)((double)(steps - 1 - i) * ratio) + (float)c->steps_offset;
        return steps;
    }
    case SCHED_SPACING_TRAILING: {
        int len = np_arange_down(N, (double)N / steps, ts, steps + 1);
        for (int i = 0; i < len; i++) ts[i] = (float)nearbyint(ts[i]) - 1.0f;
        return len;
    }
    }
    return 0;
}

/* DPMSolverMultistepScheduler.set_timesteps (integer, descending). */
static int dpm_timesteps(const SchedConfig *c, int steps, int last_timestep, double *ts)
{
    switch (c->spacing) {
    case SCHED_SPACING_LINSPACE: { /* linspace(0, last - 1, steps + 1).round()[::-1][:-1] */
        double *lin = xmalloc(sizeof(double) * (size_t)(steps + 1));
        np_linspace(0, last_timestep - 1, steps + 1, lin);
        for (int i = 0; i < steps; i++) ts[i] = nearbyint(lin[steps - i]);
        free(lin);
        return steps;
    }
    case SCHED_SPACING_LEADING: {
        int ratio = last_timestep / (steps + 1);
        for (int i = 0; i < steps; i++) ts[i] = (double)(steps - i) * ratio + c->steps_offset;
        return steps;
    }
    case SCHED_SPACING_TRAILING: {
        int len = np_arange_down(last_timestep, (double)c->num_train_timesteps / steps, ts, steps + 1);
        for (int i = 0; i < len; i++) ts[i] = nearbyint(ts[i]) - 1;
        return len;
    }
    }
    return 0;
}

/* ---------------------------------------------------------------- plans */

static float *plan_row(const SchedPlan *p, int i)
{
    SDC_ASSERT(i >= 0 && i < p->n_evals);
    return p->coef + (size_t)i * SCHED_NCOEF;
}

static void plan_alloc(SchedPlan *p, int n_evals, int with_sigmas)
{
    p->n_evals = n_evals;
    p->timesteps = xcalloc((size_t)n_evals, sizeof(float));
    p->in_scale = xcalloc((size_t)n_evals, sizeof(float));
    p->coef = xcalloc((size_t)n_evals * SCHED_NCOEF, sizeof(float));
    p->sigmas = with_sigmas ? xcalloc((size_t)n_evals + 1, sizeof(float)) : NULL;
}

static int plan_ddim(SchedPlan *p, const SchedConfig *c, const float *ac, int steps, double eta, SdcErr *err)
{
    const int N = c->num_train_timesteps;
    double *ts = xmalloc(sizeof(double) * (size_t)(steps + 2));
    int n = ddim_timesteps(c, steps, ts);
    plan_alloc(p, n, 0);
    const float final_alpha = c->set_alpha_to_one ? 1.0f : ac[0];
    const int ratio = N / steps; /* step() goes back num_train_timesteps // num_inference_steps */
    const float eta_f = (float)eta;
    for (int i = 0; i < n; i++) {
        int t = (int)ts[i];
        if (t < 0 || t >= N) {
            free(ts);
            return sdc_err(err, "ddim: %d steps give timestep %d, outside [0, %d)", steps, t, N);
        }
        int prev = t - ratio;
        float a_t = ac[t], a_prev = prev >= 0 ? ac[prev] : final_alpha;
        float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
        float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
        float std = eta_f * sqrtf(variance);
        float *r = plan_row(p, i);
        r[SCHED_C_ADD_X0] = sqrtf(a_t);
        r[SCHED_C_ADD_NOISE] = sqrtf(1.0f - a_t);
        r[SCHED_C_DDIM_SQRT_A] = sqrtf(a_t);
        r[SCHED_C_DDIM_SQRT_B] = sqrtf(b_t);
        r[SCHED_C_DDIM_SQRT_A_PREV] = sqrtf(a_prev);
        r[SCHED_C_DDIM_DIR] = sqrtf(1.0f - a_prev - std * std);
        r[SCHED_C_DDIM_STD] = std;
        p->timesteps[i] = (float)t;
        p->in_scale[i] = 1.0f;
    }
    free(ts);
    p->init_noise_sigma = 1.0f;
    p->noise = eta > 0 ? SCHED_NOISE_USED : SCHED_NOISE_NONE;
    p->clip_sample = c->clip_sample;
    p->clip_range = (float)c->clip_sample_range;
    return 0;
}

/* PNDM's _get_prev_sample scalars for the step t -> prev */
static void pndm_coefs(const float *ac, float final_alpha, int t, int prev, float *r)
{
    float a_t = ac[t], a_prev = prev >= 0 ? ac[prev] : final_alpha;
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    r[0] = sqrtf(a_prev / a_t);                                 /* SAMPLE */
    r[1] = a_prev - a_t;                                        /* DIFF */
    r[2] = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);     /* DENOM */
    r[3] = sqrtf(a_t);                                          /* SQRT_A */
    r[4] = sqrtf(b_t);                                          /* SQRT_B */
}

static int plan_pndm(SchedPlan *p, const SchedConfig *c, const float *ac, int steps, SdcErr *err)
{
    const int N = c->num_train_timesteps;
    double *ts = xmalloc(sizeof(double) * (size_t)(steps + 3));
    int n = pndm_timesteps(c, steps, ts);
    plan_alloc(p, n, 0);
    const float final_alpha = c->set_alpha_to_one ? 1.0f : ac[0];
    const int ratio = N / steps;
    for (int i = 0; i < n; i++) {
        int t = (int)ts[i];
        if (t < 0 || t >= N) {
            free(ts);
            return sdc_err(err, "pndm: %d steps give timestep %d, outside [0, %d)", steps, t, N);
        }
        float *r = plan_row(p, i);
        pndm_coefs(ac, final_alpha, t, t - ratio, r + SCHED_C_PNDM_SAMPLE);
        /* the redone step (PLMS's second eval, counter == 1) runs t + ratio -> t;
         * txt2img needs it at i = 1, img2img wherever it starts + 1 */
        if (t + ratio < N) pndm_coefs(ac, final_alpha, t + ratio, t, r + SCHED_C_PNDM_SAMPLE + SCHED_C_PNDM_REDO);
        else if (i == 1) {
            free(ts);
            return sdc_err(err, "pndm: %d steps redo timestep %d, outside [0, %d)", steps, t + ratio, N);
        }
        r[SCHED_C_ADD_X0] = sqrtf(ac[t]);
        r[SCHED_C_ADD_NOISE] = sqrtf(1.0f - ac[t]);
        p->timesteps[i] = (float)t;
        p->in_scale[i] = 1.0f;
    }
    free(ts);
    p->init_noise_sigma = 1.0f;
    return 0;
}

/* The 4-point Gauss-Legendre rule, exact for polynomials up to degree 7. */
static double gauss_legendre4(double a, double b, double (*f)(double, const void *), const void *ctx)
{
    const double x1 = sqrt(3.0 / 7 - 2.0 / 7 * sqrt(6.0 / 5)), x2 = sqrt(3.0 / 7 + 2.0 / 7 * sqrt(6.0 / 5));
    const double w1 = (18 + sqrt(30.0)) / 36, w2 = (18 - sqrt(30.0)) / 36;
    const double half = (b - a) / 2, mid = (a + b) / 2;
    double s = w2 * f(mid - half * x2, ctx) + w1 * f(mid - half * x1, ctx) + w1 * f(mid + half * x1, ctx) +
               w2 * f(mid + half * x2, ctx);
    return half * s;
}

typedef struct LmsBasis {
    const float *sigmas;
    int order, t, j;
} LmsBasis;

/* LMSDiscreteScheduler.get_lms_coefficient's integrand: Lagrange basis j over
 * the nodes sigmas[t - k], k < order (denominators in float32, as torch has them) */
static double lms_basis(double tau, const void *ctx)
{
    const LmsBasis *b = ctx;
    double prod = 1.0;
    for (int k = 0; k < b->order; k++) {
        if (k == b->j) continue;
        float den = b->sigmas[b->t - b->j] - b->sigmas[b->t - k];
        prod *= (tau - b->sigmas[b->t - k]) / (double)den;
    }
    return prod;
}

/* LMS, Euler and Euler ancestral share the sigma schedule (k-diffusion style). */
static int plan_kdiff(SchedPlan *p, const SchedConfig *c, const float *ac, int steps, SdcErr *err)
{
    (void)err;
    const int N = c->num_train_timesteps;
    float *tsig = xmalloc(sizeof(float) * (size_t)N);
    train_sigmas(ac, N, tsig);
    double *ts = xmalloc(sizeof(double) * (size_t)(steps + 2));
    double *sig = xmalloc(sizeof(double) * (size_t)(steps + 2));
    int n = kdiff_timesteps(c, steps, ts);
    for (int i = 0; i < n; i++) sig[i] = np_interp_index(ts[i], tsig, N);
    int karras = c->use_karras_sigmas && (c->kind == SAMPLER_LMS || c->kind == SAMPLER_EULER);
    if (karras) {
        double smin = sig[n - 1], smax = sig[0];
        if (c->kind == SAMPLER_EULER && c->has_sigma_min) smin = c->sigma_min;
        if (c->kind == SAMPLER_EULER && c->has_sigma_max) smax = c->sigma_max;
        n = steps; /* _convert_to_karras makes num_inference_steps sigmas */
        karras_sigmas(smin, smax, n, sig);
        float *log_sigmas = xmalloc(sizeof(float) * (size_t)N);
        for (int t = 0; t < N; t++) log_sigmas[t] = logf(tsig[t]);
        for (int i = 0; i < n; i++) ts[i] = sigma_to_t(sig[i], log_sigmas, N);
        free(log_sigmas);
    }
    plan_alloc(p, n, 1);
    for (int i = 0; i < n; i++) p->sigmas[i] = (float)sig[i];
    p->sigmas[n] = 0.0f;
    float max_sigma = 0;
    for (int i = 0; i <= n; i++) max_sigma = p->sigmas[i] > max_sigma ? p->sigmas[i] : max_sigma;
    p->init_noise_sigma = (c->spacing == SCHED_SPACING_LINSPACE || c->spacing == SCHED_SPACING_TRAILING)
                              ? max_sigma
                              : sqrtf(max_sigma * max_sigma + 1.0f);

    for (int i = 0; i < n; i++) {
        const float sigma = p->sigmas[i], next = p->sigmas[i + 1];
        float *r = plan_row(p, i);
        p->timesteps[i] = (float)ts[i];
        p->in_scale[i] = (float)(1.0 / (double)sqrtf(sigma * sigma + 1.0f)); /* sample / ((sigma**2 + 1) ** 0.5) */
        r[SCHED_C_ADD_X0] = 1.0f;   /* original_samples + noise * sigma */
        r[SCHED_C_ADD_NOISE] = sigma;
        const float v_out = -sigma / sqrtf(sigma * sigma + 1.0f), v_skip_div = sigma * sigma + 1.0f;
        switch (c->kind) {
        case SAMPLER_LMS: {
            int order = i + 1 < 4 ? i + 1 : 4;
            r[SCHED_C_LMS_SIGMA] = sigma;
            r[SCHED_C_LMS_V_OUT] = v_out;
            r[SCHED_C_LMS_V_SKIP_DIV] = v_skip_div;
            for (int j = 0; j < order; j++) {
                LmsBasis b = {p->sigmas, order, i, j};
                r[SCHED_C_LMS_COEF + j] = (float)gauss_legendre4(sigma, next, lms_basis, &b);
            }
            r[SCHED_C_LMS_ORDER] = (float)order;
            break;
        }
        case SAMPLER_EULER: {
            const float sigma_hat = sigma * 1.0f; /* sigma * (gamma + 1), gamma = 0 */
            r[SCHED_C_EULER_SIGMA] = sigma_hat;
            r[SCHED_C_EULER_DT] = next - sigma_hat;
            r[SCHED_C_EULER_V_OUT] = v_out;
            r[SCHED_C_EULER_V_SKIP_DIV] = v_skip_div;
            break;
        }
        case SAMPLER_EULER_A: {
            const float sf2 = sigma * sigma, st2 = next * next;
            const float sigma_up = sqrtf(st2 * (sf2 - st2) / sf2);
            const float sigma_down = sqrtf(st2 - sigma_up * sigma_up);
            r[SCHED_C_EA_SIGMA] = sigma;
            r[SCHED_C_EA_DT] = sigma_down - sigma;
            r[SCHED_C_EA_SIGMA_UP] = sigma_up;
            r[SCHED_C_EA_V_OUT] = v_out;
            r[SCHED_C_EA_V_SKIP_DIV] = v_skip_div;
            break;
        }
        default: SDC_ASSERT(!"not a k-diffusion sampler");
        }
    }
    p->noise = c->kind == SAMPLER_EULER_A ? SCHED_NOISE_USED
               : c->kind == SAMPLER_EULER ? SCHED_NOISE_DISCARDED
                                          : SCHED_NOISE_NONE;
    free(sig);
    free(ts);
    free(tsig);
    return 0;
}

/* DPM-Solver's alpha_t, sigma_t of a sigma (float32, as _sigma_to_alpha_sigma_t) */
static void dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t)
{
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
}

static float dpm_lambda(float sigma)
{
    float a, s;
    dpm_alpha_sigma(sigma, &a, &s);
    return logf(a) - logf(s);
}

static int plan_dpm(SchedPlan *p, const SchedConfig *c, const float *ac, int steps, SdcErr *err)
{
    const int N = c->num_train_timesteps;
    float *tsig = xmalloc(sizeof(float) * (size_t)N);
    train_sigmas(ac, N, tsig);

    /* lambda_min_clipped: searchsorted(flip(lambda_t), clip) timesteps are dropped from the top */
    int clipped_idx = 0;
    for (int k = 0; k < N; k++) {
        int t = N - 1 - k;
        float lambda_t = logf(sqrtf(ac[t])) - logf(sqrtf(1.0f - ac[t]));
        if ((double)lambda_t < c->lambda_min_clipped) clipped_idx++;
    }
    const int last_timestep = N - clipped_idx;
    if (last_timestep < 1) {
        free(tsig);
        return sdc_err(err, "dpm++: lambda_min_clipped %g clips every timestep", c->lambda_min_clipped);
    }

    double *ts = xmalloc(sizeof(double) * (size_t)(steps + 2));
    double *sig = xmalloc(sizeof(double) * (size_t)(steps + 2));
    int n = dpm_timesteps(c, steps, last_timestep, ts);
    if (c->use_karras_sigmas) {
        n = steps;
        karras_sigmas(tsig[0], tsig[N - 1], n, sig);
        float *log_sigmas = xmalloc(sizeof(float) * (size_t)N);
        for (int t = 0; t < N; t++) log_sigmas[t] = logf(tsig[t]);
        for (int i = 0; i < n; i++) ts[i] = nearbyint(sigma_to_t(sig[i], log_sigmas, N));
        free(log_sigmas);
    } else {
        for (int i = 0; i < n; i++) sig[i] = np_interp_index(ts[i], tsig, N);
    }
    /* a timestep past the table (leading spacing, many steps) is fine: np.interp clamps */
    plan_alloc(p, n, 1);
    for (int i = 0; i < n; i++) p->sigmas[i] = (float)sig[i];
    p->sigmas[n] = c->final_sigma_zero ? 0.0f : tsig[0]; /* sigma_min: ((1 - ac[0]) / ac[0]) ** 0.5 */
    p->init_noise_sigma = 1.0f;

    for (int i = 0; i < n; i++) {
        float *r = plan_row(p, i);
        float alpha_s0, sigma_s0, alpha_t, sigma_t;
        dpm_alpha_sigma(p->sigmas[i], &alpha_s0, &sigma_s0);
        dpm_alpha_sigma(p->sigmas[i + 1], &alpha_t, &sigma_t);
        const float lambda_s0 = logf(alpha_s0) - logf(sigma_s0);
        const float lambda_t = logf(alpha_t) - logf(sigma_t); /* +inf at a zero final sigma */
        const float h = lambda_t - lambda_s0;
        const float e = expf(-h);
        p->timesteps[i] = (float)ts[i];
        p->in_scale[i] = 1.0f;
        r[SCHED_C_ADD_X0] = alpha_s0; /* alpha_t * original_samples + sigma_t * noise */
        r[SCHED_C_ADD_NOISE] = sigma_s0;
        r[SCHED_C_DPM_ALPHA] = alpha_s0;
        r[SCHED_C_DPM_SIGMA] = sigma_s0;
        r[SCHED_C_DPM_C_SAMPLE] = sigma_t / sigma_s0;
        r[SCHED_C_DPM_C_D0] = alpha_t * (e - 1.0f);
        /* diffusers' lower_order_final: the last step is first order with a
         * zero final sigma, euler_at_final, or lower_order_final below 15 steps */
        int first_only = i == n - 1 && (c->euler_at_final || (c->lower_order_final && n < 15) || c->final_sigma_zero);
        r[SCHED_C_DPM_MAX_ORDER] = first_only ? 1.0f : 2.0f;
        if (i >= 1 && !first_only) {
            const float lambda_s1 = dpm_lambda(p->sigmas[i - 1]);
            const float h_0 = lambda_s0 - lambda_s1;
            const float r0 = h_0 / h;
            r[SCHED_C_DPM_INV_R0] = 1.0f / r0;
            r[SCHED_C_DPM_C_D1] = c->dpm_heun ? -(alpha_t * ((e - 1.0f) / h + 1.0f)) : 0.5f * (alpha_t * (e - 1.0f));
        }
    }
    p->noise = SCHED_NOISE_NONE;
    free(sig);
    free(ts);
    free(tsig);
    return 0;
}

int sched_plan(SchedPlan *p, const SchedConfig *c, int steps, double eta, SdcErr *err)
{
    memset(p, 0, sizeof *p);
    const char *name = sampler_name(c->kind);
    if (steps < 1 || steps > c->num_train_timesteps)
        return sdc_err(err, "%s: steps: %d is not in [1, %d]", name, steps, c->num_train_timesteps);
    if (!(eta >= 0 && eta <= 1e6)) return sdc_err(err, "%s: eta: %g must be >= 0", name, eta);
    if (eta != 0 && c->kind != SAMPLER_DDIM) return sdc_err(err, "%s: eta: only ddim takes eta (got %g)", name, eta);
    p->kind = c->kind;
    p->prediction = c->prediction;
    p->steps = steps;
    p->num_train_timesteps = c->num_train_timesteps;
    p->eta = eta;

    const int N = c->num_train_timesteps;
    float *betas = xmalloc(sizeof(float) * (size_t)N), *ac = xmalloc(sizeof(float) * (size_t)N);
    sched_train_schedule(c, betas, ac);
    int rc = 0;
    switch (c->kind) {
    case SAMPLER_DDIM: rc = plan_ddim(p, c, ac, steps, eta, err); break;
    case SAMPLER_PNDM: rc = plan_pndm(p, c, ac, steps, err); break;
    case SAMPLER_LMS:
    case SAMPLER_EULER:
    case SAMPLER_EULER_A: rc = plan_kdiff(p, c, ac, steps, err); break;
    case SAMPLER_DPMPP_2M:
    case SAMPLER_DPMPP_2M_KARRAS: rc = plan_dpm(p, c, ac, steps, err); break;
    default: SDC_ASSERT(!"bad sampler kind");
    }
    free(betas);
    free(ac);
    if (rc) {
        sched_plan_free(p);
        return rc;
    }
    /* The backend prints these as C constants: no inf or nan may reach it.
     * Degenerate schedules (repeated sigmas, sigma_down of a float32 square
     * root of a tiny negative) make diffusers compute inf or nan too. */
    int bad = isfinite(p->init_noise_sigma) ? -1 : 0;
    for (int i = 0; i < p->n_evals && bad < 0; i++) {
        int finite = isfinite(p->timesteps[i]) && isfinite(p->in_scale[i]) && (!p->sigmas || isfinite(p->sigmas[i]));
        for (int k = 0; k < SCHED_NCOEF; k++) finite &= isfinite(p->coef[(size_t)i * SCHED_NCOEF + k]) != 0;
        if (!finite) bad = i;
    }
    if (bad >= 0) {
        sched_plan_free(p);
        return sdc_err(err, "%s: %d steps with this config give a degenerate schedule (inf or nan at eval %d)", name,
                       steps, bad);
    }
    return 0;
}

void sched_plan_free(SchedPlan *p)
{
    free(p->timesteps);
    free(p->in_scale);
    free(p->sigmas);
    free(p->coef);
    p->timesteps = p->in_scale = p->sigmas = p->coef = NULL;
    p->n_evals = 0;
}

/* ---------------------------------------------------------------- state */

#define SCHED_HIST 4

struct SchedState {
    int64_t n;             /* floats per latent */
    int start;             /* the first eval stepped; -1 before the first step */
    int count;             /* evals stepped so far (diffusers' counter / lower_order_nums) */
    int n_hist;            /* filled entries of hist */
    float *hist[SCHED_HIST]; /* pndm: past model outputs (ets); lms: past derivatives;
                              * dpm++: hist[0] the previous x0.  hist[0] is the newest. */
    float *cur_sample;     /* pndm: the sample before PLMS's first step */
    float *tmp;            /* [n] scratch: combined model output (pndm), x0 (dpm++) */
    float *noise;          /* [n] drawn noise */
    SchedRandnFn randn;
};

SchedState *sched_state_new(const SchedPlan *p, int64_t n)
{
    SDC_ASSERT(n > 0);
    SchedState *s = xcalloc(1, sizeof *s);
    s->n = n;
    s->start = -1;
    s->randn = torch_randn;
    int hist = p->kind == SAMPLER_PNDM || p->kind == SAMPLER_LMS ? SCHED_HIST
               : p->kind == SAMPLER_DPMPP_2M || p->kind == SAMPLER_DPMPP_2M_KARRAS ? 1
                                                                                    : 0;
    for (int k = 0; k < hist; k++) s->hist[k] = xcalloc((size_t)n, sizeof(float));
    if (p->kind == SAMPLER_PNDM) s->cur_sample = xcalloc((size_t)n, sizeof(float));
    if (p->kind == SAMPLER_PNDM || hist == 1) s->tmp = xcalloc((size_t)n, sizeof(float));
    if (p->noise != SCHED_NOISE_NONE) s->noise = xcalloc((size_t)n, sizeof(float));
    return s;
}

void sched_state_free(SchedState *s)
{
    if (!s) return;
    for (int k = 0; k < SCHED_HIST; k++) free(s->hist[k]);
    free(s->cur_sample);
    free(s->tmp);
    free(s->noise);
    free(s);
}

void sched_state_set_randn(SchedState *s, SchedRandnFn fn) { s->randn = fn; }

/* Makes room for a new newest history entry (reusing the oldest buffer) and returns it. */
static float *hist_push(SchedState *s, int cap)
{
    float *oldest = s->hist[cap - 1];
    for (int k = cap - 1; k > 0; k--) s->hist[k] = s->hist[k - 1];
    s->hist[0] = oldest;
    if (s->n_hist < cap) s->n_hist++;
    return oldest;
}

/* ---------------------------------------------------------------- steps (float32, diffusers' operation order) */

static void step_ddim(const SchedPlan *p, const float *r, const float *mo, float *x, int64_t n, const float *noise,
                      float *pred_x0)
{
    const float sqrt_a = r[SCHED_C_DDIM_SQRT_A], sqrt_b = r[SCHED_C_DDIM_SQRT_B];
    const float sqrt_a_prev = r[SCHED_C_DDIM_SQRT_A_PREV], dir = r[SCHED_C_DDIM_DIR], std = r[SCHED_C_DDIM_STD];
    const float lo = -p->clip_range, hi = p->clip_range;
    for (int64_t k = 0; k < n; k++) {
        float x0, eps;
        switch (p->prediction) {
        case SCHED_PRED_EPSILON:
            x0 = (x[k] - sqrt_b * mo[k]) / sqrt_a;
            eps = mo[k];
            break;
        case SCHED_PRED_SAMPLE:
            x0 = mo[k];
            eps = (x[k] - sqrt_a * x0) / sqrt_b;
            break;
        default: /* v_prediction */
            x0 = sqrt_a * x[k] - sqrt_b * mo[k];
            eps = sqrt_a * mo[k] + sqrt_b * x[k];
            break;
        }
        if (p->clip_sample) x0 = x0 < lo ? lo : x0 > hi ? hi : x0;
        if (pred_x0) pred_x0[k] = x0;
        float prev = sqrt_a_prev * x0 + dir * eps;
        if (noise) prev = prev + std * noise[k];
        x[k] = prev;
    }
}

static void step_pndm(const SchedPlan *p, SchedState *s, const float *r, const float *mo, float *x, int64_t n)
{
    const int counter = s->count;
    const int redo = counter == 1; /* PLMS's second eval redoes the first step from its start sample */
    if (!redo) memcpy(hist_push(s, SCHED_HIST), mo, sizeof(float) * (size_t)n);
    float *const *e = s->hist; /* e[0] = ets[-1], e[1] = ets[-2], ... */
    const float *sample = x;
    const float *m = s->tmp;
    float *comb = s->tmp;
    if (s->n_hist == 1 && counter == 0) {
        m = mo;
        memcpy(s->cur_sample, x, sizeof(float) * (size_t)n);
    } else if (s->n_hist == 1 && counter == 1) {
        for (int64_t k = 0; k < n; k++) comb[k] = (mo[k] + e[0][k]) / 2.0f;
        sample = s->cur_sample;
    } else if (s->n_hist == 2) {
        for (int64_t k = 0; k < n; k++) comb[k] = (3.0f * e[0][k] - e[1][k]) / 2.0f;
    } else if (s->n_hist == 3) {
        for (int64_t k = 0; k < n; k++) comb[k] = (23.0f * e[0][k] - 16.0f * e[1][k] + 5.0f * e[2][k]) / 12.0f;
    } else {
        const float c24 = (float)(1.0 / 24.0);
        for (int64_t k = 0; k < n; k++)
            comb[k] = c24 * (55.0f * e[0][k] - 59.0f * e[1][k] + 37.0f * e[2][k] - 9.0f * e[3][k]);
    }
    const float *set = r + SCHED_C_PNDM_SAMPLE + (redo ? SCHED_C_PNDM_REDO : 0);
    const float sample_coef = set[0], diff = set[1], denom = set[2], sqrt_a = set[3], sqrt_b = set[4];
    SDC_ASSERT(denom != 0); /* a redo set that could not be computed (timestep past the table) */
    for (int64_t k = 0; k < n; k++) {
        float mk = m[k];
        if (p->prediction == SCHED_PRED_V) mk = sqrt_a * mk + sqrt_b * sample[k];
        x[k] = sample_coef * sample[k] - diff * mk / denom;
    }
}

/* x0 of the k-diffusion samplers: epsilon, v (c_out, c_skip) or the output itself */
static inline float kdiff_x0(SchedPrediction pred, float sigma, float v_out, float v_skip_div, float xk, float mk)
{
    switch (pred) {
    case SCHED_PRED_EPSILON: return xk - sigma * mk;
    case SCHED_PRED_V: return mk * v_out + xk / v_skip_div;
    default: return mk;
    }
}

static void step_lms(const SchedPlan *p, SchedState *s, int i, const float *r, const float *mo, float *x, int64_t n,
                     float *pred_x0)
{
    const float sigma = r[SCHED_C_LMS_SIGMA];
    float *d_new = hist_push(s, SCHED_HIST);
    /* zip(coeffs, reversed(derivatives)): as many terms as the shorter list */
    int order = (int)r[SCHED_C_LMS_ORDER];
    int terms = order < s->n_hist ? order : s->n_hist;
    SDC_ASSERT(order == (i + 1 < 4 ? i + 1 : 4));
    const float *cf = r + SCHED_C_LMS_COEF;
    for (int64_t k = 0; k < n; k++) {
        float x0 = kdiff_x0(p->prediction, sigma, r[SCHED_C_LMS_V_OUT], r[SCHED_C_LMS_V_SKIP_DIV], x[k], mo[k]);
        if (pred_x0) pred_x0[k] = x0;
        d_new[k] = (x[k] - x0) / sigma;
        float acc = cf[0] * s->hist[0][k];
        for (int j = 1; j < terms; j++) acc = acc + cf[j] * s->hist[j][k];
        x[k] = x[k] + acc;
    }
}

static void step_euler(const SchedPlan *p, const float *r, const float *mo, float *x, int64_t n, float *pred_x0)
{
    const float sigma_hat = r[SCHED_C_EULER_SIGMA], dt = r[SCHED_C_EULER_DT];
    for (int64_t k = 0; k < n; k++) {
        float x0 = kdiff_x0(p->prediction, sigma_hat, r[SCHED_C_EULER_V_OUT], r[SCHED_C_EULER_V_SKIP_DIV], x[k], mo[k]);
        if (pred_x0) pred_x0[k] = x0;
        float d = (x[k] - x0) / sigma_hat;
        x[k] = x[k] + d * dt;
    }
}

static void step_euler_a(const SchedPlan *p, const float *r, const float *mo, float *x, int64_t n,
                         const float *noise, float *pred_x0)
{
    const float sigma = r[SCHED_C_EA_SIGMA], dt = r[SCHED_C_EA_DT], sigma_up = r[SCHED_C_EA_SIGMA_UP];
    for (int64_t k = 0; k < n; k++) {
        float x0 = kdiff_x0(p->prediction, sigma, r[SCHED_C_EA_V_OUT], r[SCHED_C_EA_V_SKIP_DIV], x[k], mo[k]);
        if (pred_x0) pred_x0[k] = x0;
        float d = (x[k] - x0) / sigma;
        float prev = x[k] + d * dt;
        x[k] = prev + noise[k] * sigma_up;
    }
}

static void step_dpm(const SchedPlan *p, SchedState *s, const float *r, const float *mo, float *x, int64_t n,
                     float *pred_x0)
{
    const float alpha = r[SCHED_C_DPM_ALPHA], sigma = r[SCHED_C_DPM_SIGMA];
    const float c_sample = r[SCHED_C_DPM_C_SAMPLE], c_d0 = r[SCHED_C_DPM_C_D0], c_d1 = r[SCHED_C_DPM_C_D1];
    const float inv_r0 = r[SCHED_C_DPM_INV_R0];
    const int second = s->count >= 1 && r[SCHED_C_DPM_MAX_ORDER] == 2.0f;
    float *x0 = s->tmp, *prev_x0 = s->hist[0];
    for (int64_t k = 0; k < n; k++) {
        switch (p->prediction) {
        case SCHED_PRED_EPSILON: x0[k] = (x[k] - sigma * mo[k]) / alpha; break;
        case SCHED_PRED_V: x0[k] = alpha * x[k] - sigma * mo[k]; break;
        default: x0[k] = mo[k]; break;
        }
        if (pred_x0) pred_x0[k] = x0[k];
        if (second) {
            float d1 = inv_r0 * (x0[k] - prev_x0[k]);
            x[k] = c_sample * x[k] - c_d0 * x0[k] - c_d1 * d1;
        } else {
            x[k] = c_sample * x[k] - c_d0 * x0[k];
        }
    }
    /* this x0 becomes model_outputs[-2] of the next step */
    s->tmp = prev_x0;
    s->hist[0] = x0;
    s->n_hist = 1;
}

void sched_step_with_noise(const SchedPlan *p, SchedState *s, int i, const float *model_out, float *x, int64_t n,
                           const float *noise, float *pred_x0)
{
    SDC_ASSERT(n == s->n);
    SDC_ASSERT(i >= 0 && i < p->n_evals);
    if (s->start < 0) s->start = i;
    SDC_ASSERT(i == s->start + s->count); /* evals in order */
    SDC_ASSERT((noise != NULL) == (p->noise == SCHED_NOISE_USED));
    const float *r = plan_row(p, i);
    switch (p->kind) {
    case SAMPLER_DDIM: step_ddim(p, r, model_out, x, n, noise, pred_x0); break;
    case SAMPLER_PNDM: step_pndm(p, s, r, model_out, x, n); break;
    case SAMPLER_LMS: step_lms(p, s, i, r, model_out, x, n, pred_x0); break;
    case SAMPLER_EULER: step_euler(p, r, model_out, x, n, pred_x0); break;
    case SAMPLER_EULER_A: step_euler_a(p, r, model_out, x, n, noise, pred_x0); break;
    case SAMPLER_DPMPP_2M:
    case SAMPLER_DPMPP_2M_KARRAS: step_dpm(p, s, r, model_out, x, n, pred_x0); break;
    default: SDC_ASSERT(!"bad sampler kind");
    }
    s->count++;
}

void sched_step(const SchedPlan *p, SchedState *s, int i, const float *model_out, float *x, int64_t n,
                struct TorchGen *noise_gen)
{
    const float *noise = NULL;
    if (p->noise == SCHED_NOISE_USED) {
        SDC_ASSERT(noise_gen != NULL);
        s->randn(noise_gen, s->noise, n);
        noise = s->noise;
    } else if (p->noise == SCHED_NOISE_DISCARDED && noise_gen) {
        s->randn(noise_gen, s->noise, n); /* keeps the generator where diffusers leaves it */
    }
    sched_step_with_noise(p, s, i, model_out, x, n, noise, NULL);
}

/* ---------------------------------------------------------------- img2img */

int sched_img2img_start(const SchedPlan *p, double strength)
{
    /* StableDiffusionImg2ImgPipeline.get_timesteps; every sampler here has order 1 */
    int init_timestep = (int)(p->steps * strength);
    if (init_timestep > p->steps) init_timestep = p->steps;
    int t_start = p->steps - init_timestep;
    return t_start > 0 ? t_start : 0;
}

void sched_add_noise(const SchedPlan *p, int i, const float *x0, const float *noise, float *x, int64_t n)
{
    const float *r = plan_row(p, i);
    const float a = r[SCHED_C_ADD_X0], b = r[SCHED_C_ADD_NOISE];
    for (int64_t k = 0; k < n; k++) x[k] = a * x0[k] + b * noise[k];
}
