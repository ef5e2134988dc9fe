/* test_ldm.c — single-file LDM checkpoints against the diffusers folder.
 *
 * The fixture pipeline (tiny-sd, diffusers layout) is converted here into
 * one LDM-style .safetensors file: every key is renamed by the rule table
 * below — diffusers' convert_original_stable_diffusion_to_diffusers.py read
 * backwards, written independently of frontend/ldm.c — and the VAE
 * attention linears become 1x1 convs.  Then each component imported from
 * the single file must give the same graph, constant for constant (same
 * bytes), as the one imported from the folder, and the UNet must reproduce
 * diffusers' golden output.  Also: the inferred configs, the override file,
 * the older text-encoder layout, a missing and an unexpected key, and the
 * files that must be refused (SD 2.x, SDXL, non-LDM). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "interp.h"
#include "ldm.h"
#include "model.h"
#include "safetensors.h"
#include "tensor_io.h"
#include "test.h"

static char fx[512];       /* fixtures */
static char tmp[PATH_MAX]; /* scratch folder */
static const char *ckpt;   /* the converted checkpoint */
static char *made[32];     /* files to remove at the end */
static int nmade;

/* A path in the scratch folder, removed at the end. */
static const char *tmp_file(const char *name)
{
    char *p = malloc(strlen(tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmp, name);
    SDC_ASSERT(nmade < 32);
    made[nmade++] = p;
    return p;
}

/* ---- diffusers -> LDM names: the conversion rules -------------------------- */

/* Layer renames inside a module (prefix of the rest of the name). */
typedef struct Rename {
    const char *from, *to;
} Rename;

static const Rename unet_resnet[] = {{"norm1.", "in_layers.0."},
                                     {"conv1.", "in_layers.2."},
                                     {"time_emb_proj.", "emb_layers.1."},
                                     {"norm2.", "out_layers.0."},
                                     {"conv2.", "out_layers.3."},
                                     {"conv_shortcut.", "skip_connection."},
                                     {NULL, NULL}};
static const Rename vae_resnet[] = {{"conv_shortcut.", "nin_shortcut."}, {NULL, NULL}};
static const Rename vae_attn[] = {{"group_norm.", "norm."},   {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."},
                                  {"to_out.0.", "proj_out."}, {NULL, NULL}};

/* How a rule computes the LDM indices from the diffusers ones (a, b). */
typedef enum Index {
    IX_NONE,       /* no numbers */
    IX_KEEP,       /* a, b as they are */
    IX_REVERSE,    /* decoder: level n-1-a, b */
    IX_DOWN,       /* input_blocks 1 + a*(L+1) + b */
    IX_DOWNSAMPLE, /* input_blocks (a+1)*(L+1) */
    IX_UP,         /* output_blocks a*(L+1) + b */
    IX_UPSAMPLE,   /* output_blocks a*(L+1) + L, slot 2 after a transformer, else 1 */
} Index;

typedef struct Rule {
    const char *from; /* diffusers module, up to two %d */
    const char *to;   /* LDM module, up to two %d */
    Index ix;
    const Rename *inner; /* NULL: the rest of the name is kept */
} Rule;

static const Rule unet_rules[] = {{"time_embedding.linear_1", "time_embed.0", IX_NONE, NULL},
                                  {"time_embedding.linear_2", "time_embed.2", IX_NONE, NULL},
                                  {"conv_in", "input_blocks.0.0", IX_NONE, NULL},
                                  {"down_blocks.%d.resnets.%d", "input_blocks.%d.0", IX_DOWN, unet_resnet},
                                  {"down_blocks.%d.attentions.%d", "input_blocks.%d.1", IX_DOWN, NULL},
                                  {"down_blocks.%d.downsamplers.0.conv", "input_blocks.%d.0.op", IX_DOWNSAMPLE, NULL},
                                  {"mid_block.resnets.0", "middle_block.0", IX_NONE, unet_resnet},
                                  {"mid_block.attentions.0", "middle_block.1", IX_NONE, NULL},
                                  {"mid_block.resnets.1", "middle_block.2", IX_NONE, unet_resnet},
                                  {"up_blocks.%d.resnets.%d", "output_blocks.%d.0", IX_UP, unet_resnet},
                                  {"up_blocks.%d.attentions.%d", "output_blocks.%d.1", IX_UP, NULL},
                                  {"up_blocks.%d.upsamplers.0.conv", "output_blocks.%d.%d.conv", IX_UPSAMPLE, NULL},
                                  {"conv_norm_out", "out.0", IX_NONE, NULL},
                                  {"conv_out", "out.2", IX_NONE, NULL},
                                  {NULL, NULL, IX_NONE, NULL}};

static const Rule vae_rules[] = {
    {"encoder.down_blocks.%d.resnets.%d", "encoder.down.%d.block.%d", IX_KEEP, vae_resnet},
    {"encoder.down_blocks.%d.downsamplers.0.conv", "encoder.down.%d.downsample.conv", IX_KEEP, NULL},
    {"decoder.up_blocks.%d.resnets.%d", "decoder.up.%d.block.%d", IX_REVERSE, vae_resnet},
    {"decoder.up_blocks.%d.upsamplers.0.conv", "decoder.up.%d.upsample.conv", IX_REVERSE, NULL},
    {"encoder.mid_block.resnets.0", "encoder.mid.block_1", IX_NONE, vae_resnet},
    {"encoder.mid_block.attentions.0", "encoder.mid.attn_1", IX_NONE, vae_attn},
    {"encoder.mid_block.resnets.1", "encoder.mid.block_2", IX_NONE, vae_resnet},
    {"decoder.mid_block.resnets.0", "decoder.mid.block_1", IX_NONE, vae_resnet},
    {"decoder.mid_block.attentions.0", "decoder.mid.attn_1", IX_NONE, vae_attn},
    {"decoder.mid_block.resnets.1", "decoder.mid.block_2", IX_NONE, vae_resnet},
    {"encoder.conv_norm_out", "encoder.norm_out", IX_NONE, NULL},
    {"decoder.conv_norm_out", "decoder.norm_out", IX_NONE, NULL},
    {"encoder.conv_in", "encoder.conv_in", IX_NONE, NULL},
    {"encoder.conv_out", "encoder.conv_out", IX_NONE, NULL},
    {"decoder.conv_in", "decoder.conv_in", IX_NONE, NULL},
    {"decoder.conv_out", "decoder.conv_out", IX_NONE, NULL},
    {"quant_conv", "quant_conv", IX_NONE, NULL},
    {"post_quant_conv", "post_quant_conv", IX_NONE, NULL},
    {NULL, NULL, IX_NONE, NULL}};

typedef struct Layout {
    int blocks, layers; /* UNet: len(block_out_channels), layers_per_block */
    int cross_up[8];    /* UNet up block has transformers */
    int vae_blocks;
} Layout;

static int count_d(const char *s)
{
    int n = 0;
    for (; (s = strstr(s, "%d")); s += 2) n++;
    return n;
}

/* Renames one diffusers parameter; returns 0, or -1 if no rule applies.
 * *attn is set when the parameter sits in a VAE attention. */
static int convert_name(const Rule *rules, const Layout *lay, const char *name, char *out, size_t len, int *attn)
{
    for (const Rule *r = rules; r->from; r++) {
        char fmt[128];
        snprintf(fmt, sizeof fmt, "%s%%n", r->from);
        int a = -1, b = -1, n = -1;
        switch (count_d(r->from)) {
        case 0: sscanf(name, fmt, &n); break;
        case 1: sscanf(name, fmt, &a, &n); break;
        default: sscanf(name, fmt, &a, &b, &n); break;
        }
        if (n < 0 || name[n] != '.') continue;
        const char *rest = name + n + 1;
        int L = lay->layers, x = a, y = b;
        switch (r->ix) {
        case IX_NONE:
        case IX_KEEP: break;
        case IX_REVERSE: x = lay->vae_blocks - 1 - a; break;
        case IX_DOWN: x = 1 + a * (L + 1) + b; break;
        case IX_DOWNSAMPLE: x = (a + 1) * (L + 1); break;
        case IX_UP: x = a * (L + 1) + b; break;
        case IX_UPSAMPLE: x = a * (L + 1) + L, y = lay->cross_up[a] ? 2 : 1; break;
        }
        char module[128];
        snprintf(module, sizeof module, r->to, x, y);
        const char *renamed = NULL;
        for (const Rename *i = r->inner; i && i->from && !renamed; i++)
            if (strncmp(rest, i->from, strlen(i->from)) == 0) {
                snprintf(out, len, "%s.%s%s", module, i->to, rest + strlen(i->from));
                renamed = out;
            }
        if (!renamed) snprintf(out, len, "%s.%s", module, rest);
        *attn = r->inner == vae_attn;
        return 0;
    }
    return -1;
}

typedef struct ConvertOpts {
    int old_text_layout;  /* cond_stage_model.transformer.* without "text_model." */
    const char *drop;     /* an LDM key to leave out */
    const char *add;      /* an extra f32[1] tensor */
    const char *override; /* JSON written next to the file, or NULL */
} ConvertOpts;

static float zeros[1000];
static int64_t position_ids[77];

/* Writes tiny-sd as one LDM checkpoint at `path`; returns 0 on success. */
static int convert(const char *path, const ConvertOpts *o)
{
    static const char *const files[3] = {"unet/diffusion_pytorch_model.safetensors",
                                         "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"};
    SdcErr err = {{0}};
    Layout lay = {0};
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-sd/unet/config.json", fx);
    Cfg cfg;
    int ok = cfg_load(&cfg, p, "unet/config.json", &err) == 0;
    const char *up[8];
    lay.layers = (int)cfg_int(&cfg, "layers_per_block", 2, 1, 8);
    lay.blocks = cfg_str_list(&cfg, "up_block_types", up, 8);
    for (int i = 0; i < lay.blocks; i++) lay.cross_up[i] = strcmp(up[i], "CrossAttnUpBlock2D") == 0;
    ok = ok && !cfg.failed;
    cfg_free(&cfg);
    snprintf(p, sizeof p, "%s/tiny-sd/vae/config.json", fx);
    ok = ok && cfg_load(&cfg, p, "vae/config.json", &err) == 0;
    int boc[8];
    lay.vae_blocks = cfg_int_list(&cfg, "block_out_channels", boc, -1, 8, 0, 1, 4096);
    cfg_free(&cfg);
    CHECK_MSG(ok, "%s", err.msg);
    if (!ok) return -1;

    StFile src[3];
    memset(src, 0, sizeof src);
    int total = 4;
    for (int f = 0; f < 3; f++) {
        snprintf(p, sizeof p, "%s/tiny-sd/%s", fx, files[f]);
        if (st_open(&src[f], p, &err) < 0) {
            CHECK_MSG(0, "%s", err.msg);
            for (int g = 0; g < f; g++) st_close(&src[g]);
            return -1;
        }
        total += src[f].n;
    }
    StDesc *desc = calloc((size_t)total, sizeof *desc);
    const void **data = calloc((size_t)total, sizeof *data);
    char **names = calloc((size_t)total, sizeof *names);
    int n = 0, rc = 0;
    for (int f = 0; f < 3; f++)
        for (int t = 0; t < src[f].n; t++) {
            const StTensor *st = &src[f].tensors[t];
            char name[400], full[500];
            int attn = 0;
            if (f == 2) {
                const char *core = st->name + (o->old_text_layout ? strlen("text_model.") : 0);
                snprintf(full, sizeof full, "cond_stage_model.transformer.%s", core);
            } else if (convert_name(f == 0 ? unet_rules : vae_rules, &lay, st->name, name, sizeof name, &attn) == 0) {
                snprintf(full, sizeof full, "%s%s", f == 0 ? "model.diffusion_model." : "first_stage_model.", name);
            } else {
                CHECK_MSG(0, "converter: no rule for %s", st->name);
                rc = -1;
                continue;
            }
            if (o->drop && strcmp(full, o->drop) == 0) continue;
            StDesc *d = &desc[n];
            d->dtype = st->dtype;
            d->ndim = st->ndim;
            memcpy(d->shape, st->shape, sizeof st->shape);
            /* LDM's AttnBlock holds q, k, v, proj_out as 1x1 convs */
            if (attn && st->ndim == 2) d->ndim = 4, d->shape[2] = d->shape[3] = 1;
            names[n] = strdup(full);
            d->name = names[n];
            data[n++] = st_data(&src[f], st);
        }
    /* what real checkpoints carry besides the three models */
    desc[n] = (StDesc){"alphas_cumprod", DT_F32, 1, {1000}};
    data[n++] = zeros;
    desc[n] = (StDesc){"model_ema.decay", DT_F32, 0, {0}};
    data[n++] = zeros;
    desc[n] = (StDesc){o->old_text_layout ? "cond_stage_model.transformer.embeddings.position_ids"
                                          : "cond_stage_model.transformer.text_model.embeddings.position_ids",
                       DT_I64,
                       2,
                       {1, 77}};
    data[n++] = position_ids;
    if (o->add) {
        desc[n] = (StDesc){o->add, DT_F32, 1, {1}};
        data[n++] = zeros;
    }
    StWriter *w = NULL;
    if (rc == 0 && st_writer_open(&w, path, n, desc, 0, NULL, NULL, &err) < 0) rc = -1;
    for (int i = 0; i < n && rc == 0; i++)
        if (st_writer_put(w, data[i], &err) < 0) rc = -1;
    if (w && rc == 0 && st_writer_finish(w, &err) < 0)
        rc = -1;
    else if (w && rc < 0)
        st_writer_abort(w);
    CHECK_MSG(rc == 0, "%s", err.msg);
    for (int i = 0; i < total; i++) free(names[i]);
    free(names), free(desc), free(data);
    for (int f = 0; f < 3; f++) st_close(&src[f]);

    if (rc == 0 && o->override) {
        char name[256];
        const char *base = strrchr(path, '/') + 1;
        snprintf(name, sizeof name, "%.*s.config.json", (int)(strlen(base) - strlen(".safetensors")), base);
        const char *over = tmp_file(name);
        rc = file_write_atomic(over, o->override, strlen(o->override), &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
    }
    return rc;
}

/* What shapes cannot tell about tiny-sd (it is not SD 1.x-sized). */
static const char *const tiny_override = "{\"unet\": {\"norm_num_groups\": 16}, \"vae\": {\"norm_num_groups\": 16},"
                                         " \"text_encoder\": {\"num_attention_heads\": 4}}";

/* ---- comparing graphs ------------------------------------------------------- */

/* The graph text with every file(...) reference replaced by file(*). */
static char *text_without_files(const Graph *g)
{
    char *s = ir_print_str(g), *out = malloc(strlen(s) + 1), *o = out;
    for (const char *p = s; *p;) {
        if (strncmp(p, "file(", 5) == 0) {
            const char *end = strchr(p, ')');
            o += sprintf(o, "file(*)");
            p = end ? end + 1 : p + strlen(p);
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    free(s);
    return out;
}

static void report_first_difference(const char *a, const char *b)
{
    int line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') line++, la = a + 1, lb = b + 1;
        a++, b++;
    }
    fprintf(stderr, "  line %d differs:\n    single file: %.*s\n    folder:      %.*s\n", line, (int)strcspn(la, "\n"),
            la, (int)strcspn(lb, "\n"), lb);
}

/* Same text (files aside) and, constant by constant, the same values. */
static void check_same_graph(const Graph *lg, const Graph *dg, const char *ldm_path)
{
    char *a = text_without_files(lg), *b = text_without_files(dg);
    int same = strcmp(a, b) == 0;
    CHECK_MSG(same, "graph %s: single-file and folder imports differ", lg->name);
    if (!same) report_first_difference(a, b);
    free(a), free(b);
    if (!same || lg->n != dg->n) return;
    int compared = 0, from_ckpt = 0;
    for (int i = 0; i < lg->n; i++) {
        const Node *ln = &lg->nodes[i], *dn = &dg->nodes[i];
        if (ln->op != OP_CONST) continue;
        from_ckpt += ln->ckind == CONST_FILE && strcmp(ln->cfile, ldm_path) == 0;
        SdcErr err = {{0}};
        Tensor *x = interp_load_const(lg, ln, &err);
        CHECK_MSG(x != NULL, "%s", err.msg);
        Tensor *y = interp_load_const(dg, dn, &err);
        CHECK_MSG(y != NULL, "%s", err.msg);
        if (x && y) {
            int64_t nx = tensor_numel(x);
            int eq = nx == tensor_numel(y) && x->dtype == y->dtype &&
                     (x->f ? memcmp(x->f, y->f, sizeof(float) * (size_t)nx) == 0
                           : memcmp(x->i, y->i, sizeof(int64_t) * (size_t)nx) == 0);
            CHECK_MSG(eq, "constant %%%s differs between single-file and folder imports", ln->name);
            compared++;
        }
        tensor_free(x), tensor_free(y);
    }
    CHECK(compared > 0);
    CHECK_MSG(from_ckpt > 0, "graph %s: no constant reads %s", lg->name, ldm_path);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_detect(void)
{
    SdcErr err = {{0}};
    StFile f;
    CHECK_MSG(st_open(&f, ckpt, &err) == 0, "%s", err.msg);
    CHECK(ldm_detect(&f));
    st_close(&f);
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-sd/unet/diffusion_pytorch_model.safetensors", fx);
    CHECK_MSG(st_open(&f, p, &err) == 0, "%s", err.msg);
    CHECK(!ldm_detect(&f));
    st_close(&f);
}

/* Every graph-shaping field of the inferred config equals the fixture's. */
static void check_config(const LdmCheckpoint *c, const char *sub, const char *const *keys)
{
    const char *text = ldm_config_json(c, sub);
    CHECK_MSG(text != NULL, "no %s config", sub);
    if (!text) return;
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-sd/%s/config.json", fx, sub);
    SdcErr err = {{0}};
    Cfg want, got;
    CHECK_MSG(cfg_load(&want, p, p, &err) == 0, "%s", err.msg);
    CHECK_MSG(cfg_parse(&got, text, sub, &err) == 0, "%s", err.msg);
    for (int i = 0; keys[i] && want.root && got.root; i++) {
        cJSON *w = cJSON_GetObjectItemCaseSensitive(want.root, keys[i]);
        cJSON *g = cJSON_GetObjectItemCaseSensitive(got.root, keys[i]);
        CHECK_MSG(w && g && cJSON_Compare(w, g, 1), "%s config: %s inferred as %s", sub, keys[i],
                  g ? cJSON_PrintUnformatted(g) : "(absent)");
    }
    cfg_free(&want), cfg_free(&got);
}

static void test_configs(void)
{
    static const char *const unet_keys[] = {"in_channels",
                                            "out_channels",
                                            "block_out_channels",
                                            "layers_per_block",
                                            "down_block_types",
                                            "up_block_types",
                                            "cross_attention_dim",
                                            "attention_head_dim",
                                            "use_linear_projection",
                                            "norm_num_groups",
                                            "norm_eps",
                                            "flip_sin_to_cos",
                                            "freq_shift",
                                            "downsample_padding",
                                            "center_input_sample",
                                            "act_fn",
                                            NULL};
    static const char *const vae_keys[] = {"in_channels",
                                           "out_channels",
                                           "latent_channels",
                                           "block_out_channels",
                                           "layers_per_block",
                                           "down_block_types",
                                           "up_block_types",
                                           "norm_num_groups",
                                           "scaling_factor",
                                           "act_fn",
                                           NULL};
    static const char *const text_keys[] = {"hidden_size",         "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "vocab_size",        "max_position_embeddings",
                                            "hidden_act",          "layer_norm_eps",    NULL};
    LdmCheckpoint c;
    SdcErr err = {{0}};
    CHECK_MSG(ldm_open(&c, ckpt, &err) == 0, "%s", err.msg);
    check_config(&c, "unet", unet_keys);
    check_config(&c, "vae", vae_keys);
    check_config(&c, "text_encoder", text_keys);
    CHECK(ldm_config_json(&c, "tokenizer") == NULL);
    ldm_close(&c);

    /* the same file without the override file: SD 1.x's values where shapes say nothing */
    const char *bare = tmp_file("bare.safetensors");
    CHECK(link(ckpt, bare) == 0);
    CHECK_MSG(ldm_open(&c, bare, &err) == 0, "%s", err.msg);
    Cfg u;
    if (ldm_config_json(&c, "unet") && cfg_parse(&u, ldm_config_json(&c, "unet"), "unet", &err) == 0) {
        CHECK(cfg_int(&u, "norm_num_groups", 0, 0, 1000) == 32);
        CHECK(cfg_int(&u, "attention_head_dim", 0, 0, 1000) == 8);
        CHECK(cfg_int(&u, "in_channels", 0, 0, 1000) == 4);
        cfg_free(&u);
    }
    ldm_close(&c);
}

static void test_graphs_match(void)
{
    Model lm, dm;
    SdcErr err = {{0}};
    char folder[600];
    snprintf(folder, sizeof folder, "%s/tiny-sd", fx);
    CHECK_MSG(model_open(&lm, ckpt, NULL, &err) == 0, "%s", err.msg);
    CHECK_MSG(model_open(&dm, folder, NULL, &err) == 0, "%s", err.msg);
    CHECK(lm.single_file && !dm.single_file);
    static const struct {
        Component c;
        ImportShape s;
    } cases[] = {
        {COMP_UNET, {.batch = 1, .height = 16, .width = 24, .seq_len = 77}},
        {COMP_VAE_DECODER, {.batch = 1, .height = 8, .width = 8}},
        {COMP_VAE_ENCODER, {.batch = 1, .height = 16, .width = 16}},
        {COMP_TEXT_ENCODER, {.batch = 1, .seq_len = 77}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Graph *lg = model_import(&lm, cases[i].c, &cases[i].s, &err);
        CHECK_MSG(lg != NULL, "%s: %s", component_name(cases[i].c), err.msg);
        Graph *dg = model_import(&dm, cases[i].c, &cases[i].s, &err);
        CHECK_MSG(dg != NULL, "%s: %s", component_name(cases[i].c), err.msg);
        if (lg && dg) check_same_graph(lg, dg, lm.root);
        graph_free(lg), graph_free(dg);
    }
    ModelInfo info;
    CHECK_MSG(model_info(&lm, &info, &err) == 0, "%s", err.msg);
    CHECK(info.vae_scale == 2 && info.latent_channels == 4 && info.text_hidden == 32 && info.max_positions == 77);
    CHECK(info.scaling_factor == 0.18215);
    model_close(&lm), model_close(&dm);
}

/* The UNet imported from the single file against diffusers' output. */
static void test_unet_golden(void)
{
    SdcErr err = {{0}};
    Model m;
    CHECK_MSG(model_open(&m, ckpt, NULL, &err) == 0, "%s", err.msg);
    ImportShape s = {.batch = 1, .height = 16, .width = 24, .seq_len = 77};
    Graph *g = model_import(&m, COMP_UNET, &s, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-sd-golden/unet.safetensors", fx);
    StFile gold;
    if (!g || st_open(&gold, p, &err) < 0) {
        CHECK_MSG(g == NULL, "%s", err.msg);
        graph_free(g), model_close(&m);
        return;
    }
    const StTensor *ts = st_find(&gold, "unet_b1ns_sample"), *te = st_find(&gold, "unet_b1ns_ehs");
    const StTensor *tw = st_find(&gold, "unet_b1ns_t500_out");
    CHECK(ts && te && tw);
    if (ts && te && tw) {
        Tensor *sample = tensor_io_read(&gold, ts, DT_F32, &err), *ehs = tensor_io_read(&gold, te, DT_F32, &err);
        Tensor *want = tensor_io_read(&gold, tw, DT_F32, &err);
        Tensor *t = tensor_new(DT_F32, 1, (int64_t[]){1});
        t->f[0] = 500;
        Tensor *in[3] = {sample, t, ehs}, *out[1] = {NULL};
        CHECK_MSG(interp_run(g, in, out, 0, &err) == 0, "%s", err.msg);
        if (out[0]) CHECK_REL(out[0]->f, want->f, (size_t)tensor_numel(want), 1e-4);
        tensor_free(out[0]), tensor_free(sample), tensor_free(ehs), tensor_free(want), tensor_free(t);
    }
    st_close(&gold);
    graph_free(g);
    model_close(&m);
}

/* cond_stage_model.transformer.encoder.* (transformers before 4.x kept no text_model level). */
static void test_old_text_layout(void)
{
    const char *path = tmp_file("old.safetensors");
    ConvertOpts o = {.old_text_layout = 1, .override = tiny_override};
    if (convert(path, &o) < 0) return;
    Model lm, dm;
    SdcErr err = {{0}};
    char folder[600];
    snprintf(folder, sizeof folder, "%s/tiny-sd", fx);
    CHECK_MSG(model_open(&lm, path, NULL, &err) == 0, "%s", err.msg);
    CHECK_MSG(model_open(&dm, folder, NULL, &err) == 0, "%s", err.msg);
    ImportShape s = {.batch = 2, .seq_len = 77};
    Graph *lg = model_import(&lm, COMP_TEXT_ENCODER, &s, &err);
    CHECK_MSG(lg != NULL, "%s", err.msg);
    Graph *dg = model_import(&dm, COMP_TEXT_ENCODER, &s, &err);
    CHECK_MSG(dg != NULL, "%s", err.msg);
    if (lg && dg) check_same_graph(lg, dg, lm.root);
    graph_free(lg), graph_free(dg);
    model_close(&lm), model_close(&dm);
}

static void test_missing_and_unexpected(void)
{
    const char *path = tmp_file("broken.safetensors");
    const char *dropped = "model.diffusion_model.output_blocks.3.0.emb_layers.1.bias";
    const char *extra = "model.diffusion_model.output_blocks.3.0.extra.weight";
    ConvertOpts o = {.drop = dropped, .add = extra, .override = tiny_override};
    if (convert(path, &o) < 0) return;
    Model m;
    SdcErr err = {{0}};
    CHECK_MSG(model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
    ImportShape s = {.batch = 1, .height = 8, .width = 8, .seq_len = 77};
    Graph *g = model_import(&m, COMP_UNET, &s, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, dropped) && strstr(err.msg, "1 missing"), "%s", err.msg);
    CHECK_MSG(strstr(err.msg, extra) && strstr(err.msg, "1 unexpected"), "%s", err.msg);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s", err.msg);
    graph_free(g);
    /* the other components are intact */
    s = (ImportShape){.batch = 1, .height = 8, .width = 8};
    g = model_import(&m, COMP_VAE_DECODER, &s, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    graph_free(g);
    model_close(&m);
}

/* Writes a small safetensors file of f32 tensors: names[i] with shapes[i]. */
static const char *small_file(const char *file, int n, const char *const *names, const int64_t (*shapes)[4])
{
    static float data[8192];
    const char *path = tmp_file(file);
    StEntry e[8];
    for (int i = 0; i < n; i++) {
        e[i] = (StEntry){names[i], DT_F32, 4, {shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]}, data};
        while (e[i].ndim > 1 && e[i].shape[e[i].ndim - 1] == 0) e[i].ndim--;
    }
    SdcErr err = {{0}};
    CHECK_MSG(st_write(path, n, e, &err) == 0, "%s", err.msg);
    return path;
}

static void expect_refusal(const char *path, const char *what)
{
    Model m;
    SdcErr err = {{0}};
    char real[PATH_MAX];
    CHECK(realpath(path, real) != NULL);
    CHECK(model_open(&m, path, NULL, &err) < 0);
    CHECK_MSG(strstr(err.msg, what) && strstr(err.msg, real), "expected \"%s\" naming %s, got: %s", what, real,
              err.msg);
    CHECK(strchr(err.msg, '\n') == NULL);
}

static void test_refusals(void)
{
    const int64_t sh[4][4] = {{8, 4, 3, 3}, {24, 8}, {8, 1024}, {4}};
    const char *sd2[] = {"model.diffusion_model.input_blocks.0.0.weight",
                         "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"};
    expect_refusal(small_file("sd2.safetensors", 2, sd2, sh), "SD 2.x single-file checkpoints (OpenCLIP text encoder)");
    const char *sd2ctx[] = {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.x",
                            "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight"};
    expect_refusal(small_file("sd2ctx.safetensors", 3, sd2ctx, sh),
                   "SD 2.x single-file checkpoints (UNet context width 1024)");
    const char *sdxl[] = {"model.diffusion_model.input_blocks.0.0.weight",
                          "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"};
    expect_refusal(small_file("sdxl.safetensors", 2, sdxl, sh), "SDXL");
    const char *other[] = {"encoder.layer.0.weight"};
    expect_refusal(small_file("other.safetensors", 1, other, sh), "no model.diffusion_model.* tensors");
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-sd/unet/diffusion_pytorch_model.safetensors", fx);
    expect_refusal(p, "pass the diffusers folder");
    /* an LDM file whose UNet is not an SD 1.x UNet */
    const char *partial[] = {"model.diffusion_model.input_blocks.0.0.weight"};
    expect_refusal(small_file("partial.safetensors", 1, partial, sh), "model.diffusion_model.out.2.weight: missing");
}

/* ---- the SD 1.5 layout, from a skeleton -------------------------------------- */

/* A file with SD 1.5's structure where only the dims ldm.c reads are real
 * (the rest are 1s): tiny-sd has (DownBlock2D, CrossAttnDownBlock2D) and
 * SD 1.5 the other way round (three cross-attention levels, then a plain
 * one), which puts its first upsampler at output_blocks.2.1. */
typedef struct Skeleton {
    int n;
    char *names[128];
    StEntry e[128];
} Skeleton;

static void skel_add(Skeleton *k, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    static float zeros_big[32768];
    SDC_ASSERT(k->n < 128 && d0 * d1 * d2 * d3 <= 32768);
    k->names[k->n] = strdup(name);
    k->e[k->n] = (StEntry){k->names[k->n], DT_F32, ndim, {d0, d1, d2, d3}, zeros_big};
    k->n++;
}

static const char *sd15_skeleton(const char *file, int in_channels)
{
    static const int ch[4] = {320, 640, 1280, 1280}, attn[4] = {1, 1, 1, 0}, vch[4] = {128, 256, 512, 512};
    Skeleton k = {0};
    char name[160];
    const char *u = "model.diffusion_model.";
#define KEY(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    skel_add(&k, KEY("%sinput_blocks.0.0.weight", u), 4, 320, in_channels, 3, 3);
    skel_add(&k, KEY("%sout.2.weight", u), 4, 4, 320, 3, 3);
    skel_add(&k, KEY("%stime_embed.0.weight", u), 2, 1280, 1, 1, 1);
    int b = 1;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 2; j++, b++) {
            skel_add(&k, KEY("%sinput_blocks.%d.0.out_layers.3.weight", u, b), 4, ch[i], 1, 1, 1);
            if (attn[i]) skel_add(&k, KEY("%sinput_blocks.%d.1.norm.weight", u, b), 1, ch[i], 1, 1, 1);
        }
        if (i < 3) skel_add(&k, KEY("%sinput_blocks.%d.0.op.weight", u, b++), 4, ch[i], 1, 1, 1);
    }
    for (int o = 0; o < 12; o++) {
        int level = 3 - o / 3;
        skel_add(&k, KEY("%soutput_blocks.%d.0.out_layers.3.weight", u, o), 4, ch[level], 1, 1, 1);
        if (attn[level]) skel_add(&k, KEY("%soutput_blocks.%d.1.norm.weight", u, o), 1, ch[level], 1, 1, 1);
    }
    skel_add(&k, KEY("%smiddle_block.1.proj_in.weight", u), 4, 1280, 1, 1, 1);
    skel_add(&k, KEY("%smiddle_block.1.transformer_blocks.0.attn2.to_k.weight", u), 2, 1, 768, 1, 1);
    skel_add(&k, KEY("%smiddle_block.1.transformer_blocks.0.norm1.weight", u), 1, 1280, 1, 1, 1);
    const char *v = "first_stage_model.";
    skel_add(&k, KEY("%sencoder.conv_in.weight", v), 4, 128, 3, 3, 3);
    skel_add(&k, KEY("%sdecoder.conv_in.weight", v), 4, 512, 4, 3, 3);
    skel_add(&k, KEY("%sdecoder.conv_out.weight", v), 4, 3, 128, 3, 3);
    for (int i = 0; i < 4; i++) skel_add(&k, KEY("%sencoder.down.%d.block.0.conv2.weight", v, i), 4, vch[i], 1, 1, 1);
    for (int j = 0; j < 2; j++) skel_add(&k, KEY("%sencoder.down.0.block.%d.conv1.weight", v, j), 4, 128, 1, 1, 1);
    skel_add(&k, KEY("%sdecoder.mid.attn_1.q.weight", v), 4, 512, 1, 1, 1);
    skel_add(&k, KEY("%squant_conv.weight", v), 4, 8, 8, 1, 1);
    skel_add(&k, KEY("%spost_quant_conv.weight", v), 4, 4, 4, 1, 1);
#undef KEY
    const char *path = tmp_file(file);
    SdcErr err = {{0}};
    CHECK_MSG(st_write(path, k.n, k.e, &err) == 0, "%s", err.msg);
    for (int i = 0; i < k.n; i++) free(k.names[i]);
    return path;
}

/* The inferred config has `want`'s fields (a JSON object) with their values. */
static void check_fields(const char *config, const char *want_json, const char *what)
{
    cJSON *got = cJSON_Parse(config ? config : "null"), *want = cJSON_Parse(want_json);
    SDC_ASSERT(want);
    cJSON *w;
    cJSON_ArrayForEach(w, want)
    {
        cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        char *shown = g ? cJSON_PrintUnformatted(g) : NULL;
        CHECK_MSG(g && cJSON_Compare(w, g, 1), "%s: %s inferred as %s", what, w->string, shown ? shown : "(absent)");
        cJSON_free(shown);
    }
    cJSON_Delete(got), cJSON_Delete(want);
}

static void check_translation(WeightSet *ws, const char *name, const char *want, int want_view)
{
    char out[512] = "";
    int view = -1;
    int rc = ws->translate(ws->translate_ctx, name, out, sizeof out, &view);
    if (!want) {
        CHECK_MSG(rc < 0, "%s should have no counterpart, got %s", name, out);
        return;
    }
    CHECK_MSG(rc == 0 && strcmp(out, want) == 0 && view == want_view, "%s -> %s (view %d), expected %s", name,
              rc == 0 ? out : "(none)", view, want);
}

static void test_sd15_layout(void)
{
    LdmCheckpoint c;
    SdcErr err = {{0}};
    const char *path = sd15_skeleton("sd15.safetensors", 4);
    CHECK_MSG(ldm_open(&c, path, &err) == 0, "%s", err.msg);
    check_fields(ldm_config_json(&c, "unet"),
                 "{\"in_channels\": 4, \"out_channels\": 4, \"block_out_channels\": [320, 640, 1280, 1280],"
                 " \"layers_per_block\": 2, \"cross_attention_dim\": 768, \"attention_head_dim\": 8,"
                 " \"norm_num_groups\": 32, \"use_linear_projection\": false, \"downsample_padding\": 1,"
                 " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
                 " \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\","
                 " \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}",
                 "sd15 unet");
    const char *unet = ldm_config_json(&c, "unet");
    CHECK(unet && !strstr(unet, "time_embedding_dim") && !strstr(unet, "transformer_layers_per_block"));
    check_fields(
        ldm_config_json(&c, "vae"),
        "{\"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 4, \"block_out_channels\":"
        " [128, 256, 512, 512], \"layers_per_block\": 2, \"norm_num_groups\": 32, \"scaling_factor\": 0.18215}",
        "sd15 vae");
    CHECK(ldm_config_json(&c, "text_encoder") == NULL); /* this file has none */

    WeightSet ws;
    if (ldm_weights(&c, "unet", &ws, &err) == 0) {
        const char *m = "model.diffusion_model.";
        char want[12][160];
        snprintf(want[0], 160, "%soutput_blocks.2.1.conv.weight", m);
        snprintf(want[1], 160, "%soutput_blocks.5.2.conv.bias", m);
        snprintf(want[2], 160, "%sinput_blocks.11.0.out_layers.3.weight", m);
        snprintf(want[3], 160, "%sinput_blocks.9.0.op.weight", m);
        snprintf(want[4], 160, "%soutput_blocks.11.1.transformer_blocks.0.attn2.to_k.weight", m);
        snprintf(want[5], 160, "%sinput_blocks.4.0.skip_connection.weight", m);
        snprintf(want[6], 160, "%smiddle_block.2.emb_layers.1.bias", m);
        snprintf(want[7], 160, "%stime_embed.2.weight", m);
        check_translation(&ws, "up_blocks.0.upsamplers.0.conv.weight", want[0], 0);
        check_translation(&ws, "up_blocks.1.upsamplers.0.conv.bias", want[1], 0);
        check_translation(&ws, "down_blocks.3.resnets.1.conv2.weight", want[2], 0);
        check_translation(&ws, "down_blocks.2.downsamplers.0.conv.weight", want[3], 0);
        check_translation(&ws, "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight", want[4], 0);
        check_translation(&ws, "down_blocks.1.resnets.0.conv_shortcut.weight", want[5], 0);
        check_translation(&ws, "mid_block.resnets.1.time_emb_proj.bias", want[6], 0);
        check_translation(&ws, "time_embedding.linear_2.weight", want[7], 0);
        check_translation(&ws, "down_blocks.3.attentions.0.norm.weight", NULL, 0); /* DownBlock2D */
        check_translation(&ws, "up_blocks.3.upsamplers.0.conv.weight", NULL, 0);   /* last level */
        check_translation(&ws, "down_blocks.0.resnets.0.foo.weight", NULL, 0);     /* no such layer */
        ws_close(&ws);
    }
    if (ldm_weights(&c, "vae", &ws, &err) == 0) {
        check_translation(&ws, "decoder.up_blocks.0.resnets.2.conv_shortcut.weight",
                          "first_stage_model.decoder.up.3.block.2.nin_shortcut.weight", 0);
        check_translation(&ws, "decoder.up_blocks.2.upsamplers.0.conv.bias",
                          "first_stage_model.decoder.up.1.upsample.conv.bias", 0);
        check_translation(&ws, "decoder.mid_block.attentions.0.to_out.0.weight",
                          "first_stage_model.decoder.mid.attn_1.proj_out.weight", 1);
        check_translation(&ws, "encoder.mid_block.attentions.0.group_norm.bias",
                          "first_stage_model.encoder.mid.attn_1.norm.bias", 0);
        check_translation(&ws, "encoder.conv_norm_out.weight", "first_stage_model.encoder.norm_out.weight", 0);
        check_translation(&ws, "encoder.down_blocks.3.downsamplers.0.conv.weight", NULL, 0);
        ws_close(&ws);
    }
    CHECK(ldm_weights(&c, "text_encoder", &ws, &err) < 0 && strstr(err.msg, "no text_encoder"));
    ldm_close(&c);

    /* the inpainting UNet: 4 latent + 1 mask + 4 masked-image channels */
    path = sd15_skeleton("sd15-inpainting.safetensors", 9);
    CHECK_MSG(ldm_open(&c, path, &err) == 0, "%s", err.msg);
    check_fields(ldm_config_json(&c, "unet"), "{\"in_channels\": 9, \"out_channels\": 4}", "inpainting unet");
    ldm_close(&c);
}

static void test_bad_override(void)
{
    const char *path = tmp_file("over.safetensors"), *over = tmp_file("over.config.json");
    CHECK(link(ckpt, path) == 0);
    SdcErr err = {{0}};
    static const char bad[] = "{\"unet\": {\"norm_num_groups\": 16}, \"scheduler\": {}}";
    CHECK(file_write_atomic(over, bad, strlen(bad), &err) == 0);
    Model m;
    CHECK(model_open(&m, path, NULL, &err) < 0);
    CHECK_MSG(strstr(err.msg, over) && strstr(err.msg, "scheduler"), "%s", err.msg);
    /* an override reaches the graph builder: 7 groups do not divide 32 channels */
    static const char odd[] = "{\"unet\": {\"norm_num_groups\": 7}}";
    CHECK(file_write_atomic(over, odd, strlen(odd), &err) == 0);
    CHECK_MSG(model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
    ImportShape s = {.batch = 1, .height = 8, .width = 8, .seq_len = 77};
    Graph *g = model_import(&m, COMP_UNET, &s, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, "norm_num_groups") != NULL, "%s", err.msg);
    graph_free(g);
    model_close(&m);
}

int main(void)
{
    snprintf(fx, sizeof fx, "%s", test_need_fixtures());
    /* model_open names files by their real path */
    if (!realpath(test_tmpdir(), tmp)) return 2;
    for (int i = 0; i < 77; i++) position_ids[i] = i;
    ckpt = tmp_file("tiny.safetensors");
    ConvertOpts o = {.override = tiny_override};
    if (convert(ckpt, &o) == 0) {
        RUN(test_detect);
        RUN(test_configs);
        RUN(test_graphs_match);
        RUN(test_unet_golden);
        RUN(test_old_text_layout);
        RUN(test_missing_and_unexpected);
        RUN(test_refusals);
        RUN(test_sd15_layout);
        RUN(test_bad_override);
    }
    for (int i = nmade - 1; i >= 0; i--) unlink(made[i]), free(made[i]);
    rmdir(tmp);
    return test_finish();
}
