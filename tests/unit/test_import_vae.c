/* test_import_vae.c — the VAE decoder and encoder graphs of tiny-sd against
 * diffusers' own outputs (tiny-sd-golden/vae.safetensors), run by the
 * reference interpreter; plus the errors a wrong weight file or an
 * unsupported config gives, and the old attention parameter names. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "import.h"
#include "interp.h"
#include "tensor_io.h"
#include "test.h"

static char vae_dir[512], golden_path[600], weights_path[600];

/* A tiny-sd VAE: config and weights from `weights` (the fixture unless a test
 * wrote a modified copy). */
typedef struct Vae {
    Cfg cfg;
    WeightSet ws;
    SdcErr err;
} Vae;

static int vae_open(Vae *v, const char *weights)
{
    memset(v, 0, sizeof *v);
    char cfg_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", vae_dir);
    const char *shown = "vae/diffusion_pytorch_model.safetensors";
    if (cfg_load(&v->cfg, cfg_path, "vae/config.json", &v->err) < 0) return -1;
    return ws_open(&v->ws, "vae", 1, &weights, &shown, &v->err);
}

static void vae_close(Vae *v)
{
    cfg_free(&v->cfg);
    ws_close(&v->ws);
}

static Tensor *golden(const char *name)
{
    SdcErr err = {{0}};
    StFile f;
    if (st_open(&f, golden_path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    const StTensor *t = st_find(&f, name);
    Tensor *x = t ? tensor_io_read(&f, t, DT_F32, &err) : NULL;
    if (!x) fprintf(stderr, "golden %s: %s\n", name, t ? err.msg : "absent");
    st_close(&f);
    return x;
}

/* print(parse(print(g))) == print(g) */
static void check_round_trip(const Graph *g)
{
    SdcErr err = {{0}};
    char *s1 = ir_print_str(g);
    Graph *g2 = ir_parse(s1, "printed", &err);
    CHECK_MSG(g2 != NULL, "%s", err.msg);
    char *s2 = g2 ? ir_print_str(g2) : NULL;
    CHECK(s2 && strcmp(s1, s2) == 0);
    free(s1), free(s2), graph_free(g2);
}

static void check_output(const Graph *g, int k, const char *name, const int64_t *shape)
{
    const Node *n = &g->nodes[g->outputs[k]];
    CHECK_MSG(strcmp(n->name, name) == 0, "output %d is %%%s, expected %%%s", k, n->name, name);
    CHECK(n->ndim == 4 && memcmp(n->shape, shape, 4 * sizeof(int64_t)) == 0);
}

/* Decodes golden `in` with a graph for its size and compares with `ref`. */
static void decode_against(const char *in, const char *ref)
{
    Vae v;
    CHECK_MSG(vae_open(&v, weights_path) == 0, "%s", v.err.msg);
    Tensor *x = golden(in), *want = golden(ref), *got = NULL;
    CHECK(x && want);
    if (!x || !want) goto done;
    ImportShape s = {.batch = 1, .height = x->shape[2], .width = x->shape[3]};
    Graph *g = build_vae_decoder(&v.cfg, &v.ws, &s, &v.err);
    CHECK_MSG(g != NULL, "%s", v.err.msg);
    if (!g) goto done;
    CHECK_MSG(ws_check(&v.ws, &v.err) == 0, "%s", v.err.msg);
    CHECK_MSG(ir_verify(g, &v.err) == 0, "%s", v.err.msg);
    CHECK(g->nout == 1);
    check_output(g, 0, "out", want->shape);
    check_round_trip(g);
    CHECK_MSG(interp_run(g, &x, &got, 0, &v.err) == 0, "%s", v.err.msg);
    if (got) CHECK_REL(got->f, want->f, (size_t)tensor_numel(want), 1e-4);
    tensor_free(got);
    graph_free(g);
done:
    tensor_free(x), tensor_free(want);
    vae_close(&v);
}

static void test_decode(void) { decode_against("vae_latents", "vae_decode_raw"); }

static void test_decode_non_square(void) { decode_against("vae_ns_latents", "vae_ns_decode_raw"); }

static void test_encode(void)
{
    Vae v;
    CHECK_MSG(vae_open(&v, weights_path) == 0, "%s", v.err.msg);
    Tensor *x = golden("vae_image"), *mean = golden("vae_encode_mean"), *logvar = golden("vae_encode_logvar");
    Tensor *got[2] = {0};
    CHECK(x && mean && logvar);
    if (!x || !mean || !logvar) goto done;
    ImportShape s = {.batch = 1, .height = 64, .width = 64};
    Graph *g = build_vae_encoder(&v.cfg, &v.ws, &s, &v.err);
    CHECK_MSG(g != NULL, "%s", v.err.msg);
    if (!g) goto done;
    CHECK_MSG(ws_check(&v.ws, &v.err) == 0, "%s", v.err.msg);
    CHECK_MSG(ir_verify(g, &v.err) == 0, "%s", v.err.msg);
    CHECK(g->nout == 2);
    check_output(g, 0, "out", mean->shape);
    check_output(g, 1, "logvar", logvar->shape);
    check_round_trip(g);
    CHECK_MSG(interp_run(g, &x, got, 0, &v.err) == 0, "%s", v.err.msg);
    if (got[0]) CHECK_REL(got[0]->f, mean->f, (size_t)tensor_numel(mean), 1e-4);
    if (got[1]) CHECK_REL(got[1]->f, logvar->f, (size_t)tensor_numel(logvar), 1e-4);
    tensor_free(got[0]), tensor_free(got[1]);
    graph_free(g);
done:
    tensor_free(x), tensor_free(mean), tensor_free(logvar);
    vae_close(&v);
}

/* Writes a copy of the fixture weights into a temp dir: `drop` left out,
 * `shrink` written one element shorter, names starting with rename[2i]
 * renamed to begin with rename[2i+1] instead.  Returns the path (static). */
static const char *write_variant(const char *drop, const char *shrink, const char *const *rename)
{
    static char path[600];
    SdcErr err = {{0}};
    StFile f;
    if (st_open(&f, weights_path, &err) < 0) return NULL;
    StEntry *e = xcalloc((size_t)f.n, sizeof *e);
    char **names = xcalloc((size_t)f.n, sizeof *names);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        names[n] = xstrdup(t->name);
        for (int r = 0; rename && rename[r]; r += 2) {
            const char *at = strstr(t->name, rename[r]);
            if (!at) continue;
            char buf[512];
            snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - t->name), t->name, rename[r + 1],
                     at + strlen(rename[r]));
            free(names[n]);
            names[n] = xstrdup(buf);
        }
        e[n] = (StEntry){.name = names[n], .dtype = t->dtype, .ndim = t->ndim, .data = st_data(&f, t)};
        memcpy(e[n].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (shrink && strcmp(t->name, shrink) == 0) e[n].shape[0]--;
        n++;
    }
    snprintf(path, sizeof path, "%s/vae.safetensors", test_tmpdir());
    int rc = st_write(path, n, e, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names), free(e);
    st_close(&f);
    return rc < 0 ? NULL : path;
}

/* Removes a file made by write_variant and its temp dir. */
static void remove_variant(const char *path)
{
    if (!path) return;
    char dir[600];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    remove(path);
    if (slash) *slash = 0, remove(dir);
}

/* Builds the decoder over `weights` and returns ws_check's message (static). */
static const char *decoder_check_message(const char *weights)
{
    static char msg[1024];
    Vae v;
    msg[0] = 0;
    if (!weights || vae_open(&v, weights) < 0) return "open failed";
    ImportShape s = {.batch = 1, .height = 4, .width = 4};
    Graph *g = build_vae_decoder(&v.cfg, &v.ws, &s, &v.err);
    if (!g) snprintf(msg, sizeof msg, "build failed: %.900s", v.err.msg);
    else if (ws_check(&v.ws, &v.err) < 0) snprintf(msg, sizeof msg, "%s", v.err.msg);
    graph_free(g);
    vae_close(&v);
    remove_variant(weights);
    return msg;
}

static void test_missing_tensor(void)
{
    const char *name = "decoder.mid_block.resnets.1.conv2.weight";
    const char *msg = decoder_check_message(write_variant(name, NULL, NULL));
    CHECK_MSG(strstr(msg, "1 missing") && strstr(msg, name), "%s", msg);
    CHECK_MSG(strstr(msg, "vae/diffusion_pytorch_model.safetensors"), "%s", msg);
    /* an encoder tensor is none of the decoder's business */
    msg = decoder_check_message(write_variant("encoder.conv_in.weight", NULL, NULL));
    CHECK_MSG(msg[0] == 0, "%s", msg);
}

static void test_wrong_shape(void)
{
    const char *msg = decoder_check_message(write_variant(NULL, "decoder.conv_in.bias", NULL));
    CHECK_MSG(strstr(msg, "1 mismatched") && strstr(msg, "decoder.conv_in.bias: file has [63], config needs [64]"),
              "%s", msg);
}

/* Files from before diffusers 0.14 call the projections query, key, value
 * and proj_attn: the decoder binds them and computes the same numbers. */
static void test_old_attention_names(void)
{
    static const char *const rename[] = {".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.",
                                         ".to_out.0.", ".proj_attn.", NULL};
    const char *old_path = write_variant(NULL, NULL, rename);
    CHECK(old_path != NULL);
    if (!old_path) return;
    Vae vn, vo;
    CHECK_MSG(vae_open(&vn, weights_path) == 0, "%s", vn.err.msg);
    CHECK_MSG(vae_open(&vo, old_path) == 0, "%s", vo.err.msg);
    ImportShape s = {.batch = 2, .height = 6, .width = 4};
    Graph *gn = build_vae_decoder(&vn.cfg, &vn.ws, &s, &vn.err);
    Graph *go = build_vae_decoder(&vo.cfg, &vo.ws, &s, &vo.err);
    CHECK(gn && go);
    CHECK_MSG(ws_check(&vo.ws, &vo.err) == 0, "%s", vo.err.msg);
    if (go) CHECK(graph_find(go, "decoder.mid_block.attentions.0.proj_attn.weight") >= 0);
    if (gn && go) {
        Tensor *x = tensor_new(DT_F32, 4, (int64_t[]){2, 4, 6, 4}), *yn = NULL, *yo = NULL;
        test_fill_randn(x->f, (size_t)tensor_numel(x), 1.0f);
        CHECK_MSG(interp_run(gn, &x, &yn, 0, &vn.err) == 0, "%s", vn.err.msg);
        CHECK_MSG(interp_run(go, &x, &yo, 0, &vo.err) == 0, "%s", vo.err.msg);
        if (yn && yo) CHECK(memcmp(yn->f, yo->f, sizeof(float) * (size_t)tensor_numel(yn)) == 0);
        tensor_free(x), tensor_free(yn), tensor_free(yo);
    }
    graph_free(gn), graph_free(go);
    vae_close(&vn), vae_close(&vo);
    remove_variant(old_path);
}

/* The fixture config with one field replaced by the JSON `value` (NULL:
 * removed); returns the builder's error message (static), "" if it built. */
static const char *config_error(const char *key, const char *value, int encoder)
{
    static char msg[1024];
    Vae v;
    msg[0] = 0;
    if (vae_open(&v, weights_path) < 0) return "open failed";
    cJSON_DeleteItemFromObjectCaseSensitive(v.cfg.root, key);
    if (value) cJSON_AddItemToObject(v.cfg.root, key, cJSON_Parse(value));
    ImportShape s = {.batch = 1, .height = 8, .width = 8};
    Graph *g = encoder ? build_vae_encoder(&v.cfg, &v.ws, &s, &v.err) : build_vae_decoder(&v.cfg, &v.ws, &s, &v.err);
    if (!g) snprintf(msg, sizeof msg, "%s", v.err.msg);
    graph_free(g);
    vae_close(&v);
    return msg;
}

static void test_config_errors(void)
{
    const char *m = config_error("act_fn", "\"gelu\"", 0);
    CHECK_MSG(strstr(m, "vae/config.json: act_fn: unsupported value \"gelu\""), "%s", m);
    m = config_error("down_block_types", "[\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\"]", 1);
    CHECK_MSG(strstr(m, "vae/config.json: down_block_types[1]: unsupported block \"AttnDownEncoderBlock2D\""), "%s", m);
    m = config_error("up_block_types", "[\"UpDecoderBlock2D\"]", 0);
    CHECK_MSG(strstr(m, "vae/config.json: up_block_types: 1 entries"), "%s", m);
    m = config_error("latents_mean", "[0.1, 0.2, 0.3, 0.4]", 0);
    CHECK_MSG(strstr(m, "vae/config.json: latents_mean: value [0.1,0.2,0.3,0.4] is not supported"), "%s", m);
    m = config_error("norm_num_groups", "12", 1);
    CHECK_MSG(strstr(m, "vae/config.json: norm_num_groups: 12 does not divide"), "%s", m);
    m = config_error("_class_name", "\"AutoencoderTiny\"", 0);
    CHECK_MSG(strstr(m, "vae/config.json: _class_name: unsupported value"), "%s", m);
    m = config_error("layers_per_block", "\"1\"", 0);
    CHECK_MSG(strstr(m, "vae/config.json: layers_per_block: expected an integer"), "%s", m);
    /* fields a diffusers 0.27 file lacks have diffusers' defaults */
    m = config_error("use_quant_conv", NULL, 1);
    CHECK_MSG(m[0] == 0, "%s", m);
    m = config_error("mid_block_add_attention", "true", 0);
    CHECK_MSG(m[0] == 0, "%s", m);
}

/* Switches that remove modules: the graph loses them and ws_check reports
 * the file's now unused tensors. */
static void test_optional_modules(void)
{
    struct {
        const char *key;
        int encoder;
        const char *gone;   /* a node the switch removes */
        const char *unused; /* in the names ws_check reports */
    } cases[] = {
        {"mid_block_add_attention", 0, "decoder.mid_block.attentions.0.to_q", "decoder.mid_block.attentions.0."},
        {"mid_block_add_attention", 1, "encoder.mid_block.attentions.0.to_q", "encoder.mid_block.attentions.0."},
        {"use_quant_conv", 1, "quant_conv", "quant_conv.weight"},
        {"use_post_quant_conv", 0, "post_quant_conv", "post_quant_conv.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Vae v;
        CHECK_MSG(vae_open(&v, weights_path) == 0, "%s", v.err.msg);
        cJSON_DeleteItemFromObjectCaseSensitive(v.cfg.root, cases[i].key);
        cJSON_AddFalseToObject(v.cfg.root, cases[i].key);
        ImportShape s = {.batch = 1, .height = 8, .width = 8};
        Graph *g = cases[i].encoder ? build_vae_encoder(&v.cfg, &v.ws, &s, &v.err)
                                    : build_vae_decoder(&v.cfg, &v.ws, &s, &v.err);
        CHECK_MSG(g != NULL, "%s", v.err.msg);
        if (g) {
            CHECK_MSG(ir_verify(g, &v.err) == 0, "%s", v.err.msg);
            CHECK_MSG(graph_find(g, cases[i].gone) < 0, "%s still there", cases[i].gone);
            CHECK(ws_check(&v.ws, &v.err) < 0 && strstr(v.err.msg, "unexpected") &&
                      strstr(v.err.msg, cases[i].unused));
        }
        graph_free(g);
        vae_close(&v);
    }
}

static void test_bad_shape_request(void)
{
    Vae v;
    CHECK_MSG(vae_open(&v, weights_path) == 0, "%s", v.err.msg);
    ImportShape s = {.batch = 1, .height = 63, .width = 64};
    Graph *g = build_vae_encoder(&v.cfg, &v.ws, &s, &v.err);
    CHECK(g == NULL && strstr(v.err.msg, "vae-encoder: image size 63x64"));
    graph_free(g);
    vae_close(&v);
}

int main(void)
{
    const char *fx = test_need_fixtures();
    snprintf(vae_dir, sizeof vae_dir, "%s/tiny-sd/vae", fx);
    snprintf(weights_path, sizeof weights_path, "%s/diffusion_pytorch_model.safetensors", vae_dir);
    snprintf(golden_path, sizeof golden_path, "%s/tiny-sd-golden/vae.safetensors", fx);
    RUN(test_decode);
    RUN(test_decode_non_square);
    RUN(test_encode);
    RUN(test_missing_tensor);
    RUN(test_wrong_shape);
    RUN(test_old_attention_names);
    RUN(test_config_errors);
    RUN(test_optional_modules);
    RUN(test_bad_shape_request);
    return test_finish();
}
