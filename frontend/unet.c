/* unet.c — diffusers UNet2DConditionModel (SD 1.x / 2.x) as a graph.
 *
 * Follows diffusers 0.27 module by module: time_proj and time_embedding,
 * conv_in, down blocks (resnets, optional Transformer2DModel after each,
 * a downsampler on all but the last), the cross-attention mid block, up
 * blocks that concatenate the skip connections, and the output head.
 * Config fields SD checkpoints use are read and checked; anything else that
 * would change the graph is refused by name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "import.h"

#define MAX_BLOCKS 8

typedef struct UNetConfig {
    int in_channels, out_channels, center_input_sample;
    int flip_sin_to_cos;
    double freq_shift;
    int nblocks;
    int cross_down[MAX_BLOCKS], cross_up[MAX_BLOCKS]; /* block has attentions */
    int block_out[MAX_BLOCKS];
    int layers[MAX_BLOCKS];
    int heads[MAX_BLOCKS];
    int cross_dim[MAX_BLOCKS];
    int tlayers[MAX_BLOCKS];
    int only_cross[MAX_BLOCKS];
    int has_mid;
    int downsample_padding;
    double mid_scale;
    int groups;
    double eps;
    int linear_proj, upcast;
    int scale_shift;
    int time_embed_dim;
    int conv_in_k, conv_out_k;
} UNetConfig;

/* Keys that do not change the graph for SD inference, or that are checked below. */
static const char *const known_keys[] = {
    "sample_size", "in_channels", "out_channels", "center_input_sample", "flip_sin_to_cos", "freq_shift",
    "down_block_types", "mid_block_type", "up_block_types", "only_cross_attention", "block_out_channels",
    "layers_per_block", "downsample_padding", "mid_block_scale_factor", "dropout", "act_fn", "norm_num_groups",
    "norm_eps", "cross_attention_dim", "transformer_layers_per_block", "reverse_transformer_layers_per_block",
    "encoder_hid_dim", "encoder_hid_dim_type", "attention_head_dim", "num_attention_heads", "dual_cross_attention",
    "use_linear_projection", "class_embed_type", "addition_embed_type", "addition_time_embed_dim", "num_class_embeds",
    "upcast_attention", "resnet_time_scale_shift", "resnet_skip_time_act", "resnet_out_scale_factor",
    "time_embedding_type", "time_embedding_dim", "time_embedding_act_fn", "timestep_post_act", "time_cond_proj_dim",
    "conv_in_kernel", "conv_out_kernel", "projection_class_embeddings_input_dim", "attention_type",
    "class_embeddings_concat", "mid_block_only_cross_attention", "cross_attention_norm",
    "addition_embed_type_num_heads", NULL};

static void check_known_keys(Cfg *c)
{
    cJSON *item;
    cJSON_ArrayForEach(item, c->root)
    {
        const char *k = item->string;
        if (!k || k[0] == '_') continue; /* _class_name, _diffusers_version, ... */
        int known = 0;
        for (int i = 0; known_keys[i] && !known; i++) known = strcmp(known_keys[i], k) == 0;
        if (!known) {
            cfg_fail(c, k, "unknown field (sdc does not know how it changes the model)");
            return;
        }
    }
}

/* A bool or a list of bools, one per block. */
static void bool_list(Cfg *c, const char *key, int *out, int n)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    for (int i = 0; i < n; i++) out[i] = 0;
    if (!v || cJSON_IsNull(v) || c->failed) return;
    if (cJSON_IsBool(v)) {
        for (int i = 0; i < n; i++) out[i] = cJSON_IsTrue(v);
        return;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n) {
        cfg_fail(c, key, "expected a boolean or a list of %d booleans", n);
        return;
    }
    int i = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsBool(e)) {
            char k[96];
            snprintf(k, sizeof k, "%s[%d]", key, i);
            cfg_fail(c, k, "expected true or false");
            return;
        }
        out[i++] = cJSON_IsTrue(e);
    }
}

static int read_config(Cfg *c, UNetConfig *u)
{
    memset(u, 0, sizeof *u);
    check_known_keys(c);
    u->in_channels = (int)cfg_int(c, "in_channels", 4, 1, 256);
    u->out_channels = (int)cfg_int(c, "out_channels", 4, 1, 256);
    u->center_input_sample = cfg_bool(c, "center_input_sample", 0);
    u->flip_sin_to_cos = cfg_bool(c, "flip_sin_to_cos", 1);
    u->freq_shift = cfg_num(c, "freq_shift", 0, -1e6, 1e6);

    const char *down[MAX_BLOCKS], *up[MAX_BLOCKS];
    int n = cfg_str_list(c, "down_block_types", down, MAX_BLOCKS);
    if (c->failed) return -1;
    int nup = cfg_str_list(c, "up_block_types", up, MAX_BLOCKS);
    if (!c->failed && nup != n)
        return cfg_fail(c, "up_block_types", "has %d entries, down_block_types has %d", nup, n);
    u->nblocks = n;
    for (int i = 0; i < n && !c->failed; i++) {
        char key[64];
        snprintf(key, sizeof key, "down_block_types[%d]", i);
        if (strcmp(down[i], "CrossAttnDownBlock2D") == 0) u->cross_down[i] = 1;
        else if (strcmp(down[i], "DownBlock2D") != 0)
            cfg_fail(c, key, "unknown block \"%s\" (sdc supports CrossAttnDownBlock2D, DownBlock2D)", down[i]);
        snprintf(key, sizeof key, "up_block_types[%d]", i);
        if (strcmp(up[i], "CrossAttnUpBlock2D") == 0) u->cross_up[i] = 1;
        else if (strcmp(up[i], "UpBlock2D") != 0)
            cfg_fail(c, key, "unknown block \"%s\" (sdc supports CrossAttnUpBlock2D, UpBlock2D)", up[i]);
    }
    static const char *const mids[] = {"UNetMidBlock2DCrossAttn", NULL};
    cfg_enum(c, "mid_block_type", "UNetMidBlock2DCrossAttn", mids);
    u->has_mid = 1;

    cfg_int_list(c, "block_out_channels", u->block_out, n, MAX_BLOCKS, 0, 1, 1 << 16);
    cfg_int_list(c, "layers_per_block", u->layers, n, MAX_BLOCKS, 2, 1, 64);
    u->groups = (int)cfg_int(c, "norm_num_groups", 32, 1, 1 << 16);
    u->eps = cfg_num(c, "norm_eps", 1e-5, 0, 1);
    /* diffusers' legacy naming: attention_head_dim is the head count unless num_attention_heads is given */
    const char *heads_key = cfg_has(c, "num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    cfg_int_list(c, heads_key, u->heads, n, MAX_BLOCKS, 8, 1, 1 << 16);
    cfg_int_list(c, "cross_attention_dim", u->cross_dim, n, MAX_BLOCKS, 1280, 1, 1 << 16);
    cfg_int_list(c, "transformer_layers_per_block", u->tlayers, n, MAX_BLOCKS, 1, 1, 64);
    bool_list(c, "only_cross_attention", u->only_cross, n);
    u->downsample_padding = (int)cfg_int(c, "downsample_padding", 1, 0, 8);
    u->mid_scale = cfg_num(c, "mid_block_scale_factor", 1.0, 1e-6, 1e6);
    u->linear_proj = cfg_bool(c, "use_linear_projection", 0);
    u->upcast = cfg_bool(c, "upcast_attention", 0);
    static const char *const shifts[] = {"default", "scale_shift", NULL};
    u->scale_shift = cfg_enum(c, "resnet_time_scale_shift", "default", shifts) == 1;
    u->time_embed_dim = (int)cfg_int(c, "time_embedding_dim", 4 * (long long)u->block_out[0], 1, 1 << 20);
    u->conv_in_k = (int)cfg_int(c, "conv_in_kernel", 3, 1, 15);
    u->conv_out_k = (int)cfg_int(c, "conv_out_kernel", 3, 1, 15);
    if (!c->failed && (u->conv_in_k % 2 == 0 || u->conv_out_k % 2 == 0))
        cfg_fail(c, u->conv_in_k % 2 == 0 ? "conv_in_kernel" : "conv_out_kernel", "must be odd");

    static const char *const acts[] = {"silu", "swish", NULL};
    cfg_enum(c, "act_fn", "silu", acts);
    static const char *const temb_types[] = {"positional", NULL};
    cfg_enum(c, "time_embedding_type", "positional", temb_types);
    static const char *const attn_types[] = {"default", NULL};
    cfg_enum(c, "attention_type", "default", attn_types);
    const char *must_be_null[] = {"class_embed_type", "addition_embed_type", "num_class_embeds", "encoder_hid_dim",
                                  "encoder_hid_dim_type", "time_embedding_act_fn", "timestep_post_act",
                                  "time_cond_proj_dim", "projection_class_embeddings_input_dim",
                                  "reverse_transformer_layers_per_block", "cross_attention_norm",
                                  "addition_time_embed_dim"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++) cfg_only(c, must_be_null[i], "null");
    cfg_only(c, "dual_cross_attention", "false");
    cfg_only(c, "resnet_skip_time_act", "false");
    cfg_only(c, "resnet_out_scale_factor", "1.0");
    cfg_only(c, "class_embeddings_concat", "false");
    cfg_only(c, "mid_block_only_cross_attention", "false");
    for (int i = 0; i < n && !c->failed; i++) {
        int ch = u->block_out[i];
        if (ch % u->groups) cfg_fail(c, "norm_num_groups", "%d does not divide block_out_channels[%d] = %d", u->groups, i, ch);
        else if ((u->cross_down[i] || u->cross_up[n - 1 - i]) && ch % u->heads[i])
            cfg_fail(c, heads_key, "%d heads do not divide block_out_channels[%d] = %d", u->heads[i], i, ch);
    }
    return c->failed ? -1 : 0;
}

typedef struct UNetBuild {
    Builder b;
    const UNetConfig *u;
    int temb, ehs;
    int skips[4 * MAX_BLOCKS * 8];
    int nskips;
} UNetBuild;

/* diffusers Attention (SD: no q/k/v bias): to_q, to_k, to_v, to_out.0. */
static int attention(UNetBuild *ub, const char *mod, int x, int ctx, int heads, int upcast)
{
    Builder *b = &ub->b;
    const Node *xn = b_node(b, x);
    int inner = (int)xn->shape[2], dim_head = inner / heads;
    b_push(b, "%s", mod);
    int q = b_linear(b, "to_q", x, inner, 0);
    int k = b_linear(b, "to_k", ctx, inner, 0);
    int v = b_linear(b, "to_v", ctx, inner, 0);
    int o = b_attention_chain(b, "sdpa", q, k, v, heads, 1.0 / sqrt((double)dim_head), 0, upcast);
    o = b_linear(b, "to_out.0", o, inner, 1);
    b_pop(b);
    return o;
}

/* BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward. */
static int transformer_block(UNetBuild *ub, const char *mod, int x, int heads, int only_cross)
{
    Builder *b = &ub->b;
    int inner = (int)b_node(b, x)->shape[2];
    b_push(b, "%s", mod);
    int h = b_layer_norm(b, "norm1", x, 1e-5);
    h = attention(ub, "attn1", h, only_cross ? ub->ehs : h, heads, ub->u->upcast);
    x = b_binary(b, OP_ADD, "res1", h, x);
    h = b_layer_norm(b, "norm2", x, 1e-5);
    h = attention(ub, "attn2", h, ub->ehs, heads, ub->u->upcast);
    x = b_binary(b, OP_ADD, "res2", h, x);
    h = b_layer_norm(b, "norm3", x, 1e-5);
    b_push(b, "ff.net.0");
    int p = b_linear(b, "proj", h, 8 * inner, 1);
    int hid = b_slice(b, "hidden", p, 2, 0, 4 * inner), gate = b_slice(b, "gate", p, 2, 4 * inner, 8 * inner);
    gate = b_unary(b, OP_GELU, "gelu", gate);
    h = b_binary(b, OP_MUL, "geglu", hid, gate);
    b_pop(b);
    h = b_linear(b, "ff.net.2", h, inner, 1);
    x = b_binary(b, OP_ADD, "res3", h, x);
    b_pop(b);
    return x;
}

/* Transformer2DModel on [B,C,H,W] with a residual around it. */
static int transformer2d(UNetBuild *ub, const char *mod, int x, int heads, int layers, int only_cross)
{
    Builder *b = &ub->b;
    const UNetConfig *u = ub->u;
    const Node *xn = b_node(b, x);
    int64_t bs = xn->shape[0], c = xn->shape[1], hh = xn->shape[2], ww = xn->shape[3];
    b_push(b, "%s", mod);
    int h = b_group_norm(b, "norm", x, u->groups, 1e-6);
    int64_t zero[4] = {0, 0, 0, 0};
    if (!u->linear_proj) h = b_conv(b, "proj_in", h, (int)c, 1, 1, zero, 1);
    h = b_permute(b, "to_tokens", h, 4, (int64_t[]){0, 2, 3, 1});
    h = b_reshape(b, "tokens", h, 3, (int64_t[]){bs, hh * ww, c});
    if (u->linear_proj) h = b_linear(b, "proj_in", h, (int)c, 1);
    for (int l = 0; l < layers; l++) {
        char name[48];
        snprintf(name, sizeof name, "transformer_blocks.%d", l);
        h = transformer_block(ub, name, h, heads, only_cross);
    }
    if (u->linear_proj) h = b_linear(b, "proj_out", h, (int)c, 1);
    h = b_reshape(b, "to_image", h, 4, (int64_t[]){bs, hh, ww, c});
    h = b_permute(b, "image", h, 4, (int64_t[]){0, 3, 1, 2});
    if (!u->linear_proj) h = b_conv(b, "proj_out", h, (int)c, 1, 1, zero, 1);
    h = b_binary(b, OP_ADD, "out", h, x);
    b_pop(b);
    return h;
}

static int resnet(UNetBuild *ub, const char *mod, int x, int cout, double out_scale)
{
    return b_resnet(&ub->b, mod, x, cout, ub->temb, ub->u->groups, ub->u->eps, ub->u->scale_shift, out_scale);
}

static int down_blocks(UNetBuild *ub, int x)
{
    Builder *b = &ub->b;
    const UNetConfig *u = ub->u;
    ub->skips[ub->nskips++] = x;
    for (int i = 0; i < u->nblocks; i++) {
        b_push(b, "down_blocks.%d", i);
        for (int j = 0; j < u->layers[i]; j++) {
            char name[48];
            snprintf(name, sizeof name, "resnets.%d", j);
            x = resnet(ub, name, x, u->block_out[i], 1.0);
            if (u->cross_down[i]) {
                snprintf(name, sizeof name, "attentions.%d", j);
                x = transformer2d(ub, name, x, u->heads[i], u->tlayers[i], u->only_cross[i]);
            }
            ub->skips[ub->nskips++] = x;
        }
        if (i < u->nblocks - 1) {
            x = b_downsample(b, "downsamplers.0", x, u->downsample_padding);
            ub->skips[ub->nskips++] = x;
        }
        b_pop(b);
    }
    return x;
}

static int up_blocks(UNetBuild *ub, int x)
{
    Builder *b = &ub->b;
    const UNetConfig *u = ub->u;
    int n = u->nblocks;
    for (int i = 0; i < n; i++) {
        int r = n - 1 - i; /* the down block this one mirrors */
        b_push(b, "up_blocks.%d", i);
        for (int j = 0; j < u->layers[r] + 1; j++) {
            char name[48];
            int skip = ub->skips[--ub->nskips];
            snprintf(name, sizeof name, "resnets.%d_cat", j);
            x = b_concat(b, name, 2, (int[]){x, skip}, 1);
            snprintf(name, sizeof name, "resnets.%d", j);
            x = resnet(ub, name, x, u->block_out[r], 1.0);
            if (u->cross_up[i]) {
                snprintf(name, sizeof name, "attentions.%d", j);
                x = transformer2d(ub, name, x, u->heads[r], u->tlayers[r], u->only_cross[r]);
            }
        }
        if (i < n - 1) {
            /* diffusers upsamples to the size of the next skip (upsample_size), which is 2x
             * when the latent size divides evenly and what makes odd sizes work otherwise */
            const Node *next = b_node(b, ub->skips[ub->nskips - 1]);
            x = b_upsample(b, "upsamplers.0", x, next->shape[2], next->shape[3]);
        }
        b_pop(b);
    }
    return x;
}

Graph *build_unet(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err)
{
    UNetConfig u;
    if (read_config(cfg, &u) < 0) return NULL;
    if (s->batch < 1 || s->height < 1 || s->width < 1 || s->seq_len < 1) {
        sdc_err(err, "unet: batch, latent size and text length must be positive");
        return NULL;
    }
    Graph *g = graph_new("unet");
    UNetBuild ub = {.u = &u};
    Builder *b = &ub.b;
    b_init(b, g, ws, err);
    int64_t bs = s->batch;
    int sample = b_input(b, "sample", DT_F32, 4, (int64_t[]){bs, u.in_channels, s->height, s->width});
    int t = b_input(b, "timestep", DT_F32, 1, &bs);
    /* the text context width comes from the cross-attention weights' config */
    ub.ehs = b_input(b, "encoder_hidden_states", DT_F32, 3, (int64_t[]){bs, s->seq_len, u.cross_dim[0]});
    for (int i = 1; i < u.nblocks; i++)
        if (u.cross_dim[i] != u.cross_dim[0]) {
            cfg_fail(cfg, "cross_attention_dim", "different widths per block are not supported");
            graph_free(g);
            return NULL;
        }

    /* time embedding: sinusoidal projection (float32, as diffusers) then an MLP */
    Attr ta[3] = {attr_int("dim", u.block_out[0]), attr_int("flip_sin_to_cos", u.flip_sin_to_cos),
                  attr_float("shift", u.freq_shift)};
    int temb = b_op(b, OP_TIMESTEP_EMBEDDING, "time_proj", 1, &t, 3, ta);
    b_push(b, "time_embedding");
    temb = b_linear(b, "linear_1", temb, u.time_embed_dim, 1);
    temb = b_unary(b, OP_SILU, "act", temb);
    temb = b_linear(b, "linear_2", temb, u.time_embed_dim, 1);
    b_pop(b);
    ub.temb = temb;

    int x = sample;
    if (u.center_input_sample) {
        x = b_scale(b, "center_scaled", x, 2.0);
        int one = graph_add_const_dense(g, "center_one", DT_F32, 1, (int64_t[]){1}, (double[]){1.0}, 1);
        x = b_binary(b, OP_SUB, "center", x, one);
    }
    int64_t p = (u.conv_in_k - 1) / 2;
    x = b_conv(b, "conv_in", x, u.block_out[0], u.conv_in_k, 1, (int64_t[]){p, p, p, p}, 1);
    x = down_blocks(&ub, x);

    int top = u.nblocks - 1;
    b_push(b, "mid_block");
    x = resnet(&ub, "resnets.0", x, u.block_out[top], u.mid_scale);
    x = transformer2d(&ub, "attentions.0", x, u.heads[top], u.tlayers[top], 0);
    x = resnet(&ub, "resnets.1", x, u.block_out[top], u.mid_scale);
    b_pop(b);

    x = up_blocks(&ub, x);
    x = b_group_norm(b, "conv_norm_out", x, u.groups, u.eps);
    x = b_unary(b, OP_SILU, "conv_act", x);
    p = (u.conv_out_k - 1) / 2;
    x = b_conv(b, "conv_out", x, u.out_channels, u.conv_out_k, 1, (int64_t[]){p, p, p, p}, 1);
    if (b->failed || cfg->failed) {
        graph_free(g);
        return NULL;
    }
    graph_rename(g, x, "out");
    graph_add_output(g, x);
    return g;
}
