/* import.h — graphs of the Stable Diffusion components.
 *
 * Each builder reads its (already parsed) config, asks the WeightSet for
 * every parameter and returns a verified-ready graph in fp32.  Inputs and
 * outputs are named after diffusers' forward arguments:
 *   unet          sample [B,C,h,w], timestep [B] (float), encoder_hidden_states [B,L,D] -> out [B,C,h,w]
 *   vae-decoder   latents [B,4,h,w] (already divided by scaling_factor)                 -> out [B,3,H,W]
 *   vae-encoder   sample [B,3,H,W] in [-1,1]                          -> out (mean) [B,4,h,w], logvar
 *   text-encoder  input_ids [B,L] (i64)                                                 -> out [B,L,D]
 * A config field or value the builder does not support is an error naming
 * the file, the field and the value — never a silently different graph. */
#ifndef SDC_IMPORT_H
#define SDC_IMPORT_H

#include "cfg.h"
#include "ir.h"
#include "weights.h"

typedef enum Component { COMP_UNET, COMP_VAE_DECODER, COMP_VAE_ENCODER, COMP_TEXT_ENCODER, COMP_COUNT } Component;

int component_from_name(const char *name, Component *c); /* "unet", "vae-decoder", "vae-encoder", "text-encoder" */
const char *component_name(Component c);

typedef struct ImportShape {
    int batch;
    int64_t height, width; /* the component's own input: latent size for unet/decoder, image size for encoder */
    int seq_len;           /* text length (77) */
    int clip_skip;         /* text encoder: diffusers' clip_skip (0 = last layer) */
} ImportShape;

Graph *build_unet(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err);
Graph *build_vae_decoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err);
Graph *build_vae_encoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err);
Graph *build_text_encoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err);

#endif
