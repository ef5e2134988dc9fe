/* test_merge.c — `sdc merge` for models, against the formulas.
 *
 * Three random tiny models A, B, C (different seeds) are merged through the
 * CLI and every tensor of every component of the result is compared with
 *   weighted sum     (1 - a) A + a B
 *   add-difference   A + a (B - C)
 * computed here in double.  Merge Block Weighted gets 25 distinct weights and
 * a distinct base weight; each block group is checked on its own tensors,
 * with the expected block worked out here from the diffusers names (a
 * formula of its own, not ldm.c's tables): IN00 = time_embedding + conv_in,
 * INxx = down block resnets/attentions/downsamplers, M00 = mid_block,
 * OUTxx = up blocks, OUT11 = conv_norm_out + conv_out, base = VAE and text
 * encoder.  The same again on a 4-level UNet in SD 1.5's layout (random
 * weights, small channels), where every one of the 25 blocks, IN06-IN11 and
 * OUT06-OUT10 included, must get its own tensors.  Also: the output's
 * dtype, mixed-dtype inputs, a single-file output that sdc imports back
 * with the same tensors. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "merge.h"
#include "random_model.h"
#include "safetensors.h"
#include "test.h"

static char tmp[512], A[600], B[600], C[600], B16[600], A4[600], B4[600];
static const char *ma = A, *mb = B; /* the A and B that check_model compares with */

/* Runs `sdc ARGS` (printf-style) with stderr to tmp/stderr; the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[3000], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, SDC_BINARY_DIR "/sdc %s > /dev/null 2> %s/stderr", args, tmp);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *last_stderr(void)
{
    static char buf[4096];
    char path[600];
    snprintf(path, sizeof path, "%s/stderr", tmp);
    char *t = file_read_all(path, NULL, NULL);
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    free(t);
    return buf;
}

static int open_comp(StFile *f, const char *model, RmComponent c)
{
    char path[800];
    SdcErr err = {{0}};
    snprintf(path, sizeof path, "%s/%s/%s", model, rm_component_dir(c), rm_component_file(c));
    int rc = st_open(f, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

static float *read_t(const StFile *f, const char *name, int64_t *n)
{
    const StTensor *t = st_find(f, name);
    if (!t) return NULL;
    *n = st_numel(t);
    float *v = xmalloc(sizeof(float) * (size_t)*n);
    SdcErr err;
    if (st_read_f32(f, t, v, &err) < 0) return free(v), NULL;
    return v;
}

/* The expected weight of a tensor: a function of (component, name). */
typedef double (*WeightFn)(RmComponent c, const char *name);

/* Every tensor of every component of M against the formula (nin 2: weighted
 * sum, 3: add-difference).  `only` restricts to names for which it returns
 * 1 (NULL: all); returns how many tensors were checked. */
static int check_model(const char *M, int nin, WeightFn wfn, int (*only)(RmComponent, const char *))
{
    int checked = 0;
    for (int c = 0; c < RM_NCOMP; c++) {
        StFile fa, fb, fc = {0}, fm;
        if (open_comp(&fa, ma, c) || open_comp(&fb, mb, c) || (nin == 3 && open_comp(&fc, C, c)) || open_comp(&fm, M, c))
            return checked;
        CHECK_MSG(fm.n == fa.n, "%s: %d tensors, A has %d", rm_component_dir(c), fm.n, fa.n);
        for (int k = 0; k < fa.n; k++) {
            const char *name = fa.tensors[k].name;
            if (only && !only(c, name)) continue;
            int64_t n = 0, nb = 0, nc = 0, nm = 0;
            float *a = read_t(&fa, name, &n), *b = read_t(&fb, name, &nb), *x = nin == 3 ? read_t(&fc, name, &nc) : NULL,
                  *m = read_t(&fm, name, &nm);
            CHECK_MSG(m && nm == n, "%s missing in the merge", name);
            double w = wfn(c, name), worst = 0;
            for (int64_t i = 0; m && i < n; i++) {
                double want = nin == 3 ? a[i] + w * ((double)b[i] - x[i]) : (1 - w) * a[i] + w * (double)b[i];
                double d = fabs(m[i] - want) / (fabs(want) + 1e-6);
                if (d > worst) worst = d;
            }
            CHECK_MSG(worst < 1e-6, "%s/%s: relative error %g for weight %g", rm_component_dir(c), name, worst, w);
            checked++;
            free(a), free(b), free(x), free(m);
        }
        st_close(&fa), st_close(&fb), st_close(&fc), st_close(&fm);
    }
    return checked;
}

static double alpha_03(RmComponent c, const char *n) { return (void)c, (void)n, 0.3; }
static double alpha_07(RmComponent c, const char *n) { return (void)c, (void)n, 0.7; }

static void test_weighted_sum(void)
{
    char out[700];
    snprintf(out, sizeof out, "%s/ws", tmp);
    CHECK_MSG(run("merge %s --with %s --alpha 0.3 -o %s --quiet", A, B, out) == 0, "%s", last_stderr());
    CHECK(check_model(out, 2, alpha_03, NULL) == 512); /* tiny: 304 UNet + 124 VAE + 84 text encoder tensors */
    /* configs, tokenizer and scheduler come from A */
    const char *files[] = {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                           "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p1[800], p2[800];
        snprintf(p1, sizeof p1, "%s/%s", A, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", out, files[i]);
        size_t n1, n2;
        char *x = file_read_all(p1, &n1, NULL), *y = file_read_all(p2, &n2, NULL);
        CHECK_MSG(x && y && n1 == n2 && memcmp(x, y, n1) == 0, "%s not copied from A", files[i]);
        free(x), free(y);
    }
}

static void test_add_difference(void)
{
    char out[700];
    snprintf(out, sizeof out, "%s/ad", tmp);
    CHECK_MSG(run("merge %s --with %s --minus %s --alpha 0.7 --quiet -o %s", A, B, C, out) == 0, "%s", last_stderr());
    CHECK(check_model(out, 3, alpha_07, NULL) == 512);
}

/* ---- Merge Block Weighted ------------------------------------------------------ */

static double mbw_w[MBW_NBLOCKS], mbw_base = 0.9375; /* exact in decimal and binary */
static char mbw_out[700];

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* SD 1.5's numbering, from the diffusers names: down block i's resnet or
 * attention j is IN(1 + 3i + j), its downsampler IN(3 + 3i); up block i's
 * is OUT(3i + j), its upsampler OUT(3i + 2).  The tiny UNet has 2 levels of
 * 2 resnets (IN01-IN05, OUT00-OUT05); the 4-level one all 25 blocks. */
static int expected_block(RmComponent c, const char *n)
{
    int i, j;
    char kind[32];
    if (c != RM_UNET) return -1;
    if (starts(n, "time_embedding.") || starts(n, "conv_in.")) return 0;
    if (starts(n, "conv_norm_out.") || starts(n, "conv_out.")) return 24;
    if (starts(n, "mid_block.")) return 12;
    if (sscanf(n, "down_blocks.%d.%31[a-z].%d", &i, &kind[0], &j) == 3)
        return strcmp(kind, "downsamplers") == 0 ? 1 + 3 * i + 2 : 1 + 3 * i + j;
    if (sscanf(n, "up_blocks.%d.%31[a-z].%d", &i, &kind[0], &j) == 3)
        return strcmp(kind, "upsamplers") == 0 ? 13 + 3 * i + 2 : 13 + 3 * i + j;
    return -2; /* a UNet tensor this formula does not know: fails the test */
}

static double mbw_weight(RmComponent c, const char *n)
{
    int b = expected_block(c, n);
    CHECK_MSG(b != -2, "no expected block for %s", n);
    return b >= 0 ? mbw_w[b] : mbw_base;
}

static int group_lo, group_hi, group_comp_base;
static int in_group(RmComponent c, const char *n)
{
    int b = expected_block(c, n);
    if (group_comp_base) return c != RM_UNET;
    return b >= group_lo && b <= group_hi;
}

static void check_group(int lo, int hi, int base, int min_tensors)
{
    group_lo = lo, group_hi = hi, group_comp_base = base;
    int n = check_model(mbw_out, 2, mbw_weight, in_group);
    CHECK_MSG(n >= min_tensors, "blocks %d..%d: only %d tensors checked", lo, hi, n);
}

static void test_mbw_in00(void) { check_group(0, 0, 0, 6); }          /* time_embedding.linear_1/2, conv_in */
static void test_mbw_input_blocks(void)
{
    /* IN01-IN02 resnets, IN03 the downsampler (conv weight and bias), IN04-IN05 resnets + transformers */
    for (int b = 1; b <= 5; b++) check_group(b, b, 0, b == 3 ? 2 : 10);
}
static void test_mbw_mid(void) { check_group(12, 12, 0, 30); }
static void test_mbw_output_blocks(void)
{
    for (int b = 13; b <= 18; b++) check_group(b, b, 0, 8); /* OUT00-OUT05; OUT02 holds the upsampler */
}
static void test_mbw_out11(void) { check_group(24, 24, 0, 4); } /* conv_norm_out, conv_out */
static void test_mbw_base(void) { check_group(0, 0, 1, 100); }   /* VAE and text encoder */

static void test_mbw_every_unet_tensor_has_a_block(void)
{
    StFile f;
    if (open_comp(&f, A, RM_UNET)) return;
    for (int k = 0; k < f.n; k++) CHECK_MSG(expected_block(RM_UNET, f.tensors[k].name) >= 0, "%s", f.tensors[k].name);
    st_close(&f);
}

/* A 4-level UNet with SD 1.5's block types and 2 resnets per level, small
 * channels: its configs are tiny's with the UNet's levels replaced. */
static int write_4level_config(const char *dir, SdcErr *err)
{
    static const char *const parts[] = {"vae/config.json", "text_encoder/config.json"};
    for (size_t i = 0; i < 2; i++) {
        char src[800], dst[800], sub[800];
        snprintf(src, sizeof src, "%s/%s", A, parts[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, parts[i]);
        snprintf(sub, sizeof sub, "%s/%.*s", dir, (int)(strchr(parts[i], '/') - parts[i]), parts[i]);
        size_t n;
        char *t = file_read_all(src, &n, err);
        if (!t || mkdir_p(sub, err) < 0 || file_write_atomic(dst, t, n, err) < 0) return free(t), -1;
        free(t);
    }
    char src[800], dst[800], sub[800];
    snprintf(src, sizeof src, "%s/unet/config.json", A);
    snprintf(dst, sizeof dst, "%s/unet/config.json", dir);
    snprintf(sub, sizeof sub, "%s/unet", dir);
    char *t = file_read_all(src, NULL, err);
    if (!t) return -1;
    static const char *const edits[][2] = {
        {"\"block_out_channels\": [32, 64]", "\"block_out_channels\": [16, 16, 32, 32]"},
        {"\"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"]",
         "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
         "\"DownBlock2D\"]"},
        {"\"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"]",
         "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]"},
        {"\"norm_num_groups\": 16", "\"norm_num_groups\": 8"},
    };
    size_t cap = strlen(t) + 1024;
    char *out = xmalloc(cap);
    snprintf(out, cap, "%s", t);
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        char *at = strstr(out, edits[e][0]);
        CHECK_MSG(at != NULL, "tiny's unet config has no %s", edits[e][0]);
        if (!at) return free(t), free(out), -1;
        char *rest = xstrdup(at + strlen(edits[e][0]));
        snprintf(at, cap - (size_t)(at - out), "%s%s", edits[e][1], rest);
        free(rest);
    }
    int rc = mkdir_p(sub, err) < 0 || file_write_atomic(dst, out, strlen(out), err) < 0 ? -1 : 0;
    free(t), free(out);
    return rc;
}

static void test_mbw_every_block_of_sd15_layout(void)
{
    char cfg[700], out[700], list[600] = "";
    snprintf(cfg, sizeof cfg, "%s/cfg4", tmp);
    snprintf(out, sizeof out, "%s/mbw4", tmp);
    SdcErr err = {{0}};
    if (write_4level_config(cfg, &err) < 0 || random_model_write(cfg, A4, 1, DT_F32, 1, &err) < 0 ||
        random_model_write(cfg, B4, 2, DT_F32, 1, &err) < 0) {
        CHECK_MSG(0, "4-level model: %s", err.msg);
        return;
    }
    for (int b = 0; b < MBW_NBLOCKS; b++) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%g", b ? "," : "", mbw_w[b]);
    }
    CHECK_MSG(run("merge %s --with %s --mbw %s --base-alpha %g --quiet -o %s", A4, B4, list, mbw_base, out) == 0, "%s",
              last_stderr());
    ma = A4, mb = B4;
    StFile f;
    if (open_comp(&f, A4, RM_UNET) == 0) {
        for (int k = 0; k < f.n; k++) CHECK_MSG(expected_block(RM_UNET, f.tensors[k].name) >= 0, "%s", f.tensors[k].name);
        st_close(&f);
    }
    for (int b = 0; b < MBW_NBLOCKS; b++) { /* each block alone: its tensors get its weight, and it has some */
        group_lo = group_hi = b, group_comp_base = 0;
        int n = check_model(out, 2, mbw_weight, in_group);
        CHECK_MSG(n >= 2, "block %d of the 4-level UNet: %d tensors", b, n);
    }
    group_lo = group_hi = 0, group_comp_base = 1;
    CHECK(check_model(out, 2, mbw_weight, in_group) >= 100); /* VAE and text encoder: the base weight */
    ma = A, mb = B;
}

static void test_mbw_args(void)
{
    CHECK(run("merge %s --with %s --mbw 1,2,3 -o %s/x", A, B, tmp) == 1);
    CHECK(strstr(last_stderr(), "25") != NULL);
    CHECK(run("merge %s --with %s --alpha 0.5 --mbw 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0 -o %s/x", A, B, tmp) == 1);
    CHECK(run("merge %s --with %s -o %s/x", A, B, tmp) == 1);
    char x[700];
    snprintf(x, sizeof x, "%s/x", tmp);
    CHECK(!path_exists(x));
}

/* ---- dtypes and single files --------------------------------------------------------- */

static void test_dtypes(void)
{
    char out[700];
    snprintf(out, sizeof out, "%s/mixed", tmp);
    /* f32 A with f16 B: allowed, computed in f32, written as A's dtype */
    CHECK_MSG(run("merge %s --with %s --alpha 0.5 --quiet -o %s", A, B16, out) == 0, "%s", last_stderr());
    StFile f;
    if (open_comp(&f, out, RM_UNET) == 0) {
        CHECK(f.n > 0 && f.tensors[0].dtype == DT_F32);
        st_close(&f);
    }
    snprintf(out, sizeof out, "%s/as_f16", tmp);
    CHECK_MSG(run("merge %s --with %s --alpha 0.5 --dtype f16 --quiet -o %s", A, B, out) == 0, "%s", last_stderr());
    if (open_comp(&f, out, RM_TEXT_ENCODER) == 0) {
        for (int k = 0; k < f.n; k++) CHECK(f.tensors[k].dtype == DT_F16);
        st_close(&f);
    }
}

static void test_single_file_output(void)
{
    char out[700], ws[700];
    snprintf(out, sizeof out, "%s/single.safetensors", tmp);
    snprintf(ws, sizeof ws, "%s/ws", tmp);
    CHECK_MSG(run("merge %s --with %s --alpha 0.3 --quiet -o %s", A, B, out) == 0, "%s", last_stderr());
    /* it imports (with the config fields a file cannot show next to it) and holds the folder merge's numbers */
    CHECK_MSG(run("stats %s", out) == 0, "%s", last_stderr());
    StFile f, g;
    SdcErr err;
    if (st_open(&f, out, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    if (open_comp(&g, ws, RM_UNET) == 0) {
        int64_t n1, n2;
        float *x = read_t(&f, "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight", &n1);
        float *y = read_t(&g, "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", &n2);
        CHECK(x && y && n1 == n2 && memcmp(x, y, sizeof(float) * (size_t)n1) == 0);
        free(x), free(y);
        x = read_t(&f, "model.diffusion_model.out.2.weight", &n1);
        y = read_t(&g, "conv_out.weight", &n2);
        CHECK(x && y && n1 == n2 && memcmp(x, y, sizeof(float) * (size_t)n1) == 0);
        free(x), free(y);
        st_close(&g);
    }
    CHECK(f.n == 512);
    /* a single-file input merges into a single file with its own names */
    char out2[700];
    snprintf(out2, sizeof out2, "%s/single2.safetensors", tmp);
    CHECK_MSG(run("merge %s --with %s --alpha 0.5 --quiet -o %s", out, out, out2) == 0, "%s", last_stderr());
    StFile h;
    if (st_open(&h, out2, &err) == 0) {
        CHECK(h.n == f.n);
        for (int k = 0; k < f.n && k < h.n; k++) {
            const StTensor *t = st_find(&h, f.tensors[k].name);
            CHECK(t && t->nbytes == f.tensors[k].nbytes &&
                  memcmp(st_data(&h, t), st_data(&f, &f.tensors[k]), t->nbytes) == 0); /* x/2 + x/2 = x */
        }
        st_close(&h);
    }
    st_close(&f);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    snprintf(A, sizeof A, "%s/A", tmp);
    snprintf(B, sizeof B, "%s/B", tmp);
    snprintf(C, sizeof C, "%s/C", tmp);
    snprintf(B16, sizeof B16, "%s/B16", tmp);
    snprintf(A4, sizeof A4, "%s/A4", tmp);
    snprintf(B4, sizeof B4, "%s/B4", tmp);
    SdcErr err = {{0}};
    if (random_model_write("tiny", A, 1, DT_F32, 1, &err) < 0 || random_model_write("tiny", B, 2, DT_F32, 1, &err) < 0 ||
        random_model_write("tiny", C, 3, DT_F32, 1, &err) < 0 || random_model_write("tiny", B16, 2, DT_F16, 1, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    RUN(test_weighted_sum);
    RUN(test_add_difference);
    /* one MBW merge with distinct weights, checked per block group */
    char list[600] = "";
    for (int b = 0; b < MBW_NBLOCKS; b++) {
        mbw_w[b] = b / 32.0 + 1 / 64.0;
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%g", b ? "," : "", mbw_w[b]);
    }
    snprintf(mbw_out, sizeof mbw_out, "%s/mbw", tmp);
    CHECK_MSG(run("merge %s --with %s --mbw %s --base-alpha %g --quiet -o %s", A, B, list, mbw_base, mbw_out) == 0, "%s",
              last_stderr());
    RUN(test_mbw_every_unet_tensor_has_a_block);
    RUN(test_mbw_in00);
    RUN(test_mbw_input_blocks);
    RUN(test_mbw_mid);
    RUN(test_mbw_output_blocks);
    RUN(test_mbw_out11);
    RUN(test_mbw_base);
    RUN(test_mbw_every_block_of_sd15_layout);
    RUN(test_mbw_args);
    RUN(test_dtypes);
    RUN(test_single_file_output);
    return test_finish();
}
