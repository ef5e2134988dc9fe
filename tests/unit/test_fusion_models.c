/* test_fusion_models.c — the whole tiny-sd model through the default pass
 * pipeline, fusions included, in the reference interpreter.
 *
 * Each component (UNet at batch 2, VAE decoder and encoder, text encoder)
 * is imported, run as built and after the default pipeline (with a scratch
 * folder, so the Q/K/V weights are folded into constants as in sdc
 * compile), on the goldens' inputs: both must match diffusers' outputs,
 * and each other to 1e-5.  The fused graph is also checked for what the
 * passes promise: no GroupNorm (or GroupNorm + SiLU) output stored before a
 * conv, no LayerNorm before a linear, no GEGLU left unfused, no add left
 * after a conv or linear that only the add reads, and no concatenation of
 * weights left to run per call (the Q/K/V weights are folded). */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "interp.h"
#include "pass.h"
#include "safetensors.h"
#include "tensor_io.h"
#include "test.h"

static char fx[512];

static Tensor *golden(StFile *f, const char *name)
{
    SdcErr err = {{0}};
    const StTensor *t = st_find(f, name);
    CHECK_MSG(t != NULL, "golden tensor %s missing", name);
    if (!t) return NULL;
    Tensor *x = tensor_io_read(f, t, t->dtype == DT_I64 ? DT_I64 : DT_F32, &err);
    CHECK_MSG(x != NULL, "%s", err.msg);
    return x;
}

static int count_op(const Graph *g, OpKind op)
{
    int n = 0;
    for (int i = 0; i < g->n; i++) n += g->nodes[i].op == op;
    return n;
}

/* What the fusion passes leave in a graph of this model. */
static void check_fused_structure(const Graph *g, const char *what)
{
    int *uses = graph_use_counts(g);
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            const Node *u = &g->nodes[n->in[k]];
            const Node *uu = u->nin ? &g->nodes[u->in[0]] : NULL;
            int conv = n->op == OP_CONV2D || n->op == OP_FUSED_CONV2D;
            int linear = n->op == OP_LINEAR || n->op == OP_FUSED_LINEAR;
            CHECK_MSG(!(conv && u->op == OP_GROUP_NORM), "%s: %%%s reads a stored group_norm", what, n->name);
            CHECK_MSG(!(conv && u->op == OP_SILU && uu->op == OP_GROUP_NORM), "%s: %%%s reads a stored norm+silu", what,
                      n->name);
            CHECK_MSG(!(linear && u->op == OP_LAYER_NORM), "%s: %%%s reads a stored layer_norm", what, n->name);
            CHECK_MSG(!(n->op == OP_ADD && uses[n->in[k]] == 1 && (u->op == OP_CONV2D || u->op == OP_LINEAR ||
                                            u->op == OP_FUSED_CONV2D || u->op == OP_FUSED_LINEAR)),
                      "%s: %%%s adds to a conv/linear output outside its epilogue", what, n->name);
            CHECK_MSG(!(n->op == OP_MUL && u->op == OP_GELU), "%s: %%%s: GEGLU left unfused", what, n->name);
        }
        if (n->op == OP_CONCAT) {
            int all_const = 1;
            for (int k = 0; k < n->nin; k++) all_const &= g->nodes[n->in[k]].op == OP_CONST;
            CHECK_MSG(!all_const, "%s: %%%s concatenates weights on every call", what, n->name);
        }
    }
    free(uses);
}

/* Runs the component as built and after the default pipeline. */
static void run_component(Component comp, const ImportShape *shape, const char *golden_file, const char *const *in_names,
                          int nin, const float *timestep, const char *const *want_names, int nout, const char *what)
{
    SdcErr err = {{0}};
    char path[700];
    snprintf(path, sizeof path, "%s/tiny-sd", fx);
    Model m = {0};
    CHECK_MSG(model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
    Graph *g = model_import(&m, comp, shape, &err);
    CHECK_MSG(g != NULL, "%s: %s", what, err.msg);
    snprintf(path, sizeof path, "%s/tiny-sd-golden/%s", fx, golden_file);
    StFile gf = {0};
    CHECK_MSG(st_open(&gf, path, &err) == 0, "%s", err.msg);
    if (!g || !gf.base) goto done;

    Graph *h = graph_clone(g);
    PassOptions po = {.verify = 1, .scratch_dir = test_tmpdir()};
    CHECK_MSG(pass_run_pipeline(h, &po, &err) == 0, "%s: %s", what, err.msg);
    check_fused_structure(h, what);
    fprintf(stderr, "  %s: %d nodes -> %d (fused_conv2d %d, fused_linear %d, attention_qkv %d)\n", what, g->n, h->n,
            count_op(h, OP_FUSED_CONV2D), count_op(h, OP_FUSED_LINEAR), count_op(h, OP_ATTENTION_QKV));

    Tensor *in[4] = {0}, *plain[2] = {0}, *fused[2] = {0};
    for (int k = 0; k < nin; k++) {
        if (in_names[k]) in[k] = golden(&gf, in_names[k]);
        else { /* the timestep: one value for every batch row */
            int64_t b = shape->batch;
            in[k] = tensor_new(DT_F32, 1, &b);
            for (int64_t i = 0; i < b; i++) in[k]->f[i] = *timestep;
        }
    }
    int ok = interp_run(g, in, plain, 0, &err) == 0;
    CHECK_MSG(ok, "%s as built: %s", what, err.msg);
    ok = ok && interp_run(h, in, fused, 0, &err) == 0;
    CHECK_MSG(ok, "%s fused: %s", what, err.msg);
    for (int o = 0; o < nout && ok; o++) {
        Tensor *want = golden(&gf, want_names[o]);
        if (!want) continue;
        size_t n = (size_t)tensor_numel(want);
        double rel_plain = test_rel_err(plain[o]->f, want->f, n), rel_fused = test_rel_err(fused[o]->f, want->f, n);
        double rel = test_rel_err(fused[o]->f, plain[o]->f, n);
        fprintf(stderr, "  %s %s: vs diffusers %.3g (as built %.3g), fused vs unfused %.3g\n", what, want_names[o],
                rel_fused, rel_plain, rel);
        CHECK_REL(fused[o]->f, want->f, n, 1e-4);
        CHECK_REL(fused[o]->f, plain[o]->f, n, 1e-5);
        tensor_free(want);
    }
    for (int k = 0; k < 4; k++) tensor_free(in[k]);
    for (int o = 0; o < 2; o++) tensor_free(plain[o]), tensor_free(fused[o]);
    graph_free(h);
done:
    graph_free(g);
    st_close(&gf);
    model_close(&m);
}

static void test_unet(void)
{
    ImportShape s = {.batch = 2, .height = 32, .width = 32, .seq_len = 77};
    const char *in[3] = {"unet_b2_sample", NULL, "unet_b2_ehs"}, *out[1] = {"unet_b2_t500_out"};
    float t = 500;
    run_component(COMP_UNET, &s, "unet.safetensors", in, 3, &t, out, 1, "unet");
}

static void test_vae_decoder(void)
{
    ImportShape s = {.batch = 1, .height = 32, .width = 32};
    const char *in[1] = {"vae_latents"}, *out[1] = {"vae_decode_raw"};
    run_component(COMP_VAE_DECODER, &s, "vae.safetensors", in, 1, NULL, out, 1, "vae decoder");
}

static void test_vae_encoder(void)
{
    ImportShape s = {.batch = 1, .height = 64, .width = 64};
    const char *in[1] = {"vae_image"}, *out[2] = {"vae_encode_mean", "vae_encode_logvar"};
    run_component(COMP_VAE_ENCODER, &s, "vae.safetensors", in, 1, NULL, out, 2, "vae encoder");
}

static void test_text_encoder(void)
{
    ImportShape s = {.batch = 3, .seq_len = 77};
    const char *in[1] = {"te_input_ids"}, *out[1] = {"te_last_hidden_state"};
    run_component(COMP_TEXT_ENCODER, &s, "text_encoder.safetensors", in, 1, NULL, out, 1, "text encoder");
}

int main(void)
{
    snprintf(fx, sizeof fx, "%s", test_need_fixtures());
    RUN(test_unet);
    RUN(test_vae_decoder);
    RUN(test_vae_encoder);
    RUN(test_text_encoder);
    return test_finish();
}
