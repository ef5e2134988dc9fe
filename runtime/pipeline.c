/* pipeline.c — pipeline_main: the generation loop of every compiled executable.
 *
 * It does what diffusers 0.27's StableDiffusionPipeline (and, with
 * --init-image, StableDiffusionImg2ImgPipeline) does on CPU, in the same
 * order and float32 arithmetic, so that a seed gives diffusers' latents:
 *
 *   1. tokens of [negative, prompt] (only [prompt] when guidance <= 1);
 *   2. text encoder -> embeddings; the UNet's encoder_hidden_states are the
 *      negative's repeated B times, then the prompt's repeated B times
 *      (B = images per prompt, diffusers' num_images_per_prompt);
 *   3. one TorchGen seeded with --seed gives, in this order:
 *        text-to-image: latents = randn([B, C, h, w]) * init_noise_sigma;
 *        img2img: e = randn([1, C, h, w]) for latent_dist.sample() of the
 *          one encoded image, x0 = scaling_factor * (mean + exp(0.5 * logvar) * e)
 *          repeated B times, then noise = randn([B, C, h, w]) and
 *          latents = add_noise(x0, noise, timesteps[start]);
 *        then whatever the sampler draws at each step (sched_step);
 *   4. for each eval i: UNet(cat([x] * 2) * in_scale[i], timesteps[i], ehs),
 *      guided = uncond + guidance * (cond - uncond), x = sched_step(...);
 *   5. VAE decoder(x / scaling_factor) -> [-1, 1] -> RGB bytes -> PNG.
 *
 * A graph whose compiled batch is smaller than the rows to process (a
 * text encoder of batch 1 for [negative, prompt], a UNet of batch B under
 * guidance) is called once per slice of rows.  Everything is computed by
 * the generated graphs and elementwise loops here; no result depends on
 * the thread count. */
#include "pipeline.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsutil.h"
#include "image.h"
#include "kernels.h"
#include "pipeline_internal.h"
#include "progress.h"
#include "rng.h"
#include "safetensors.h"
#include "tokenizer.h"

void pipeline_weights_id_str(uint64_t id, char buf[32]) { snprintf(buf, 32, "%016llx", (unsigned long long)id); }

/* Everything one pipeline_main call holds: weights, tokenizer, buffers. */
typedef struct Runner {
    const SdcPipeline *p;
    const PipelineArgs *a;
    StFile weights;
    Tokenizer *tok;
    SchedRandnFn randn;    /* torch_randn_avx2, or torch_randn with SDC_RNG=scalar */
    int cfg;               /* classifier-free guidance */
    int rows;              /* text rows: 2 ([negative, prompt]) with guidance, else 1 */
    int B;                 /* images per generation */
    int64_t n_lat;         /* C * h * w */
    int64_t n_img;         /* 3 * H * W */
    int64_t n_emb;         /* seq_len * text_dim */
    int te_batch, unet_batch, dec_batch, enc_batch; /* rows per call of each graph */
    int start;             /* first eval (img2img: from --strength) */
    int progress;          /* draw the bar */
    uint8_t *arena;        /* shared by the graphs, which run one at a time */
    size_t arena_bytes;
    int32_t *ids32;        /* [rows][L] from the tokenizer */
    int64_t *ids;          /* [rows][L] text encoder input */
    float *emb;            /* [rows][L][D] */
    float *ehs;            /* [rows * B][L][D] */
    float *x;              /* [B][n_lat] latents */
    float *unet_in;        /* [rows * B][n_lat] */
    float *unet_t;         /* [rows * B] */
    float *unet_out;       /* [rows * B][n_lat] */
    float *guided;         /* [B][n_lat] */
    float *dec_in;         /* [B][n_lat] */
    float *dec_out;        /* [B][n_img] */
    uint8_t *rgb;          /* [B][H][W][3] */
    uint8_t *init_rgb;     /* [H][W][3] --init-image */
    float *enc_in;         /* [enc_batch][n_img] */
    float *enc_mean, *enc_logvar; /* [enc_batch][n_lat] */
    float *x0;             /* [B][n_lat] img2img clean latents */
    float *noise;          /* [B][n_lat] img2img noise (and [n_lat] sample draw) */
    double t_entry;        /* rt_now() when pipeline_main started */
    double ready;          /* seconds from t_entry to the first UNet call; < 0 before */
    PipelineTimes times;
} Runner;

/* ---- set-up ------------------------------------------------------------- */

static const char *prog_name(int argc, char **argv)
{
    if (argc < 1 || !argv[0] || !argv[0][0]) return "sdc-pipeline";
    const char *s = strrchr(argv[0], '/');
    return s ? s + 1 : argv[0];
}

/* Checks that graph g takes nin inputs and gives nout outputs of in_row[k]
 * and out_row[k] elements per batch row, and finds its batch (rows per
 * call), which must divide `rows` (rows <= 0: any batch).  A mismatch is a
 * compiler bug, reported rather than crashed on. */
static int graph_check(const SdcGraphInfo *g, const char *what, int nin, const int64_t *in_row, int nout,
                       const int64_t *out_row, int rows, int *batch, SdcErr *err)
{
    if (!g->run) return sdc_err(err, "this executable has no %s", what);
    if (g->nin != nin || g->nout != nout)
        return sdc_err(err, "%s: %d inputs and %d outputs, the pipeline needs %d and %d", what, g->nin, g->nout, nin,
                       nout);
    int64_t b = in_row[0] > 0 && g->in_numel[0] % in_row[0] == 0 ? g->in_numel[0] / in_row[0] : 0;
    if (b < 1 || b > 1024 || (rows > 0 && rows % b != 0))
        return sdc_err(err, "%s: input 0 has %lld elements, not a batch of rows of %lld that divides %d", what,
                       (long long)g->in_numel[0], (long long)in_row[0], rows);
    for (int k = 0; k < nin; k++)
        if (in_row[k] > 0 && g->in_numel[k] != b * in_row[k]) /* in_row 0: one value per call (the step) */
            return sdc_err(err, "%s: input %d has %lld elements, expected %lld", what, k, (long long)g->in_numel[k],
                           (long long)(b * in_row[k]));
    for (int k = 0; k < nout; k++)
        if (g->out_numel[k] != b * out_row[k])
            return sdc_err(err, "%s: output %d has %lld elements, expected %lld", what, k,
                           (long long)g->out_numel[k], (long long)(b * out_row[k]));
    *batch = (int)b;
    return 0;
}

static int check_graphs(Runner *r, SdcErr *err)
{
    const SdcPipeline *p = r->p;
    const int64_t L = p->seq_len;
    int64_t te_in[] = {L}, te_out[] = {r->n_emb};
    int64_t un_in[] = {r->n_lat, 1, r->n_emb, 0}, un_out[] = {r->n_lat};
    int64_t de_in[] = {r->n_lat}, de_out[] = {r->n_img};
    int64_t en_in[] = {r->n_img}, en_out[] = {r->n_lat, r->n_lat};
    /* a UNet compiled with fold-time-embedding has a 4th input: the step index (one i64) */
    if (p->unet.nin == 4 && p->unet.in_numel[3] != 1)
        return sdc_err(err, "unet: input 3 (the step index) must have one element");
    if (graph_check(&p->text_encoder, "text encoder", 1, te_in, 1, te_out, r->rows, &r->te_batch, err) ||
        graph_check(&p->unet, "unet", p->unet.nin == 4 ? 4 : 3, un_in, 1, un_out, r->rows * r->B, &r->unet_batch, err) ||
        graph_check(&p->vae_decoder, "vae decoder", 1, de_in, 1, de_out, r->B, &r->dec_batch, err))
        return -1;
    if (r->a->init_image) {
        if (!p->vae_encoder.run)
            return sdc_err(err, "--init-image: this executable was compiled without a VAE encoder");
        if (graph_check(&p->vae_encoder, "vae encoder", 1, en_in, 2, en_out, 0, &r->enc_batch, err)) return -1;
    }
    return 0;
}

/* The output file can be made: its directory exists and is writable and the
 * path is not a directory.  Checked before any work so that a typo does not
 * cost a whole generation. */
static int check_output_path(const char *flag, const char *path, SdcErr *err)
{
    if (path_is_dir(path)) return sdc_err(err, "%s: %s is a directory", flag, path);
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int rc = 0;
    if (!path_is_dir(dir)) rc = sdc_err(err, "%s: cannot write %s: directory %s does not exist", flag, path, dir);
    else if (access(dir, W_OK) != 0)
        rc = sdc_err(err, "%s: cannot write %s: directory %s is not writable (%s)", flag, path, dir, strerror(errno));
    free(copy);
    return rc;
}

/* SDC_RNG: unset or "avx2" -> torch_randn_avx2; "scalar" -> torch_randn. */
static int pick_randn(SchedRandnFn *fn, SdcErr *err)
{
    const char *v = getenv("SDC_RNG");
    if (!v || !v[0] || !strcmp(v, "avx2")) *fn = torch_randn_avx2;
    else if (!strcmp(v, "scalar")) *fn = torch_randn;
    else return sdc_err(err, "SDC_RNG: unknown value \"%s\" (avx2 or scalar)", v);
    return 0;
}

static int open_weights(Runner *r, const char *argv0, SdcErr *err)
{
    const SdcPipeline *p = r->p;
    int rc;
    if (r->a->weights) {
        rc = st_open(&r->weights, r->a->weights, err);
    } else if (p->embedded_weights) {
        rc = st_open_memory(&r->weights, p->embedded_weights, (size_t)p->embedded_size, "<embedded weights>", err);
    } else {
        /* next to the executable, whatever directory it was started from */
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
        if (n > 0) exe[n] = 0;
        else snprintf(exe, sizeof exe - 16, "%s", argv0 ? argv0 : "sdc-pipeline");
        strcat(exe, ".weights");
        rc = st_open(&r->weights, exe, err);
        if (rc) sdc_err_prefix(err, "no --weights given and the default failed");
    }
    if (rc) return -1;

    const char *name = r->weights.path;
    char want[32];
    pipeline_weights_id_str(p->weights_id, want);
    const char *got = st_meta(&r->weights, "sdc.weights_id");
    if (!got) return sdc_err(err, "%s: sdc.weights_id: missing (not a weights file made by sdc)", name);
    if (strcmp(got, want) != 0)
        return sdc_err(err, "%s: sdc.weights_id: \"%s\" is not this executable's \"%s\" (weights of another build?)",
                       name, got, want);

    static const char *const keys[] = {"sdc.vocab_json", "sdc.merges_txt", "sdc.pad_token", "sdc.max_length"};
    const char *vals[4];
    for (int k = 0; k < 4; k++)
        if (!(vals[k] = st_meta(&r->weights, keys[k]))) return sdc_err(err, "%s: %s: missing", name, keys[k]);
    char *end;
    long max_length = strtol(vals[3], &end, 10);
    if (end == vals[3] || *end || max_length != p->seq_len)
        return sdc_err(err, "%s: sdc.max_length: \"%s\" is not this executable's sequence length %d", name, vals[3],
                       p->seq_len);
    if (tok_load_memory(&r->tok, vals[0], strlen(vals[0]), vals[1], strlen(vals[1]), vals[2], (int)max_length, name,
                        err))
        return -1;
    return 0;
}

static int read_init_image(Runner *r, SdcErr *err)
{
    const SdcPipeline *p = r->p;
    int w, h;
    if (image_read_png(r->a->init_image, &r->init_rgb, &w, &h, err)) return sdc_err_prefix(err, "--init-image");
    if (w != p->width || h != p->height)
        return sdc_err(err, "--init-image: %s is %dx%d; this executable makes %dx%d images", r->a->init_image, w, h,
                       p->width, p->height);
    r->start = sched_img2img_start(&p->sched, r->a->strength);
    if (r->start >= p->sched.steps)
        return sdc_err(err, "--strength: %g leaves no denoising step of %d (needs at least %g)", r->a->strength,
                       p->sched.steps, 1.0 / p->sched.steps);
    return 0;
}

static float *floats(int64_t n) { return xmalloc((size_t)n * sizeof(float)); }

static int alloc_buffers(Runner *r, SdcErr *err)
{
    const SdcPipeline *p = r->p;
    const int64_t L = p->seq_len, rb = (int64_t)r->rows * r->B;
    r->ids32 = xmalloc((size_t)(r->rows * L) * sizeof(int32_t));
    r->ids = xmalloc((size_t)(r->rows * L) * sizeof(int64_t));
    r->emb = floats(r->rows * r->n_emb);
    r->ehs = floats(rb * r->n_emb);
    r->x = floats(r->B * r->n_lat);
    r->unet_in = floats(rb * r->n_lat);
    r->unet_t = floats(rb);
    r->unet_out = floats(rb * r->n_lat);
    r->guided = floats(r->B * r->n_lat);
    r->dec_in = floats(r->B * r->n_lat);
    r->dec_out = floats(r->B * r->n_img);
    r->rgb = xmalloc((size_t)(r->B * r->n_img));
    if (r->a->init_image) {
        r->enc_in = floats(r->enc_batch * r->n_img);
        r->enc_mean = floats(r->enc_batch * r->n_lat);
        r->enc_logvar = floats(r->enc_batch * r->n_lat);
        r->x0 = floats(r->B * r->n_lat);
        r->noise = floats(r->B * r->n_lat);
    }
    r->times.unet_step = xcalloc((size_t)p->sched.n_evals, sizeof(double));

    /* one arena for all graphs: anonymous pages, zero and page-aligned,
     * given back to the system at the end */
    uint64_t need = 1;
    const SdcGraphInfo *gs[] = {&p->text_encoder, &p->unet, &p->vae_decoder, &p->vae_encoder};
    for (int g = 0; g < 4; g++)
        if (gs[g]->run && gs[g]->arena_bytes > need) need = gs[g]->arena_bytes;
    r->arena_bytes = (size_t)need;
    void *m = mmap(NULL, r->arena_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return sdc_err(err, "cannot allocate %.1f MiB of activation memory: %s", (double)need / (1 << 20),
                       strerror(errno));
    r->arena = m;
    return 0;
}

static void runner_free(Runner *r)
{
    if (r->arena) munmap(r->arena, r->arena_bytes);
    tok_free(r->tok);
    st_close(&r->weights);
    void *bufs[] = {r->ids32,    r->ids,   r->emb,    r->ehs,     r->x,        r->unet_in,  r->unet_t,
                    r->unet_out, r->guided, r->dec_in, r->dec_out, r->rgb,      r->init_rgb, r->enc_in,
                    r->enc_mean, r->enc_logvar, r->x0, r->noise,   r->times.unet_step};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* ---- one generation ----------------------------------------------------- */

/* Runs g over `rows` rows, `batch` rows per call: input k of call c starts
 * at ins[k] + c * batch * in_row_bytes[k], and likewise for outputs. */
static double run_graph(Runner *r, const SdcGraphInfo *g, int rows, int batch, void *const *ins,
                        const size_t *in_row_bytes, void *const *outs, const size_t *out_row_bytes)
{
    double t0 = rt_now();
    for (int c = 0; c < rows / batch; c++) {
        void *in[SDC_GRAPH_MAX_IO], *out[SDC_GRAPH_MAX_IO];
        for (int k = 0; k < g->nin; k++) in[k] = (uint8_t *)ins[k] + (size_t)c * (size_t)batch * in_row_bytes[k];
        for (int k = 0; k < g->nout; k++)
            out[k] = (uint8_t *)outs[k] + (size_t)c * (size_t)batch * out_row_bytes[k];
        g->run(r->arena, r->weights.base, in, out);
    }
    return rt_now() - t0;
}

/* img2img: StableDiffusionImg2ImgPipeline.prepare_latents. */
static void img2img_latents(Runner *r, TorchGen *gen)
{
    const SdcPipeline *p = r->p;
    const int64_t n = r->n_lat;
    /* the encoder sees the one image (repeated if it was compiled for a batch) */
    for (int b = 0; b < r->enc_batch; b++) image_to_nchw(r->init_rgb, p->height, p->width, r->enc_in + b * r->n_img);
    size_t img_row = (size_t)r->n_img * sizeof(float), lat_row = (size_t)n * sizeof(float);
    void *ins[] = {r->enc_in}, *outs[] = {r->enc_mean, r->enc_logvar};
    size_t in_b[] = {img_row}, out_b[] = {lat_row, lat_row};
    r->times.vae_encoder = run_graph(r, &p->vae_encoder, r->enc_batch, r->enc_batch, ins, in_b, outs, out_b);

    /* latent_dist.sample(generator): mean + std * randn(mean.shape), with
     * DiagonalGaussianDistribution's clamp of logvar to [-30, 20] */
    float *e = r->noise;
    r->randn(gen, e, n);
    for (int64_t k = 0; k < n; k++) {
        float lv = r->enc_logvar[k];
        lv = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
        float std = expf(0.5f * lv);
        r->x0[k] = p->scaling_factor * (r->enc_mean[k] + std * e[k]);
    }
    for (int b = 1; b < r->B; b++) memcpy(r->x0 + b * n, r->x0, lat_row);
    /* noise = randn(init_latents.shape); add_noise at the first timestep */
    r->randn(gen, r->noise, r->B * n);
    sched_add_noise(&p->sched, r->start, r->x0, r->noise, r->x, r->B * n);
}

static void generate(Runner *r)
{
    const SdcPipeline *p = r->p;
    const SchedPlan *plan = &p->sched;
    const PipelineArgs *a = r->a;
    const int64_t L = p->seq_len, n = r->n_lat, nx = (int64_t)r->B * n;
    const int rb = r->rows * r->B;
    PipelineTimes *tm = &r->times;
    double t_begin = rt_now();

    /* 1-2. tokens and text embeddings, [negative, prompt] */
    const char *texts[2] = {a->negative, a->prompt};
    for (int row = 0; row < r->rows; row++) {
        const char *text = texts[2 - r->rows + row];
        tok_encode(r->tok, text, r->ids32 + row * L, NULL);
        for (int64_t k = 0; k < L; k++) r->ids[row * L + k] = r->ids32[row * L + k];
    }
    {
        void *ins[] = {r->ids}, *outs[] = {r->emb};
        size_t in_b[] = {(size_t)L * sizeof(int64_t)}, out_b[] = {(size_t)r->n_emb * sizeof(float)};
        tm->text_encoder = run_graph(r, &p->text_encoder, r->rows, r->te_batch, ins, in_b, outs, out_b);
    }
    for (int row = 0; row < r->rows; row++)
        for (int b = 0; b < r->B; b++)
            memcpy(r->ehs + (row * r->B + b) * r->n_emb, r->emb + row * r->n_emb, (size_t)r->n_emb * sizeof(float));

    /* 3. initial latents */
    TorchGen gen;
    torch_gen_seed(&gen, a->seed);
    tm->vae_encoder = 0;
    if (a->init_image) {
        img2img_latents(r, &gen);
    } else {
        r->randn(&gen, r->x, nx);
        for (int64_t k = 0; k < nx; k++) r->x[k] = r->x[k] * plan->init_noise_sigma;
    }

    /* 4. denoising */
    SchedState *st = sched_state_new(plan, nx);
    sched_state_set_randn(st, r->randn);
    Progress bar;
    progress_begin(&bar, "denoise", plan->n_evals - r->start, r->progress);
    const float g = p->guidance;
    int64_t step = 0; /* the sampler's step index, for UNets with per-step tables */
    void *ins[] = {r->unet_in, r->unet_t, r->ehs, &step}, *outs[] = {r->unet_out};
    size_t in_b[] = {(size_t)n * sizeof(float), sizeof(float), (size_t)r->n_emb * sizeof(float), 0};
    size_t out_b[] = {(size_t)n * sizeof(float)};
    tm->n_steps = 0;
    for (int i = r->start; i < plan->n_evals; i++) {
        const float scale = plan->in_scale[i];
        for (int row = 0; row < r->rows; row++)
            for (int64_t k = 0; k < nx; k++) r->unet_in[row * nx + k] = r->x[k] * scale;
        for (int j = 0; j < rb; j++) r->unet_t[j] = plan->timesteps[i];
        step = i;
        if (r->ready < 0) r->ready = rt_now() - r->t_entry;
        tm->unet_step[tm->n_steps++] = run_graph(r, &p->unet, rb, r->unet_batch, ins, in_b, outs, out_b);
        const float *model_out = r->unet_out;
        if (r->cfg) {
            /* noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond) */
            const float *u = r->unet_out, *c = r->unet_out + nx;
            for (int64_t k = 0; k < nx; k++) r->guided[k] = u[k] + g * (c[k] - u[k]);
            model_out = r->guided;
        }
        sched_step(plan, st, i, model_out, r->x, nx, &gen);
        progress_step(&bar);
    }
    progress_end(&bar);
    sched_state_free(st);

    /* 5. decoding: vae.decode(latents / scaling_factor), then postprocess */
    for (int64_t k = 0; k < nx; k++) r->dec_in[k] = r->x[k] / p->scaling_factor;
    {
        void *dins[] = {r->dec_in}, *douts[] = {r->dec_out};
        size_t di[] = {(size_t)n * sizeof(float)}, dout[] = {(size_t)r->n_img * sizeof(float)};
        tm->vae_decoder = run_graph(r, &p->vae_decoder, r->B, r->dec_batch, dins, di, douts, dout);
    }
    for (int b = 0; b < r->B; b++)
        image_from_nchw(r->dec_out + b * r->n_img, 3, p->height, p->width, r->rgb + b * r->n_img);
    tm->total = rt_now() - t_begin;
}

/* ---- main --------------------------------------------------------------- */

static uint64_t latents_checksum(const Runner *r)
{
    return fnv1a64(FNV1A64_INIT, r->x, (size_t)(r->B * r->n_lat) * sizeof(float));
}

static uint64_t image_checksum(const Runner *r) { return fnv1a64(FNV1A64_INIT, r->rgb, (size_t)(r->B * r->n_img)); }

static int run_bench(Runner *r, SdcErr *err)
{
    const PipelineArgs *a = r->a;
    BenchStats bs;
    bench_stats_init(&bs);
    bs.img2img = a->init_image != NULL;
    bs.text_encoder_calls = r->rows / r->te_batch;
    bs.unet_calls = (r->p->sched.n_evals - r->start) * (r->rows * r->B / r->unet_batch);
    bs.vae_decoder_calls = r->B / r->dec_batch;
    bs.vae_encoder_calls = a->init_image ? 1 : 0;
    bench_prof_start(r->p);
    uint64_t first_image = 0, first_latents = 0;
    for (int run = 0; run <= a->bench; run++) {
        sdc_prof_on = run > 0;
        generate(r);
        uint64_t ic = image_checksum(r), lc = latents_checksum(r);
        if (run == 0) {
            first_image = ic, first_latents = lc;
            bs.ready = r->ready;
        } else {
            bench_stats_add(&bs, &r->times);
            if (ic != first_image || lc != first_latents) bs.deterministic = 0;
        }
        bs.image_checksum = ic, bs.latents_checksum = lc;
        if (!a->quiet)
            fprintf(stderr, "%s %d/%d: %.3f s\n", run == 0 ? "warm-up" : "run", run, a->bench, r->times.total);
    }
    sdc_prof_on = 0;
    int rc = 0;
    if (a->out_given || a->save_latents) rc = pipeline_write_outputs(r->p, a, r->x, r->rgb, a->out_given, err);
    if (rc == 0) bench_print_json(stdout, r->p, a, &bs);
    bench_prof_stop();
    return rc;
}

int pipeline_main(const SdcPipeline *p, int argc, char **argv)
{
    Runner r = {0};
    r.t_entry = rt_now();
    r.ready = -1;
    const char *prog = prog_name(argc, argv);
    PipelineArgs a;
    SdcErr err = {{0}};
    int rc = pipeline_args_parse(&a, argc, argv, &err);
    if (rc == 0 && a.help) {
        pipeline_usage(stdout, prog, p);
        return 0;
    }
    r.p = p;
    r.a = &a;
    if (rc == 0) rc = pick_randn(&r.randn, &err);
    if (rc == 0 && (!a.bench || a.out_given)) rc = check_output_path("--out", a.out, &err);
    if (rc == 0 && a.save_latents) rc = check_output_path("--save-latents", a.save_latents, &err);
    if (rc == 0) {
        rt_set_threads(a.threads);
        r.cfg = p->guidance > 1.0f;
        r.rows = r.cfg ? 2 : 1;
        r.B = p->batch;
        r.n_lat = (int64_t)p->latent_c * p->latent_h * p->latent_w;
        r.n_img = (int64_t)3 * p->height * p->width;
        r.n_emb = (int64_t)p->seq_len * p->text_dim;
        r.progress = progress_default_enabled(a.quiet) && !a.bench;
        SDC_ASSERT(r.B >= 1 && r.n_lat > 0 && r.n_img > 0 && r.n_emb > 0 && p->sched.n_evals > 0);
        rc = check_graphs(&r, &err);
    }
    if (rc == 0 && a.init_image) rc = read_init_image(&r, &err);
    if (rc == 0) rc = open_weights(&r, argc > 0 ? argv[0] : NULL, &err);
    if (rc == 0) rc = alloc_buffers(&r, &err);
    if (rc == 0 && !a.quiet) {
        int count = tok_count(r.tok, a.prompt, NULL), max = tok_max_length(r.tok);
        if (count > max)
            fprintf(stderr, "%s: warning: the prompt is %d tokens; the last %d are dropped (CLIP reads %d)\n", prog,
                    count, count - max, max);
    }
    if (rc == 0 && a.bench) {
        rc = run_bench(&r, &err);
    } else if (rc == 0) {
        generate(&r);
        rc = pipeline_write_outputs(p, &a, r.x, r.rgb, 1, &err);
    }
    if (rc != 0) fprintf(stderr, "%s: %s\n", prog, err.msg);
    runner_free(&r);
    return rc == 0 ? 0 : 1;
}
