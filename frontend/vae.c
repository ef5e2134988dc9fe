/* vae.c — diffusers AutoencoderKL (0.27) as two graphs.
 *
 *   decoder: latents -> post_quant_conv -> Decoder (conv_in, mid block,
 *            UpDecoderBlock2D x n over reversed block_out_channels,
 *            conv_norm_out, silu, conv_out) -> out
 *   encoder: sample -> Encoder (conv_in, DownEncoderBlock2D x n, mid block,
 *            conv_norm_out, silu, conv_out to 2*latent_channels) -> quant_conv
 *            -> out (the mean: first latent_channels channels) and logvar
 *            (the rest, clamped to [-30, 20] as DiagonalGaussianDistribution does)
 *
 * Module structure and parameter names follow diffusers' vae.py and
 * unet_2d_blocks.py, so every node is named like the module it comes from.
 * GroupNorm eps is 1e-6 everywhere in the VAE (diffusers hard-codes it). */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "import.h"

#define VAE_MAX_BLOCKS 8
#define VAE_EPS 1e-6

typedef struct VaeCfg {
    int in_channels;     /* image channels (3) */
    int out_channels;    /* decoded image channels (3) */
    int latent_channels; /* 4 for SD 1.x/2.x */
    int nblocks;
    int block_out[VAE_MAX_BLOCKS]; /* channels per resolution, finest first */
    int layers_per_block;
    int groups;          /* norm_num_groups */
    int mid_attention;   /* mid_block_add_attention */
    int quant_conv, post_quant_conv;
} VaeCfg;

/* Checks that a block-type list has one entry per block, all `want`. */
static void check_block_types(Cfg *c, const char *key, int nblocks, const char *want)
{
    const char *types[VAE_MAX_BLOCKS];
    int n = cfg_str_list(c, key, types, VAE_MAX_BLOCKS);
    if (c->failed) return;
    if (n != nblocks) {
        cfg_fail(c, key, "%d entries, but block_out_channels has %d", n, nblocks);
        return;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(types[i], want) != 0) {
            char k[64];
            snprintf(k, sizeof k, "%s[%d]", key, i);
            cfg_fail(c, k, "unsupported block \"%s\" (sdc supports: %s)", types[i], want);
            return;
        }
}

/* Reads every AutoencoderKL field that shapes the graph; refuses values
 * whose graph sdc does not build.  sample_size, scaling_factor and
 * force_upcast do not change the graph and are not read here. */
static int vae_cfg_read(Cfg *c, VaeCfg *v)
{
    memset(v, 0, sizeof *v);
    static const char *const class_names[] = {"AutoencoderKL", NULL};
    static const char *const acts[] = {"silu", NULL};
    cfg_enum(c, "_class_name", "AutoencoderKL", class_names);
    v->in_channels = (int)cfg_int(c, "in_channels", 3, 1, 64);
    v->out_channels = (int)cfg_int(c, "out_channels", 3, 1, 64);
    v->latent_channels = (int)cfg_int(c, "latent_channels", 4, 1, 256);
    v->nblocks = cfg_int_list(c, "block_out_channels", v->block_out, -1, VAE_MAX_BLOCKS, 64, 1, 1 << 16);
    check_block_types(c, "down_block_types", v->nblocks, "DownEncoderBlock2D");
    check_block_types(c, "up_block_types", v->nblocks, "UpDecoderBlock2D");
    v->layers_per_block = (int)cfg_int(c, "layers_per_block", 1, 1, 16);
    cfg_enum(c, "act_fn", "silu", acts);
    v->groups = (int)cfg_int(c, "norm_num_groups", 32, 1, 1 << 16);
    for (int i = 0; i < v->nblocks && !c->failed; i++)
        if (v->block_out[i] % v->groups != 0)
            cfg_fail(c, "norm_num_groups", "%d does not divide block_out_channels[%d] = %d", v->groups, i,
                     v->block_out[i]);
    /* SDXL-style latent statistics and SD3-style shift are applied by the
     * pipeline around the VAE; sdc's pipeline knows only scaling_factor. */
    cfg_only(c, "latents_mean", "null");
    cfg_only(c, "latents_std", "null");
    cfg_only(c, "shift_factor", "0");
    v->quant_conv = cfg_bool(c, "use_quant_conv", 1);
    v->post_quant_conv = cfg_bool(c, "use_post_quant_conv", 1);
    v->mid_attention = cfg_bool(c, "mid_block_add_attention", 1);
    return c->failed ? -1 : 0;
}

/* The VAE file holds both halves; the half a graph does not use is not an
 * "unexpected tensor" for ws_check.  `part` is a top-level module name
 * ("encoder."); in a single-file checkpoint it sits under ws->prefix. */
static void vae_disown(WeightSet *ws, const char *part)
{
    char want[256];
    snprintf(want, sizeof want, "%s%s", ws->prefix ? ws->prefix : "", part);
    size_t n = strlen(want);
    for (int f = 0; f < ws->nfiles; f++)
        for (int t = 0; t < ws->files[f].n; t++)
            if (strncmp(ws->files[f].tensors[t].name, want, n) == 0) ws->used[f][t] = 1;
}

/* Files written before diffusers 0.14 name the attention projections
 * query/key/value/proj_attn.  Old names are used only when the file lacks
 * the new one and has the old one (a translated single-file checkpoint
 * always speaks the new names). */
static int vae_old_attention_names(Builder *b)
{
    WeightSet *ws = b->ws;
    if (ws->collect || ws->translate) return 0;
    char new_name[640], old_name[640];
    snprintf(new_name, sizeof new_name, "%s", b_name(b, "to_q.weight"));
    snprintf(old_name, sizeof old_name, "%s", b_name(b, "query.weight"));
    for (int f = 0; f < ws->nfiles; f++)
        if (st_find(&ws->files[f], new_name)) return 0;
    for (int f = 0; f < ws->nfiles; f++)
        if (st_find(&ws->files[f], old_name)) return 1;
    return 0;
}

/* diffusers Attention as built by UNetMidBlock2D for the VAE: one head of
 * all C channels, group_norm first, biases on every projection, residual
 * connection, rescale_output_factor 1.  Tokens are the H*W positions. */
static int vae_attention(Builder *b, const char *mod, int x, int groups)
{
    if (b->failed || x < 0) return -1;
    const Node *n = b_node(b, x);
    int64_t bs = n->shape[0], c = n->shape[1], hh = n->shape[2], ww = n->shape[3];
    b_push(b, "%s", mod);
    int old = vae_old_attention_names(b);
    int h = b_group_norm(b, "group_norm", x, groups, VAE_EPS);
    h = b_reshape(b, "flat", h, 3, (int64_t[]){bs, c, hh * ww});
    h = b_permute(b, "tokens", h, 3, (int64_t[]){0, 2, 1});
    int q = b_linear(b, old ? "query" : "to_q", h, (int)c, 1);
    int k = b_linear(b, old ? "key" : "to_k", h, (int)c, 1);
    int v = b_linear(b, old ? "value" : "to_v", h, (int)c, 1);
    int a = b_attention_chain(b, "attention", q, k, v, 1, 1.0 / sqrt((double)c), 0, 1);
    a = b_linear(b, old ? "proj_attn" : "to_out.0", a, (int)c, 1);
    a = b_permute(b, "channels", a, 3, (int64_t[]){0, 2, 1});
    a = b_reshape(b, "spatial", a, 4, (int64_t[]){bs, c, hh, ww});
    int y = b_binary(b, OP_ADD, "residual", a, x);
    b_pop(b);
    return y;
}

/* UNetMidBlock2D(num_layers=1): resnet, attention, resnet; no time embedding. */
static int vae_mid_block(Builder *b, int x, const VaeCfg *v)
{
    if (b->failed || x < 0) return -1;
    int c = (int)b_node(b, x)->shape[1];
    b_push(b, "mid_block");
    x = b_resnet(b, "resnets.0", x, c, -1, v->groups, VAE_EPS, 0, 1.0);
    if (v->mid_attention) x = vae_attention(b, "attentions.0", x, v->groups);
    x = b_resnet(b, "resnets.1", x, c, -1, v->groups, VAE_EPS, 0, 1.0);
    b_pop(b);
    return x;
}

/* conv_norm_out, silu, conv_out: the tail of Encoder and Decoder. */
static int vae_out(Builder *b, int x, int cout, int groups)
{
    x = b_group_norm(b, "conv_norm_out", x, groups, VAE_EPS);
    x = b_unary(b, OP_SILU, "conv_act", x);
    return b_conv_same(b, "conv_out", x, cout, 3);
}

/* The graph, or NULL after a builder error (the message is in b->err). */
static Graph *vae_finish(Graph *g, Builder *b)
{
    if (!b->failed) return g;
    graph_free(g);
    return NULL;
}

static int vae_begin(Cfg *cfg, VaeCfg *v, SdcErr *err)
{
    if (vae_cfg_read(cfg, v) == 0) return 0;
    if (cfg->err && cfg->err != err && err) *err = *cfg->err;
    return -1;
}

Graph *build_vae_decoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err)
{
    VaeCfg v;
    if (vae_begin(cfg, &v, err) < 0) return NULL;
    if (s->batch < 1 || s->height < 1 || s->width < 1)
        return sdc_err(err, "vae-decoder: invalid latent shape %dx%lldx%lld", s->batch, (long long)s->height,
                       (long long)s->width),
               NULL;
    vae_disown(ws, "encoder.");
    vae_disown(ws, "quant_conv.");

    Graph *g = graph_new("vae_decoder");
    Builder b;
    b_init(&b, g, ws, err);
    int64_t hh = s->height, ww = s->width;
    int x = b_input(&b, "latents", DT_F32, 4, (int64_t[]){s->batch, v.latent_channels, hh, ww});
    if (v.post_quant_conv) {
        int64_t zero[4] = {0, 0, 0, 0};
        x = b_conv(&b, "post_quant_conv", x, v.latent_channels, 1, 1, zero, 1);
    }

    b_push(&b, "decoder");
    x = b_conv_same(&b, "conv_in", x, v.block_out[v.nblocks - 1], 3);
    x = vae_mid_block(&b, x, &v);
    for (int i = 0; i < v.nblocks; i++) { /* UpDecoderBlock2D over reversed block_out_channels */
        int cout = v.block_out[v.nblocks - 1 - i];
        b_push(&b, "up_blocks.%d", i);
        for (int j = 0; j < v.layers_per_block + 1; j++) {
            char mod[32];
            snprintf(mod, sizeof mod, "resnets.%d", j);
            x = b_resnet(&b, mod, x, cout, -1, v.groups, VAE_EPS, 0, 1.0);
        }
        if (i < v.nblocks - 1) {
            hh *= 2, ww *= 2;
            x = b_upsample(&b, "upsamplers.0", x, hh, ww);
        }
        b_pop(&b);
    }
    x = vae_out(&b, x, v.out_channels, v.groups);
    b_pop(&b);

    if (!b.failed) {
        graph_rename(g, x, "out");
        graph_add_output(g, x);
    }
    return vae_finish(g, &b);
}

Graph *build_vae_encoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err)
{
    VaeCfg v;
    if (vae_begin(cfg, &v, err) < 0) return NULL;
    /* each Downsample2D halves the size; diffusers pipelines only make
     * images that are multiples of the VAE scale factor */
    int64_t factor = (int64_t)1 << (v.nblocks - 1);
    if (s->batch < 1 || s->height < 1 || s->width < 1 || s->height % factor || s->width % factor)
        return sdc_err(err, "vae-encoder: image size %lldx%lld (batch %d) is not a positive multiple of %lld",
                       (long long)s->height, (long long)s->width, s->batch, (long long)factor),
               NULL;
    vae_disown(ws, "decoder.");
    vae_disown(ws, "post_quant_conv.");

    Graph *g = graph_new("vae_encoder");
    Builder b;
    b_init(&b, g, ws, err);
    int x = b_input(&b, "sample", DT_F32, 4, (int64_t[]){s->batch, v.in_channels, s->height, s->width});

    b_push(&b, "encoder");
    x = b_conv_same(&b, "conv_in", x, v.block_out[0], 3);
    for (int i = 0; i < v.nblocks; i++) { /* DownEncoderBlock2D */
        b_push(&b, "down_blocks.%d", i);
        for (int j = 0; j < v.layers_per_block; j++) {
            char mod[32];
            snprintf(mod, sizeof mod, "resnets.%d", j);
            x = b_resnet(&b, mod, x, v.block_out[i], -1, v.groups, VAE_EPS, 0, 1.0);
        }
        if (i < v.nblocks - 1) x = b_downsample(&b, "downsamplers.0", x, 0); /* downsample_padding 0 */
        b_pop(&b);
    }
    x = vae_mid_block(&b, x, &v);
    x = vae_out(&b, x, 2 * v.latent_channels, v.groups); /* double_z */
    b_pop(&b);

    if (v.quant_conv) {
        int64_t zero[4] = {0, 0, 0, 0};
        x = b_conv(&b, "quant_conv", x, 2 * v.latent_channels, 1, 1, zero, 1);
    }
    /* DiagonalGaussianDistribution: mean, logvar = chunk(moments, 2, dim=1) */
    int mean = b_slice(&b, "out", x, 1, 0, v.latent_channels);
    int logvar = b_slice(&b, "logvar_unclamped", x, 1, v.latent_channels, 2 * v.latent_channels);
    Attr range[2] = {attr_float("min", -30.0), attr_float("max", 20.0)};
    logvar = b_op(&b, OP_CLAMP, "logvar", 1, &logvar, 2, range);

    if (!b.failed) {
        graph_add_output(g, mean);
        graph_add_output(g, logvar);
    }
    return vae_finish(g, &b);
}
