/* ldm.h — single-file checkpoints with the original LDM key names.
 *
 * A .safetensors file holding model.diffusion_model.* (UNet),
 * first_stage_model.* (VAE) and cond_stage_model.transformer.* (CLIP text
 * model) keys, as the CompVis / A1111 ecosystem distributes SD 1.x.  The
 * SD 1.x configs are inferred from tensor shapes and the names are mapped to
 * diffusers' layout, so the same graph builders serve both forms. */
#ifndef SDC_LDM_H
#define SDC_LDM_H

#include "safetensors.h"
#include "weights.h"

typedef struct LdmCheckpoint {
    char *path;
    StFile file;       /* opened once to inspect shapes */
    char *config[3];   /* JSON text: unet, vae, text_encoder (diffusers config.json form) */
    void *maps[3];     /* name maps per component (private to ldm.c) */
} LdmCheckpoint;

/* 1 if the file looks like an LDM checkpoint (has model.diffusion_model.* keys). */
int ldm_detect(const StFile *f);
/* Infers the configs and builds the name maps; refuses SD 2.x (OpenCLIP
 * text encoder) and other architectures with a clear message. */
int ldm_open(LdmCheckpoint *c, const char *path, SdcErr *err);
void ldm_close(LdmCheckpoint *c);
/* sub: "unet", "vae" or "text_encoder". */
const char *ldm_config_json(const LdmCheckpoint *c, const char *sub);
/* Opens the file as this component's WeightSet with the name translation. */
int ldm_weights(LdmCheckpoint *c, const char *sub, WeightSet *ws, SdcErr *err);

/* ---- names without a checkpoint --------------------------------------------
 * What a single-file checkpoint of a given model calls each diffusers
 * parameter, from the structure alone (no file): the same rename tables as
 * above.  Used for LoRA keys in LDM naming, for Merge Block Weighted (which
 * counts input_blocks / middle_block / output_blocks), and for writing a
 * diffusers model as one file. */
#define LDM_MAX_LEVELS 8

typedef struct LdmLayout {
    int unet_levels;                  /* len(block_out_channels); 0: no UNet map */
    int unet_layers;                  /* resnets per down block (the same at every level) */
    int attn_down[LDM_MAX_LEVELS];    /* down block i has transformers */
    int attn_up[LDM_MAX_LEVELS];      /* up block i has transformers */
    int vae_levels, vae_layers;       /* 0: no VAE map */
} LdmLayout;

typedef struct LdmNames {
    void *maps[3]; /* unet, vae, text_encoder (private to ldm.c) */
} LdmNames;

void ldm_names_init(LdmNames *n, const LdmLayout *l);
/* sub: "unet", "vae" or "text_encoder"; name: a diffusers parameter name.
 * Writes the single-file name (with its prefix, e.g. model.diffusion_model.)
 * and returns 0, or -1 if it has none.  *view (may be NULL) is set when the
 * file stores this linear as a 1x1 conv ([C, C] -> [C, C, 1, 1]). */
int ldm_names_get(const LdmNames *n, const char *sub, const char *name, char *out, size_t len, int *view);
void ldm_names_free(LdmNames *n);

#endif
