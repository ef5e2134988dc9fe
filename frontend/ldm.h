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

#endif
