/* test_example.c — examples/conv_gn_attn.ir end to end.
 *
 * The example (conv 3x3 -> group_norm -> silu -> conv 1x1 -> attention)
 * parses, verifies, round-trips, and `sdc interp` runs it on a safetensors
 * input; its output is compared with the same chain computed here by
 * straightforward loops that share no code with the interpreter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "safetensors.h"
#include "test.h"

static const float *dense(const Graph *g, const char *name, float *buf)
{
    const Node *n = &g->nodes[graph_find(g, name)];
    for (int64_t i = 0; i < node_numel(n); i++) buf[i] = (float)n->cdense[n->ndense == 1 ? 0 : i];
    return buf;
}

/* y[c,p] for one image: conv with zero padding `pad`, kernel k. */
static void conv(const float *x, int cin, int hw, const float *w, const float *b, int cout, int k, int pad, float *y)
{
    for (int o = 0; o < cout; o++)
        for (int r = 0; r < hw; r++)
            for (int c = 0; c < hw; c++) {
                double s = b[o];
                for (int i = 0; i < cin; i++)
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) {
                            int rr = r + dy - pad, cc = c + dx - pad;
                            if (rr >= 0 && rr < hw && cc >= 0 && cc < hw)
                                s += (double)x[(i * hw + rr) * hw + cc] * w[((o * cin + i) * k + dy) * k + dx];
                        }
                y[(o * hw + r) * hw + c] = (float)s;
            }
}

static void independent_chain(const Graph *g, const float *x, float *out)
{
    float w1[288], b1[8], gw[8], gb[8], w2[64], b2[8], h[512], h2[512];
    dense(g, "conv1.weight", w1), dense(g, "conv1.bias", b1), dense(g, "norm.weight", gw);
    dense(g, "norm.bias", gb), dense(g, "conv2.weight", w2), dense(g, "conv2.bias", b2);
    conv(x, 4, 8, w1, b1, 8, 3, 1, h);
    for (int grp = 0; grp < 4; grp++) { /* 2 channels x 64 positions per group */
        float *v = h + grp * 128;
        double mean = 0, var = 0;
        for (int i = 0; i < 128; i++) mean += v[i] / 128.0;
        for (int i = 0; i < 128; i++) var += (v[i] - mean) * (v[i] - mean) / 128.0;
        for (int i = 0; i < 128; i++) {
            int ch = grp * 2 + i / 64;
            double z = (v[i] - mean) / sqrt(var + 1e-5) * gw[ch] + gb[ch];
            v[i] = (float)(z / (1 + exp(-z)));
        }
    }
    conv(h, 8, 8, w2, b2, 8, 1, 0, h2);
    /* tokens t[p][c] = h2[c][p]; two heads of 4 channels, scale 0.5 */
    for (int head = 0; head < 2; head++)
        for (int i = 0; i < 64; i++) {
            double s[64], mx = -1e300, sum = 0;
            for (int j = 0; j < 64; j++) {
                double d = 0;
                for (int c = 0; c < 4; c++) d += (double)h2[(head * 4 + c) * 64 + i] * h2[(head * 4 + c) * 64 + j];
                s[j] = 0.5 * d;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < 64; j++) sum += s[j] = exp(s[j] - mx);
            for (int c = 0; c < 4; c++) {
                double acc = 0;
                for (int j = 0; j < 64; j++) acc += s[j] * h2[(head * 4 + c) * 64 + j];
                out[i * 8 + head * 4 + c] = (float)(acc / sum);
            }
        }
}

static void test_example_chain(void)
{
    const char *path = SDC_SOURCE_DIR "/examples/conv_gn_attn.ir";
    SdcErr err = {{0}};
    Graph *g = ir_parse_file(path, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    CHECK_MSG(ir_verify(g, &err) == 0, "%s", err.msg);
    char *s1 = ir_print_str(g);
    Graph *g2 = ir_parse(s1, "printed", &err);
    char *s2 = g2 ? ir_print_str(g2) : NULL;
    CHECK(s2 && strcmp(s1, s2) == 0);
    free(s1), free(s2), graph_free(g2);

    /* random input through a safetensors file and the sdc CLI */
    float x[256], want[512];
    test_fill_randn(x, 256, 1.0f);
    const char *dir = test_tmpdir();
    char in_path[512], out_path[512], cmd[2048];
    snprintf(in_path, sizeof in_path, "%s/x.safetensors", dir);
    snprintf(out_path, sizeof out_path, "%s/y.safetensors", dir);
    StEntry e = {.name = "x", .dtype = DT_F32, .ndim = 4, .shape = {1, 4, 8, 8}, .data = x};
    CHECK(st_write(in_path, 1, &e, &err) == 0);
    snprintf(cmd, sizeof cmd, "%s/sdc interp %s --inputs %s --out %s", SDC_BINARY_DIR, path, in_path, out_path);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    StFile f;
    CHECK_MSG(st_open(&f, out_path, &err) == 0, "%s", err.msg);
    const StTensor *t = st_find(&f, "y");
    CHECK(t && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 64 && t->shape[2] == 8);
    float got[512];
    if (t && st_read_f32(&f, t, got, &err) == 0) {
        independent_chain(g, x, want);
        CHECK_REL(got, want, 512, 1e-5);
    }
    st_close(&f);
    graph_free(g);
}

int main(void)
{
    RUN(test_example_chain);
    return test_finish();
}
