/* test_import_unet.c — the imported UNet against diffusers' outputs.
 *
 * The tiny pipeline's UNet (fixtures) is built from its config and weights,
 * run in the reference interpreter, and compared with the goldens: batch 2
 * at timesteps 1, 500, 999 and a per-row vector [1, 999]; batch 1 on a
 * non-square 16x24 latent (upsample_size path) at 1, 500, 999 and a
 * fractional 250.5. */
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "interp.h"
#include "safetensors.h"
#include "tensor_io.h"
#include "test.h"

static char fx[512];
static StFile golden;

static Tensor *golden_tensor(const char *name)
{
    SdcErr err = {{0}};
    const StTensor *t = st_find(&golden, name);
    if (!t) {
        fprintf(stderr, "golden tensor %s missing\n", name);
        test_failures++;
        return NULL;
    }
    Tensor *x = tensor_io_read(&golden, t, DT_F32, &err);
    CHECK_MSG(x != NULL, "%s", err.msg);
    return x;
}

static Graph *build(int batch, int h, int w, WeightSet *ws, SdcErr *err)
{
    char cfg_path[600], w_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/tiny-sd/unet/config.json", fx);
    snprintf(w_path, sizeof w_path, "%s/tiny-sd/unet/diffusion_pytorch_model.safetensors", fx);
    Cfg cfg;
    if (cfg_load(&cfg, cfg_path, "unet/config.json", err) < 0) return NULL;
    const char *paths[1] = {w_path}, *shown[1] = {"unet/diffusion_pytorch_model.safetensors"};
    if (ws_open(ws, "unet", 1, paths, shown, err) < 0) {
        cfg_free(&cfg);
        return NULL;
    }
    ImportShape s = {.batch = batch, .height = h, .width = w, .seq_len = 77};
    Graph *g = build_unet(&cfg, ws, &s, err);
    cfg_free(&cfg);
    if (g && ws_check(ws, err) < 0) graph_free(g), g = NULL;
    if (g && ir_verify(g, err) < 0) graph_free(g), g = NULL;
    return g;
}

static void run_case(Graph *g, const char *prefix, const float *tvals, int batch, const char *out_name)
{
    char name[128];
    snprintf(name, sizeof name, "%s_sample", prefix);
    Tensor *sample = golden_tensor(name);
    snprintf(name, sizeof name, "%s_ehs", prefix);
    Tensor *ehs = golden_tensor(name);
    Tensor *t = tensor_new(DT_F32, 1, (int64_t[]){batch});
    for (int i = 0; i < batch; i++) t->f[i] = tvals[i];
    Tensor *want = golden_tensor(out_name);
    Tensor *in[3] = {sample, t, ehs}, *out[1] = {0};
    SdcErr err = {{0}};
    if (sample && ehs && want) {
        CHECK_MSG(interp_run(g, in, out, 0, &err) == 0, "%s", err.msg);
        if (out[0]) {
            double rel = test_rel_err(out[0]->f, want->f, (size_t)tensor_numel(want));
            fprintf(stderr, "  %-28s rel err %.3g\n", out_name, rel);
            CHECK_REL(out[0]->f, want->f, (size_t)tensor_numel(want), 1e-4);
        }
    }
    tensor_free(out[0]), tensor_free(sample), tensor_free(ehs), tensor_free(t), tensor_free(want);
}

static void test_unet_batch2(void)
{
    WeightSet ws;
    SdcErr err = {{0}};
    Graph *g = build(2, 32, 32, &ws, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    run_case(g, "unet_b2", (float[]){1, 1}, 2, "unet_b2_t1_out");
    run_case(g, "unet_b2", (float[]){500, 500}, 2, "unet_b2_t500_out");
    run_case(g, "unet_b2", (float[]){999, 999}, 2, "unet_b2_t999_out");
    run_case(g, "unet_b2", (float[]){1, 999}, 2, "unet_b2_tvec_1_999_out");
    graph_free(g);
    ws_close(&ws);
}

static void test_unet_non_square(void)
{
    WeightSet ws;
    SdcErr err = {{0}};
    Graph *g = build(1, 16, 24, &ws, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    run_case(g, "unet_b1ns", (float[]){1}, 1, "unet_b1ns_t1_out");
    run_case(g, "unet_b1ns", (float[]){500}, 1, "unet_b1ns_t500_out");
    run_case(g, "unet_b1ns", (float[]){999}, 1, "unet_b1ns_t999_out");
    run_case(g, "unet_b1ns", (float[]){250.5f}, 1, "unet_b1ns_t250p5_out");
    graph_free(g);
    ws_close(&ws);
}

int main(void)
{
    snprintf(fx, sizeof fx, "%s", test_need_fixtures());
    char path[600];
    SdcErr err = {{0}};
    snprintf(path, sizeof path, "%s/tiny-sd-golden/unet.safetensors", fx);
    if (st_open(&golden, path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    RUN(test_unet_batch2);
    RUN(test_unet_non_square);
    st_close(&golden);
    return test_finish();
}
