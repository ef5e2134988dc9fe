/* scheduler.h — the samplers of diffusers 0.27.2, split into a plan and a step.
 *
 * sdc compiles a pipeline for one sampler and one step count.  sched_plan
 * runs at compile time: it computes everything diffusers' set_timesteps and
 * step compute from the config alone (timesteps, sigmas, every per-step
 * coefficient) into plain float arrays that the C backend prints as
 * constants.  sched_step runs in the generated executable: it applies step i
 * to a latent with those precomputed numbers and only elementwise float32
 * arithmetic, in the order torch evaluates diffusers' expressions, so that
 * results agree with diffusers to float32 rounding.
 *
 * Samplers (diffusers class):
 *   ddim             DDIMScheduler (eta = 0, or eta > 0: draws noise each step)
 *   pndm             PNDMScheduler with skip_prk_steps (PLMS; steps + 1 evals)
 *   lms              LMSDiscreteScheduler, order 4
 *   euler            EulerDiscreteScheduler
 *   euler_a          EulerAncestralDiscreteScheduler (draws noise each step)
 *   dpmpp_2m         DPMSolverMultistepScheduler, dpmsolver++, order 2
 *   dpmpp_2m_karras  the same with use_karras_sigmas = True
 *
 * Options a config may set but sdc does not implement (thresholding,
 * trained_betas, rescale_betas_zero_snr, PNDM's PRK steps, ...) are refused
 * by sched_config_load with a one-line error naming the file and the key. */
#ifndef SDC_SCHEDULER_H
#define SDC_SCHEDULER_H

#include <stdint.h>

#include "err.h"

struct TorchGen; /* runtime/rng.h */

typedef enum SamplerKind {
    SAMPLER_DDIM,
    SAMPLER_PNDM,
    SAMPLER_LMS,
    SAMPLER_EULER,
    SAMPLER_EULER_A,
    SAMPLER_DPMPP_2M,
    SAMPLER_DPMPP_2M_KARRAS,
    SAMPLER_COUNT
} SamplerKind;

/* "ddim", "pndm", "lms", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras".
 * Returns 0, or -1 for an unknown name. */
int sampler_from_name(const char *name, SamplerKind *k);
const char *sampler_name(SamplerKind k);
/* The "_class_name" of a scheduler_config.json -> the sampler it describes
 * (DPMSolverMultistepScheduler -> dpmpp_2m).  -1 if sdc has no such sampler. */
int sampler_from_class_name(const char *cls, SamplerKind *k);

typedef enum SchedPrediction {
    SCHED_PRED_EPSILON,
    SCHED_PRED_V,      /* "v_prediction" */
    SCHED_PRED_SAMPLE, /* the model predicts x0 (not for pndm, euler_a) */
} SchedPrediction;

typedef enum SchedBetaSchedule {
    SCHED_BETA_LINEAR,
    SCHED_BETA_SCALED_LINEAR,
    SCHED_BETA_SQUAREDCOS_CAP_V2,
} SchedBetaSchedule;

typedef enum SchedSpacing {
    SCHED_SPACING_LINSPACE,
    SCHED_SPACING_LEADING,
    SCHED_SPACING_TRAILING,
} SchedSpacing;

/* A scheduler config resolved the way diffusers' <Class>.from_config(file)
 * resolves it: keys the sampler's class accepts come from the file, the
 * others are that class's defaults (so a missing timestep_spacing is
 * "leading" for ddim/pndm and "linspace" for the rest). */
typedef struct SchedConfig {
    SamplerKind kind;
    int num_train_timesteps;
    double beta_start, beta_end;
    SchedBetaSchedule beta_schedule;
    SchedPrediction prediction;
    SchedSpacing spacing;
    int steps_offset;
    int set_alpha_to_one;     /* ddim, pndm: the alpha before step 0 is 1 (else alphas_cumprod[0]) */
    int clip_sample;          /* ddim: clamp x0 to [-clip_sample_range, clip_sample_range] */
    double clip_sample_range;
    int use_karras_sigmas;    /* lms, euler (from the file); dpm++ (from the kind) */
    int has_sigma_min, has_sigma_max; /* euler karras: the config's sigma_min/max are set */
    double sigma_min, sigma_max;
    int dpm_heun;             /* dpm++: solver_type "heun" (else midpoint) */
    int lower_order_final;    /* dpm++: first order on the last step when < 15 steps */
    int euler_at_final;       /* dpm++: first order on the last step always */
    int final_sigma_zero;     /* dpm++: final_sigmas_type "zero" (else "sigma_min") */
    double lambda_min_clipped; /* dpm++: -INFINITY unless the file sets it */
} SchedConfig;

/* Reads a diffusers scheduler_config.json for the given sampler.  Wrong JSON
 * types, unknown values and unsupported options give one line naming the
 * file and the key: `PATH: beta_schedule: unknown value "foo"`. */
int sched_config_load(SchedConfig *c, const char *path, SamplerKind kind, SdcErr *err);
/* The same from JSON text; name is what messages call it. */
int sched_config_parse(SchedConfig *c, const char *json, const char *name, SamplerKind kind, SdcErr *err);
/* Stable Diffusion 1.5's scheduler_config.json resolved for the sampler. */
void sched_config_default(SchedConfig *c, SamplerKind kind);

/* Slots of a plan's per-eval coefficient row (SchedPlan.coef[i * SCHED_NCOEF + slot]).
 * Slots 0-1 mean the same for every sampler; the rest depend on the kind.
 * Every slot holds the float32 value torch computes for that scalar. */
enum {
    /* img2img: add_noise(x0, noise, timesteps[i]) = c[ADD_X0] * x0 + c[ADD_NOISE] * noise */
    SCHED_C_ADD_X0 = 0,
    SCHED_C_ADD_NOISE = 1,

    /* ddim */
    SCHED_C_DDIM_SQRT_A = 2,  /* alphas_cumprod[t] ** 0.5 */
    SCHED_C_DDIM_SQRT_B,      /* (1 - alphas_cumprod[t]) ** 0.5 */
    SCHED_C_DDIM_SQRT_A_PREV, /* alpha_prod_t_prev ** 0.5 */
    SCHED_C_DDIM_DIR,         /* (1 - alpha_prod_t_prev - std_dev_t ** 2) ** 0.5 */
    SCHED_C_DDIM_STD,         /* std_dev_t = eta * variance ** 0.5 (noise factor) */

    /* pndm: one set for the usual step (t -> t - ratio) and one for the
     * step PLMS redoes at its second eval (t + ratio -> t, from the first sample) */
    SCHED_C_PNDM_SAMPLE = 2,  /* (alpha_prod_t_prev / alpha_prod_t) ** 0.5 */
    SCHED_C_PNDM_DIFF,        /* alpha_prod_t_prev - alpha_prod_t */
    SCHED_C_PNDM_DENOM,       /* alpha_prod_t * beta_prod_t_prev ** 0.5 + (a_t * b_t * a_prev) ** 0.5 */
    SCHED_C_PNDM_SQRT_A,      /* alpha_prod_t ** 0.5 (v_prediction) */
    SCHED_C_PNDM_SQRT_B,      /* beta_prod_t ** 0.5 (v_prediction) */
    SCHED_C_PNDM_REDO = 5,    /* offset of the second set: SCHED_C_PNDM_SAMPLE + REDO, ... */

    /* lms */
    SCHED_C_LMS_SIGMA = 2,    /* sigmas[i] */
    SCHED_C_LMS_V_OUT,        /* -sigma / (sigma ** 2 + 1) ** 0.5 */
    SCHED_C_LMS_V_SKIP_DIV,   /* sigma ** 2 + 1 */
    SCHED_C_LMS_COEF,         /* 4 slots: integral of the Lagrange basis j (newest derivative first) */
    SCHED_C_LMS_ORDER = SCHED_C_LMS_COEF + 4, /* min(i + 1, 4): coefficients computed at i */

    /* euler */
    SCHED_C_EULER_SIGMA = 2,  /* sigma_hat = sigmas[i] (s_churn = 0) */
    SCHED_C_EULER_DT,         /* sigmas[i + 1] - sigma_hat */
    SCHED_C_EULER_V_OUT,      /* -sigma / (sigma ** 2 + 1) ** 0.5 */
    SCHED_C_EULER_V_SKIP_DIV, /* sigma ** 2 + 1 */

    /* euler_a */
    SCHED_C_EA_SIGMA = 2,     /* sigmas[i] */
    SCHED_C_EA_DT,            /* sigma_down - sigma */
    SCHED_C_EA_SIGMA_UP,      /* noise factor */
    SCHED_C_EA_V_OUT,
    SCHED_C_EA_V_SKIP_DIV,

    /* dpm++ 2m */
    SCHED_C_DPM_ALPHA = 2,    /* alpha_t of sigmas[i]: 1 / (sigma ** 2 + 1) ** 0.5 */
    SCHED_C_DPM_SIGMA,        /* sigma_t of sigmas[i]: sigma * alpha_t */
    SCHED_C_DPM_C_SAMPLE,     /* sigma_t(i + 1) / sigma_t(i) */
    SCHED_C_DPM_C_D0,         /* alpha_t(i + 1) * (exp(-h) - 1) */
    SCHED_C_DPM_C_D1,         /* midpoint: 0.5 * C_D0; heun: -alpha_t(i + 1) * ((exp(-h) - 1) / h + 1) */
    SCHED_C_DPM_INV_R0,       /* 1 / r0 = h / h_0 (0 at i = 0) */
    SCHED_C_DPM_MAX_ORDER,    /* 1 where diffusers forces a first-order step (last step), else 2 */

    SCHED_NCOEF = 12
};

/* Whether and how a sampler's step draws noise from the generator. */
typedef enum SchedNoise {
    SCHED_NOISE_NONE,      /* no draw */
    SCHED_NOISE_USED,      /* euler_a, ddim with eta > 0 */
    SCHED_NOISE_DISCARDED, /* euler: diffusers draws randn every step and, with s_churn = 0, ignores it */
} SchedNoise;

/* Everything the executable needs, as plain data (no pointers into other
 * structures; every array owned by the plan). */
typedef struct SchedPlan {
    SamplerKind kind;
    SchedPrediction prediction;
    int steps;              /* num_inference_steps asked for */
    int n_evals;            /* model evaluations (pndm: steps + 1) */
    int num_train_timesteps;
    float init_noise_sigma; /* initial latents = randn * init_noise_sigma */
    SchedNoise noise;
    double eta;             /* ddim */
    int clip_sample;        /* ddim: clamp x0 to [-clip_range, clip_range] */
    float clip_range;
    float *timesteps;       /* [n_evals] the timestep passed to the UNet */
    float *in_scale;        /* [n_evals] scale_model_input: unet input = x * in_scale[i] */
    float *sigmas;          /* [n_evals + 1] lms/euler/euler_a/dpm++ sigmas (last = final); NULL for ddim/pndm */
    float *coef;            /* [n_evals][SCHED_NCOEF] per-eval coefficients, slots above */
} SchedPlan;

/* The training noise schedule of the config, as diffusers' __init__ builds it
 * in torch float32: betas[N] and alphas_cumprod[N] (N = num_train_timesteps). */
void sched_train_schedule(const SchedConfig *c, float *betas, float *alphas_cumprod);

/* Builds the plan for `steps` inference steps.  eta is used by ddim only. */
int sched_plan(SchedPlan *p, const SchedConfig *c, int steps, double eta, SdcErr *err);
void sched_plan_free(SchedPlan *p);

/* The history a multistep sampler keeps between evals (PNDM's past model
 * outputs, LMS's past derivatives, DPM++'s previous x0), for latents of n
 * floats, plus a buffer for drawn noise. */
typedef struct SchedState SchedState;
SchedState *sched_state_new(const SchedPlan *p, int64_t n);
void sched_state_free(SchedState *s);

/* The draw sched_step uses: torch_randn by default; torch_randn_avx2 gives
 * the bits torch produces on an AVX2 machine (what the pipeline goldens used). */
typedef void (*SchedRandnFn)(struct TorchGen *g, float *out, int64_t n);
void sched_state_set_randn(SchedState *s, SchedRandnFn fn);

/* x <- the sample after eval i, given the (already guided) model output for
 * that eval.  Evals must come in order, starting at 0 or at
 * sched_img2img_start's index.  noise_gen supplies the noise euler_a and ddim
 * (eta > 0) add, drawn exactly when and with the shape diffusers draws it
 * (n floats per step; euler draws and discards as diffusers does); it may
 * be NULL when p->noise is SCHED_NOISE_NONE (and for euler). */
void sched_step(const SchedPlan *p, SchedState *s, int i, const float *model_out, float *x, int64_t n,
                struct TorchGen *noise_gen);
/* The same with the noise given (n floats; NULL unless p->noise is
 * SCHED_NOISE_USED).  pred_x0, if not NULL, receives the predicted original
 * sample (diffusers' pred_original_sample; not written for pndm). */
void sched_step_with_noise(const SchedPlan *p, SchedState *s, int i, const float *model_out, float *x,
                           int64_t n, const float *noise, float *pred_x0);

/* img2img (diffusers' get_timesteps): the first eval for a strength in
 * [0, 1].  Equal to n_evals when the strength leaves no step to run (the
 * caller must refuse that). */
int sched_img2img_start(const SchedPlan *p, double strength);
/* add_noise(x0, noise, timesteps[i]): the img2img starting latents. */
void sched_add_noise(const SchedPlan *p, int i, const float *x0, const float *noise, float *x, int64_t n);

#endif
