/* test_pipeline.c — pipeline_main with stand-in graphs.
 *
 * The graphs here are small made-up functions (a "text encoder" that maps
 * token ids through sines, a "UNet" that mixes the sample, the embeddings,
 * the timestep and a weight, a tanh "VAE decoder", a block-average "VAE
 * encoder"), each reading a tensor of the weights file at its absolute
 * offset, so that the test checks what the pipeline does around them:
 * flags, weights and metadata, token order, the classifier-free-guidance
 * batch, seeded noise, the sampler loop, img2img, outputs and the bench
 * report.  Latents and images are compared with the same loop written out
 * here (its own token ids, CFG, scheduler calls, torch_randn_avx2), bit for
 * bit.  pipeline_main is called in-process with stdout and stderr captured. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "image.h"
#include "pipeline.h"
#include "rng.h"
#include "safetensors.h"
#include "scheduler.h"
#include "test.h"
#include "tokenizer.h"

/* ---- the made-up model ---------------------------------------------------- */

#define W 16
#define H 16
#define LC 4
#define LH 8
#define LW 8
#define NLAT (LC * LH * LW)
#define NIMG (3 * H * W)
#define SEQ 77
#define DIM 8
#define NEMB (SEQ * DIM)
#define WEIGHTS_ID 0x0123456789abcdefull
#define SF 0.18215f

static const char VOCAB[] =
    "{\"a\": 0, \"b\": 1, \"c\": 2, \"a</w>\": 3, \"b</w>\": 4, \"c</w>\": 5, \"ab\": 6, \"bc</w>\": 7,"
    " \"abc</w>\": 8, \"!\": 9, \"!</w>\": 10, \"<|startoftext|>\": 11, \"<|endoftext|>\": 12}";
static const char MERGES[] = "#version: 0.2\na b\nab c</w>\nb c</w>\n";

/* The prompts used below and their ids, worked out by hand from VOCAB/MERGES
 * (bos 11, eos = pad 12). */
#define PROMPT "abc ab"
#define NEGATIVE "b"
static const int32_t PROMPT_IDS[] = {11, 8, 0, 4, 12};
static const int32_t NEGATIVE_IDS[] = {11, 4, 12};
static const int32_t EMPTY_IDS[] = {11, 12};

/* absolute offsets of the weights the graphs read, and each graph's batch */
static uint64_t off_te_scale, off_unet_w;
static int te_batch = 2, unet_batch = 2, dec_batch = 1, enc_batch = 1;

static float weight_at(const uint8_t *weights, uint64_t off, int k)
{
    float v;
    memcpy(&v, weights + off + 4 * (uint64_t)k, 4);
    return v;
}

static void te_row(const uint8_t *weights, const int64_t *ids, float *y)
{
    float scale = weight_at(weights, off_te_scale, 0);
    for (int l = 0; l < SEQ; l++)
        for (int d = 0; d < DIM; d++) y[l * DIM + d] = scale * sinf(0.37f * (float)ids[l] + 0.11f * d + 0.05f * l);
}

static void unet_row(const uint8_t *weights, const float *x, float t, const float *ehs, float *y)
{
    for (int k = 0; k < NLAT; k++)
        y[k] = 0.1f * x[k] + 0.3f * ehs[(k % SEQ) * DIM + k % DIM] + 0.02f * sinf(0.01f * t) +
               0.01f * weight_at(weights, off_unet_w, k);
}

static void dec_row(const float *lat, float *img)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                img[(c * H + y) * W + x] = tanhf(0.15f * lat[(c % LC) * LH * LW + (y / 2) * LW + x / 2] + 0.1f * c);
}

static void enc_row(const float *img, float *mean, float *logvar)
{
    for (int c = 0; c < LC; c++)
        for (int y = 0; y < LH; y++)
            for (int x = 0; x < LW; x++) {
                const float *p = img + (c % 3) * H * W + 2 * y * W + 2 * x;
                float m = 0.25f * (p[0] + p[1] + p[W] + p[W + 1]);
                mean[(c * LH + y) * LW + x] = 0.5f * m + 0.1f * c;
                logvar[(c * LH + y) * LW + x] = -1.0f - 0.2f * c + 0.1f * m;
            }
}

static void fake_text_encoder(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    (void)arena;
    if (sdc_prof_on) sdc_prof_node(SDC_GRAPH_TEXT_ENCODER, 0, 0.0625);
    for (int b = 0; b < te_batch; b++) te_row(weights, (const int64_t *)in[0] + b * SEQ, (float *)out[0] + b * NEMB);
}

static void fake_unet(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    if (sdc_prof_on) {
        sdc_prof_node(SDC_GRAPH_UNET, 2, 0.25);
        sdc_prof_node(SDC_GRAPH_UNET, 0, 0.125);
        sdc_prof_node(SDC_GRAPH_UNET, 99, 1.0); /* out of range: ignored */
    }
    /* the sample goes through the arena, which must hold it */
    memcpy(arena, in[0], (size_t)unet_batch * NLAT * sizeof(float));
    const float *x = (const float *)arena, *t = in[1], *ehs = in[2];
    for (int b = 0; b < unet_batch; b++) unet_row(weights, x + b * NLAT, t[b], ehs + b * NEMB, (float *)out[0] + b * NLAT);
}

static void fake_vae_decoder(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    (void)arena, (void)weights;
    for (int b = 0; b < dec_batch; b++) dec_row((const float *)in[0] + b * NLAT, (float *)out[0] + b * NIMG);
}

static void fake_vae_encoder(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    (void)arena, (void)weights;
    for (int b = 0; b < enc_batch; b++)
        enc_row((const float *)in[0] + b * NIMG, (float *)out[0] + b * NLAT, (float *)out[1] + b * NLAT);
}

static const char *const UNET_NODE_NAMES[] = {"%h = conv2d", "%a = attention", "%o = conv2d"};
static const unsigned char UNET_NODE_KINDS[] = {7, 9, 7};
static const char *const TE_NODE_NAMES[] = {"%e = matmul"};
static const unsigned char TE_NODE_KINDS[] = {3};
static const char *const OP_NAMES[] = {"k0", "k1", "k2", "matmul", "k4", "k5", "k6", "conv2d"}; /* 9: unnamed */

static SdcGraphInfo graph(const char *name, SdcGraphFn fn, int batch, int nin, const int64_t *in_row, int nout,
                          const int64_t *out_row, uint64_t arena)
{
    SdcGraphInfo g = {0};
    g.name = name;
    g.run = fn;
    g.arena_bytes = arena;
    g.flops = 1e6;
    g.nin = nin, g.nout = nout;
    for (int k = 0; k < nin; k++) g.in_numel[k] = batch * in_row[k];
    for (int k = 0; k < nout; k++) g.out_numel[k] = batch * out_row[k];
    return g;
}

/* A pipeline of the made-up graphs.  te/unet batches: rows per call (the
 * pipeline slices larger batches). */
static SdcPipeline make_pipeline(SchedPlan *plan, SamplerKind kind, int steps, double eta, int batch, float guidance,
                                 int te_b, int unet_b)
{
    SchedConfig c;
    sched_config_default(&c, kind);
    SdcErr err;
    SDC_ASSERT(sched_plan(plan, &c, steps, eta, &err) == 0);
    te_batch = te_b, unet_batch = unet_b, dec_batch = batch, enc_batch = 1;
    SdcPipeline p = {0};
    p.model = "test/made-up";
    p.sdc_version = "0.0-test";
    p.options = "--sampler made-up";
    p.width = W, p.height = H, p.batch = batch;
    p.latent_c = LC, p.latent_h = LH, p.latent_w = LW;
    p.seq_len = SEQ, p.text_dim = DIM;
    p.guidance = guidance;
    p.scaling_factor = SF;
    p.sched = *plan;
    int64_t te_in[] = {SEQ}, te_out[] = {NEMB};
    int64_t un_in[] = {NLAT, 1, NEMB}, un_out[] = {NLAT};
    int64_t de_in[] = {NLAT}, de_out[] = {NIMG};
    int64_t en_in[] = {NIMG}, en_out[] = {NLAT, NLAT};
    p.text_encoder = graph("text_encoder", fake_text_encoder, te_b, 1, te_in, 1, te_out, 0);
    p.unet = graph("unet", fake_unet, unet_b, 3, un_in, 1, un_out, (uint64_t)unet_b * NLAT * sizeof(float));
    p.vae_decoder = graph("vae_decoder", fake_vae_decoder, batch, 1, de_in, 1, de_out, 0);
    p.vae_encoder = graph("vae_encoder", fake_vae_encoder, 1, 1, en_in, 2, en_out, 0);
    p.unet.nnodes = 3, p.unet.node_names = UNET_NODE_NAMES, p.unet.node_kind = UNET_NODE_KINDS;
    p.text_encoder.nnodes = 1, p.text_encoder.node_names = TE_NODE_NAMES, p.text_encoder.node_kind = TE_NODE_KINDS;
    p.op_kind_names = OP_NAMES, p.n_op_kinds = 8;
    p.weights_id = WEIGHTS_ID;
    return p;
}

/* ---- the weights file ------------------------------------------------------ */

static char *dir;            /* this run's temporary directory */
static char *weights_path;   /* the good weights file */
static uint8_t *weights_img; /* its bytes, for the reference computation */

static char *tmp_path(const char *name) { return path_join(dir, name); }

static void write_weights(const char *path, const char *weights_id)
{
    static float te_scale[1] = {0.5f}, unet_w[NLAT];
    for (int k = 0; k < NLAT; k++) unet_w[k] = (float)((k * 37) % 11) - 5.0f;
    StDesc d[2] = {{"te.scale", DT_F32, 1, {1}}, {"unet.w", DT_F32, 3, {LC, LH, LW}}};
    const char *keys[] = {"sdc.weights_id", "sdc.vocab_json", "sdc.merges_txt", "sdc.pad_token", "sdc.max_length"};
    const char *vals[] = {weights_id, VOCAB, MERGES, "<|endoftext|>", "77"};
    SdcErr err;
    StWriter *w;
    SDC_ASSERT(st_writer_open(&w, path, 2, d, 5, keys, vals, &err) == 0);
    SDC_ASSERT(st_writer_put(w, te_scale, &err) == 0 && st_writer_put(w, unet_w, &err) == 0);
    SDC_ASSERT(st_writer_finish(w, &err) == 0);
}

static void setup_weights(void)
{
    char id[32];
    pipeline_weights_id_str(WEIGHTS_ID, id);
    weights_path = tmp_path("model.weights");
    write_weights(weights_path, id);
    StFile f;
    SdcErr err;
    SDC_ASSERT(st_open(&f, weights_path, &err) == 0);
    off_te_scale = st_find(&f, "te.scale")->offset;
    off_unet_w = st_find(&f, "unet.w")->offset;
    weights_img = xmalloc(f.size);
    memcpy(weights_img, f.base, f.size);
    st_close(&f);
}

/* ---- running pipeline_main ------------------------------------------------- */

static char out_text[1 << 16], err_text[1 << 16]; /* the last call's stdout and stderr */

static void slurp(int fd, char *buf, size_t cap)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* pipeline_main(p, {"exe", args..., NULL}) with stdout/stderr captured. */
static int run(const SdcPipeline *p, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "test-exe";
    va_list ap;
    va_start(ap, p);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) argv[argc++] = (char *)s;
    va_end(ap);
    argv[argc] = NULL;

    char *op = tmp_path("stdout.txt"), *ep = tmp_path("stderr.txt");
    int ofd = open(op, O_RDWR | O_CREAT | O_TRUNC, 0600), efd = open(ep, O_RDWR | O_CREAT | O_TRUNC, 0600);
    fflush(stdout);
    fflush(stderr);
    int save_out = dup(1), save_err = dup(2);
    dup2(ofd, 1);
    dup2(efd, 2);
    int rc = pipeline_main(p, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(save_out, 1);
    dup2(save_err, 2);
    close(save_out);
    close(save_err);
    slurp(ofd, out_text, sizeof out_text);
    slurp(efd, err_text, sizeof err_text);
    free(op);
    free(ep);
    return rc;
}

static float *read_latents(const char *path, int64_t n)
{
    StFile f;
    SdcErr err;
    if (st_open(&f, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    const StTensor *t = st_find(&f, "latents");
    float *x = NULL;
    if (t && t->dtype == DT_F32 && st_numel(t) == n) {
        x = xmalloc((size_t)n * sizeof(float));
        memcpy(x, st_data(&f, t), (size_t)n * sizeof(float));
    }
    st_close(&f);
    return x;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    SdcErr err;
    return (uint8_t *)file_read_all(path, n, &err);
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *x = read_file(a, &na), *y = read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The PNG's text chunk `key` (xmalloc-ed), or NULL. */
static char *png_text_chunk(const char *path, const char *key)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    char *val = NULL;
    if (setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_read_info(png, info);
        png_textp text;
        int n = 0;
        png_get_text(png, info, &text, &n);
        for (int i = 0; i < n; i++)
            if (!strcmp(text[i].key, key)) val = xstrdup(text[i].text);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return val;
}

/* ---- the reference: the pipeline written out here --------------------------- */

typedef struct RefCase {
    const SdcPipeline *p;
    const int32_t *prompt_ids, *negative_ids;
    int n_prompt_ids, n_negative_ids;
    uint64_t seed;
    SchedRandnFn randn;
    const uint8_t *init_rgb; /* img2img */
    double strength;
} RefCase;

static void ids_row(const int32_t *ids, int n, int64_t *row)
{
    for (int l = 0; l < SEQ; l++) row[l] = l < n ? ids[l] : 12;
}

/* Final latents [B][NLAT] and RGB bytes [B][H][W][3]. */
static void reference(const RefCase *c, float *x, uint8_t *rgb)
{
    const SdcPipeline *p = c->p;
    const SchedPlan *plan = &p->sched;
    const int B = p->batch, cfg = p->guidance > 1.0f, rows = cfg ? 2 : 1;
    const int64_t nx = (int64_t)B * NLAT;
    int64_t ids[2][SEQ];
    float emb[2][NEMB];
    ids_row(c->negative_ids, c->n_negative_ids, ids[0]);
    ids_row(c->prompt_ids, c->n_prompt_ids, ids[1]);
    te_row(weights_img, ids[0], emb[0]);
    te_row(weights_img, ids[1], emb[1]);

    TorchGen gen;
    torch_gen_seed(&gen, c->seed);
    int start = 0;
    if (c->init_rgb) {
        /* diffusers' get_timesteps, then prepare_latents */
        int init_t = (int)(plan->steps * c->strength);
        start = plan->steps - init_t;
        float img[NIMG], mean[NLAT], logvar[NLAT], e[NLAT], x0[NLAT];
        image_to_nchw(c->init_rgb, H, W, img);
        enc_row(img, mean, logvar);
        c->randn(&gen, e, NLAT);
        for (int k = 0; k < NLAT; k++) {
            float lv = fminf(fmaxf(logvar[k], -30.0f), 20.0f);
            x0[k] = SF * (mean[k] + expf(0.5f * lv) * e[k]);
        }
        float *x0b = xmalloc((size_t)nx * sizeof(float)), *noise = xmalloc((size_t)nx * sizeof(float));
        for (int b = 0; b < B; b++) memcpy(x0b + b * NLAT, x0, sizeof x0);
        c->randn(&gen, noise, nx);
        sched_add_noise(plan, start, x0b, noise, x, nx);
        free(x0b);
        free(noise);
    } else {
        c->randn(&gen, x, nx);
        for (int64_t k = 0; k < nx; k++) x[k] *= plan->init_noise_sigma;
    }

    SchedState *st = sched_state_new(plan, nx);
    sched_state_set_randn(st, c->randn);
    float *in = xmalloc(NLAT * sizeof(float)), *out = xmalloc((size_t)(2 * nx) * sizeof(float));
    float *guided = xmalloc((size_t)nx * sizeof(float));
    for (int i = start; i < plan->n_evals; i++) {
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < B; b++) {
                for (int k = 0; k < NLAT; k++) in[k] = x[b * NLAT + k] * plan->in_scale[i];
                /* row r of the text batch: [negative, prompt] under guidance, else [prompt] */
                unet_row(weights_img, in, plan->timesteps[i], emb[cfg ? r : 1], out + (r * B + b) * NLAT);
            }
        const float *mo = out;
        if (cfg) {
            for (int64_t k = 0; k < nx; k++) guided[k] = out[k] + p->guidance * (out[nx + k] - out[k]);
            mo = guided;
        }
        sched_step(plan, st, i, mo, x, nx, &gen);
    }
    sched_state_free(st);
    for (int b = 0; b < B; b++) {
        float lat[NLAT], img[NIMG];
        for (int k = 0; k < NLAT; k++) lat[k] = x[b * NLAT + k] / SF;
        dec_row(lat, img);
        image_from_nchw(img, 3, H, W, rgb + b * NIMG);
    }
    free(in);
    free(out);
    free(guided);
}

/* Runs the pipeline with --save-latents and compares latents and images
 * with the reference. */
static void check_against_reference(const SdcPipeline *p, const RefCase *c, const char *tag, const char *const *extra)
{
    const int B = p->batch;
    char name[128];
    snprintf(name, sizeof name, "%s.png", tag);
    char *png = tmp_path(name);
    snprintf(name, sizeof name, "%s.safetensors", tag);
    char *lat = tmp_path(name);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    const char *e[6] = {0};
    for (int k = 0; extra && extra[k] && k < 5; k++) e[k] = extra[k];
    int rc = run(p, "--prompt", PROMPT, "--negative", NEGATIVE, "--seed", seed, "--out", png, "--save-latents", lat,
                 "--weights", weights_path, "--quiet", e[0], e[1], e[2], e[3], e[4], (char *)NULL);
    CHECK_MSG(rc == 0, "%s: %s", tag, err_text);

    float *want = xmalloc((size_t)B * NLAT * sizeof(float));
    uint8_t *want_rgb = xmalloc((size_t)B * NIMG);
    reference(c, want, want_rgb);
    float *got = read_latents(lat, (int64_t)B * NLAT);
    CHECK_MSG(got != NULL, "%s: no latents", tag);
    if (got) {
        double d = test_max_abs(got, want, (size_t)B * NLAT);
        CHECK_MSG(d == 0, "%s: latents differ from the reference by %g", tag, d);
    }
    for (int b = 0; b < B; b++) {
        char *path = png;
        char alt[512];
        if (b > 0) {
            snprintf(alt, sizeof alt, "%s/%s-%d.png", dir, tag, b);
            path = alt;
        }
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        SdcErr err;
        CHECK_MSG(image_read_png(path, &rgb, &w, &h, &err) == 0, "%s: %s", tag, err.msg);
        CHECK(w == W && h == H);
        if (rgb && w == W && h == H) CHECK_MSG(memcmp(rgb, want_rgb + b * NIMG, NIMG) == 0, "%s: image %d differs", tag, b);
        free(rgb);
    }
    free(got);
    free(want);
    free(want_rgb);
    free(png);
    free(lat);
}

/* ---- tests ------------------------------------------------------------------ */

static RefCase ref_case(const SdcPipeline *p, uint64_t seed)
{
    RefCase c = {p, PROMPT_IDS, NEGATIVE_IDS, 5, 3, seed, torch_randn_avx2, NULL, 0};
    return c;
}

/* euler_a draws noise every step from the generator that made the latents */
static void test_euler_a_matches_reference(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 6, 0.0, 1, 7.5f, 2, 2);
    RefCase c = ref_case(&p, 42);
    check_against_reference(&p, &c, "euler_a", NULL);

    /* a seed beyond 32 bits (torch uses the low 32) */
    c.seed = 4294967301ull;
    check_against_reference(&p, &c, "euler_a_bigseed", NULL);

    /* the scalar randn kernel, chosen by the environment, gives other latents */
    setenv("SDC_RNG", "scalar", 1);
    c.seed = 42;
    c.randn = torch_randn;
    check_against_reference(&p, &c, "euler_a_scalar", NULL);
    char *lat_avx2 = tmp_path("euler_a.safetensors"), *lat_scalar = tmp_path("euler_a_scalar.safetensors");
    CHECK(!same_file(lat_avx2, lat_scalar));
    free(lat_avx2);
    free(lat_scalar);
    setenv("SDC_RNG", "bogus", 1);
    CHECK(run(&p, "--prompt", PROMPT, "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "SDC_RNG") != NULL);
    unsetenv("SDC_RNG");
    sched_plan_free(&plan);
}

/* batch 2 (images per prompt), a text encoder of batch 1 and a UNet of
 * batch B called twice per step; ddim with eta > 0 draws noise */
static void test_ddim_batch_matches_reference(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_DDIM, 5, 0.5, 2, 5.0f, 1, 2);
    RefCase c = ref_case(&p, 7);
    check_against_reference(&p, &c, "ddim_b2", NULL);
    /* the two images differ (different rows of the same noise) */
    char *a = tmp_path("ddim_b2.png"), *b = tmp_path("ddim_b2-1.png");
    CHECK(path_exists(a) && path_exists(b) && !same_file(a, b));
    free(a);
    free(b);
    sched_plan_free(&plan);

    /* the same with a UNet of batch 4 (one call per step) and eta = 0 */
    p = make_pipeline(&plan, SAMPLER_DDIM, 5, 0.0, 2, 5.0f, 2, 4);
    c = ref_case(&p, 8);
    check_against_reference(&p, &c, "ddim_b2_u4", NULL);
    sched_plan_free(&plan);
}

/* guidance 1: no negative row, the UNet sees batch B */
static void test_no_guidance(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER, 4, 0.0, 1, 1.0f, 1, 1);
    RefCase c = ref_case(&p, 3);
    check_against_reference(&p, &c, "euler_nocfg", NULL);
    sched_plan_free(&plan);
}

/* an empty negative prompt is "" (bos, eos), and dpm++ keeps history */
static void test_empty_negative(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_DPMPP_2M, 5, 0.0, 1, 7.5f, 2, 2);
    char *png = tmp_path("dpm.png"), *lat = tmp_path("dpm.safetensors");
    CHECK(run(&p, "--prompt", PROMPT, "--seed", "11", "--out", png, "--save-latents", lat, "--weights", weights_path,
              (char *)NULL) == 0);
    RefCase c = ref_case(&p, 11);
    c.negative_ids = EMPTY_IDS, c.n_negative_ids = 2;
    float want[NLAT];
    uint8_t rgb[NIMG];
    reference(&c, want, rgb);
    float *got = read_latents(lat, NLAT);
    CHECK(got && test_max_abs(got, want, NLAT) == 0);
    free(got);
    free(png);
    free(lat);
    sched_plan_free(&plan);
}

static void write_init_image(const char *path, int w, int h)
{
    uint8_t *rgb = xmalloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = rgb + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)(x * 16), px[1] = (uint8_t)(y * 15), px[2] = (uint8_t)((x * y) % 256);
        }
    SdcErr err;
    SDC_ASSERT(image_write_png(path, rgb, w, h, 0, NULL, NULL, &err) == 0);
    free(rgb);
}

static void test_img2img(void)
{
    char *init = tmp_path("init.png");
    write_init_image(init, W, H);
    uint8_t *rgb = NULL;
    int w, h;
    SdcErr err;
    SDC_ASSERT(image_read_png(init, &rgb, &w, &h, &err) == 0);

    const SamplerKind kinds[] = {SAMPLER_EULER_A, SAMPLER_PNDM, SAMPLER_DDIM, SAMPLER_LMS};
    const char *tags[] = {"i2i_euler_a", "i2i_pndm", "i2i_ddim", "i2i_lms"};
    for (int k = 0; k < 4; k++) {
        SchedPlan plan;
        int batch = k == 2 ? 2 : 1;
        SdcPipeline p = make_pipeline(&plan, kinds[k], 10, 0.0, batch, 7.5f, 2, 2 * batch);
        RefCase c = ref_case(&p, 1234);
        c.init_rgb = rgb;
        c.strength = 0.5;
        const char *extra[] = {"--init-image", init, "--strength", "0.5", NULL};
        check_against_reference(&p, &c, tags[k], extra);
        sched_plan_free(&plan);
    }

    /* a strength of 1 starts from the first timestep, still from the image */
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_DDIM, 10, 0.0, 1, 7.5f, 2, 2);
    RefCase c = ref_case(&p, 5);
    c.init_rgb = rgb, c.strength = 1.0;
    const char *extra1[] = {"--init-image", init, "--strength", "1", NULL};
    check_against_reference(&p, &c, "i2i_full", extra1);
    /* the default strength is diffusers' 0.8 */
    c.strength = 0.8;
    const char *extra_default[] = {"--init-image", init, NULL};
    check_against_reference(&p, &c, "i2i_default", extra_default);

    /* refused: a strength that leaves no step, an image of another size, no encoder */
    char *out = tmp_path("i2i_bad.png");
    CHECK(run(&p, "--prompt", "x", "--init-image", init, "--strength", "0.05", "--out", out, "--weights", weights_path,
              (char *)NULL) == 1);
    CHECK(strstr(err_text, "--strength") != NULL && !path_exists(out));
    char *small = tmp_path("small.png");
    write_init_image(small, 8, 16);
    CHECK(run(&p, "--prompt", "x", "--init-image", small, "--out", out, "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "--init-image") != NULL && strstr(err_text, "8x16") != NULL && !path_exists(out));
    char *missing = tmp_path("missing.png");
    CHECK(run(&p, "--prompt", "x", "--init-image", missing, "--out", out, "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "--init-image") != NULL && !path_exists(out));
    p.vae_encoder.run = NULL;
    CHECK(run(&p, "--prompt", "x", "--init-image", init, "--out", out, "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "VAE encoder") != NULL && !path_exists(out));
    sched_plan_free(&plan);
    free(out);
    free(small);
    free(missing);
    free(rgb);
    free(init);
}

static void test_png_text_and_determinism(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 4, 0.0, 1, 7.5f, 2, 2);
    char *a = tmp_path("det_a.png"), *b = tmp_path("det_b.png"), *t1 = tmp_path("det_t1.png"),
         *t2 = tmp_path("det_t2.png");
    const char *prompt = "abc \xc3\xa9t\xc3\xa9 \xff"; /* é, and a byte that is not UTF-8 */
    CHECK(run(&p, "--prompt", prompt, "--seed", "99", "--out", a, "--weights", weights_path, (char *)NULL) == 0);
    CHECK(strstr(err_text, "wrote") != NULL); /* not --quiet */
    CHECK(run(&p, "--prompt", prompt, "--seed", "99", "--out", b, "--weights", weights_path, (char *)NULL) == 0);
    CHECK(run(&p, "--prompt", prompt, "--seed", "99", "--out", t1, "--threads", "1", "--weights", weights_path,
              (char *)NULL) == 0);
    CHECK(run(&p, "--prompt", prompt, "--seed=99", "--out=", "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "--out: empty path") != NULL);
    CHECK(run(&p, "--prompt", prompt, "--seed=99", "--threads=2", "--weights", weights_path, "--out", t2, "--quiet",
              (char *)NULL) == 0);
    CHECK(err_text[0] == 0); /* --quiet */
    CHECK(same_file(a, b));
    CHECK(same_file(a, t1));
    CHECK(same_file(a, t2));

    char *params = png_text_chunk(a, "parameters");
    CHECK(params != NULL);
    if (params) {
        CHECK(strncmp(params, "abc \xc3\xa9t\xc3\xa9 \xef\xbf\xbd\n", 13) == 0); /* invalid byte -> U+FFFD */
        CHECK(strstr(params, "\nSteps: 4, Sampler: Euler a, CFG scale: 7.5, Seed: 99, Size: 16x16, Model: test/made-up") !=
              NULL);
        CHECK(strstr(params, "Version: sdc 0.0-test") != NULL);
        CHECK(strstr(params, "Negative prompt") == NULL); /* empty negative: no line, as A1111 */
    }
    free(params);
    char *opts = png_text_chunk(a, "sdc");
    CHECK(opts && !strcmp(opts, "--sampler made-up"));
    free(opts);

    /* a negative prompt is recorded */
    CHECK(run(&p, "--prompt", "abc", "--negative", NEGATIVE, "--out", b, "--weights", weights_path, (char *)NULL) == 0);
    params = png_text_chunk(b, "parameters");
    CHECK(params && strstr(params, "abc\nNegative prompt: b\nSteps: 4") == params);
    free(params);

    /* a different seed gives a different image */
    CHECK(run(&p, "--prompt", prompt, "--seed", "100", "--out", b, "--weights", weights_path, (char *)NULL) == 0);
    CHECK(!same_file(a, b));
    free(a);
    free(b);
    free(t1);
    free(t2);
    sched_plan_free(&plan);
}

/* Every bad flag: exit 1, one line naming it, and no output file. */
static void test_bad_flags(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 3, 0.0, 1, 7.5f, 2, 2);
    char *out = tmp_path("bad.png"), *lat = tmp_path("bad.safetensors"), *init = tmp_path("bad_init.png");
    write_init_image(init, W, H);
    char *nodir = tmp_path("no/such/dir/x.png");
    const char *W_ = weights_path;
    struct {
        const char *args[8];
        const char *flag; /* the message must name it */
    } cases[] = {
        {{"--prompt", "x", "--seed", "abc"}, "--seed"},
        {{"--prompt", "x", "--seed", "-1"}, "--seed"},
        {{"--prompt", "x", "--seed", "18446744073709551616"}, "--seed"},
        {{"--prompt", "x", "--seed", ""}, "--seed"},
        {{"--prompt", "x", "--seed", "12x"}, "--seed"},
        {{"--prompt", "x", "--init-image", init, "--strength", "2"}, "--strength"},
        {{"--prompt", "x", "--init-image", init, "--strength", "0"}, "--strength"},
        {{"--prompt", "x", "--init-image", init, "--strength", "nan"}, "--strength"},
        {{"--prompt", "x", "--strength", "0.5"}, "--strength"},
        {{"--prompt", "x", "--threads", "-1"}, "--threads"},
        {{"--prompt", "x", "--threads", "two"}, "--threads"},
        {{"--prompt", "x", "--bench", "0"}, "--bench"},
        {{"--prompt", "x", "--frobnicate"}, "--frobnicate"},
        {{"--prompt", "x", "--quiet=1"}, "--quiet"},
        {{"--prompt", "x", "stray"}, "stray"},
        {{"--seed", "1"}, "--prompt"},
        {{"--prompt"}, "--prompt"},
        {{"--prompt", "x", "--seed"}, "--seed"},
        {{"--prompt", "x", "--out", nodir}, "--out"},
        {{"--prompt", "x", "--out", dir}, "--out"},
        {{"--prompt", "x", "--save-latents", nodir}, "--save-latents"},
        {{"--prompt", "x", "--weights", nodir}, "no/such/dir"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        int has_out = 0;
        for (int k = 0; a[k]; k++) has_out |= !strcmp(a[k], "--out");
        int rc = has_out ? run(&p, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], (char *)NULL)
                         : run(&p, "--out", out, "--save-latents", lat, "--weights", W_, a[0], a[1], a[2], a[3], a[4],
                               a[5], a[6], a[7], (char *)NULL);
        CHECK_MSG(rc == 1, "case %zu (%s): exit %d", i, cases[i].flag, rc);
        CHECK_MSG(strstr(err_text, cases[i].flag) != NULL, "case %zu: message \"%s\" does not name %s", i, err_text,
                  cases[i].flag);
        char *nl = strchr(err_text, '\n');
        CHECK_MSG(nl && nl[1] == 0, "case %zu: not one line: \"%s\"", i, err_text);
        CHECK_MSG(!path_exists(out) && !path_exists(lat), "case %zu: an output file was left", i);
    }

    /* --help: usage on stdout, exit 0 */
    CHECK(run(&p, "--help", (char *)NULL) == 0);
    CHECK(strstr(out_text, "--prompt") && strstr(out_text, "SDC_RNG") && strstr(out_text, "16x16"));
    free(out);
    free(lat);
    free(init);
    free(nodir);
    sched_plan_free(&plan);
}

/* the weights: a wrong id is refused, the embedded copy is used, the
 * default is <executable>.weights */
static void test_weights(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 3, 0.0, 1, 7.5f, 2, 2);
    char *out = tmp_path("w.png"), *ref = tmp_path("w_ref.png"), *bad = tmp_path("bad.weights");
    CHECK(run(&p, "--prompt", PROMPT, "--out", ref, "--weights", weights_path, (char *)NULL) == 0);

    write_weights(bad, "00000000deadbeef");
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, "--weights", bad, (char *)NULL) == 1);
    CHECK(strstr(err_text, "sdc.weights_id") && strstr(err_text, "deadbeef") && strstr(err_text, "0123456789abcdef"));
    CHECK(!path_exists(out));
    write_weights(bad, "81985529216486895"); /* the id in decimal: not the agreed form */
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, "--weights", bad, (char *)NULL) == 1);
    CHECK(!path_exists(out));

    /* no --weights, nothing embedded: <this executable>.weights, which does not exist */
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, (char *)NULL) == 1);
    CHECK(strstr(err_text, ".weights") != NULL && !path_exists(out));

    size_t n;
    uint8_t *img = read_file(weights_path, &n);
    p.embedded_weights = img;
    p.embedded_size = n;
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, (char *)NULL) == 0);
    CHECK(same_file(out, ref));
    /* --weights wins over the embedded copy */
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, "--weights", bad, (char *)NULL) == 1);
    free(img);

    char buf[32];
    pipeline_weights_id_str(0, buf);
    CHECK(!strcmp(buf, "0000000000000000"));
    pipeline_weights_id_str(UINT64_MAX, buf);
    CHECK(!strcmp(buf, "ffffffffffffffff"));
    free(out);
    free(ref);
    free(bad);
    sched_plan_free(&plan);
}

/* A write that fails after another output was written leaves nothing. */
static void test_failed_write_leaves_nothing(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 3, 0.0, 1, 7.5f, 2, 2);
    char *out = tmp_path("fail.png"), *lat = tmp_path("fail.safetensors");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    CHECK(mkdir(tmp, 0700) == 0); /* the PNG's temporary name cannot be created */
    CHECK(run(&p, "--prompt", PROMPT, "--out", out, "--save-latents", lat, "--weights", weights_path, (char *)NULL) == 1);
    CHECK(strstr(err_text, "fail.png") != NULL);
    CHECK(!path_exists(out) && !path_exists(lat));
    rmdir(tmp);
    free(out);
    free(lat);
    sched_plan_free(&plan);
}

static void test_bench(void)
{
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER_A, 4, 0.0, 1, 7.5f, 1, 1);
    CHECK(chdir(dir) == 0);
    CHECK(run(&p, "--bench", "2", "--weights", weights_path, "--threads", "1", (char *)NULL) == 0);
    CHECK(!path_exists("out.png")); /* bench writes files only when asked */
    cJSON *j = cJSON_Parse(out_text);
    CHECK_MSG(j != NULL, "not JSON: %s", out_text);
    if (j) {
        static const char *const keys[] = {"model", "width", "height", "steps", "sampler", "threads", "runs",
                                           "text_encoder_s", "unet_step_s", "vae_decoder_s", "total_s", "ready_s",
                                           "peak_rss_bytes", "gflops", "image_checksum", "latents_checksum",
                                           "op_profile", "slowest_nodes"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            CHECK_MSG(cJSON_GetObjectItem(j, keys[k]) != NULL, "bench JSON lacks \"%s\"", keys[k]);
        CHECK(cJSON_GetObjectItem(j, "runs")->valuedouble == 2);
        CHECK(cJSON_GetObjectItem(j, "threads")->valuedouble == 1);
        CHECK(cJSON_GetObjectItem(j, "steps")->valuedouble == 4);
        CHECK(!strcmp(cJSON_GetObjectItem(j, "sampler")->valuestring, "euler_a"));
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "deterministic")));
        CHECK(cJSON_GetObjectItem(j, "peak_rss_bytes")->valuedouble > 1e6);
        cJSON *step = cJSON_GetObjectItem(j, "unet_step_s");
        double mn = cJSON_GetObjectItem(step, "min")->valuedouble, mean = cJSON_GetObjectItem(step, "mean")->valuedouble,
               mx = cJSON_GetObjectItem(step, "max")->valuedouble;
        CHECK(mn > 0 && mn <= mean && mean <= mx);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "gflops"), "unet")->valuedouble > 0);

        /* checksums: FNV-1a 64 of the image bytes, as a later --out run gives */
        const char *ic = cJSON_GetObjectItem(j, "image_checksum")->valuestring;
        CHECK(ic && strlen(ic) == 16);

        /* profile: per run, the UNet is called twice per step (batch 1 under
         * guidance) for 4 steps, and node 2 reports 0.25 s a call */
        cJSON *slow = cJSON_GetObjectItem(j, "slowest_nodes");
        CHECK(cJSON_GetArraySize(slow) == 4); /* 3 unet nodes + 1 text encoder node */
        cJSON *s0 = cJSON_GetArrayItem(slow, 0);
        CHECK(s0 && !strcmp(cJSON_GetObjectItem(s0, "graph")->valuestring, "unet"));
        CHECK(s0 && cJSON_GetObjectItem(s0, "node")->valuedouble == 2);
        CHECK(s0 && !strcmp(cJSON_GetObjectItem(s0, "name")->valuestring, "%o = conv2d"));
        CHECK(s0 && cJSON_GetObjectItem(s0, "seconds")->valuedouble == 0.25 * 8);
        cJSON *s3 = cJSON_GetArrayItem(slow, 3);
        CHECK(s3 && !strcmp(cJSON_GetObjectItem(s3, "graph")->valuestring, "unet") &&
              cJSON_GetObjectItem(s3, "seconds")->valuedouble == 0);
        cJSON *ops = cJSON_GetObjectItem(j, "op_profile");
        cJSON *o0 = cJSON_GetArrayItem(ops, 0);
        CHECK(o0 && cJSON_GetObjectItem(o0, "kind")->valuedouble == 7 &&
              !strcmp(cJSON_GetObjectItem(o0, "name")->valuestring, "conv2d") &&
              cJSON_GetObjectItem(o0, "seconds")->valuedouble == (0.25 + 0.125) * 8);
        cJSON *o1 = cJSON_GetArrayItem(ops, 1);
        CHECK(o1 && cJSON_GetObjectItem(o1, "kind")->valuedouble == 3 &&
              cJSON_GetObjectItem(o1, "seconds")->valuedouble == 0.0625 * 2);
        cJSON *o2 = cJSON_GetArrayItem(ops, 2);
        CHECK(o2 && cJSON_GetObjectItem(o2, "kind")->valuedouble == 9 &&
              cJSON_IsNull(cJSON_GetObjectItem(o2, "name")));

        /* the checksum is the one of the image a normal run writes */
        char *png = tmp_path("bench_check.png");
        CHECK(run(&p, "--prompt", "a photograph of an astronaut riding a horse", "--out", png, "--weights",
                  weights_path, (char *)NULL) == 0);
        uint8_t *rgb = NULL;
        int w, h;
        SdcErr err;
        if (image_read_png(png, &rgb, &w, &h, &err) == 0) {
            uint64_t hsh = 0xcbf29ce484222325ull;
            for (int k = 0; k < NIMG; k++) hsh = (hsh ^ rgb[k]) * 0x100000001b3ull;
            char hex[20];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hsh);
            CHECK(ic && !strcmp(ic, hex));
        }
        free(rgb);
        free(png);
        cJSON_Delete(j);
    }
    /* with --save-latents only, bench writes the latents and no image */
    char *lat = tmp_path("bench.safetensors");
    CHECK(run(&p, "--bench", "1", "--quiet", "--save-latents", lat, "--weights", weights_path, (char *)NULL) == 0);
    CHECK(path_exists(lat) && !path_exists("out.png"));
    free(lat);
    CHECK(sdc_prof_on == 0);
    sched_plan_free(&plan);
}

/* the hand-made token ids above are what the tokenizer gives; a prompt
 * longer than the tokenizer reads is cut with a warning */
static void test_tokens(void)
{
    Tokenizer *t = NULL;
    SdcErr err;
    CHECK(tok_load_memory(&t, VOCAB, strlen(VOCAB), MERGES, strlen(MERGES), "<|endoftext|>", SEQ, "test", &err) == 0);
    if (t) {
        int32_t ids[SEQ];
        CHECK(tok_encode(t, PROMPT, ids, &err) == 5 && !memcmp(ids, PROMPT_IDS, sizeof PROMPT_IDS) && ids[SEQ - 1] == 12);
        CHECK(tok_encode(t, NEGATIVE, ids, &err) == 3 && !memcmp(ids, NEGATIVE_IDS, sizeof NEGATIVE_IDS));
        CHECK(tok_encode(t, "", ids, &err) == 2 && !memcmp(ids, EMPTY_IDS, sizeof EMPTY_IDS));
        tok_free(t);
    }
    SchedPlan plan;
    SdcPipeline p = make_pipeline(&plan, SAMPLER_EULER, 2, 0.0, 1, 7.5f, 2, 2);
    char longp[400] = "";
    for (int k = 0; k < 90; k++) strcat(longp, "a ");
    char *out = tmp_path("long.png");
    CHECK(run(&p, "--prompt", longp, "--out", out, "--weights", weights_path, (char *)NULL) == 0);
    CHECK(strstr(err_text, "92 tokens") != NULL);
    free(out);
    sched_plan_free(&plan);
}

/* ---- against diffusers: noise and timesteps of the tiny-sd goldens ---------- */

/* A 64x64 pipeline whose UNet records what it is given and predicts 0. */
#define FX_NLAT (4 * 32 * 32)
#define FX_MAX_CALLS 16
static int fx_calls;
static float fx_t[FX_MAX_CALLS][2];
static float fx_first_sample[2][FX_NLAT];

static void fx_unet(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    (void)arena, (void)weights;
    const float *x = in[0], *t = in[1];
    if (fx_calls == 0) memcpy(fx_first_sample, x, sizeof fx_first_sample);
    if (fx_calls < FX_MAX_CALLS) fx_t[fx_calls][0] = t[0], fx_t[fx_calls][1] = t[1];
    fx_calls++;
    memset(out[0], 0, 2 * FX_NLAT * sizeof(float));
}

static void fx_decoder(uint8_t *arena, const uint8_t *weights, void *const *in, void *const *out)
{
    (void)arena, (void)weights, (void)in;
    memset(out[0], 0, 3 * 64 * 64 * sizeof(float));
}

static float *golden(const StFile *f, const char *name, int64_t n)
{
    const StTensor *t = st_find(f, name);
    if (!t || st_numel(t) != n) return NULL;
    float *x = xmalloc((size_t)n * sizeof(float));
    SdcErr err;
    if (st_read_f32(f, t, x, &err)) {
        free(x);
        return NULL;
    }
    return x;
}

/* StableDiffusionPipeline(seed 0, 10 steps, 64x64) on tiny-sd: the UNet's
 * first sample is diffusers' initial latents (times scale_model_input), its
 * timesteps are diffusers', one per eval, the same for both CFG rows. */
static void test_fixture_noise_and_timesteps(void)
{
    const char *fx = test_fixtures();
    if (!fx) {
        fprintf(stderr, "skip: SDC_FIXTURES is not set\n");
        return;
    }
    char *cfg_path = path_join(fx, "tiny-sd/scheduler/scheduler_config.json");
    char *gold_path = path_join(fx, "tiny-sd-golden/pipeline.safetensors");
    StFile gf;
    SdcErr err;
    if (st_open(&gf, gold_path, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        free(cfg_path);
        free(gold_path);
        return;
    }
    const SamplerKind kinds[] = {SAMPLER_DDIM, SAMPLER_PNDM, SAMPLER_EULER_A};
    const char *names[] = {"ddim", "pndm", "euler_a"};
    for (int k = 0; k < 3; k++) {
        SchedConfig c;
        SchedPlan plan;
        CHECK_MSG(sched_config_load(&c, cfg_path, kinds[k], &err) == 0, "%s", err.msg);
        CHECK_MSG(sched_plan(&plan, &c, 10, 0.0, &err) == 0, "%s", err.msg);
        SdcPipeline p = make_pipeline(&(SchedPlan){0}, SAMPLER_DDIM, 2, 0.0, 1, 7.5f, 2, 2);
        sched_plan_free(&p.sched);
        p.sched = plan;
        p.width = p.height = 64;
        p.latent_h = p.latent_w = 32;
        int64_t un_in[] = {FX_NLAT, 1, NEMB}, un_out[] = {FX_NLAT}, de_in[] = {FX_NLAT}, de_out[] = {3 * 64 * 64};
        p.unet = graph("unet", fx_unet, 2, 3, un_in, 1, un_out, 0);
        p.vae_decoder = graph("vae_decoder", fx_decoder, 1, 1, de_in, 1, de_out, 0);
        fx_calls = 0;
        char *out = tmp_path("fixture.png");
        CHECK(run(&p, "--prompt", "a photo of a cat", "--seed", "0", "--out", out, "--weights", weights_path,
                  (char *)NULL) == 0);
        free(out);

        char name[64];
        snprintf(name, sizeof name, "pipe_%s_timesteps", names[k]);
        float *ts = golden(&gf, name, plan.n_evals);
        snprintf(name, sizeof name, "pipe_%s_init_latents", names[k]);
        float *init = golden(&gf, name, FX_NLAT);
        CHECK_MSG(ts && init, "%s: goldens missing", names[k]);
        CHECK_MSG(fx_calls == plan.n_evals, "%s: %d UNet calls, %d evals", names[k], fx_calls, plan.n_evals);
        for (int i = 0; ts && i < fx_calls && i < FX_MAX_CALLS; i++)
            CHECK_MSG(fx_t[i][0] == ts[i] && fx_t[i][1] == ts[i], "%s: eval %d: timestep %g, diffusers %g", names[k],
                      i, fx_t[i][0], ts[i]);
        if (init) {
            /* randn * init_noise_sigma, scaled for the UNet: bit for bit with torch's AVX2 randn */
            for (int i = 0; i < FX_NLAT; i++) init[i] = init[i] * plan.in_scale[0];
            CHECK_MSG(test_max_abs(fx_first_sample[0], init, FX_NLAT) == 0, "%s: initial latents differ by %g",
                      names[k], test_max_abs(fx_first_sample[0], init, FX_NLAT));
            CHECK(memcmp(fx_first_sample[0], fx_first_sample[1], sizeof fx_first_sample[0]) == 0);
        }
        free(ts);
        free(init);
        sched_plan_free(&plan);
    }
    st_close(&gf);
    free(cfg_path);
    free(gold_path);
}

int main(void)
{
    dir = xstrdup(test_tmpdir());
    setup_weights();
    unsetenv("SDC_RNG");
    RUN(test_euler_a_matches_reference);
    RUN(test_ddim_batch_matches_reference);
    RUN(test_no_guidance);
    RUN(test_empty_negative);
    RUN(test_img2img);
    RUN(test_png_text_and_determinism);
    RUN(test_bad_flags);
    RUN(test_weights);
    RUN(test_failed_write_leaves_nothing);
    RUN(test_bench);
    RUN(test_tokens);
    RUN(test_fixture_noise_and_timesteps);
    free(weights_img);
    free(weights_path);
    free(dir);
    return test_finish();
}
