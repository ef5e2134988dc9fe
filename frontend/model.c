/* model.c — see model.h. */
#include "model.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "presets.h"

static const char *const component_names[COMP_COUNT] = {"unet", "vae-decoder", "vae-encoder", "text-encoder"};

int component_from_name(const char *name, Component *c)
{
    for (int i = 0; i < COMP_COUNT; i++)
        if (strcmp(name, component_names[i]) == 0) return *c = (Component)i, 0;
    return -1;
}

const char *component_name(Component c) { return c < COMP_COUNT ? component_names[c] : "?"; }

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int model_open(Model *m, const char *path, const char *variant, SdcErr *err)
{
    memset(m, 0, sizeof *m);
    char real[PATH_MAX];
    if (!path_exists(path) && preset_exists(path)) {
        m->root = xstrdup(path);
        m->preset = m->root;
        return 0;
    }
    if (!realpath(path, real)) return sdc_err(err, "%s: no such model (a diffusers folder or a .safetensors file)", path);
    m->root = xstrdup(real);
    m->variant = variant;
    if (path_is_dir(real)) {
        char *idx = path_join(real, "model_index.json");
        char *unet = path_join(real, "unet/config.json");
        int ok = path_exists(idx) || path_exists(unet);
        if (path_exists(idx)) {
            /* validate it: a broken model_index.json is a broken model */
            Cfg c;
            int rc = cfg_load(&c, idx, "model_index.json", err);
            cfg_free(&c);
            if (rc < 0) {
                free(idx), free(unet), model_close(m);
                return -1;
            }
        }
        free(idx), free(unet);
        if (!ok) {
            model_close(m);
            return sdc_err(err, "%s: not a diffusers model folder (no model_index.json or unet/config.json)", path);
        }
        return 0;
    }
    if (!ends_with(real, ".safetensors")) {
        model_close(m);
        return sdc_err(err, "%s: unknown model format (sdc reads diffusers folders and .safetensors checkpoints)", path);
    }
    m->single_file = 1;
    if (ldm_open(&m->ldm, real, err) < 0) {
        model_close(m);
        return -1;
    }
    return 0;
}

void model_close(Model *m)
{
    if (m->single_file) ldm_close(&m->ldm);
    free(m->root);
    memset(m, 0, sizeof *m);
}

int model_config(Model *m, const char *sub, Cfg *cfg, SdcErr *err)
{
    char shown[128];
    snprintf(shown, sizeof shown, "%s/config.json", sub);
    if (m->preset) {
        char shown_p[160];
        snprintf(shown_p, sizeof shown_p, "preset %s: %s", m->preset, shown);
        return cfg_parse(cfg, preset_config_json(m->preset, sub), shown_p, err);
    }
    if (m->single_file) {
        const char *text = ldm_config_json(&m->ldm, sub);
        if (!text) return sdc_err(err, "%s: no %s in this checkpoint", m->root, sub);
        char shown_sf[256];
        snprintf(shown_sf, sizeof shown_sf, "%s (inferred %s config)", m->root, sub);
        return cfg_parse(cfg, text, shown_sf, err);
    }
    char *path = path_join(m->root, shown);
    int rc = cfg_load(cfg, path, shown, err);
    free(path);
    return rc;
}

/* Weight files of a diffusers component folder, in the order tried. */
static const char *const weight_bases[] = {"diffusion_pytorch_model", "model"};

static int sharded_files(const char *index_path, const char *dir, const char *shown_dir, char **paths, char **shown,
                         int *n, SdcErr *err)
{
    Cfg c;
    if (cfg_load(&c, index_path, index_path, err) < 0) return cfg_free(&c), -1;
    cJSON *map = cJSON_GetObjectItemCaseSensitive(c.root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cfg_fail(&c, "weight_map", "missing or not an object");
        cfg_free(&c);
        return -1;
    }
    cJSON *e;
    *n = 0;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            cfg_fail(&c, "weight_map", "entries must be file names in the same folder");
            break;
        }
        int seen = 0;
        for (int i = 0; i < *n && !seen; i++) seen = strcmp(strrchr(paths[i], '/') + 1, e->valuestring) == 0;
        if (seen) continue;
        if (*n == WS_MAX_FILES) {
            cfg_fail(&c, "weight_map", "more than %d shards", WS_MAX_FILES);
            break;
        }
        paths[*n] = path_join(dir, e->valuestring);
        shown[*n] = path_join(shown_dir, e->valuestring);
        (*n)++;
    }
    int rc = c.failed ? -1 : 0;
    cfg_free(&c);
    return rc;
}

int model_weights(Model *m, const char *sub, WeightSet *ws, SdcErr *err)
{
    (void)err;
    if (m->preset) return ws_collect(ws, sub), 0;
    if (m->single_file) return ldm_weights(&m->ldm, sub, ws, err);
    char *dir = path_join(m->root, sub);
    char *paths[WS_MAX_FILES] = {0}, *shown[WS_MAX_FILES] = {0};
    int n = 0, rc = -1;
    /* plain, then the variant (or the other way round when a variant is asked for) */
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        int want_variant = m->variant ? pass == 0 : pass == 1;
        for (size_t b = 0; b < sizeof weight_bases / sizeof weight_bases[0] && n == 0; b++) {
            char file[128], index[160];
            snprintf(file, sizeof file, "%s%s%s.safetensors", weight_bases[b], want_variant ? "." : "",
                     want_variant ? (m->variant ? m->variant : "fp16") : "");
            snprintf(index, sizeof index, "%s.index.json", file);
            char *p = path_join(dir, file), *ip = path_join(dir, index);
            if (path_exists(p)) {
                paths[0] = p, p = NULL;
                shown[0] = path_join(sub, file);
                n = 1;
            } else if (path_exists(ip)) {
                if (sharded_files(ip, dir, sub, paths, shown, &n, err) < 0) n = -1;
            }
            free(p), free(ip);
        }
    }
    if (n == 0) {
        char *bin = path_join(dir, "diffusion_pytorch_model.bin"), *bin2 = path_join(dir, "pytorch_model.bin");
        if (path_exists(bin) || path_exists(bin2))
            sdc_err(err, "%s: weights are in PyTorch .bin format; sdc reads .safetensors (convert them first)", sub);
        else
            sdc_err(err, "%s: no weights found (expected diffusion_pytorch_model.safetensors or model.safetensors)", sub);
        free(bin), free(bin2);
    } else if (n > 0) {
        rc = ws_open(ws, sub, n, (const char *const *)paths, (const char *const *)shown, err);
    }
    for (int i = 0; i < WS_MAX_FILES; i++) free(paths[i]), free(shown[i]);
    free(dir);
    return rc;
}

static const char *const te_ignore[] = {"text_model.embeddings.position_ids", NULL};

Graph *model_import(Model *m, Component c, const ImportShape *s, SdcErr *err)
{
    static const char *const subs[COMP_COUNT] = {"unet", "vae", "vae", "text_encoder"};
    const char *sub = subs[c];
    Cfg cfg;
    if (model_config(m, sub, &cfg, err) < 0) {
        cfg_free(&cfg);
        return NULL;
    }
    WeightSet ws;
    if (model_weights(m, sub, &ws, err) < 0) {
        cfg_free(&cfg);
        return NULL;
    }
    if (c == COMP_TEXT_ENCODER && !ws.ignore) ws.ignore = te_ignore;
    Graph *g = NULL;
    switch (c) {
    case COMP_UNET: g = build_unet(&cfg, &ws, s, err); break;
    case COMP_VAE_DECODER: g = build_vae_decoder(&cfg, &ws, s, err); break;
    case COMP_VAE_ENCODER: g = build_vae_encoder(&cfg, &ws, s, err); break;
    case COMP_TEXT_ENCODER: g = build_text_encoder(&cfg, &ws, s, err); break;
    default: break;
    }
    if (g && ws_check(&ws, err) < 0) {
        graph_free(g);
        g = NULL;
    }
    /* values too large to count in 64 bits come from the size asked for, not from a bug */
    if (g && ir_check_sizes(g, err) < 0) {
        sdc_err_prefix(err, "%s at %lldx%lld, batch %d: too large", sub, (long long)s->width, (long long)s->height,
                       s->batch);
        graph_free(g);
        g = NULL;
    }
    if (g && ir_verify(g, err) < 0) {
        sdc_err_prefix(err, "internal: imported %s does not verify", sub);
        graph_free(g);
        g = NULL;
    }
    ws_close(&ws);
    cfg_free(&cfg);
    return g;
}

int model_info(Model *m, ModelInfo *info, SdcErr *err)
{
    memset(info, 0, sizeof *info);
    Cfg vae, te;
    if (model_config(m, "vae", &vae, err) < 0) return cfg_free(&vae), -1;
    int boc[8];
    int n = cfg_int_list(&vae, "block_out_channels", boc, -1, 8, 0, 1, 1 << 16);
    info->vae_scale = 1 << (n > 0 ? n - 1 : 0);
    info->scaling_factor = cfg_num(&vae, "scaling_factor", 0.18215, 1e-9, 1e9);
    info->latent_channels = (int)cfg_int(&vae, "latent_channels", 4, 1, 64);
    int rc = vae.failed ? -1 : 0;
    cfg_free(&vae);
    if (rc < 0) return -1;
    if (model_config(m, "text_encoder", &te, err) < 0) return cfg_free(&te), -1;
    info->text_hidden = (int)cfg_int(&te, "hidden_size", 768, 1, 1 << 16);
    info->max_positions = (int)cfg_int(&te, "max_position_embeddings", 77, 1, 1 << 16);
    rc = te.failed ? -1 : 0;
    cfg_free(&te);
    return rc;
}
