/* test_backend_c.c — the C backend against the interpreter, op by op.
 *
 * Every .ir file in tests/backend (one group of ops each, on ragged sizes)
 * and in examples is compiled with `sdc compile-graph` (no passes, so every
 * op reaches the backend as written), run on fresh random inputs, and
 * compared with the reference interpreter: relative error below 1e-5 on
 * every output.  Integer inputs (token ids) get values in [0, 4).  The
 * graphs with GEMM weights and attention again with --weights-dtype bf16
 * (weights stored bf16; where the CPU has a bf16 dot product, activations
 * rounded to bf16 too): an error of bf16's size, and no more. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "interp.h"
#include "safetensors.h"
#include "tensor_io.h"
#include "test.h"

static const char *tmp;

static void check_file_tol(const char *path, const char *passes, const char *extra, double tol)
{
    SdcErr err = {{0}};
    Graph *g = ir_parse_file(path, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    Tensor *in[16] = {0};
    const char *names[16];
    int nin = 0;
    for (int i = 0; i < g->n && nin < 16; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT) continue;
        in[nin] = tensor_like_node(n);
        int64_t numel = tensor_numel(in[nin]);
        if (in[nin]->f) test_fill_randn(in[nin]->f, (size_t)numel, 1.0f);
        else
            for (int64_t k = 0; k < numel; k++) in[nin]->i[k] = (int64_t)test_uniform(0, 3.999f);
        names[nin++] = n->name;
    }
    char in_path[600], out_path[600], exe[600], cmd[4096];
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", tmp);
    snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmp);
    snprintf(exe, sizeof exe, "%s/graph", tmp);
    CHECK(tensor_io_save(in_path, nin, names, in, &err) == 0);
    char pass_flag[256] = "";
    if (passes) snprintf(pass_flag, sizeof pass_flag, "--passes=%s", passes);
    snprintf(cmd, sizeof cmd, "%s/sdc compile-graph %s -o %s %s %s && %s --inputs %s --out %s", SDC_BINARY_DIR, path,
             exe, pass_flag, extra, exe, in_path, out_path);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s", cmd);
    Tensor *ref[8] = {0};
    CHECK_MSG(interp_run(g, in, ref, 0, &err) == 0, "%s", err.msg);
    StFile f = {0};
    if (rc == 0 && st_open(&f, out_path, &err) == 0) {
        for (int o = 0; o < g->nout; o++) {
            const Node *n = &g->nodes[g->outputs[o]];
            const StTensor *t = st_find(&f, n->name);
            CHECK_MSG(t && st_numel(t) == node_numel(n), "%s: output %s", path, n->name);
            if (!t || !ref[o]) continue;
            float *got = xmalloc(sizeof(float) * (size_t)st_numel(t));
            st_read_f32(&f, t, got, &err);
            double rel = test_rel_err(got, ref[o]->f, (size_t)node_numel(n));
            CHECK_MSG(rel < tol, "%s %s: output %%%s: relative error %.3g", path, extra, n->name, rel);
            if (tol > 1e-5) fprintf(stderr, "  %s %s: %%%s relative error %.2e\n", path, extra, n->name, rel);
            free(got);
        }
        st_close(&f);
    }
    fprintf(stderr, "  %s\n", path);
    for (int o = 0; o < 8; o++) tensor_free(ref[o]);
    for (int i = 0; i < nin; i++) tensor_free(in[i]);
    graph_free(g);
}

static void check_file(const char *path, const char *passes) { check_file_tol(path, passes, "", 1e-5); }

static void check_dir(const char *dir, const char *passes)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".ir") != 0) continue;
        char *p = path_join(dir, e->d_name);
        check_file(p, passes);
        free(p);
    }
    closedir(d);
}

static void test_every_op(void) { check_dir(SDC_SOURCE_DIR "/tests/backend", ""); }

/* The examples through the default pipeline (fusions included). */
static void test_examples_with_passes(void) { check_dir(SDC_SOURCE_DIR "/examples", NULL); }

static void test_bf16_weights(void)
{
    static const char *const files[] = {"ops_packed_conv.ir", "ops_packed_linear.ir", "ops_fused.ir",
                                        "ops_fused_linear.ir", "ops_sd.ir"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char *p = path_join(SDC_SOURCE_DIR "/tests/backend", files[k]);
        check_file_tol(p, "", "--weights-dtype bf16", 2e-2);
        free(p);
    }
}

int main(void)
{
    tmp = test_tmpdir();
    RUN(test_every_op);
    RUN(test_examples_with_passes);
    RUN(test_bf16_weights);
    return test_finish();
}
