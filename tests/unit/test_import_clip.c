/* test_import_clip.c — the CLIP text-encoder graph of tiny-sd against
 * transformers' own outputs (tiny-sd-golden/text_encoder.safetensors), run by
 * the reference interpreter: the last hidden state, clip_skip (checked
 * against the penultimate hidden state put through final_layer_norm here),
 * shorter texts; plus weight-file and config errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "import.h"
#include "interp.h"
#include "tensor_io.h"
#include "test.h"

static char te_dir[512], golden_path[600], weights_path[600];

typedef struct Clip {
    Cfg cfg;
    WeightSet ws;
    SdcErr err;
} Clip;

static int clip_open(Clip *c, const char *weights)
{
    memset(c, 0, sizeof *c);
    char cfg_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", te_dir);
    const char *shown = "text_encoder/model.safetensors";
    if (cfg_load(&c->cfg, cfg_path, "text_encoder/config.json", &c->err) < 0) return -1;
    return ws_open(&c->ws, "text_encoder", 1, &weights, &shown, &c->err);
}

static void clip_close(Clip *c)
{
    cfg_free(&c->cfg);
    ws_close(&c->ws);
}

/* Tensor `name` of the file at `path`, as dtype `as`. */
static Tensor *read_tensor(const char *path, const char *name, DType as)
{
    SdcErr err = {{0}};
    StFile f;
    if (st_open(&f, path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    const StTensor *t = st_find(&f, name);
    Tensor *x = t ? tensor_io_read(&f, t, as, &err) : NULL;
    if (!x) fprintf(stderr, "%s %s: %s\n", path, name, t ? err.msg : "absent");
    st_close(&f);
    return x;
}

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

/* Builds the encoder for `ids` with `clip_skip`, checks the graph and runs
 * it; returns the output (NULL on failure, already reported). */
static Tensor *encode(Tensor *ids, int clip_skip, int round_trip)
{
    Clip c;
    Tensor *out = NULL;
    CHECK_MSG(clip_open(&c, weights_path) == 0, "%s", c.err.msg);
    ImportShape s = {.batch = (int)ids->shape[0], .seq_len = (int)ids->shape[1], .clip_skip = clip_skip};
    Graph *g = build_text_encoder(&c.cfg, &c.ws, &s, &c.err);
    CHECK_MSG(g != NULL, "%s", c.err.msg);
    if (g) {
        CHECK_MSG(ws_check(&c.ws, &c.err) == 0, "%s", c.err.msg);
        CHECK_MSG(ir_verify(g, &c.err) == 0, "%s", c.err.msg);
        CHECK(g->nout == 1 && strcmp(g->nodes[g->outputs[0]].name, "out") == 0);
        const Node *o = &g->nodes[g->outputs[0]];
        CHECK(o->ndim == 3 && o->shape[0] == ids->shape[0] && o->shape[1] == ids->shape[1] && o->shape[2] == 32);
        int in = graph_find(g, "input_ids");
        CHECK(in >= 0 && g->nodes[in].dtype == DT_I64);
        /* clip_skip drops the layers after the one it takes */
        int last = graph_find(g, "text_model.encoder.layers.4.out");
        CHECK(clip_skip ? last < 0 : last >= 0);
        if (round_trip) check_round_trip(g);
        CHECK_MSG(interp_run(g, &ids, &out, 0, &c.err) == 0, "%s", c.err.msg);
    }
    graph_free(g);
    clip_close(&c);
    return out;
}

static void test_last_hidden_state(void)
{
    Tensor *ids = read_tensor(golden_path, "te_input_ids", DT_I64);
    Tensor *want = read_tensor(golden_path, "te_last_hidden_state", DT_F32);
    CHECK(ids && want);
    Tensor *got = ids && want ? encode(ids, 0, 1) : NULL;
    if (got) CHECK_REL(got->f, want->f, (size_t)tensor_numel(want), 1e-4);
    tensor_free(ids), tensor_free(want), tensor_free(got);
}

/* clip_skip 1 = hidden_states[-2] through final_layer_norm, computed here
 * from the fixture's final_layer_norm parameters. */
static void test_clip_skip(void)
{
    Tensor *ids = read_tensor(golden_path, "te_input_ids", DT_I64);
    Tensor *pen = read_tensor(golden_path, "te_penultimate_hidden_state", DT_F32);
    Tensor *gamma = read_tensor(weights_path, "text_model.final_layer_norm.weight", DT_F32);
    Tensor *beta = read_tensor(weights_path, "text_model.final_layer_norm.bias", DT_F32);
    CHECK(ids && pen && gamma && beta);
    if (!ids || !pen || !gamma || !beta) goto done;
    int64_t rows = pen->shape[0] * pen->shape[1], d = pen->shape[2];
    float *want = xmalloc(sizeof(float) * (size_t)(rows * d));
    for (int64_t r = 0; r < rows; r++) {
        const float *x = pen->f + r * d;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < d; i++) mean += x[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= (double)d;
        for (int64_t i = 0; i < d; i++)
            want[r * d + i] = (float)((x[i] - mean) / sqrt(var + 1e-5) * gamma->f[i] + beta->f[i]);
    }
    Tensor *got = encode(ids, 1, 1);
    if (got) CHECK_REL(got->f, want, (size_t)(rows * d), 1e-4);
    /* and it is not the last hidden state */
    Tensor *last = read_tensor(golden_path, "te_last_hidden_state", DT_F32);
    if (got && last) CHECK(test_rel_err(got->f, last->f, (size_t)(rows * d)) > 1e-2);
    tensor_free(got), tensor_free(last), free(want);
done:
    tensor_free(ids), tensor_free(pen), tensor_free(gamma), tensor_free(beta);
}

/* The mask is causal, so the first n outputs of a 77-token text are the
 * outputs of its first n tokens alone: a shorter graph reads the position
 * table from row 0. */
static void test_short_text(void)
{
    enum { N = 10 };
    Tensor *ids = read_tensor(golden_path, "te_input_ids", DT_I64);
    Tensor *full = read_tensor(golden_path, "te_last_hidden_state", DT_F32);
    CHECK(ids && full);
    if (!ids || !full) goto done;
    int64_t b = ids->shape[0], l = ids->shape[1], d = full->shape[2];
    Tensor *head = tensor_new(DT_I64, 2, (int64_t[]){b, N});
    float *want = xmalloc(sizeof(float) * (size_t)(b * N * d));
    for (int64_t r = 0; r < b; r++) {
        memcpy(head->i + r * N, ids->i + r * l, sizeof(int64_t) * N);
        memcpy(want + r * N * d, full->f + r * l * d, sizeof(float) * (size_t)(N * d));
    }
    Tensor *got = encode(head, 0, 0);
    if (got) CHECK_REL(got->f, want, (size_t)(b * N * d), 1e-4);
    tensor_free(got), tensor_free(head), free(want);
done:
    tensor_free(ids), tensor_free(full);
}

/* A copy of the fixture weights with `drop` left out, `shrink` one element
 * shorter, and `extra` (an I64 [1,77] arange, like transformers' position_ids
 * buffer) added.  Returns the path (static). */
static const char *write_variant(const char *drop, const char *shrink, const char *extra)
{
    static char path[600];
    SdcErr err = {{0}};
    StFile f;
    if (st_open(&f, weights_path, &err) < 0) return NULL;
    StEntry *e = xcalloc((size_t)f.n + 1, sizeof *e);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        e[n] = (StEntry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = st_data(&f, t)};
        memcpy(e[n].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (shrink && strcmp(t->name, shrink) == 0) e[n].shape[0]--;
        n++;
    }
    int64_t arange[77];
    for (int i = 0; i < 77; i++) arange[i] = i;
    if (extra) e[n++] = (StEntry){.name = extra, .dtype = DT_I64, .ndim = 2, .shape = {1, 77}, .data = arange};
    snprintf(path, sizeof path, "%s/model.safetensors", test_tmpdir());
    int rc = st_write(path, n, e, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    free(e);
    st_close(&f);
    return rc < 0 ? NULL : path;
}

/* Builds the encoder over `weights` (then removes the file and its temp dir);
 * returns ws_check's message (static), "" when the weights fit. */
static const char *check_message(const char *weights, int clip_skip)
{
    static char msg[1024];
    Clip c;
    msg[0] = 0;
    if (!weights) return "no file";
    if (clip_open(&c, weights) == 0) {
        ImportShape s = {.batch = 1, .seq_len = 77, .clip_skip = clip_skip};
        Graph *g = build_text_encoder(&c.cfg, &c.ws, &s, &c.err);
        if (!g) snprintf(msg, sizeof msg, "build failed: %.900s", c.err.msg);
        else if (ws_check(&c.ws, &c.err) < 0) snprintf(msg, sizeof msg, "%s", c.err.msg);
        graph_free(g);
    } else {
        snprintf(msg, sizeof msg, "open failed: %.900s", c.err.msg);
    }
    clip_close(&c);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", weights);
    remove(weights);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0, remove(dir);
    return msg;
}

static void test_weight_errors(void)
{
    const char *m = check_message(write_variant("text_model.encoder.layers.2.mlp.fc1.bias", NULL, NULL), 0);
    CHECK_MSG(strstr(m, "text_encoder/model.safetensors") && strstr(m, "1 missing (text_model.encoder.layers.2.mlp.fc1.bias)"),
              "%s", m);
    /* the layers clip_skip leaves out still have to fit the config */
    m = check_message(write_variant("text_model.encoder.layers.4.mlp.fc1.bias", NULL, NULL), 1);
    CHECK_MSG(strstr(m, "1 missing (text_model.encoder.layers.4.mlp.fc1.bias)"), "%s", m);
    m = check_message(write_variant(NULL, "text_model.embeddings.token_embedding.weight", NULL), 0);
    CHECK_MSG(strstr(m, "1 mismatched (text_model.embeddings.token_embedding.weight: file has [999, 32], config "
                        "needs [1000, 32])"),
              "%s", m);
    m = check_message(write_variant(NULL, NULL, "text_model.embeddings.position_ids"), 0);
    CHECK_MSG(m[0] == 0, "%s", m);
    m = check_message(write_variant(NULL, NULL, "text_model.extra_ids"), 0);
    CHECK_MSG(strstr(m, "1 unexpected (text_model.extra_ids)"), "%s", m);
}

/* The fixture config with `key` set to the JSON `value`; the builder's error
 * message (static), "" if it built. */
static const char *config_error(const char *key, const char *value, int seq_len, int clip_skip, int *gelu_nodes)
{
    static char msg[1024];
    Clip c;
    msg[0] = 0;
    if (clip_open(&c, weights_path) < 0) return "open failed";
    if (key) {
        cJSON_DeleteItemFromObjectCaseSensitive(c.cfg.root, key);
        cJSON_AddItemToObject(c.cfg.root, key, cJSON_Parse(value));
    }
    ImportShape s = {.batch = 2, .seq_len = seq_len, .clip_skip = clip_skip};
    Graph *g = build_text_encoder(&c.cfg, &c.ws, &s, &c.err);
    if (!g) snprintf(msg, sizeof msg, "%s", c.err.msg);
    for (int i = 0; g && gelu_nodes && i < g->n; i++) *gelu_nodes += g->nodes[i].op == OP_GELU;
    graph_free(g);
    clip_close(&c);
    return msg;
}

static void test_config_errors(void)
{
    const char *m = config_error("hidden_act", "\"relu\"", 77, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: hidden_act: unsupported value \"relu\""), "%s", m);
    m = config_error("num_attention_heads", "5", 77, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: num_attention_heads: 5 does not divide hidden_size 32"), "%s", m);
    m = config_error("model_type", "\"clip\"", 77, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: model_type: unsupported value \"clip\""), "%s", m);
    m = config_error("architectures", "[\"CLIPTextModelWithProjection\"]", 77, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: architectures[0]: unsupported value"), "%s", m);
    m = config_error("num_hidden_layers", "2.5", 77, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: num_hidden_layers: expected an integer"), "%s", m);
    m = config_error(NULL, NULL, 78, 0, NULL);
    CHECK_MSG(strstr(m, "text_encoder/config.json: max_position_embeddings: text length 78"), "%s", m);
    m = config_error(NULL, NULL, 77, 5, NULL);
    CHECK_MSG(strstr(m, "clip_skip 5: the model has 5 layers"), "%s", m);
    m = config_error(NULL, NULL, 77, 4, NULL);
    CHECK_MSG(m[0] == 0, "%s", m);
    /* SD 2.x's text encoder uses the exact gelu */
    int gelu = 0;
    m = config_error("hidden_act", "\"gelu\"", 77, 0, &gelu);
    CHECK_MSG(m[0] == 0, "%s", m);
    CHECK(gelu == 5);
}

int main(void)
{
    const char *fx = test_need_fixtures();
    snprintf(te_dir, sizeof te_dir, "%s/tiny-sd/text_encoder", fx);
    snprintf(weights_path, sizeof weights_path, "%s/model.safetensors", te_dir);
    snprintf(golden_path, sizeof golden_path, "%s/tiny-sd-golden/text_encoder.safetensors", fx);
    RUN(test_last_hidden_state);
    RUN(test_clip_skip);
    RUN(test_short_text);
    RUN(test_weight_errors);
    RUN(test_config_errors);
    return test_finish();
}
