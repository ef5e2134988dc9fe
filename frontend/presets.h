/* presets.h — built-in model configurations for `sdc random-model`.
 *
 * Each preset is a set of config files in diffusers' on-disk form, held as
 * JSON text:
 *   tiny  the tiny SD 1.x pipeline of the test fixtures (UNet [32, 64],
 *         VAE [32, 64], a 5-layer 32-wide CLIP text model, vocab 1000)
 *   sd15  runwayml/stable-diffusion-v1-5 (CLIP ViT-L/14 text encoder, PNDM)
 *   sd21  stabilityai/stable-diffusion-2-1 (OpenCLIP-H text encoder as a
 *         CLIPTextModel, linear projections, upcast attention, DDIM with
 *         v_prediction)
 * The model configs are the hub repos' files; model_index.json lists no
 * safety checker or feature extractor because random-model writes neither. */
#ifndef SDC_PRESETS_H
#define SDC_PRESETS_H

/* sub: "unet", "vae", "text_encoder", "scheduler" or "model_index".
 * NULL if the preset or the sub is unknown. */
const char *preset_config_json(const char *preset, const char *sub);

/* 1 if `name` is a preset. */
int preset_exists(const char *name);

/* "tiny, sd15, sd21", for messages. */
const char *preset_names(void);

/* The tokenizer's pad token: "!" for sd21 (as SD 2.x ships it), else
 * "<|endoftext|>".  NULL for an unknown preset. */
const char *preset_pad_token(const char *preset);

#endif
