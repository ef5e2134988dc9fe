/* model.h — a Stable Diffusion model as users have it on disk.
 *
 * Either a diffusers folder (model_index.json, unet/, vae/, text_encoder/,
 * tokenizer/, scheduler/, weights in *.safetensors, optionally the fp16
 * variant or sharded with an index) or a single-file LDM checkpoint
 * (.safetensors with model.diffusion_model.*, first_stage_model.*,
 * cond_stage_model.transformer.* keys; see ldm.h).  model_import turns one
 * component into a verified graph whose constants point into the files. */
#ifndef SDC_MODEL_H
#define SDC_MODEL_H

#include "cfg.h"
#include "import.h"
#include "ldm.h"

typedef struct Model {
    char *root;      /* absolute path of the folder or the file */
    int single_file; /* an LDM checkpoint */
    const char *variant; /* "fp16" to prefer *.fp16.safetensors; NULL = plain first */
    const char *preset;  /* a preset name (tiny, sd15, sd21) with no weights: graphs are built with
                          * placeholder constants, for stats and IR; never compiled */
    LdmCheckpoint ldm;
} Model;

/* path: a diffusers folder, a .safetensors checkpoint, or a preset name
 * (configs only: for sdc stats/import without weights on disk). */
int model_open(Model *m, const char *path, const char *variant, SdcErr *err);
void model_close(Model *m);

/* The component's config ("unet", "vae", "text_encoder"), parsed. */
int model_config(Model *m, const char *sub, Cfg *cfg, SdcErr *err);
/* The component's weights. */
int model_weights(Model *m, const char *sub, WeightSet *ws, SdcErr *err);
/* Builds, binds, checks and verifies one component. */
Graph *model_import(Model *m, Component c, const ImportShape *s, SdcErr *err);

/* Facts the pipeline needs, read from the VAE config. */
typedef struct ModelInfo {
    int vae_scale;        /* image size / latent size: 2^(len(vae block_out_channels)-1) */
    double scaling_factor; /* vae scaling_factor */
    int latent_channels;
    int text_hidden;      /* text encoder hidden_size */
    int max_positions;    /* text encoder max_position_embeddings (77) */
} ModelInfo;
int model_info(Model *m, ModelInfo *info, SdcErr *err);

#endif
