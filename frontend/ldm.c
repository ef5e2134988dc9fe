/* ldm.c — single-file SD 1.x checkpoints (see ldm.h).
 *
 * Three steps in ldm_open:
 *  1. Refuse what is not SD 1.x: SDXL (conditioner.* keys), SD 2.x (an
 *     OpenCLIP text encoder under cond_stage_model.model.*, or a UNet whose
 *     cross-attention context is 1024 wide), class-conditioned UNets, files
 *     without model.diffusion_model.* keys.
 *  2. Infer each component's config from tensor shapes and write it as the
 *     diffusers / transformers config.json would be, so that the graph
 *     builders read single files and folders alike.  What shapes cannot
 *     tell takes the SD 1.x value:
 *       - UNet heads: SD 1.x has 8 heads in every attention
 *         ("attention_head_dim": 8 in diffusers' legacy naming);
 *       - norm_num_groups 32 (UNet and VAE), norm_eps 1e-5, VAE
 *         scaling_factor 0.18215, CLIP num_attention_heads = hidden / 64
 *         (ViT-L/14 heads of 64 channels; 1 when hidden is not a multiple),
 *         quick_gelu, layer_norm_eps 1e-5;
 *       - the prediction type: v-prediction fine-tunes hold the same
 *         tensors as epsilon ones, so nothing here can tell them apart
 *         (that belongs to the scheduler config, which a single file lacks).
 *     An inpainting UNet shows as in_channels 9 and is built as such.
 *     Overrides: a JSON file next to the checkpoint, named after it with
 *     ".config.json" in place of ".safetensors" (model.safetensors ->
 *     model.config.json), may hold {"unet": {...}, "vae": {...},
 *     "text_encoder": {...}}; each field replaces the inferred one (for
 *     models that differ from SD 1.x in what shapes cannot show).
 *  3. Build per component a table of module renames, diffusers -> LDM,
 *     sorted for binary search, from the structure read in step 2.  The
 *     WeightSet's translate callback splits a parameter name at its dots,
 *     finds the module and renames the parameter inside it (resnets and the
 *     VAE attention rename their layers too).
 *
 * The renames are those of diffusers' convert_original_stable_diffusion_to_diffusers.py:
 *   UNet (model.diffusion_model.)   time_embed.0/2, input_blocks.K.0/1 (resnet / transformer,
 *     K = 1 + block*(L+1) + layer, a downsampler input_blocks.K.0.op closing each block),
 *     middle_block.0/1/2, output_blocks.K.0/1 (K = block*(L+1) + layer; the upsampler is
 *     output_blocks.K.1 or .2 after a transformer), out.0/2;
 *   VAE (first_stage_model.)        encoder.down.I.block.J, decoder.up.(N-1-I).block.J,
 *     {encoder,decoder}.mid.block_1/attn_1/block_2 (attention as 1x1 convs), norm_out;
 *   CLIP (cond_stage_model.transformer.)  the transformers names, with or without the
 *     leading "text_model." of older transformers versions. */
#include "ldm.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cfg.h"
#include "fsutil.h"

#define LDM_MAX_BLOCKS 8

enum { LDM_UNET, LDM_VAE, LDM_TEXT, LDM_NSUB };
static const char *const sub_names[LDM_NSUB] = {"unet", "vae", "text_encoder"};
static const char *const sub_prefix[LDM_NSUB] = {"model.diffusion_model.", "first_stage_model.",
                                                 "cond_stage_model.transformer."};

/* How the parameters inside a renamed module are named. */
typedef enum RuleKind {
    RULE_SAME,        /* unchanged: transformers, convs, norms, linears */
    RULE_UNET_RESNET, /* ResBlock: in_layers / emb_layers / out_layers / skip_connection */
    RULE_VAE_RESNET,  /* ResnetBlock: nin_shortcut */
    RULE_VAE_ATTN,    /* AttnBlock: norm, q, k, v, proj_out as 1x1 convs */
} RuleKind;

typedef struct LdmRule {
    char *from; /* diffusers module path: "down_blocks.1.resnets.0" */
    char *to;   /* LDM module path under the component prefix: "input_blocks.4.0" */
    RuleKind kind;
} LdmRule;

typedef struct LdmMap {
    const char *prefix; /* component prefix in the file */
    int n, cap;
    LdmRule *rules; /* sorted by `from` */
    int text;       /* CLIP: every name maps through */
    int text_model; /* CLIP: the file has the "text_model." level */
} LdmMap;

/* Layer renames inside a module: diffusers name -> LDM name. */
typedef struct Inner {
    const char *from, *to;
    int view; /* the LDM tensor is a 1x1 conv standing for a linear */
} Inner;

static const Inner unet_resnet_inner[] = {{"norm1", "in_layers.0", 0},
                                          {"conv1", "in_layers.2", 0},
                                          {"time_emb_proj", "emb_layers.1", 0},
                                          {"norm2", "out_layers.0", 0},
                                          {"conv2", "out_layers.3", 0},
                                          {"conv_shortcut", "skip_connection", 0},
                                          {NULL, NULL, 0}};
static const Inner vae_resnet_inner[] = {{"norm1", "norm1", 0},
                                         {"conv1", "conv1", 0},
                                         {"norm2", "norm2", 0},
                                         {"conv2", "conv2", 0},
                                         {"conv_shortcut", "nin_shortcut", 0},
                                         {NULL, NULL, 0}};
static const Inner vae_attn_inner[] = {
    {"group_norm", "norm", 0},   {"to_q", "q", 1}, {"to_k", "k", 1}, {"to_v", "v", 1},
    {"to_out.0", "proj_out", 1}, {NULL, NULL, 0}};

/* ---- name maps -------------------------------------------------------- */

static void rule_add(LdmMap *m, RuleKind kind, const char *to, const char *from_fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void rule_add(LdmMap *m, RuleKind kind, const char *to, const char *from_fmt, ...)
{
    char from[256];
    va_list ap;
    va_start(ap, from_fmt);
    vsnprintf(from, sizeof from, from_fmt, ap);
    va_end(ap);
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->rules = xrealloc(m->rules, sizeof(LdmRule) * (size_t)m->cap);
    }
    m->rules[m->n++] = (LdmRule){xstrdup(from), xstrdup(to), kind};
}

static int rule_cmp(const void *a, const void *b)
{
    return strcmp(((const LdmRule *)a)->from, ((const LdmRule *)b)->from);
}

static void map_sort(LdmMap *m)
{
    qsort(m->rules, (size_t)m->n, sizeof(LdmRule), rule_cmp);
    for (int i = 1; i < m->n; i++) SDC_ASSERT(strcmp(m->rules[i - 1].from, m->rules[i].from) != 0);
}

static void map_free(LdmMap *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) free(m->rules[i].from), free(m->rules[i].to);
    free(m->rules);
    free(m);
}

static const LdmRule *map_find(const LdmMap *m, const char *module)
{
    LdmRule key = {(char *)module, NULL, RULE_SAME};
    return bsearch(&key, m->rules, (size_t)m->n, sizeof(LdmRule), rule_cmp);
}

static int put(char *out, size_t len, const char *a, const char *b, const char *c)
{
    return snprintf(out, len, "%s%s%s", a, b, c) < (int)len ? 0 : -1;
}

/* The WeightTranslate callback: diffusers name -> name in the file. */
static int ldm_translate(void *ctx, const char *name, char *out, size_t len, int *view_ok)
{
    const LdmMap *m = ctx;
    *view_ok = 0;
    if (m->text) {
        const char *core = strncmp(name, "text_model.", 11) == 0 ? name + 11 : name;
        return put(out, len, m->prefix, m->text_model ? "text_model." : "", core);
    }
    char module[256];
    for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
        size_t k = (size_t)(dot - name);
        if (k >= sizeof module) return -1;
        memcpy(module, name, k);
        module[k] = 0;
        const LdmRule *r = map_find(m, module);
        if (!r) continue;
        const char *param = dot + 1;
        const Inner *inner = r->kind == RULE_UNET_RESNET  ? unet_resnet_inner
                             : r->kind == RULE_VAE_RESNET ? vae_resnet_inner
                             : r->kind == RULE_VAE_ATTN   ? vae_attn_inner
                                                          : NULL;
        char mid[300];
        if (!inner) {
            if (put(mid, sizeof mid, r->to, ".", param) < 0) return -1;
            return put(out, len, m->prefix, mid, "");
        }
        for (const Inner *in = inner; in->from; in++) {
            size_t n = strlen(in->from);
            if (strncmp(param, in->from, n) != 0 || param[n] != '.') continue;
            if (snprintf(mid, sizeof mid, "%s.%s%s", r->to, in->to, param + n) >= (int)sizeof mid) return -1;
            *view_ok = in->view;
            return put(out, len, m->prefix, mid, "");
        }
        return -1; /* a layer this module does not have */
    }
    return -1;
}

/* ---- reading shapes ------------------------------------------------------ */

static const StTensor *find_fmt(const StFile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const StTensor *find_fmt(const StFile *f, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return n < (int)sizeof name ? st_find(f, name) : NULL;
}

static int has_prefix(const StFile *f, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n; i++)
        if (strncmp(f->tensors[i].name, prefix, n) == 0) return 1;
    return 0;
}

/* The tensor `key` (under `prefix`), which must have `ndim` dims. */
static const StTensor *need(const LdmCheckpoint *c, const char *prefix, const char *key, int ndim, SdcErr *err)
{
    const StTensor *t = find_fmt(&c->file, "%s%s", prefix, key);
    if (!t) {
        sdc_err(err, "%s: %s%s: missing (not an SD 1.x checkpoint?)", c->path, prefix, key);
        return NULL;
    }
    if (t->ndim != ndim) {
        sdc_err(err, "%s: %s%s: %d dims, expected %d", c->path, prefix, key, t->ndim, ndim);
        return NULL;
    }
    return t;
}

static cJSON *int_array(const int *v, int n) { return cJSON_CreateIntArray(v, n); }

/* n strings: `yes` where pick[i] (or everywhere when pick is NULL), else `no`. */
static cJSON *str_array(const char *yes, const char *no, const int *pick, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(!pick || pick[i] ? yes : no));
    return arr;
}

/* ---- UNet ------------------------------------------------------------------ */

typedef struct UnetShape {
    int in_ch, out_ch, model_ch, temb_dim, conv_in_k, conv_out_k;
    int n;                         /* resolution levels */
    int layers;                    /* resnets per down block (SD: num_res_blocks) */
    int ch[LDM_MAX_BLOCKS];        /* block_out_channels */
    int attn_down[LDM_MAX_BLOCKS]; /* down block i has transformers */
    int attn_up[LDM_MAX_BLOCKS];   /* up block i has transformers */
    int context, linear, tlayers;
} UnetShape;

static int unet_shape(const LdmCheckpoint *c, UnetShape *u, SdcErr *err)
{
    const char *p = sub_prefix[LDM_UNET];
    const StFile *f = &c->file;
    memset(u, 0, sizeof *u);
    const StTensor *t;
    if (!(t = need(c, p, "input_blocks.0.0.weight", 4, err))) return -1;
    u->model_ch = (int)t->shape[0], u->in_ch = (int)t->shape[1], u->conv_in_k = (int)t->shape[2];
    if (!(t = need(c, p, "out.2.weight", 4, err))) return -1;
    u->out_ch = (int)t->shape[0], u->conv_out_k = (int)t->shape[2];
    if (!(t = need(c, p, "time_embed.0.weight", 2, err))) return -1;
    u->temb_dim = (int)t->shape[0];

    /* input_blocks after conv_in: per level `layers` resnets (each maybe
     * followed by a transformer), then a downsampler except at the last */
    int per_level[LDM_MAX_BLOCKS] = {0}, level = 0;
    for (int k = 1;; k++) {
        if (find_fmt(f, "%sinput_blocks.%d.0.op.weight", p, k)) {
            if (per_level[level] == 0 || level + 1 == LDM_MAX_BLOCKS)
                return sdc_err(err, "%s: %sinput_blocks.%d: unexpected downsampler (not an SD 1.x UNet)", c->path, p,
                               k);
            level++;
            continue;
        }
        t = find_fmt(f, "%sinput_blocks.%d.0.out_layers.3.weight", p, k);
        if (!t) break;
        int attn = find_fmt(f, "%sinput_blocks.%d.1.norm.weight", p, k) != NULL;
        if (per_level[level] == 0)
            u->ch[level] = (int)t->shape[0], u->attn_down[level] = attn;
        else if (u->ch[level] != t->shape[0] || u->attn_down[level] != attn)
            return sdc_err(err,
                           "%s: %sinput_blocks.%d: differs from the other resnets of its level (not an SD 1.x UNet)",
                           c->path, p, k);
        per_level[level]++;
    }
    u->n = level + 1;
    if (per_level[level] == 0)
        return sdc_err(err, "%s: %sinput_blocks: no resnets found after conv_in or after a downsampler", c->path, p);
    u->layers = per_level[0];
    for (int i = 1; i < u->n; i++)
        if (per_level[i] != u->layers)
            return sdc_err(err, "%s: %sinput_blocks: %d resnets at level %d but %d at level 0 (not supported)", c->path,
                           p, per_level[i], i, u->layers);

    /* output_blocks: layers+1 per level, coarsest first */
    for (int i = 0; i < u->n; i++)
        for (int j = 0; j <= u->layers; j++) {
            int k = i * (u->layers + 1) + j;
            if (!find_fmt(f, "%soutput_blocks.%d.0.out_layers.3.weight", p, k))
                return sdc_err(err, "%s: %soutput_blocks.%d.0.out_layers.3.weight: missing (input_blocks imply %d)",
                               c->path, p, k, u->n * (u->layers + 1));
            int attn = find_fmt(f, "%soutput_blocks.%d.1.norm.weight", p, k) != NULL;
            if (j == 0)
                u->attn_up[i] = attn;
            else if (attn != u->attn_up[i])
                return sdc_err(err,
                               "%s: %soutput_blocks.%d: transformers on some resnets of a level only (not supported)",
                               c->path, p, k);
        }

    if (!(t = find_fmt(f, "%smiddle_block.1.proj_in.weight", p)))
        return sdc_err(err, "%s: %smiddle_block.1: no transformer (sdc builds UNetMidBlock2DCrossAttn)", c->path, p);
    u->linear = t->ndim == 2; /* SD 2.x style linear proj_in; SD 1.x uses a 1x1 conv */
    if (!(t = need(c, p, "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 2, err))) return -1;
    u->context = (int)t->shape[1];
    while (find_fmt(f, "%smiddle_block.1.transformer_blocks.%d.norm1.weight", p, u->tlayers)) u->tlayers++;
    return 0;
}

static cJSON *unet_config(const UnetShape *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "UNet2DConditionModel");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddNumberToObject(o, "attention_head_dim", 8); /* heads: not in the shapes; SD 1.x has 8 */
    cJSON_AddItemToObject(o, "block_out_channels", int_array(u->ch, u->n));
    cJSON_AddBoolToObject(o, "center_input_sample", 0);
    cJSON_AddNumberToObject(o, "cross_attention_dim", u->context);
    cJSON_AddItemToObject(o, "down_block_types", str_array("CrossAttnDownBlock2D", "DownBlock2D", u->attn_down, u->n));
    cJSON_AddNumberToObject(o, "downsample_padding", 1);
    cJSON_AddBoolToObject(o, "flip_sin_to_cos", 1);
    cJSON_AddNumberToObject(o, "freq_shift", 0);
    cJSON_AddNumberToObject(o, "in_channels", u->in_ch);
    cJSON_AddNumberToObject(o, "layers_per_block", u->layers);
    cJSON_AddNumberToObject(o, "mid_block_scale_factor", 1);
    cJSON_AddNumberToObject(o, "norm_eps", 1e-5);
    cJSON_AddNumberToObject(o, "norm_num_groups", 32);
    cJSON_AddNumberToObject(o, "out_channels", u->out_ch);
    cJSON_AddNumberToObject(o, "sample_size", 64);
    cJSON_AddItemToObject(o, "up_block_types", str_array("CrossAttnUpBlock2D", "UpBlock2D", u->attn_up, u->n));
    cJSON_AddBoolToObject(o, "use_linear_projection", u->linear);
    /* only where the file differs from the diffusers defaults */
    if (u->tlayers != 1) cJSON_AddNumberToObject(o, "transformer_layers_per_block", u->tlayers);
    if (u->temb_dim != 4 * u->model_ch) cJSON_AddNumberToObject(o, "time_embedding_dim", u->temb_dim);
    if (u->conv_in_k != 3) cJSON_AddNumberToObject(o, "conv_in_kernel", u->conv_in_k);
    if (u->conv_out_k != 3) cJSON_AddNumberToObject(o, "conv_out_kernel", u->conv_out_k);
    return o;
}

static LdmMap *unet_map(const UnetShape *u)
{
    LdmMap *m = xcalloc(1, sizeof *m);
    m->prefix = sub_prefix[LDM_UNET];
    char to[64];
    rule_add(m, RULE_SAME, "time_embed.0", "time_embedding.linear_1");
    rule_add(m, RULE_SAME, "time_embed.2", "time_embedding.linear_2");
    rule_add(m, RULE_SAME, "input_blocks.0.0", "conv_in");
    int k = 1;
    for (int i = 0; i < u->n; i++) {
        for (int j = 0; j < u->layers; j++, k++) {
            snprintf(to, sizeof to, "input_blocks.%d.0", k);
            rule_add(m, RULE_UNET_RESNET, to, "down_blocks.%d.resnets.%d", i, j);
            snprintf(to, sizeof to, "input_blocks.%d.1", k);
            if (u->attn_down[i]) rule_add(m, RULE_SAME, to, "down_blocks.%d.attentions.%d", i, j);
        }
        if (i < u->n - 1) {
            snprintf(to, sizeof to, "input_blocks.%d.0.op", k++);
            rule_add(m, RULE_SAME, to, "down_blocks.%d.downsamplers.0.conv", i);
        }
    }
    rule_add(m, RULE_UNET_RESNET, "middle_block.0", "mid_block.resnets.0");
    rule_add(m, RULE_SAME, "middle_block.1", "mid_block.attentions.0");
    rule_add(m, RULE_UNET_RESNET, "middle_block.2", "mid_block.resnets.1");
    k = 0;
    for (int i = 0; i < u->n; i++)
        for (int j = 0; j <= u->layers; j++, k++) {
            snprintf(to, sizeof to, "output_blocks.%d.0", k);
            rule_add(m, RULE_UNET_RESNET, to, "up_blocks.%d.resnets.%d", i, j);
            snprintf(to, sizeof to, "output_blocks.%d.1", k);
            if (u->attn_up[i]) rule_add(m, RULE_SAME, to, "up_blocks.%d.attentions.%d", i, j);
            if (j == u->layers && i < u->n - 1) {
                snprintf(to, sizeof to, "output_blocks.%d.%d.conv", k, u->attn_up[i] ? 2 : 1);
                rule_add(m, RULE_SAME, to, "up_blocks.%d.upsamplers.0.conv", i);
            }
        }
    rule_add(m, RULE_SAME, "out.0", "conv_norm_out");
    rule_add(m, RULE_SAME, "out.2", "conv_out");
    map_sort(m);
    return m;
}

/* ---- VAE ------------------------------------------------------------------- */

typedef struct VaeShape {
    int in_ch, out_ch, latent, n, layers;
    int ch[LDM_MAX_BLOCKS];
    int mid_attn, quant_conv, post_quant_conv;
} VaeShape;

static int vae_shape(const LdmCheckpoint *c, VaeShape *v, SdcErr *err)
{
    const char *p = sub_prefix[LDM_VAE];
    const StFile *f = &c->file;
    memset(v, 0, sizeof *v);
    const StTensor *t;
    if (!(t = need(c, p, "encoder.conv_in.weight", 4, err))) return -1;
    v->in_ch = (int)t->shape[1];
    if (!(t = need(c, p, "decoder.conv_out.weight", 4, err))) return -1;
    v->out_ch = (int)t->shape[0];
    if (!(t = need(c, p, "decoder.conv_in.weight", 4, err))) return -1;
    v->latent = (int)t->shape[1];
    while (v->n < LDM_MAX_BLOCKS && (t = find_fmt(f, "%sencoder.down.%d.block.0.conv2.weight", p, v->n)))
        v->ch[v->n++] = (int)t->shape[0];
    if (v->n == 0) return sdc_err(err, "%s: %sencoder.down.0.block.0.conv2.weight: missing", c->path, p);
    while (find_fmt(f, "%sencoder.down.0.block.%d.conv1.weight", p, v->layers)) v->layers++;
    v->mid_attn = find_fmt(f, "%sdecoder.mid.attn_1.q.weight", p) != NULL;
    v->quant_conv = find_fmt(f, "%squant_conv.weight", p) != NULL;
    v->post_quant_conv = find_fmt(f, "%spost_quant_conv.weight", p) != NULL;
    return 0;
}

static cJSON *vae_config(const VaeShape *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "AutoencoderKL");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddItemToObject(o, "block_out_channels", int_array(v->ch, v->n));
    cJSON_AddItemToObject(o, "down_block_types", str_array("DownEncoderBlock2D", NULL, NULL, v->n));
    cJSON_AddNumberToObject(o, "in_channels", v->in_ch);
    cJSON_AddNumberToObject(o, "latent_channels", v->latent);
    cJSON_AddNumberToObject(o, "layers_per_block", v->layers);
    cJSON_AddNumberToObject(o, "norm_num_groups", 32);
    cJSON_AddNumberToObject(o, "out_channels", v->out_ch);
    cJSON_AddNumberToObject(o, "sample_size", 512);
    cJSON_AddNumberToObject(o, "scaling_factor", 0.18215);
    cJSON_AddItemToObject(o, "up_block_types", str_array("UpDecoderBlock2D", NULL, NULL, v->n));
    if (!v->mid_attn) cJSON_AddBoolToObject(o, "mid_block_add_attention", 0);
    if (!v->quant_conv) cJSON_AddBoolToObject(o, "use_quant_conv", 0);
    if (!v->post_quant_conv) cJSON_AddBoolToObject(o, "use_post_quant_conv", 0);
    return o;
}

static void vae_mid_rules(LdmMap *m, const char *half)
{
    char to[64];
    snprintf(to, sizeof to, "%s.mid.block_1", half);
    rule_add(m, RULE_VAE_RESNET, to, "%s.mid_block.resnets.0", half);
    snprintf(to, sizeof to, "%s.mid.attn_1", half);
    rule_add(m, RULE_VAE_ATTN, to, "%s.mid_block.attentions.0", half);
    snprintf(to, sizeof to, "%s.mid.block_2", half);
    rule_add(m, RULE_VAE_RESNET, to, "%s.mid_block.resnets.1", half);
    static const char *const same[] = {"conv_in", "conv_out"};
    for (int i = 0; i < 2; i++) {
        snprintf(to, sizeof to, "%s.%s", half, same[i]);
        rule_add(m, RULE_SAME, to, "%s.%s", half, same[i]);
    }
    snprintf(to, sizeof to, "%s.norm_out", half);
    rule_add(m, RULE_SAME, to, "%s.conv_norm_out", half);
}

static LdmMap *vae_map(const VaeShape *v)
{
    LdmMap *m = xcalloc(1, sizeof *m);
    m->prefix = sub_prefix[LDM_VAE];
    char to[64];
    for (int i = 0; i < v->n; i++) {
        for (int j = 0; j < v->layers; j++) {
            snprintf(to, sizeof to, "encoder.down.%d.block.%d", i, j);
            rule_add(m, RULE_VAE_RESNET, to, "encoder.down_blocks.%d.resnets.%d", i, j);
        }
        if (i < v->n - 1) {
            snprintf(to, sizeof to, "encoder.down.%d.downsample.conv", i);
            rule_add(m, RULE_SAME, to, "encoder.down_blocks.%d.downsamplers.0.conv", i);
        }
        int r = v->n - 1 - i; /* LDM numbers the decoder's levels finest first */
        for (int j = 0; j <= v->layers; j++) {
            snprintf(to, sizeof to, "decoder.up.%d.block.%d", r, j);
            rule_add(m, RULE_VAE_RESNET, to, "decoder.up_blocks.%d.resnets.%d", i, j);
        }
        if (i < v->n - 1) {
            snprintf(to, sizeof to, "decoder.up.%d.upsample.conv", r);
            rule_add(m, RULE_SAME, to, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        }
    }
    vae_mid_rules(m, "encoder");
    vae_mid_rules(m, "decoder");
    rule_add(m, RULE_SAME, "quant_conv", "quant_conv");
    rule_add(m, RULE_SAME, "post_quant_conv", "post_quant_conv");
    map_sort(m);
    return m;
}

/* ---- CLIP text model -------------------------------------------------------- */

static int text_config(const LdmCheckpoint *c, cJSON **out, LdmMap **map, SdcErr *err)
{
    const char *p = sub_prefix[LDM_TEXT];
    const StFile *f = &c->file;
    int tm = find_fmt(f, "%stext_model.embeddings.token_embedding.weight", p) != NULL;
    const char *lv = tm ? "text_model." : "";
    const StTensor *tok = find_fmt(f, "%s%sembeddings.token_embedding.weight", p, lv);
    if (!tok)
        return sdc_err(
            err, "%s: cond_stage_model: not a CLIP text model (no %stext_model.embeddings.token_embedding.weight)",
            c->path, p);
    const StTensor *pos = find_fmt(f, "%s%sembeddings.position_embedding.weight", p, lv);
    const StTensor *fc1 = find_fmt(f, "%s%sencoder.layers.0.mlp.fc1.weight", p, lv);
    if (tok->ndim != 2 || !pos || pos->ndim != 2 || !fc1 || fc1->ndim != 2)
        return sdc_err(err, "%s: %s%s: not a CLIP text model (embeddings or layer 0 missing or misshapen)", c->path, p,
                       lv);
    int layers = 0;
    while (find_fmt(f, "%s%sencoder.layers.%d.self_attn.q_proj.weight", p, lv, layers)) layers++;
    int hidden = (int)tok->shape[1];
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPTextModel"));
    cJSON_AddItemToObject(o, "architectures", arch);
    cJSON_AddNumberToObject(o, "bos_token_id", 0);
    cJSON_AddNumberToObject(o, "eos_token_id", 2);
    cJSON_AddStringToObject(o, "hidden_act", "quick_gelu");
    cJSON_AddNumberToObject(o, "hidden_size", hidden);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)fc1->shape[0]);
    cJSON_AddNumberToObject(o, "layer_norm_eps", 1e-5);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)pos->shape[0]);
    cJSON_AddStringToObject(o, "model_type", "clip_text_model");
    /* heads are not in the shapes: CLIP ViT-L/14 and its kin use 64 channels a head */
    cJSON_AddNumberToObject(o, "num_attention_heads", hidden % 64 == 0 ? hidden / 64 : 1);
    cJSON_AddNumberToObject(o, "num_hidden_layers", layers);
    cJSON_AddNumberToObject(o, "pad_token_id", 1);
    cJSON_AddNumberToObject(o, "vocab_size", (double)tok->shape[0]);
    *out = o;
    *map = xcalloc(1, sizeof **map);
    (*map)->prefix = p;
    (*map)->text = 1;
    (*map)->text_model = tm;
    return 0;
}

/* ---- overrides ----------------------------------------------------------------- */

static char *override_path(const char *path)
{
    size_t n = strlen(path), k = strlen(".safetensors");
    if (n > k && strcmp(path + n - k, ".safetensors") == 0) n -= k;
    char *out = xmalloc(n + sizeof ".config.json");
    memcpy(out, path, n);
    strcpy(out + n, ".config.json");
    return out;
}

/* Replaces fields of the inferred configs with those of the override file. */
static int apply_overrides(LdmCheckpoint *c, cJSON **cfgs, SdcErr *err)
{
    char *path = override_path(c->path);
    if (!path_exists(path)) {
        free(path);
        return 0;
    }
    Cfg o;
    int rc = cfg_load(&o, path, path, err);
    cJSON *sub = NULL;
    if (rc == 0) cJSON_ArrayForEach(sub, o.root)
        {
            int i = 0;
            while (i < LDM_NSUB && strcmp(sub_names[i], sub->string) != 0) i++;
            if (i == LDM_NSUB) {
                rc = cfg_fail(&o, sub->string, "unknown component (expected unet, vae or text_encoder)");
                break;
            }
            if (!cJSON_IsObject(sub)) {
                rc = cfg_fail(&o, sub->string, "expected an object of config fields");
                break;
            }
            if (!cfgs[i]) {
                rc = cfg_fail(&o, sub->string, "the checkpoint has no %s", sub_names[i]);
                break;
            }
            cJSON *field;
            cJSON_ArrayForEach(field, sub)
            {
                cJSON *copy = cJSON_Duplicate(field, 1);
                if (cJSON_GetObjectItemCaseSensitive(cfgs[i], field->string))
                    cJSON_ReplaceItemInObjectCaseSensitive(cfgs[i], field->string, copy);
                else
                    cJSON_AddItemToObject(cfgs[i], field->string, copy);
            }
        }
    cfg_free(&o);
    free(path);
    return rc;
}

/* ---- the checkpoint ------------------------------------------------------------- */

int ldm_detect(const StFile *f) { return has_prefix(f, sub_prefix[LDM_UNET]); }

/* What the file is, when it is not an SD 1.x checkpoint: -1 with the reason. */
static int refuse_others(const LdmCheckpoint *c, SdcErr *err)
{
    const StFile *f = &c->file;
    if (has_prefix(f, "conditioner."))
        return sdc_err(
            err, "%s: SDXL single-file checkpoints (conditioner.* keys) are not supported; use the diffusers folder",
            c->path);
    if (has_prefix(f, "cond_stage_model.model."))
        return sdc_err(
            err,
            "%s: SD 2.x single-file checkpoints (OpenCLIP text encoder) are not supported; use the diffusers folder",
            c->path);
    if (!ldm_detect(f)) {
        if (st_find(f, "conv_in.weight") || st_find(f, "text_model.embeddings.token_embedding.weight") ||
            st_find(f, "decoder.conv_in.weight"))
            return sdc_err(
                err, "%s: one component of a diffusers model, not a single-file checkpoint; pass the diffusers folder",
                c->path);
        return sdc_err(err, "%s: not a single-file Stable Diffusion checkpoint (no model.diffusion_model.* tensors)",
                       c->path);
    }
    const StTensor *k = find_fmt(f, "%smiddle_block.1.transformer_blocks.0.attn2.to_k.weight", sub_prefix[LDM_UNET]);
    if (k && k->ndim == 2 && k->shape[1] == 1024)
        return sdc_err(
            err,
            "%s: SD 2.x single-file checkpoints (UNet context width 1024) are not supported; use the diffusers folder",
            c->path);
    if (has_prefix(f, "model.diffusion_model.label_emb."))
        return sdc_err(err, "%s: class-conditioned UNets (model.diffusion_model.label_emb.*) are not supported",
                       c->path);
    return 0;
}

int ldm_open(LdmCheckpoint *c, const char *path, SdcErr *err)
{
    memset(c, 0, sizeof *c);
    c->path = xstrdup(path);
    if (st_open(&c->file, path, err) < 0 || refuse_others(c, err) < 0) {
        ldm_close(c);
        return -1;
    }
    cJSON *cfgs[LDM_NSUB] = {0};
    LdmMap *maps[LDM_NSUB] = {0};
    int rc = 0;
    UnetShape u;
    rc = unet_shape(c, &u, err);
    if (rc == 0) cfgs[LDM_UNET] = unet_config(&u), maps[LDM_UNET] = unet_map(&u);
    if (rc == 0 && has_prefix(&c->file, sub_prefix[LDM_VAE])) {
        VaeShape v;
        rc = vae_shape(c, &v, err);
        if (rc == 0) cfgs[LDM_VAE] = vae_config(&v), maps[LDM_VAE] = vae_map(&v);
    }
    if (rc == 0 && has_prefix(&c->file, "cond_stage_model."))
        rc = text_config(c, &cfgs[LDM_TEXT], &maps[LDM_TEXT], err);
    if (rc == 0) rc = apply_overrides(c, cfgs, err);
    for (int i = 0; i < LDM_NSUB; i++) {
        if (cfgs[i] && rc == 0) c->config[i] = cJSON_Print(cfgs[i]);
        cJSON_Delete(cfgs[i]);
        c->maps[i] = maps[i];
    }
    if (rc < 0) {
        ldm_close(c);
        return -1;
    }
    return 0;
}

void ldm_close(LdmCheckpoint *c)
{
    st_close(&c->file);
    for (int i = 0; i < LDM_NSUB; i++) {
        cJSON_free(c->config[i]);
        map_free(c->maps[i]);
    }
    free(c->path);
    memset(c, 0, sizeof *c);
}

static int sub_index(const char *sub)
{
    for (int i = 0; i < LDM_NSUB; i++)
        if (sub && strcmp(sub, sub_names[i]) == 0) return i;
    return -1;
}

const char *ldm_config_json(const LdmCheckpoint *c, const char *sub)
{
    int i = sub_index(sub);
    return i < 0 ? NULL : c->config[i];
}

/* Buffers saved with the parameters that no graph uses. */
static const char *const text_ignore[] = {"text_model.embeddings.position_ids", "embeddings.position_ids", NULL};

int ldm_weights(LdmCheckpoint *c, const char *sub, WeightSet *ws, SdcErr *err)
{
    int i = sub_index(sub);
    if (i < 0 || !c->maps[i]) {
        memset(ws, 0, sizeof *ws);
        return sdc_err(err, "%s: no %s in this checkpoint", c->path, sub);
    }
    const char *paths[1] = {c->path};
    if (ws_open(ws, sub, 1, paths, paths, err) < 0) return -1;
    LdmMap *m = c->maps[i];
    ws->prefix = m->prefix;
    ws->translate = ldm_translate;
    ws->translate_ctx = m;
    if (i == LDM_TEXT) ws->ignore = text_ignore;
    return 0;
}

/* ---- names without a checkpoint (see ldm.h) --------------------------------- */

_Static_assert(LDM_MAX_LEVELS == LDM_MAX_BLOCKS, "LdmLayout and UnetShape must agree");

void ldm_names_init(LdmNames *n, const LdmLayout *l)
{
    memset(n, 0, sizeof *n);
    if (l->unet_levels > 0) {
        UnetShape u;
        memset(&u, 0, sizeof u);
        u.n = l->unet_levels, u.layers = l->unet_layers;
        memcpy(u.attn_down, l->attn_down, sizeof u.attn_down);
        memcpy(u.attn_up, l->attn_up, sizeof u.attn_up);
        n->maps[LDM_UNET] = unet_map(&u);
    }
    if (l->vae_levels > 0) {
        VaeShape v;
        memset(&v, 0, sizeof v);
        v.n = l->vae_levels, v.layers = l->vae_layers;
        n->maps[LDM_VAE] = vae_map(&v);
    }
    LdmMap *t = xcalloc(1, sizeof *t);
    t->prefix = sub_prefix[LDM_TEXT];
    t->text = t->text_model = 1; /* current transformers keep the text_model. level */
    n->maps[LDM_TEXT] = t;
}

int ldm_names_get(const LdmNames *n, const char *sub, const char *name, char *out, size_t len, int *view)
{
    int i = sub_index(sub), v = 0;
    if (i < 0 || !n->maps[i]) return -1;
    int rc = ldm_translate(n->maps[i], name, out, len, &v);
    if (view) *view = v;
    return rc;
}

void ldm_names_free(LdmNames *n)
{
    for (int i = 0; i < LDM_NSUB; i++) map_free(n->maps[i]);
    memset(n, 0, sizeof *n);
}
