/* test_random_model.c — `sdc random-model`'s library side: the presets, the
 * tensor lists collected from the graph builders (parameter counts of the
 * real SD 1.5 / 2.1 models), the folders it writes (they import, verify and
 * run; weights follow the documented generator; same seed, same bytes) and
 * the synthesised CLIP tokenizer. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "interp.h"
#include "model.h"
#include "presets.h"
#include "random_model.h"
#include "scheduler.h"
#include "test.h"
#include "tokenizer.h"

static char root[512]; /* this run's temp folder */
static char tiny_a[600], tiny_b[600], tiny_c[600], tiny_h[600];

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    SdcErr err;
    char *x = file_read_all(a, &na, &err), *y = file_read_all(b, &nb, &err);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

/* Every file of the folder, relative paths, sorted (for comparing folders). */
static int list_files(const char *dir, const char *rel, char **out, int n)
{
    char *path = rel ? path_join(dir, rel) : xstrdup(dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[512];
        snprintf(sub, sizeof sub, "%s%s%s", rel ? rel : "", rel ? "/" : "", e->d_name);
        char *full = path_join(dir, sub);
        if (path_is_dir(full)) n = list_files(dir, sub, out, n);
        else if (n < 64) out[n++] = xstrdup(sub);
        free(full);
    }
    if (d) closedir(d);
    free(path);
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int sorted_files(const char *dir, char **out)
{
    int n = list_files(dir, NULL, out, 0);
    qsort(out, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
}

/* ---- presets ----------------------------------------------------------------- */

static void test_presets(void)
{
    static const char *const names[] = {"tiny", "sd15", "sd21"};
    static const char *const subs[] = {"unet", "vae", "text_encoder", "scheduler", "model_index"};
    for (int i = 0; i < 3; i++) {
        CHECK(preset_exists(names[i]));
        for (int k = 0; k < 5; k++) {
            const char *text = preset_config_json(names[i], subs[k]);
            cJSON *j = text ? cJSON_Parse(text) : NULL;
            CHECK_MSG(cJSON_IsObject(j), "%s %s is not a JSON object", names[i], subs[k]);
            cJSON_Delete(j);
        }
    }
    CHECK(!preset_exists("sd14") && !preset_exists("") && !preset_exists(NULL));
    CHECK(preset_config_json("tiny", "tokenizer") == NULL);
    CHECK(preset_config_json("sdxl", "unet") == NULL);

    /* the schedulers read as the samplers they name */
    SdcErr err = {{0}};
    SchedConfig sc;
    CHECK(sched_config_parse(&sc, preset_config_json("sd15", "scheduler"), "sd15", SAMPLER_PNDM, &err) == 0);
    CHECK(sc.prediction == SCHED_PRED_EPSILON && sc.steps_offset == 1 && sc.num_train_timesteps == 1000);
    CHECK(sched_config_parse(&sc, preset_config_json("sd21", "scheduler"), "sd21", SAMPLER_DDIM, &err) == 0);
    CHECK(sc.prediction == SCHED_PRED_V && sc.beta_schedule == SCHED_BETA_SCALED_LINEAR && !sc.set_alpha_to_one);
    CHECK(strcmp(preset_pad_token("sd21"), "!") == 0 && strcmp(preset_pad_token("sd15"), "<|endoftext|>") == 0);
}

/* The published parameter counts of the real models (the text encoders
 * without the position_ids buffer), from the builders' requests alone. */
static void test_param_counts(void)
{
    static const struct {
        const char *preset;
        int64_t unet, vae, te;
    } want[] = {
        {"sd15", 859520964, 83653863, 123060480},
        {"sd21", 865910724, 83653863, 340387840},
        {"tiny", 1427012, 658375, 68473}, /* fixtures/tiny-sd/README.md, made by diffusers from the same configs */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        RandomModelPlan p;
        SdcErr err = {{0}};
        if (random_model_plan(want[i].preset, &p, &err) < 0) {
            CHECK_MSG(0, "%s: %s", want[i].preset, err.msg);
            continue;
        }
        CHECK_MSG(p.params[RM_UNET] == want[i].unet, "%s unet %lld", want[i].preset, (long long)p.params[RM_UNET]);
        CHECK_MSG(p.params[RM_VAE] == want[i].vae, "%s vae %lld", want[i].preset, (long long)p.params[RM_VAE]);
        CHECK_MSG(p.params[RM_TEXT_ENCODER] == want[i].te, "%s te %lld", want[i].preset,
                  (long long)p.params[RM_TEXT_ENCODER]);
        for (int c = 0; c < RM_NCOMP; c++)
            for (int k = 1; k < p.ntensors[c]; k++) CHECK(strcmp(p.tensors[c][k - 1].name, p.tensors[c][k].name) < 0);
        random_model_plan_free(&p);
    }
    /* the VAE file holds both halves */
    RandomModelPlan p;
    SdcErr err = {{0}};
    CHECK(random_model_plan("tiny", &p, &err) == 0);
    int enc = 0, dec = 0;
    for (int k = 0; k < p.ntensors[RM_VAE]; k++) {
        enc += strncmp(p.tensors[RM_VAE][k].name, "encoder.", 8) == 0;
        dec += strncmp(p.tensors[RM_VAE][k].name, "decoder.", 8) == 0;
    }
    CHECK(enc > 0 && dec > 0);
    random_model_plan_free(&p);
}

/* ---- the generator -------------------------------------------------------------- */

static void moments(const float *x, int64_t n, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(s2 / (double)n);
}

static void test_generator(void)
{
    /* documented scales, on tensors large enough for 3% accuracy */
    struct {
        WeightKind kind;
        int ndim;
        int64_t shape[4];
        double mean, std;
    } cases[] = {
        {WK_MATRIX, 4, {64, 128, 3, 3}, 0, 1.0 / sqrt(128 * 9)},
        {WK_MATRIX, 2, {3 * RM_CHUNK / 256 + 7, 256}, 0, 1.0 / 16},
        {WK_BIAS, 1, {40000}, 0, 0.05},
        {WK_NORM_SCALE, 1, {40000}, 1, 0.1},
        {WK_NORM_SHIFT, 1, {40000}, 0, 0.05},
        {WK_EMBEDDING, 2, {1000, 64}, 0, sqrt(0.5)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        WeightReq r = {.name = "some.weight", .kind = cases[i].kind, .ndim = cases[i].ndim};
        int64_t n = 1;
        for (int d = 0; d < r.ndim; d++) n *= r.shape[d] = cases[i].shape[d];
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        random_tensor_fill(42, &r, x);
        double mean, std;
        moments(x, n, &mean, &std);
        CHECK_MSG(fabs(mean - cases[i].mean) < 0.03 * cases[i].std, "case %zu mean %g", i, mean);
        CHECK_MSG(fabs(std / cases[i].std - 1) < 0.03, "case %zu std %g want %g", i, std, cases[i].std);
        random_tensor_fill(42, &r, y); /* deterministic */
        CHECK(memcmp(x, y, sizeof(float) * (size_t)n) == 0);
        r.name = "other.weight"; /* each tensor has its own stream */
        random_tensor_fill(42, &r, y);
        CHECK(memcmp(x, y, sizeof(float) * 16) != 0);
        r.name = "some.weight";
        random_tensor_fill(43, &r, y);
        CHECK(memcmp(x, y, sizeof(float) * 16) != 0);
        /* chunks after the first are not copies of it */
        if (n > 2 * RM_CHUNK) CHECK(memcmp(x, x + RM_CHUNK, sizeof(float) * 16) != 0);
        free(x), free(y);
    }
}

/* ---- writing folders ------------------------------------------------------------- */

static void write_tiny_folders(void)
{
    SdcErr err = {{0}};
    CHECK_MSG(random_model_write("tiny", tiny_a, 7, DT_F32, 1, &err) == 0, "%s", err.msg);
    CHECK_MSG(random_model_write("tiny", tiny_b, 7, DT_F32, 1, &err) == 0, "%s", err.msg);
    CHECK_MSG(random_model_write("tiny", tiny_c, 8, DT_F32, 1, &err) == 0, "%s", err.msg);
    CHECK_MSG(random_model_write("tiny", tiny_h, 7, DT_F16, 1, &err) == 0, "%s", err.msg);
}

static void test_folder_layout(void)
{
    char *files[64];
    int n = sorted_files(tiny_a, files);
    static const char *const want[] = {
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"};
    CHECK_MSG(n == (int)(sizeof want / sizeof want[0]), "%d files", n);
    for (int i = 0; i < n && i < (int)(sizeof want / sizeof want[0]); i++)
        CHECK_MSG(strcmp(files[i], want[i]) == 0, "%s != %s", files[i], want[i]);
    free_list(files, n);
    /* configs are the preset's, byte for byte */
    char *p = path_join(tiny_a, "unet/config.json");
    size_t len;
    SdcErr err;
    char *text = file_read_all(p, &len, &err);
    CHECK(text && strcmp(text, preset_config_json("tiny", "unet")) == 0);
    free(text), free(p);
    /* no temp folder left next to it */
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d))) CHECK_MSG(!strstr(e->d_name, ".tmp."), "left over: %s", e->d_name);
    if (d) closedir(d);
}

/* Every component imports (weights bind with no missing or unexpected
 * tensor, the graph verifies) and runs to finite, non-trivial outputs. */
static void import_and_run(const char *dir, float *unet_out_std)
{
    Model m;
    SdcErr err = {{0}};
    if (model_open(&m, dir, NULL, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (int c = 0; c < COMP_COUNT; c++) {
        ImportShape s = {.batch = 1, .height = c == COMP_VAE_ENCODER ? 16 : 8, .seq_len = 77};
        s.width = s.height;
        Graph *g = model_import(&m, (Component)c, &s, &err);
        CHECK_MSG(g != NULL, "%s: %s", component_name((Component)c), err.msg);
        if (!g) continue;
        Tensor *in[3] = {0}, *out[2] = {0};
        for (int i = 0, k = 0; i < g->n && k < 3; i++) {
            const Node *n = &g->nodes[i];
            if (n->op != OP_INPUT) continue;
            in[k] = tensor_like_node(n);
            int64_t numel = tensor_numel(in[k]);
            for (int64_t i = 0; i < numel; i++) {
                if (in[k]->i) in[k]->i[i] = (i * 37) % 1000; /* token ids */
                else in[k]->f[i] = strcmp(n->name, "timestep") == 0 ? 500.0f : test_randn();
            }
            k++;
        }
        if (interp_run(g, in, out, 0, &err) < 0) {
            CHECK_MSG(0, "%s: %s", component_name((Component)c), err.msg);
        } else {
            int64_t numel = tensor_numel(out[0]);
            double mean, std;
            moments(out[0]->f, numel, &mean, &std);
            CHECK_MSG(isfinite(mean) && isfinite(std) && std > 1e-3 && std < 1e3, "%s: output std %g",
                      component_name((Component)c), std);
            if (c == COMP_UNET && unet_out_std) *unet_out_std = (float)std;
        }
        for (int k = 0; k < 3; k++) tensor_free(in[k]);
        for (int k = 0; k < 2; k++) tensor_free(out[k]);
        graph_free(g);
    }
    model_close(&m);
}

static void test_imports_and_runs(void)
{
    test_seed(1);
    float s32 = 0, s16 = 0;
    import_and_run(tiny_a, &s32);
    test_seed(1);
    import_and_run(tiny_h, &s16);
    /* the f16 copy is the same model up to rounding */
    CHECK_MSG(fabs(s32 - s16) < 0.01 * s32, "unet output std f32 %g f16 %g", s32, s16);
}

/* The files hold exactly the planned tensors, each the generator's values. */
static void check_weights(const char *dir, uint64_t seed, DType dtype)
{
    RandomModelPlan p;
    SdcErr err = {{0}};
    if (random_model_plan("tiny", &p, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (int c = 0; c < RM_NCOMP; c++) {
        char rel[128];
        snprintf(rel, sizeof rel, "%s/%s", rm_component_dir((RmComponent)c), rm_component_file((RmComponent)c));
        char *path = path_join(dir, rel);
        StFile f;
        if (st_open(&f, path, &err) < 0) {
            CHECK_MSG(0, "%s", err.msg);
            free(path);
            continue;
        }
        CHECK_MSG(f.n == p.ntensors[c], "%s: %d tensors, planned %d", rel, f.n, p.ntensors[c]);
        for (int i = 0; i < p.ntensors[c]; i++) {
            const WeightReq *r = &p.tensors[c][i];
            const StTensor *t = st_find(&f, r->name);
            CHECK_MSG(t != NULL, "%s: %s missing", rel, r->name);
            if (!t) continue;
            CHECK(t->dtype == dtype && t->ndim == r->ndim);
            CHECK(memcmp(t->shape, r->shape, sizeof(int64_t) * (size_t)r->ndim) == 0);
            int64_t n = st_numel(t);
            float *got = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
            CHECK(st_read_f32(&f, t, got, &err) == 0);
            random_tensor_fill(seed, r, want);
            if (dtype == DT_F16)
                for (int64_t k = 0; k < n; k++) want[k] = f16_to_f32(f32_to_f16(want[k]));
            CHECK_MSG(memcmp(got, want, sizeof(float) * (size_t)n) == 0, "%s: %s differs from the generator", rel,
                      r->name);
            int64_t nonzero = 0;
            for (int64_t k = 0; k < n; k++) nonzero += got[k] != 0;
            CHECK_MSG(nonzero > 0, "%s: %s is all zeros", rel, r->name);
            free(got), free(want);
        }
        CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "pt") == 0);
        st_close(&f);
        free(path);
    }
    random_model_plan_free(&p);
}

static void test_weights(void)
{
    check_weights(tiny_a, 7, DT_F32);
    check_weights(tiny_h, 7, DT_F16);
}

static void test_seeds(void)
{
    char *fa[64], *fb[64], *fc[64];
    int na = sorted_files(tiny_a, fa), nb = sorted_files(tiny_b, fb), nc = sorted_files(tiny_c, fc);
    CHECK(na == nb && na == nc && na == 12);
    for (int i = 0; i < na && i < nb && i < nc; i++) {
        char *a = path_join(tiny_a, fa[i]), *b = path_join(tiny_b, fb[i]), *c = path_join(tiny_c, fc[i]);
        CHECK_MSG(same_file(a, b), "same seed: %s differs", fa[i]);
        int weights = strstr(fa[i], ".safetensors") != NULL;
        CHECK_MSG(same_file(a, c) == !weights, "other seed: %s %s", fa[i], weights ? "is the same" : "differs");
        free(a), free(b), free(c);
    }
    free_list(fa, na), free_list(fb, nb), free_list(fc, nc);
}

/* Output folder rules: refuse a non-empty folder, --force replaces a model
 * folder only, an empty folder is fine, nothing is left behind on error. */
static void test_out_dir_rules(void)
{
    SdcErr err = {{0}};
    CHECK(random_model_write("tiny", tiny_b, 9, DT_F32, 1, &err) < 0);
    CHECK_MSG(strstr(err.msg, "not empty") != NULL, "%s", err.msg);
    char *w = path_join(tiny_b, "unet/diffusion_pytorch_model.safetensors");
    char *a = path_join(tiny_a, "unet/diffusion_pytorch_model.safetensors");
    CHECK(same_file(w, a)); /* untouched */

    RandomModelOptions o = {.seed = 8, .dtype = DT_F32, .quiet = 1, .force = 1};
    CHECK_MSG(random_model_write_opts("tiny", tiny_b, &o, &err) == 0, "%s", err.msg);
    char *c = path_join(tiny_c, "unet/diffusion_pytorch_model.safetensors");
    CHECK(same_file(w, c)); /* now the seed-8 model */
    free(w), free(a), free(c);

    char other[700];
    snprintf(other, sizeof other, "%s/not-a-model", root);
    CHECK(mkdir(other, 0755) == 0);
    char *junk = path_join(other, "notes.txt");
    CHECK(file_write_atomic(junk, "keep me\n", 8, &err) == 0);
    CHECK(random_model_write_opts("tiny", other, &o, &err) < 0);
    CHECK_MSG(strstr(err.msg, "not a model folder") != NULL, "%s", err.msg);
    CHECK(path_exists(junk));
    free(junk);

    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", root);
    CHECK(mkdir(empty, 0755) == 0);
    CHECK_MSG(random_model_write("tiny", empty, 1, DT_F32, 1, &err) == 0, "%s", err.msg);

    char nested[700];
    snprintf(nested, sizeof nested, "%s/deeper/still/model", root);
    CHECK_MSG(random_model_write("tiny", nested, 1, DT_F32, 1, &err) == 0, "%s", err.msg);

    CHECK(random_model_write("tiny", tiny_a, 1, DT_BF16, 1, &err) < 0);
    CHECK(strstr(err.msg, "f32 or f16") != NULL);
    CHECK(random_model_write("sd3", nested, 1, DT_F32, 1, &err) < 0);
    CHECK_MSG(strstr(err.msg, "tiny, sd15, sd21") != NULL, "%s", err.msg);
}

static void copy_file(const char *from_dir, const char *to_dir, const char *rel)
{
    SdcErr err = {{0}};
    size_t n;
    char *src = path_join(from_dir, rel), *dst = path_join(to_dir, rel);
    char *text = file_read_all(src, &n, &err);
    char *slash = strrchr(dst, '/');
    *slash = 0;
    CHECK(mkdir_p(dst, &err) == 0);
    *slash = '/';
    CHECK(text && file_write_atomic(dst, text, n, &err) == 0);
    free(text), free(src), free(dst);
}

/* A folder with only the three model configs: same tensors, same bytes as
 * the preset; scheduler and model_index default to SD 1.5's. */
static void test_config_folder(void)
{
    char cfg_dir[700], out[700];
    snprintf(cfg_dir, sizeof cfg_dir, "%s/configs", root);
    snprintf(out, sizeof out, "%s/from-configs", root);
    copy_file(tiny_a, cfg_dir, "unet/config.json");
    copy_file(tiny_a, cfg_dir, "vae/config.json");
    copy_file(tiny_a, cfg_dir, "text_encoder/config.json");
    SdcErr err = {{0}};
    CHECK_MSG(random_model_write(cfg_dir, out, 7, DT_F32, 1, &err) == 0, "%s", err.msg);
    static const char *const same[] = {
        "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",           "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",                     "tokenizer/merges.txt"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *a = path_join(tiny_a, same[i]), *b = path_join(out, same[i]);
        CHECK_MSG(same_file(a, b), "%s differs", same[i]);
        free(a), free(b);
    }
    Model m;
    CHECK_MSG(model_open(&m, out, NULL, &err) == 0, "%s", err.msg);
    model_close(&m);

    /* a config the importer refuses is reported with its file and field */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/configs/unet/config.json", root);
    const char *text = "{\"block_out_channels\": [32, 64], \"down_block_types\": [\"DownBlock2D\", \"FancyBlock\"], "
                       "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"]}";
    CHECK(file_write_atomic(bad, text, strlen(text), &err) == 0);
    snprintf(out, sizeof out, "%s/from-bad-configs", root);
    CHECK(random_model_write(cfg_dir, out, 7, DT_F32, 1, &err) < 0);
    CHECK_MSG(strstr(err.msg, "unet/config.json") && strstr(err.msg, "FancyBlock"), "%s", err.msg);
    CHECK(!path_exists(out));
}

/* ---- the tokenizer ----------------------------------------------------------------- */

static void test_tokenizer_files(void)
{
    char *vocab_path = path_join(tiny_a, "tokenizer/vocab.json"), *merges_path = path_join(tiny_a, "tokenizer/merges.txt");
    SdcErr err = {{0}};
    size_t n;
    char *vtext = file_read_all(vocab_path, &n, &err), *mtext = file_read_all(merges_path, &n, &err);
    cJSON *v = vtext ? cJSON_Parse(vtext) : NULL;
    CHECK(cJSON_IsObject(v));
    int size = cJSON_GetArraySize(v);
    CHECK_MSG(size > 514 && size <= 1000, "tiny vocab has %d tokens", size);
    /* ids dense, in CLIP's layout: bytes, bytes + </w>, merges, specials */
    char *by_id[1000] = {0};
    for (cJSON *it = v ? v->child : NULL; it; it = it->next)
        if (cJSON_IsNumber(it) && it->valueint >= 0 && it->valueint < size) by_id[it->valueint] = it->string;
    for (int i = 0; i < size; i++) CHECK_MSG(by_id[i] != NULL, "no token with id %d", i);
    if (by_id[0] && by_id[93] && by_id[94] && by_id[255] && by_id[256] && by_id[size - 1]) {
        CHECK(strcmp(by_id[0], "!") == 0 && strcmp(by_id[93], "~") == 0);
        CHECK(strcmp(by_id[94], "\xc2\xa1") == 0);       /* U+00A1 */
        CHECK(strcmp(by_id[188], "\xc4\x80") == 0);      /* byte 0 -> U+0100 */
        CHECK(strcmp(by_id[255], "\xc5\x83") == 0);      /* byte 0xAD -> U+0143 */
        CHECK(strcmp(by_id[256], "!</w>") == 0);
        CHECK(strcmp(by_id[size - 2], "<|startoftext|>") == 0 && strcmp(by_id[size - 1], "<|endoftext|>") == 0);
    }
    /* merges: a header, then "a b" lines whose join is token 512 + k */
    CHECK(mtext && strncmp(mtext, "#version: 0.2\n", 14) == 0);
    int k = 0;
    for (char *line = mtext ? strchr(mtext, '\n') + 1 : NULL; line && *line; k++) {
        char *end = strchr(line, '\n'), *sp = strchr(line, ' ');
        CHECK(end && sp && sp < end);
        if (!end || !sp) break;
        char joined[128];
        snprintf(joined, sizeof joined, "%.*s%.*s", (int)(sp - line), line, (int)(end - sp - 1), sp + 1);
        if (512 + k < size && by_id[512 + k]) CHECK_MSG(strcmp(joined, by_id[512 + k]) == 0, "merge %d", k);
        line = end + 1;
    }
    CHECK_MSG(k == size - 514, "%d merges for %d tokens", k, size);
    cJSON_Delete(v);
    free(vtext), free(mtext), free(vocab_path), free(merges_path);
}

static void test_tokenizer_loads(void)
{
    char *dir = path_join(tiny_a, "tokenizer");
    Tokenizer *t = NULL;
    SdcErr err = {{0}};
    CHECK_MSG(tok_load_dir(&t, dir, &err) == 0, "%s", err.msg);
    free(dir);
    if (!t) return;
    CHECK(tok_max_length(t) == 77 && tok_vocab_size(t) <= 1000);
    int32_t ids[77], bos, eos, pad;
    tok_special_ids(t, &bos, &eos, &pad);
    CHECK(bos == tok_vocab_size(t) - 2 && eos == tok_vocab_size(t) - 1 && pad == eos);
    int n = tok_encode(t, "a photograph of an astronaut riding a horse, 8k!", ids, &err);
    CHECK(n > 3 && ids[0] == bos && ids[n - 1] == eos);
    for (int i = 0; i < 77; i++) CHECK(ids[i] >= 0 && ids[i] < 1000);
    /* a frequent corpus word is one learned token */
    n = tok_encode(t, "photograph", ids, &err);
    CHECK_MSG(n == 3 && ids[1] >= 512, "photograph -> %d tokens", n - 2);
    tok_free(t);

    /* SD 2.x pads with "!", whose id is 0; the large vocabulary has more merges */
    char big[700];
    snprintf(big, sizeof big, "%s/tok21", root);
    CHECK(mkdir(big, 0755) == 0);
    CHECK_MSG(tokenizer_synth_write(big, 49408, 77, "!", &err) == 0, "%s", err.msg);
    CHECK_MSG(tok_load_dir(&t, big, &err) == 0, "%s", err.msg);
    if (t) {
        tok_special_ids(t, &bos, &eos, &pad);
        CHECK(pad == 0);
        CHECK_MSG(tok_vocab_size(t) >= 514 + 500 && tok_vocab_size(t) <= 514 + RM_TOK_MAX_MERGES, "vocab %d",
                  tok_vocab_size(t));
        n = tok_encode(t, "hello", ids, &err);
        CHECK(n >= 3 && ids[n] == 0);
        tok_free(t);
    }
    CHECK(tokenizer_synth_write(big, 500, 77, "!", &err) < 0 && strstr(err.msg, "vocab_size"));
    CHECK(tokenizer_synth_write(big, 49408, 77, "<pad>", &err) < 0 && strstr(err.msg, "pad_token"));
}

int main(void)
{
    snprintf(root, sizeof root, "%s", test_tmpdir());
    snprintf(tiny_a, sizeof tiny_a, "%s/a", root);
    snprintf(tiny_b, sizeof tiny_b, "%s/b", root);
    snprintf(tiny_c, sizeof tiny_c, "%s/c", root);
    snprintf(tiny_h, sizeof tiny_h, "%s/half", root);
    RUN(test_presets);
    RUN(test_param_counts);
    RUN(test_generator);
    RUN(write_tiny_folders);
    RUN(test_folder_layout);
    RUN(test_weights);
    RUN(test_seeds);
    RUN(test_imports_and_runs);
    RUN(test_tokenizer_files);
    RUN(test_tokenizer_loads);
    RUN(test_out_dir_rules);
    RUN(test_config_folder);
    if (!test_failures) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    }
    return test_finish();
}
