/* test_lora.c — LoRAs: applied by `sdc merge`, folded by `sdc compile
 * --lora`, merged into one LoRA.
 *
 * A generator here writes random LoRAs for a random tiny model: linear
 * layers (attention projections, feed-forward, time embedding, text
 * encoder), 1x1 convs (proj_in, conv_shortcut) and LoCon 3x3 convs (resnet
 * conv1/conv2), in every naming sdc reads: kohya with diffusers names, kohya
 * with single-file (LDM) names, PEFT lora_A/lora_B, older diffusers
 * lora.down/lora.up and the attention-processor form.  The LDM names and the
 * MBW block of each target are written out by hand below (not derived from
 * sdc's tables), so the tests check the mapping rather than repeat it.
 *
 * Checked: every targeted tensor equals W + mult * (alpha/rank) * up @ down
 * (computed here in double) and every other tensor is A's bytes; all
 * namings give the same bytes; block weights scale the right tensors;
 * unknown keys are refused with a one-line message naming them; LoRA + LoRA
 * concatenation reproduces the sum of the deltas; the SVD re-factor
 * reports an error that is ~0 at full rank, falls as the rank grows and
 * matches the error measured here; and a LoRA folded at compile time gives
 * the same latents as the same LoRA merged into the model. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "merge.h"
#include "random_model.h"
#include "safetensors.h"
#include "test.h"

static char tmp[512], A[600];

/* ---- the targets ------------------------------------------------------------------ */

typedef struct Target {
    RmComponent comp;
    const char *module; /* diffusers */
    const char *ldm;    /* the single-file module name (UNet), written out by hand */
    int block;          /* MBW block, -1 outside the UNet */
} Target;

static const Target targets[] = {
    {RM_UNET, "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.4.1.transformer_blocks.0.attn1.to_q", 4},
    {RM_UNET, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k", "middle_block.1.transformer_blocks.0.attn2.to_k", 12},
    {RM_UNET, "up_blocks.0.attentions.2.transformer_blocks.0.ff.net.2", "output_blocks.2.1.transformer_blocks.0.ff.net.2", 15},
    {RM_UNET, "down_blocks.1.attentions.1.proj_in", "input_blocks.5.1.proj_in", 5},            /* 1x1 conv */
    {RM_UNET, "down_blocks.0.resnets.1.conv1", "input_blocks.2.0.in_layers.2", 2},              /* LoCon 3x3 */
    {RM_UNET, "up_blocks.1.resnets.2.conv2", "output_blocks.5.0.out_layers.3", 18},             /* LoCon 3x3 */
    {RM_UNET, "down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection", 4},  /* 1x1 conv */
    {RM_UNET, "up_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0",
     "output_blocks.1.1.transformer_blocks.0.attn1.to_out.0", 14},
    {RM_UNET, "time_embedding.linear_1", "time_embed.0", 0},
    {RM_UNET, "up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv", 15},                   /* LoCon 3x3 */
    {RM_TEXT_ENCODER, "text_model.encoder.layers.0.self_attn.q_proj", NULL, -1},
    {RM_TEXT_ENCODER, "text_model.encoder.layers.1.mlp.fc1", NULL, -1},
};
#define NTARGETS ((int)(sizeof targets / sizeof targets[0]))

/* ---- the generator ------------------------------------------------------------------ */

typedef enum Naming { KOHYA, KOHYA_LDM, PEFT, DIFFUSERS_OLD, PROCESSOR } Naming;

typedef struct GenModule {
    int target, rank;
    float alpha;
    int ndim;                  /* of the target: 2 linear, 4 conv */
    int64_t out, in, kh, kw;   /* the target's shape */
    float *down, *up;          /* [rank, in*kh*kw], [out, rank] */
} GenModule;

typedef struct GenLora {
    int n;
    GenModule m[NTARGETS];
} GenLora;

static int open_comp(StFile *f, const char *model, RmComponent c)
{
    char path[800];
    SdcErr err = {{0}};
    snprintf(path, sizeof path, "%s/%s/%s", model, rm_component_dir(c), rm_component_file(c));
    int rc = st_open(f, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

/* Random factors of the given rank for targets[first..last]; shapes from A. */
static void gen(GenLora *g, int first, int last, int rank)
{
    memset(g, 0, sizeof *g);
    for (int t = first; t <= last; t++) {
        StFile f;
        if (open_comp(&f, A, targets[t].comp)) return;
        char name[300];
        snprintf(name, sizeof name, "%s.weight", targets[t].module);
        const StTensor *w = st_find(&f, name);
        CHECK_MSG(w != NULL, "target %s missing in the tiny model", name);
        if (!w) {
            st_close(&f);
            continue;
        }
        GenModule *m = &g->m[g->n++];
        m->target = t, m->rank = rank, m->alpha = (float)(rank / 2 + 1) + 0.5f;
        m->ndim = w->ndim, m->out = w->shape[0], m->in = w->shape[1];
        m->kh = w->ndim == 4 ? w->shape[2] : 1, m->kw = w->ndim == 4 ? w->shape[3] : 1;
        int64_t fan = m->in * m->kh * m->kw;
        m->down = xmalloc(sizeof(float) * (size_t)(rank * fan));
        m->up = xmalloc(sizeof(float) * (size_t)(m->out * rank));
        test_fill_randn(m->down, (size_t)(rank * fan), (float)(1 / sqrt((double)fan)));
        test_fill_randn(m->up, (size_t)(m->out * rank), 0.3f);
        st_close(&f);
    }
}

static void gen_free(GenLora *g)
{
    for (int i = 0; i < g->n; i++) free(g->m[i].down), free(g->m[i].up);
    g->n = 0;
}

static void underscored(char *s)
{
    for (; *s; s++)
        if (*s == '.') *s = '_';
}

/* The module key (what precedes the suffix) and the three suffixes of a naming. */
static void key_of(const GenModule *m, Naming nm, char *key, size_t len)
{
    const Target *t = &targets[m->target];
    int unet = t->comp == RM_UNET;
    switch (nm) {
    case KOHYA:
    case KOHYA_LDM:
        snprintf(key, len, "%s%s", unet ? "lora_unet_" : "lora_te_", nm == KOHYA_LDM && unet ? t->ldm : t->module);
        underscored(key);
        break;
    default: snprintf(key, len, "%s%s", unet ? "unet." : "text_encoder.", t->module); break;
    }
}

static void write_lora(const GenLora *g, Naming nm, int with_alpha, const char *path)
{
    static const char *const sfx[][3] = {
        [KOHYA] = {".lora_down.weight", ".lora_up.weight", ".alpha"},
        [KOHYA_LDM] = {".lora_down.weight", ".lora_up.weight", ".alpha"},
        [PEFT] = {".lora_A.weight", ".lora_B.weight", ".alpha"},
        [DIFFUSERS_OLD] = {".lora.down.weight", ".lora.up.weight", ".alpha"},
    };
    StEntry *e = xcalloc((size_t)(3 * g->n + 1), sizeof(StEntry));
    char (*names)[400] = xcalloc((size_t)(3 * g->n + 1), 400);
    int n = 0;
    for (int i = 0; i < g->n; i++) {
        const GenModule *m = &g->m[i];
        char key[300];
        key_of(m, nm, key, sizeof key);
        if (nm == PROCESSOR) { /* X.attn1.to_q -> X.attn1.processor.to_q_lora.down.weight */
            char *last = strrchr(key, '.');
            const char *proj = last + 1;
            if (strcmp(proj, "0") == 0) { /* to_out.0 */
                *last = 0;
                last = strrchr(key, '.');
                proj = last + 1;
            }
            *last = 0;
            snprintf(names[n], 400, "%s.processor.%s_lora.down.weight", key, proj);
            snprintf(names[n + 1], 400, "%s.processor.%s_lora.up.weight", key, proj);
        } else {
            snprintf(names[n], 400, "%s%s", key, sfx[nm][0]);
            snprintf(names[n + 1], 400, "%s%s", key, sfx[nm][1]);
        }
        int conv = m->ndim == 4;
        e[n] = (StEntry){names[n], DT_F32, conv ? 4 : 2, {m->rank, m->in, m->kh, m->kw}, m->down};
        e[n + 1] = (StEntry){names[n + 1], DT_F32, conv ? 4 : 2, {m->out, m->rank, 1, 1}, m->up};
        n += 2;
        if (with_alpha) {
            snprintf(names[n], 400, "%s%s", key, sfx[nm == PROCESSOR ? PEFT : nm][2]);
            e[n] = (StEntry){names[n], DT_F32, 0, {0}, &m->alpha};
            n++;
        }
    }
    SdcErr err = {{0}};
    CHECK_MSG(st_write(path, n, e, &err) == 0, "%s", err.msg);
    free(e), free(names);
}

/* ---- running sdc ---------------------------------------------------------------------- */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[3000], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, SDC_BINARY_DIR "/sdc %s > /dev/null 2> %s/stderr", args, tmp);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *last_stderr(void)
{
    static char buf[4096];
    char path[600];
    snprintf(path, sizeof path, "%s/stderr", tmp);
    char *t = file_read_all(path, NULL, NULL);
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    free(t);
    return buf;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* tmp/name, in one of 8 rotating buffers: copy it to keep it longer. */
static char *path_in_tmp(const char *name)
{
    static char buf[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

static float *read_t(const StFile *f, const char *name, int64_t *n)
{
    const StTensor *t = st_find(f, name);
    if (!t) return NULL;
    *n = st_numel(t);
    float *v = xmalloc(sizeof(float) * (size_t)*n);
    SdcErr err;
    if (st_read_f32(f, t, v, &err) < 0) return free(v), NULL;
    return v;
}

/* delta += s * up @ down, in double. */
static void add_delta(double *delta, const GenModule *m, double s)
{
    int64_t fan = m->in * m->kh * m->kw;
    for (int64_t o = 0; o < m->out; o++)
        for (int k = 0; k < m->rank; k++)
            for (int64_t i = 0; i < fan; i++) delta[o * fan + i] += s * m->up[o * m->rank + k] * m->down[(int64_t)k * fan + i];
}

/* Checks model M against A + sum over LoRAs of mult * factor(block) * alpha/rank * up @ down. */
static void check_applied(const char *M, int nl, GenLora *const *loras, const double *mults, const double *block_w,
                          double base_w)
{
    int changed = 0;
    for (int c = 0; c < RM_NCOMP; c++) {
        StFile fa, fm;
        if (open_comp(&fa, A, c)) return;
        if (open_comp(&fm, M, c)) {
            st_close(&fa);
            return;
        }
        for (int k = 0; k < fa.n; k++) {
            const char *name = fa.tensors[k].name;
            const StTensor *tm = st_find(&fm, name);
            CHECK_MSG(tm && tm->nbytes == fa.tensors[k].nbytes, "%s", name);
            if (!tm || tm->nbytes != fa.tensors[k].nbytes) continue;
            int64_t n = 0, nm = 0;
            float *a = read_t(&fa, name, &n), *m = read_t(&fm, name, &nm);
            double *delta = xcalloc((size_t)n, sizeof(double));
            int hit = 0;
            for (int l = 0; l < nl; l++)
                for (int i = 0; i < loras[l]->n; i++) {
                    const GenModule *g = &loras[l]->m[i];
                    const Target *t = &targets[g->target];
                    char want[300];
                    snprintf(want, sizeof want, "%s.weight", t->module);
                    if ((int)t->comp != c || strcmp(want, name) != 0) continue;
                    double f = block_w ? (t->block >= 0 ? block_w[t->block] : base_w) : 1.0;
                    add_delta(delta, g, mults[l] * f * g->alpha / g->rank);
                    hit = 1;
                }
            if (!hit) {
                CHECK_MSG(memcmp(st_data(&fa, &fa.tensors[k]), st_data(&fm, tm), tm->nbytes) == 0,
                          "%s/%s changed but no LoRA targets it", rm_component_dir(c), name);
            } else {
                /* float32 rounding of each step, relative to the tensor's scale */
                double worst = 0, scale = 0, dnorm = 0;
                for (int64_t i = 0; i < n; i++) {
                    double want = a[i] + delta[i];
                    if (fabs(m[i] - want) > worst) worst = fabs(m[i] - want);
                    if (fabs(want) > scale) scale = fabs(want);
                    dnorm += delta[i] * delta[i];
                }
                CHECK_MSG(worst <= 1e-6 * scale, "%s/%s: error %g against the formula (scale %g)", rm_component_dir(c),
                          name, worst, scale);
                CHECK_MSG(dnorm > 1e-6, "%s: the test's delta is negligible", name);
                changed++;
            }
            free(a), free(m), free(delta);
        }
        st_close(&fa), st_close(&fm);
    }
    int want = 0;
    for (int t = 0; t < NTARGETS; t++) {
        int any = 0;
        for (int l = 0; l < nl; l++)
            for (int i = 0; i < loras[l]->n; i++) any |= loras[l]->m[i].target == t;
        want += any;
    }
    CHECK_MSG(changed == want, "%d tensors changed, %d targeted", changed, want);
}

static int same_models(const char *x, const char *y)
{
    int same = 1;
    for (int c = 0; c < RM_NCOMP; c++) {
        char p1[800], p2[800];
        snprintf(p1, sizeof p1, "%s/%s/%s", x, rm_component_dir(c), rm_component_file(c));
        snprintf(p2, sizeof p2, "%s/%s/%s", y, rm_component_dir(c), rm_component_file(c));
        StFile f, g;
        SdcErr err;
        if (st_open(&f, p1, &err) < 0) return 0;
        if (st_open(&g, p2, &err) < 0) {
            st_close(&f);
            return 0;
        }
        same &= f.n == g.n;
        for (int k = 0; k < f.n && same; k++) {
            const StTensor *t = st_find(&g, f.tensors[k].name);
            same &= t && t->nbytes == f.tensors[k].nbytes &&
                    memcmp(st_data(&f, &f.tensors[k]), st_data(&g, t), t->nbytes) == 0;
        }
        st_close(&f), st_close(&g);
    }
    return same;
}

/* ---- SD + LoRA ------------------------------------------------------------------------ */

static GenLora L1, L2, LP;

static void test_kohya_formula(void)
{
    write_lora(&L1, KOHYA, 1, path_in_tmp("k1.safetensors"));
    CHECK_MSG(run("merge %s --lora %s:0.7 --quiet -o %s", A, path_in_tmp("k1.safetensors"), path_in_tmp("mk")) == 0, "%s",
              last_stderr());
    GenLora *ls[] = {&L1};
    double mult[] = {0.7};
    check_applied(path_in_tmp("mk"), 1, ls, mult, NULL, 0);
}

static void test_namings_agree(void)
{
    static const struct {
        Naming nm;
        const char *file, *out;
    } forms[] = {{KOHYA_LDM, "kl.safetensors", "mkl"}, {PEFT, "p.safetensors", "mp"}, {DIFFUSERS_OLD, "d.safetensors", "md"}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        write_lora(&L1, forms[i].nm, 1, path_in_tmp(forms[i].file));
        CHECK_MSG(run("merge %s --lora %s:0.7 --quiet -o %s", A, path_in_tmp(forms[i].file), path_in_tmp(forms[i].out)) == 0,
                  "%s: %s", forms[i].file, last_stderr());
        CHECK_MSG(same_models(path_in_tmp("mk"), path_in_tmp(forms[i].out)), "%s differs from kohya", forms[i].file);
    }
    /* the attention-processor form, for the attention projections it can name */
    for (int i = 0; i < LP.n; i++) LP.m[i].alpha = (float)LP.m[i].rank; /* the processor form has no alpha */
    write_lora(&LP, KOHYA, 1, path_in_tmp("ap_k.safetensors"));
    write_lora(&LP, PROCESSOR, 0, path_in_tmp("ap_p.safetensors"));
    CHECK(run("merge %s --lora %s --quiet -o %s", A, path_in_tmp("ap_k.safetensors"), path_in_tmp("map_k")) == 0);
    CHECK_MSG(run("merge %s --lora %s --quiet -o %s", A, path_in_tmp("ap_p.safetensors"), path_in_tmp("map_p")) == 0, "%s",
              last_stderr());
    CHECK(same_models(path_in_tmp("map_k"), path_in_tmp("map_p")));
    GenLora *ls[] = {&LP};
    double mult[] = {1.0};
    check_applied(path_in_tmp("map_p"), 1, ls, mult, NULL, 0);
}

static void test_two_loras(void)
{
    write_lora(&L2, PEFT, 1, path_in_tmp("p2.safetensors"));
    CHECK_MSG(run("merge %s --lora %s:0.7 --lora %s:-0.4 --quiet -o %s", A, path_in_tmp("k1.safetensors"),
                  path_in_tmp("p2.safetensors"), path_in_tmp("m12")) == 0, "%s", last_stderr());
    GenLora *ls[] = {&L1, &L2};
    double mult[] = {0.7, -0.4};
    check_applied(path_in_tmp("m12"), 2, ls, mult, NULL, 0);
}

static void test_no_alpha_is_rank(void)
{
    write_lora(&L2, PEFT, 0, path_in_tmp("p2_noalpha.safetensors"));
    CHECK_MSG(run("merge %s --lora %s --quiet -o %s", A, path_in_tmp("p2_noalpha.safetensors"), path_in_tmp("mna")) == 0,
              "%s", last_stderr());
    GenLora noalpha = L2; /* same factors, alpha = rank */
    for (int i = 0; i < noalpha.n; i++) noalpha.m[i].alpha = (float)noalpha.m[i].rank;
    GenLora *ls[] = {&noalpha};
    double mult[] = {1.0};
    check_applied(path_in_tmp("mna"), 1, ls, mult, NULL, 0);
}

static void test_block_weights(void)
{
    double w[MBW_NBLOCKS];
    char list[600] = "";
    for (int b = 0; b < MBW_NBLOCKS; b++) {
        w[b] = (b % 5) / 4.0 - 0.25; /* some zero, some negative */
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%g", b ? "," : "", w[b]);
    }
    CHECK_MSG(run("merge %s --lora %s:1.5 --mbw %s --base-alpha 0.5 --quiet -o %s", A, path_in_tmp("k1.safetensors"), list,
                  path_in_tmp("mbw")) == 0, "%s", last_stderr());
    GenLora *ls[] = {&L1};
    double mult[] = {1.5};
    check_applied(path_in_tmp("mbw"), 1, ls, mult, w, 0.5);
}

static void write_raw(const char *path, int n, const char *const *names, const int64_t *shapes /* n x 2 */)
{
    StEntry e[8];
    float *data[8];
    for (int i = 0; i < n; i++) {
        int64_t numel = shapes[2 * i] * shapes[2 * i + 1];
        data[i] = xcalloc((size_t)numel, sizeof(float));
        e[i] = (StEntry){names[i], DT_F32, 2, {shapes[2 * i], shapes[2 * i + 1]}, data[i]};
    }
    SdcErr err;
    CHECK(st_write(path, n, e, &err) == 0);
    for (int i = 0; i < n; i++) free(data[i]);
}

static void expect_refused(const char *lora, const char *needle)
{
    const char *out = path_in_tmp("refused");
    int rc = run("merge %s --lora %s --quiet -o %s", A, lora, out);
    const char *msg = last_stderr();
    CHECK_MSG(rc == 1, "%s: exit %d", lora, rc);
    CHECK_MSG(lines(msg) == 1 && strncmp(msg, "sdc: ", 5) == 0, "not one line: %s", msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "the message does not name %s: %s", needle, msg);
    CHECK(!path_exists(out));
}

static void test_unknown_keys(void)
{
    /* a module for a layer the model lacks */
    const char *n1[] = {"lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight",
                        "lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight"};
    int64_t s1[] = {4, 64, 64, 4};
    write_raw(path_in_tmp("u1.safetensors"), 2, n1, s1);
    expect_refused(path_in_tmp("u1.safetensors"), "lora_unet_down_blocks_7_attentions_0_proj_in");
    /* a key in no known format */
    const char *n2[] = {"lora_unet_conv_in.lora_down.weight", "lora_unet_conv_in.lora_up.weight", "model.some.weight"};
    int64_t s2[] = {4, 36, 32, 4, 2, 2};
    write_raw(path_in_tmp("u2.safetensors"), 3, n2, s2);
    expect_refused(path_in_tmp("u2.safetensors"), "model.some.weight");
    /* a component sdc does not apply LoRAs to */
    const char *n3[] = {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
                        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"};
    int64_t s3[] = {4, 32, 32, 4};
    write_raw(path_in_tmp("u3.safetensors"), 2, n3, s3);
    expect_refused(path_in_tmp("u3.safetensors"), "lora_te2_text_model_encoder_layers_0_self_attn_q_proj");
    /* a module whose delta does not fit its weight ([64, 64] to_q given [64, 32]) */
    const char *n4[] = {"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
                        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight"};
    int64_t s4[] = {4, 32, 64, 4};
    write_raw(path_in_tmp("u4.safetensors"), 2, n4, s4);
    expect_refused(path_in_tmp("u4.safetensors"), "do not fit");
}

/* A single-file checkpoint takes LoRAs in both namings, with the same result as its folder. */
static void test_single_file_input(void)
{
    char plain[700], via_folder[700];
    snprintf(plain, sizeof plain, "%s", path_in_tmp("a.safetensors"));
    snprintf(via_folder, sizeof via_folder, "%s", path_in_tmp("s1.safetensors"));
    CHECK_MSG(run("merge %s --with %s --alpha 0 --quiet -o %s", A, A, plain) == 0, "%s", last_stderr()); /* A as one file */
    CHECK_MSG(run("merge %s --lora %s:0.7 --quiet -o %s", A, path_in_tmp("k1.safetensors"), via_folder) == 0, "%s",
              last_stderr());
    static const char *const loras[] = {"k1.safetensors", "kl.safetensors", "p.safetensors"};
    for (size_t i = 0; i < sizeof loras / sizeof loras[0]; i++) {
        const char *out = path_in_tmp("s2.safetensors");
        CHECK_MSG(run("merge %s --lora %s:0.7 --quiet --force -o %s", plain, path_in_tmp(loras[i]), out) == 0, "%s: %s",
                  loras[i], last_stderr());
        StFile f, g;
        SdcErr err;
        if (st_open(&f, via_folder, &err) < 0 || st_open(&g, out, &err) < 0) {
            CHECK_MSG(0, "%s", err.msg);
            return;
        }
        int differ = f.n != g.n;
        for (int k = 0; k < f.n && !differ; k++) {
            const StTensor *t = st_find(&g, f.tensors[k].name);
            differ = !t || t->nbytes != f.tensors[k].nbytes ||
                     memcmp(st_data(&g, t), st_data(&f, &f.tensors[k]), t->nbytes) != 0;
        }
        CHECK_MSG(!differ, "%s on the single file differs from the folder merge", loras[i]);
        st_close(&f), st_close(&g);
    }
}

/* ---- LoRA + LoRA ------------------------------------------------------------------------- */

/* The delta of module `key` in a written LoRA file, in double ([out * fan]); NULL if absent. */
static double *file_delta(const StFile *f, const char *key, int64_t *numel, int *rank)
{
    char dn[400], un[400], an[400];
    snprintf(dn, sizeof dn, "%s.lora_down.weight", key);
    snprintf(un, sizeof un, "%s.lora_up.weight", key);
    snprintf(an, sizeof an, "%s.alpha", key);
    const StTensor *td = st_find(f, dn), *tu = st_find(f, un), *ta = st_find(f, an);
    if (!td || !tu || !ta) return NULL;
    int64_t nd, nu, na;
    float *d = read_t(f, dn, &nd), *u = read_t(f, un, &nu), *a = read_t(f, an, &na);
    int r = (int)td->shape[0];
    int64_t out = tu->shape[0], fan = nd / r;
    double *delta = xcalloc((size_t)(out * fan), sizeof(double));
    for (int64_t o = 0; o < out; o++)
        for (int k = 0; k < r; k++)
            for (int64_t i = 0; i < fan; i++) delta[o * fan + i] += (double)a[0] / r * u[o * r + k] * d[(int64_t)k * fan + i];
    *numel = out * fan;
    *rank = r;
    free(d), free(u), free(a);
    return delta;
}

/* The exact sum of deltas of target t: 0.7 L1 - 0.4 L2. */
static double *exact_delta(int t, int64_t numel)
{
    double *delta = xcalloc((size_t)numel, sizeof(double));
    GenLora *ls[] = {&L1, &L2};
    double mult[] = {0.7, -0.4};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < ls[l]->n; i++)
            if (ls[l]->m[i].target == t) add_delta(delta, &ls[l]->m[i], mult[l] * ls[l]->m[i].alpha / ls[l]->m[i].rank);
    return delta;
}

static void kohya_key(int t, char *key, size_t len)
{
    snprintf(key, len, "%s%s", targets[t].comp == RM_UNET ? "lora_unet_" : "lora_te_", targets[t].module);
    underscored(key);
}

/* sum over targets of ||file delta - exact||^2 and ||exact||^2; checks each module's rank <= max_rank. */
static void compare_merged(const char *path, int max_rank, double *err2, double *norm2, double *worst_module)
{
    StFile f;
    SdcErr err;
    *err2 = *norm2 = *worst_module = 0;
    if (st_open(&f, path, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    CHECK_MSG(f.n == 3 * NTARGETS, "%d tensors, expected %d", f.n, 3 * NTARGETS);
    for (int t = 0; t < NTARGETS; t++) {
        char key[300];
        kohya_key(t, key, sizeof key);
        int64_t n = 0;
        int rank = 0;
        double *got = file_delta(&f, key, &n, &rank);
        CHECK_MSG(got != NULL, "%s missing in %s", key, path);
        if (!got) continue;
        CHECK_MSG(rank <= max_rank, "%s: rank %d > %d", key, rank, max_rank);
        double *want = exact_delta(t, n), e = 0, s = 0;
        for (int64_t i = 0; i < n; i++) e += (got[i] - want[i]) * (got[i] - want[i]), s += want[i] * want[i];
        *err2 += e, *norm2 += s;
        if (s > 0 && sqrt(e / s) > *worst_module) *worst_module = sqrt(e / s);
        free(got), free(want);
    }
    st_close(&f);
}

static void test_lora_concat(void)
{
    /* kohya L1 (rank 4, targets 0-7) + PEFT L2 (rank 3, targets 4-11): keys meet by their kohya spelling */
    const char *out = path_in_tmp("lm.safetensors");
    CHECK_MSG(run("merge --lora %s:0.7 --lora %s:-0.4 --quiet -o %s", path_in_tmp("k1.safetensors"),
                  path_in_tmp("p2.safetensors"), out) == 0, "%s", last_stderr());
    double e2, n2, worst;
    compare_merged(out, 7, &e2, &n2, &worst);
    CHECK_MSG(worst < 1e-6, "concatenation is not exact: worst module relative error %g", worst);
    /* applying it equals applying both */
    CHECK_MSG(run("merge %s --lora %s --quiet -o %s", A, out, path_in_tmp("mlm")) == 0, "%s", last_stderr());
    GenLora *ls[] = {&L1, &L2};
    double mult[] = {0.7, -0.4};
    check_applied(path_in_tmp("mlm"), 2, ls, mult, NULL, 0);
}

static void test_lora_svd(void)
{
    char f1[700], f2[700];
    snprintf(f1, sizeof f1, "%s", path_in_tmp("k1.safetensors"));
    snprintf(f2, sizeof f2, "%s", path_in_tmp("p2.safetensors"));
    const char *files[] = {f1, f2};
    double mults[] = {0.7, -0.4}, prev = INFINITY;
    static const int ranks[] = {1, 2, 3, 5, 7, 9};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "svd%d.safetensors", ranks[i]);
        LoraMergeOptions o = {.n = 2, .files = files, .mults = mults, .out = path_in_tmp(name), .rank = ranks[i]};
        LoraMergeReport r;
        SdcErr err = {{0}};
        CHECK_MSG(lora_merge(&o, &r, &err) == 0, "%s", err.msg);
        CHECK(r.modules == NTARGETS && r.max_rank <= ranks[i]);
        double e2, n2, worst;
        compare_merged(o.out, ranks[i], &e2, &n2, &worst);
        double measured = sqrt(e2 / n2);
        fprintf(stderr, "  rank %d: reported error %.3g, measured %.3g\n", ranks[i], r.rel_err, measured);
        CHECK_MSG(fabs(measured - r.rel_err) <= 1e-4 * r.rel_err + 1e-6, "rank %d: reported %g, measured %g", ranks[i],
                  r.rel_err, measured);
        if (ranks[i] >= 7) CHECK_MSG(r.rel_err < 1e-6 && worst < 1e-5, "rank %d >= 4 + 3: error %g", ranks[i], r.rel_err);
        else CHECK_MSG(r.rel_err > 1e-3, "rank %d < 7 should lose something: %g", ranks[i], r.rel_err);
        CHECK_MSG(r.rel_err < prev || r.rel_err < 1e-6, "rank %d: error %g does not fall (was %g)", ranks[i], r.rel_err, prev);
        prev = r.rel_err;
    }
    /* the CLI says it */
    CHECK(run("merge --lora %s:0.7 --lora %s:-0.4 --rank 3 -o %s", files[0], files[1], path_in_tmp("svd_cli.safetensors")) == 0);
    CHECK_MSG(strstr(last_stderr(), "relative error") != NULL, "%s", last_stderr());
}

/* ---- sdc compile --lora ---------------------------------------------------------------------- */

static float *latents_of(const char *exe, int64_t *n)
{
    char lat[800], png[800], cmd[3000];
    snprintf(lat, sizeof lat, "%s.latents.safetensors", exe);
    snprintf(png, sizeof png, "%s.png", exe);
    snprintf(cmd, sizeof cmd, "%s --prompt 'a photo of a cat' --seed 3 --quiet --out %s --save-latents %s", exe, png, lat);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    StFile f;
    SdcErr err;
    if (st_open(&f, lat, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return NULL;
    }
    float *v = read_t(&f, "latents", n);
    st_close(&f);
    return v;
}

static void test_compile_matches_merge(void)
{
    const char *lora = path_in_tmp("k1.safetensors"), *merged = path_in_tmp("mk");
    const char *opts = "--width 32 --height 32 --steps 2 --quiet";
    CHECK_MSG(run("compile %s --lora %s:0.7 %s -o %s", A, lora, opts, path_in_tmp("exe_lora")) == 0, "%s", last_stderr());
    CHECK_MSG(run("compile %s %s -o %s", merged, opts, path_in_tmp("exe_merged")) == 0, "%s", last_stderr());
    CHECK_MSG(run("compile %s %s -o %s", A, opts, path_in_tmp("exe_plain")) == 0, "%s", last_stderr());
    int64_t n1 = 0, n2 = 0, n3 = 0;
    float *x = latents_of(path_in_tmp("exe_lora"), &n1), *y = latents_of(path_in_tmp("exe_merged"), &n2),
          *z = latents_of(path_in_tmp("exe_plain"), &n3);
    CHECK(x && y && z && n1 == n2 && n1 == n3 && n1 > 0);
    if (x && y && z && n1 == n2 && n1 == n3) {
        double d = test_max_abs(x, y, (size_t)n1), base = test_max_abs(x, z, (size_t)n1);
        fprintf(stderr, "  --lora vs merged: max abs diff %.3g; vs no LoRA: %.3g\n", d, base);
        CHECK_MSG(d <= 1e-5, "compile --lora and merge differ by %g", d);
        CHECK_MSG(base > 1e-3, "the LoRA does not change the output (%g): the test would not see a wrong fold", base);
    }
    free(x), free(y), free(z);
    /* a LoRA with unknown keys stops the compile; so does a pipeline without fold-lora */
    CHECK(run("compile %s --lora %s %s -o %s", A, path_in_tmp("u1.safetensors"), opts, path_in_tmp("exe_bad")) == 1);
    CHECK_MSG(strstr(last_stderr(), "lora_unet_down_blocks_7_attentions_0_proj_in") && lines(last_stderr()) == 1, "%s",
              last_stderr());
    CHECK(run("compile %s --lora %s --disable-pass fold-lora %s -o %s", A, lora, opts, path_in_tmp("exe_bad")) == 1);
    CHECK_MSG(strstr(last_stderr(), "fold-lora") != NULL, "%s", last_stderr());
    CHECK(!path_exists(path_in_tmp("exe_bad")));
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    snprintf(A, sizeof A, "%s/A", tmp);
    SdcErr err = {{0}};
    if (random_model_write("tiny", A, 1, DT_F32, 1, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    gen(&L1, 0, 7, 4);            /* UNet: linears, 1x1 and 3x3 convs */
    gen(&L2, 4, NTARGETS - 1, 3); /* overlaps L1 on 4-7; UNet and text encoder */
    gen(&LP, 0, 1, 2);            /* attention projections only (the processor form) */
    RUN(test_kohya_formula);
    RUN(test_namings_agree);
    RUN(test_two_loras);
    RUN(test_no_alpha_is_rank);
    RUN(test_block_weights);
    RUN(test_unknown_keys);
    RUN(test_single_file_input);
    RUN(test_lora_concat);
    RUN(test_lora_svd);
    RUN(test_compile_matches_merge);
    gen_free(&L1), gen_free(&L2), gen_free(&LP);
    return test_finish();
}
