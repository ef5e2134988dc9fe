/* random_model.c — see random_model.h.
 *
 * Three steps: plan (configs -> the exact tensor list, by building each
 * component's graph with a collecting WeightSet), fill (a seeded generator
 * per tensor chunk) and write (a temporary folder, streamed safetensors,
 * one rename at the end). */
#include "random_model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "import.h"
#include "presets.h"
#include "progress.h"

static const char *const comp_dirs[RM_NCOMP] = {"unet", "vae", "text_encoder"};
static const char *const comp_files[RM_NCOMP] = {"diffusion_pytorch_model.safetensors",
                                                 "diffusion_pytorch_model.safetensors", "model.safetensors"};
/* Where each config lives in a model folder. */
static const char *const cfg_paths[RM_NCFG] = {"unet/config.json", "vae/config.json", "text_encoder/config.json",
                                               "scheduler/scheduler_config.json", "model_index.json"};

const char *rm_component_dir(RmComponent c) { return c < RM_NCOMP ? comp_dirs[c] : "?"; }
const char *rm_component_file(RmComponent c) { return c < RM_NCOMP ? comp_files[c] : "?"; }

/* ---- the generator ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna) */
static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* n standard normals from one chunk's own stream. */
static void chunk_normals(uint64_t key, int64_t chunk, float *out, int64_t n)
{
    uint64_t sm = key ^ splitmix64(&(uint64_t){(uint64_t)chunk}), s[4];
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&sm);
    for (int64_t i = 0; i < n; i += 2) {
        /* u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1) */
        double u1 = ((double)(xoshiro_next(s) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
        out[i] = (float)(r * cos(a));
        if (i + 1 < n) out[i + 1] = (float)(r * sin(a));
    }
}

void random_tensor_fill(uint64_t seed, const WeightReq *r, float *out)
{
    int64_t numel = 1, fan_in = 1;
    for (int d = 0; d < r->ndim; d++) numel *= r->shape[d];
    for (int d = 1; d < r->ndim; d++) fan_in *= r->shape[d];
    double mean = 0, std = 0.05;
    switch (r->kind) {
    case WK_MATRIX: std = 1.0 / sqrt((double)fan_in); break;
    case WK_BIAS: std = 0.05; break;
    case WK_NORM_SCALE: mean = 1.0, std = 0.1; break;
    case WK_NORM_SHIFT: std = 0.05; break;
    case WK_EMBEDDING: std = sqrt(0.5); break;
    }
    uint64_t sm = seed, key = splitmix64(&sm) ^ fnv1a64(r->name);
    int64_t nchunks = (numel + RM_CHUNK - 1) / RM_CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * RM_CHUNK, n = numel - lo < RM_CHUNK ? numel - lo : RM_CHUNK;
        chunk_normals(key, c, out + lo, n);
        for (int64_t i = lo; i < lo + n; i++) out[i] = (float)(mean + std * out[i]);
    }
}

/* ---- the plan ------------------------------------------------------------------- */

static int cmp_req(const void *a, const void *b)
{
    return strcmp(((const WeightReq *)a)->name, ((const WeightReq *)b)->name);
}

/* Moves ws's requests into the plan's list for component c. */
static void take_requests(RandomModelPlan *p, RmComponent c, WeightSet *ws)
{
    p->tensors[c] = xrealloc(p->tensors[c], sizeof(WeightReq) * (size_t)(p->ntensors[c] + ws->nreq + 1));
    memcpy(p->tensors[c] + p->ntensors[c], ws->req, sizeof(WeightReq) * (size_t)ws->nreq);
    p->ntensors[c] += ws->nreq;
    free(ws->req);
    ws->req = NULL;
    ws->nreq = 0;
}

/* Sorts, keeps each name once (a tensor asked for by both VAE graphs, or
 * twice by one builder, is one tensor if the shapes agree) and counts. */
static int finish_list(RandomModelPlan *p, RmComponent c, SdcErr *err)
{
    WeightReq *t = p->tensors[c];
    int n = p->ntensors[c], out = 0, rc = 0;
    qsort(t, (size_t)n, sizeof *t, cmp_req);
    for (int i = 0; i < n; i++) {
        if (out && strcmp(t[out - 1].name, t[i].name) == 0) {
            WeightReq *a = &t[out - 1];
            int same = a->ndim == t[i].ndim && memcmp(a->shape, t[i].shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
            if (!same && rc == 0)
                rc = sdc_err(err, "internal: %s: parameter %s requested with two shapes", comp_dirs[c], a->name);
            free(t[i].name);
            continue;
        }
        t[out++] = t[i];
    }
    p->ntensors[c] = out;
    p->params[c] = 0;
    for (int i = 0; i < out; i++) {
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        p->params[c] += numel;
    }
    return rc;
}

/* Number of entries of block_out_channels, for a graph size every
 * down/up-sampling divides; the builders report a bad value themselves. */
static int block_count(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    cJSON *boc = root ? cJSON_GetObjectItemCaseSensitive(root, "block_out_channels") : NULL;
    int n = cJSON_IsArray(boc) ? cJSON_GetArraySize(boc) : 1;
    cJSON_Delete(root);
    return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Builds each graph of component c in collect mode. */
static int collect_component(RandomModelPlan *p, RmComponent c, SdcErr *err)
{
    static const Component graphs[RM_NCOMP][2] = {
        {COMP_UNET, COMP_COUNT}, {COMP_VAE_DECODER, COMP_VAE_ENCODER}, {COMP_TEXT_ENCODER, COMP_COUNT}};
    int64_t size = (int64_t)1 << block_count(p->config[c]); /* latent size for unet/decoder */
    for (int k = 0; k < 2 && graphs[c][k] != COMP_COUNT; k++) {
        Component g = graphs[c][k];
        Cfg cfg;
        if (cfg_parse(&cfg, p->config[c], cfg_paths[c], err) < 0) {
            cfg_free(&cfg);
            return -1;
        }
        WeightSet ws;
        ws_collect(&ws, comp_dirs[c]);
        ImportShape s = {.batch = 1, .height = g == COMP_VAE_DECODER ? 2 : size, .seq_len = 1};
        s.width = s.height;
        Graph *graph = NULL;
        switch (g) {
        case COMP_UNET: graph = build_unet(&cfg, &ws, &s, err); break;
        case COMP_VAE_DECODER: graph = build_vae_decoder(&cfg, &ws, &s, err); break;
        case COMP_VAE_ENCODER: graph = build_vae_encoder(&cfg, &ws, &s, err); break;
        default: graph = build_text_encoder(&cfg, &ws, &s, err); break;
        }
        int ok = graph != NULL;
        if (ok) take_requests(p, c, &ws);
        graph_free(graph);
        ws_close(&ws);
        cfg_free(&cfg);
        if (!ok) return -1;
    }
    return finish_list(p, c, err);
}

/* The model_index.json to write: the given one (or SD 1.5's) listing
 * exactly the components random-model writes; anything else it names
 * (safety_checker, feature_extractor, image_encoder) becomes [null, null]. */
static int make_model_index(RandomModelPlan *p, const char *given, SdcErr *err)
{
    Cfg sched;
    if (cfg_parse(&sched, p->config[RM_CFG_SCHEDULER], cfg_paths[RM_CFG_SCHEDULER], err) < 0)
        return cfg_free(&sched), -1;
    const char *sched_class = cfg_str(&sched, "_class_name", NULL);
    if (!sched_class && !sched.failed) cfg_fail(&sched, "_class_name", "missing (the scheduler's class)");
    if (sched.failed) return cfg_free(&sched), -1;

    Cfg mi;
    if (cfg_parse(&mi, given, cfg_paths[RM_CFG_MODEL_INDEX], err) < 0) return cfg_free(&mi), cfg_free(&sched), -1;
    static const char *const ours[][3] = {{"scheduler", "diffusers", NULL},
                                          {"text_encoder", "transformers", "CLIPTextModel"},
                                          {"tokenizer", "transformers", "CLIPTokenizer"},
                                          {"unet", "diffusers", "UNet2DConditionModel"},
                                          {"vae", "diffusers", "AutoencoderKL"}};
    cJSON *root = mi.root;
    for (cJSON *it = root->child; it; it = it->next) {
        int listed = cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2;
        if (listed && it->string[0] != '_') {
            cJSON_ReplaceItemInArray(it, 0, cJSON_CreateNull());
            cJSON_ReplaceItemInArray(it, 1, cJSON_CreateNull());
        }
    }
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(ours[i][1]));
        cJSON_AddItemToArray(pair, cJSON_CreateString(ours[i][2] ? ours[i][2] : sched_class));
        if (cJSON_GetObjectItemCaseSensitive(root, ours[i][0]))
            cJSON_ReplaceItemInObjectCaseSensitive(root, ours[i][0], pair);
        else
            cJSON_AddItemToObject(root, ours[i][0], pair);
    }
    if (!cJSON_GetObjectItemCaseSensitive(root, "_class_name"))
        cJSON_AddStringToObject(root, "_class_name", "StableDiffusionPipeline");
    if (cJSON_GetObjectItemCaseSensitive(root, "requires_safety_checker"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "requires_safety_checker", cJSON_CreateFalse());
    char *text = cJSON_Print(root);
    SDC_ASSERT(text);
    size_t n = strlen(text);
    p->config[RM_CFG_MODEL_INDEX] = xmalloc(n + 2);
    memcpy(p->config[RM_CFG_MODEL_INDEX], text, n);
    strcpy(p->config[RM_CFG_MODEL_INDEX] + n, "\n");
    cJSON_free(text);
    cfg_free(&mi);
    cfg_free(&sched);
    return 0;
}

/* The pad token a source folder's tokenizer declares, if it has one. */
static int folder_pad_token(const char *dir, char **pad, SdcErr *err)
{
    char *path = path_join(dir, "tokenizer/special_tokens_map.json");
    int rc = 0;
    if (path_exists(path)) {
        Cfg c;
        rc = cfg_load(&c, path, "tokenizer/special_tokens_map.json", err);
        cJSON *v = rc == 0 ? cJSON_GetObjectItemCaseSensitive(c.root, "pad_token") : NULL;
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(v)) *pad = xstrdup(v->valuestring);
        cfg_free(&c);
    }
    free(path);
    return rc;
}

/* The source's config texts: the preset's, or the folder's files. */
static int read_configs(RandomModelPlan *p, const char *src, const char **model_index, char **mi_owned, SdcErr *err)
{
    if (preset_exists(src)) {
        static const char *const subs[RM_NCFG] = {"unet", "vae", "text_encoder", "scheduler", "model_index"};
        for (int i = 0; i < RM_CFG_MODEL_INDEX; i++) p->config[i] = xstrdup(preset_config_json(src, subs[i]));
        *model_index = preset_config_json(src, "model_index");
        p->pad_token = xstrdup(preset_pad_token(src));
        return 0;
    }
    if (!path_is_dir(src))
        return sdc_err(err, "%s: not a preset (%s) nor a folder of config files", src, preset_names());
    for (int i = 0; i < RM_NCFG; i++) {
        char *path = path_join(src, cfg_paths[i]);
        char *text = NULL;
        if (i < RM_CFG_SCHEDULER || path_exists(path)) {
            text = file_read_all(path, NULL, err);
            if (!text) {
                free(path);
                return -1;
            }
        }
        free(path);
        if (i == RM_CFG_MODEL_INDEX) {
            *mi_owned = text;
            *model_index = text ? text : preset_config_json("sd15", "model_index");
        } else {
            p->config[i] = text ? text : xstrdup(preset_config_json("sd15", "scheduler"));
        }
    }
    return folder_pad_token(src, &p->pad_token, err);
}

int random_model_plan(const char *src, RandomModelPlan *p, SdcErr *err)
{
    memset(p, 0, sizeof *p);
    const char *model_index = NULL;
    char *mi_owned = NULL;
    int rc = -1;
    if (read_configs(p, src, &model_index, &mi_owned, err) < 0) goto done;
    if (!p->pad_token) p->pad_token = xstrdup("<|endoftext|>");
    for (int c = 0; c < RM_NCOMP; c++)
        if (collect_component(p, (RmComponent)c, err) < 0) goto done;
    Cfg te;
    if (cfg_parse(&te, p->config[RM_CFG_TEXT_ENCODER], cfg_paths[RM_CFG_TEXT_ENCODER], err) < 0) {
        cfg_free(&te);
        goto done;
    }
    p->vocab_size = (int)cfg_int(&te, "vocab_size", 49408, 1, 1 << 24);
    p->max_length = (int)cfg_int(&te, "max_position_embeddings", 77, 1, 1 << 16);
    int bad = te.failed;
    cfg_free(&te);
    if (bad) goto done;
    if (make_model_index(p, model_index, err) < 0) goto done;
    rc = 0;
done:
    free(mi_owned);
    if (rc) random_model_plan_free(p);
    return rc;
}

void random_model_plan_free(RandomModelPlan *p)
{
    for (int i = 0; i < RM_NCFG; i++) free(p->config[i]);
    for (int c = 0; c < RM_NCOMP; c++) {
        for (int i = 0; i < p->ntensors[c]; i++) free(p->tensors[c][i].name);
        free(p->tensors[c]);
    }
    free(p->pad_token);
    memset(p, 0, sizeof *p);
}

/* ---- folders ------------------------------------------------------------------------ */

/* Removes a tree this module created (never follows symlinks). */
static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *sub = path_join(path, e->d_name);
            rm_tree(sub);
            free(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d))) empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* 0 if out_dir may be written: absent, an empty folder, or (force) a model folder. */
static int check_out_dir(const char *out, int force, SdcErr *err)
{
    struct stat st;
    if (lstat(out, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return sdc_err(err, "%s: exists and is not a folder", out);
    if (dir_is_empty(out)) return 0;
    if (!force) return sdc_err(err, "%s: exists and is not empty (--force replaces a model folder)", out);
    char *mi = path_join(out, "model_index.json"), *unet = path_join(out, "unet");
    int model = path_exists(mi) || path_is_dir(unet);
    free(mi), free(unet);
    if (!model)
        return sdc_err(err, "%s: not empty and not a model folder (no model_index.json or unet/); not replacing it",
                       out);
    return 0;
}

static int write_file(const char *dir, const char *rel, const char *text, SdcErr *err)
{
    char *path = path_join(dir, rel);
    int rc = file_write_atomic(path, text, strlen(text), err);
    free(path);
    return rc;
}

static int make_dir(const char *dir, const char *rel, SdcErr *err)
{
    char *path = rel ? path_join(dir, rel) : xstrdup(dir);
    int rc = mkdir_p(path, err);
    free(path);
    return rc;
}

/* ---- weights ------------------------------------------------------------------------ */

static double mb(double bytes) { return bytes / 1e6; }

static int write_weights(const char *dir, const RandomModelPlan *p, RmComponent c, const RandomModelOptions *o,
                         SdcErr *err)
{
    int n = p->ntensors[c];
    const WeightReq *t = p->tensors[c];
    StDesc *descs = xcalloc((size_t)(n ? n : 1), sizeof(StDesc));
    int64_t max_numel = 1;
    double total = 0, done_bytes = 0;
    for (int i = 0; i < n; i++) {
        descs[i].name = t[i].name;
        descs[i].dtype = o->dtype;
        descs[i].ndim = t[i].ndim;
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= descs[i].shape[d] = t[i].shape[d];
        if (numel > max_numel) max_numel = numel;
        total += (double)numel * (double)dtype_size(o->dtype);
    }
    char rel[128];
    snprintf(rel, sizeof rel, "%s/%s", comp_dirs[c], comp_files[c]);
    char *path = path_join(dir, rel);
    static const char *const meta_keys[] = {"format"}, *const meta_vals[] = {"pt"};
    StWriter *w;
    int rc = st_writer_open(&w, path, n, descs, 1, meta_keys, meta_vals, err);
    free(descs);
    free(path);
    if (rc) return -1;

    float *buf = xmalloc(sizeof(float) * (size_t)max_numel);
    uint16_t *half = o->dtype == DT_F16 ? xmalloc(sizeof(uint16_t) * (size_t)max_numel) : NULL;
    int redraw = progress_default_enabled(o->quiet);
    double t0 = rt_now(), t_draw = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        random_tensor_fill(o->seed, &t[i], buf);
        if (half) dtype_from_f32(DT_F16, buf, half, (size_t)numel);
        rc = st_writer_put(w, half ? (const void *)half : (const void *)buf, err);
        done_bytes += (double)numel * (double)dtype_size(o->dtype);
        if (redraw && (rt_now() - t_draw > 0.1 || i == n - 1)) {
            t_draw = rt_now();
            fprintf(stderr, "\r%-13s %9.1f / %.1f MB", comp_dirs[c], mb(done_bytes), mb(total));
        }
    }
    free(buf);
    free(half);
    if (rc) {
        st_writer_abort(w);
        if (redraw) fputc('\n', stderr);
        return -1;
    }
    if (st_writer_finish(w, err)) return -1;
    if (!o->quiet)
        fprintf(stderr, "%s%-13s %d tensors, %lld parameters, %.1f MB %s, %.1f s\n", redraw ? "\r" : "",
                comp_dirs[c], n, (long long)p->params[c], mb(total), dtype_name(o->dtype), rt_now() - t0);
    return 0;
}

/* ---- the folder ---------------------------------------------------------------------- */

static int write_all(const char *tmp, const RandomModelPlan *p, const RandomModelOptions *o, SdcErr *err)
{
    static const char *const dirs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (make_dir(tmp, dirs[i], err)) return -1;
    for (int i = 0; i < RM_NCFG; i++)
        if (write_file(tmp, cfg_paths[i], p->config[i], err)) return -1;
    char *tok = path_join(tmp, "tokenizer");
    int rc = tokenizer_synth_write(tok, p->vocab_size, p->max_length, p->pad_token, err);
    free(tok);
    if (rc) return -1;
    for (int c = 0; c < RM_NCOMP; c++)
        if (write_weights(tmp, p, (RmComponent)c, o, err)) return -1;
    return 0;
}

/* Puts the finished tmp folder at out (replacing a model folder if forced). */
static int move_into_place(const char *tmp, const char *out, SdcErr *err)
{
    struct stat st;
    char *old = NULL;
    if (lstat(out, &st) == 0) {
        if (dir_is_empty(out)) {
            if (rmdir(out) != 0) return sdc_err(err, "%s: cannot replace: %s", out, strerror(errno));
        } else {
            size_t n = strlen(out) + 32;
            old = xmalloc(n);
            snprintf(old, n, "%s.old.%ld", out, (long)getpid());
            if (rename(out, old) != 0) {
                int e = errno;
                free(old);
                return sdc_err(err, "%s: cannot move aside: %s", out, strerror(e));
            }
        }
    }
    if (rename(tmp, out) != 0) {
        int e = errno;
        if (old) rename(old, out); /* put the old folder back */
        free(old);
        return sdc_err(err, "%s: cannot rename %s into place: %s", out, tmp, strerror(e));
    }
    if (old) rm_tree(old);
    free(old);
    return 0;
}

int random_model_write_opts(const char *src, const char *out, const RandomModelOptions *o, SdcErr *err)
{
    if (o->dtype != DT_F32 && o->dtype != DT_F16)
        return sdc_err(err, "random-model: dtype %s is not supported (f32 or f16)", dtype_name(o->dtype));
    if (!out || !*out) return sdc_err(err, "random-model: no output folder given");
    RandomModelPlan p;
    if (random_model_plan(src, &p, err) < 0) return -1;
    if (check_out_dir(out, o->force, err) < 0) {
        random_model_plan_free(&p);
        return -1;
    }
    /* the parent must exist for the final rename to land there */
    char *parent = xstrdup(out);
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/') parent[--len] = 0;
    char *slash = strrchr(parent, '/');
    int rc = 0;
    if (slash && slash != parent) {
        *slash = 0;
        rc = mkdir_p(parent, err);
    }
    free(parent);
    size_t n = strlen(out) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%.*s.tmp.%ld", (int)len, out, (long)getpid());
    if (rc == 0) {
        rm_tree(tmp); /* a leftover of an earlier run with our pid */
        rc = make_dir(tmp, NULL, err);
    }
    if (rc == 0) rc = write_all(tmp, &p, o, err);
    if (rc == 0) rc = check_out_dir(out, o->force, err); /* it may have appeared meanwhile */
    if (rc == 0) rc = move_into_place(tmp, out, err);
    if (rc) rm_tree(tmp);
    free(tmp);
    random_model_plan_free(&p);
    return rc;
}

int random_model_write(const char *src, const char *out, uint64_t seed, DType dtype, int quiet, SdcErr *err)
{
    RandomModelOptions o = {.seed = seed, .dtype = dtype, .quiet = quiet, .force = 0};
    return random_model_write_opts(src, out, &o, err);
}
