/* presets.c — see presets.h.
 *
 * The JSON below is copied from the configs the models are published with
 * (values are facts about those models; key order as in the hub files).
 * Where the hub file predates a field sdc reads (e.g. the VAE's
 * scaling_factor), the importer's default is the value diffusers uses. */
#include "presets.h"

#include <string.h>

/* ---- shared pieces ------------------------------------------------------ */

/* runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json */
static const char sd15_scheduler[] =
    "{\n"
    "  \"_class_name\": \"PNDMScheduler\",\n"
    "  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"beta_end\": 0.012,\n"
    "  \"beta_schedule\": \"scaled_linear\",\n"
    "  \"beta_start\": 0.00085,\n"
    "  \"num_train_timesteps\": 1000,\n"
    "  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n"
    "  \"trained_betas\": null,\n"
    "  \"clip_sample\": false\n"
    "}\n";

/* ---- tiny: the fixtures' tiny-sd ------------------------------------------- */

static const char tiny_unet[] =
    "{\n"
    "  \"_class_name\": \"UNet2DConditionModel\",\n"
    "  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"addition_embed_type\": null,\n"
    "  \"addition_embed_type_num_heads\": 64,\n"
    "  \"addition_time_embed_dim\": null,\n"
    "  \"attention_head_dim\": 8,\n"
    "  \"attention_type\": \"default\",\n"
    "  \"block_out_channels\": [32, 64],\n"
    "  \"center_input_sample\": false,\n"
    "  \"class_embed_type\": null,\n"
    "  \"class_embeddings_concat\": false,\n"
    "  \"conv_in_kernel\": 3,\n"
    "  \"conv_out_kernel\": 3,\n"
    "  \"cross_attention_dim\": 32,\n"
    "  \"cross_attention_norm\": null,\n"
    "  \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"],\n"
    "  \"downsample_padding\": 1,\n"
    "  \"dropout\": 0.0,\n"
    "  \"dual_cross_attention\": false,\n"
    "  \"encoder_hid_dim\": null,\n"
    "  \"encoder_hid_dim_type\": null,\n"
    "  \"flip_sin_to_cos\": true,\n"
    "  \"freq_shift\": 0,\n"
    "  \"in_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"mid_block_only_cross_attention\": null,\n"
    "  \"mid_block_scale_factor\": 1,\n"
    "  \"mid_block_type\": \"UNetMidBlock2DCrossAttn\",\n"
    "  \"norm_eps\": 1e-05,\n"
    "  \"norm_num_groups\": 16,\n"
    "  \"num_attention_heads\": null,\n"
    "  \"num_class_embeds\": null,\n"
    "  \"only_cross_attention\": false,\n"
    "  \"out_channels\": 4,\n"
    "  \"projection_class_embeddings_input_dim\": null,\n"
    "  \"resnet_out_scale_factor\": 1.0,\n"
    "  \"resnet_skip_time_act\": false,\n"
    "  \"resnet_time_scale_shift\": \"default\",\n"
    "  \"reverse_transformer_layers_per_block\": null,\n"
    "  \"sample_size\": 32,\n"
    "  \"time_cond_proj_dim\": null,\n"
    "  \"time_embedding_act_fn\": null,\n"
    "  \"time_embedding_dim\": null,\n"
    "  \"time_embedding_type\": \"positional\",\n"
    "  \"timestep_post_act\": null,\n"
    "  \"transformer_layers_per_block\": 1,\n"
    "  \"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"],\n"
    "  \"upcast_attention\": false,\n"
    "  \"use_linear_projection\": false\n"
    "}\n";

static const char tiny_vae[] =
    "{\n"
    "  \"_class_name\": \"AutoencoderKL\",\n"
    "  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"block_out_channels\": [32, 64],\n"
    "  \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],\n"
    "  \"force_upcast\": true,\n"
    "  \"in_channels\": 3,\n"
    "  \"latent_channels\": 4,\n"
    "  \"latents_mean\": null,\n"
    "  \"latents_std\": null,\n"
    "  \"layers_per_block\": 1,\n"
    "  \"norm_num_groups\": 16,\n"
    "  \"out_channels\": 3,\n"
    "  \"sample_size\": 64,\n"
    "  \"scaling_factor\": 0.18215,\n"
    "  \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]\n"
    "}\n";

static const char tiny_text_encoder[] =
    "{\n"
    "  \"architectures\": [\"CLIPTextModel\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 0,\n"
    "  \"eos_token_id\": 2,\n"
    "  \"hidden_act\": \"quick_gelu\",\n"
    "  \"hidden_size\": 32,\n"
    "  \"initializer_factor\": 1.0,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 37,\n"
    "  \"layer_norm_eps\": 1e-05,\n"
    "  \"max_position_embeddings\": 77,\n"
    "  \"model_type\": \"clip_text_model\",\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_hidden_layers\": 5,\n"
    "  \"pad_token_id\": 1,\n"
    "  \"projection_dim\": 512,\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"transformers_version\": \"4.40.0.dev0\",\n"
    "  \"vocab_size\": 1000\n"
    "}\n";

static const char tiny_model_index[] =
    "{\n"
    "  \"_class_name\": \"StableDiffusionPipeline\",\n"
    "  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"feature_extractor\": [null, null],\n"
    "  \"image_encoder\": [null, null],\n"
    "  \"requires_safety_checker\": false,\n"
    "  \"safety_checker\": [null, null],\n"
    "  \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n"
    "}\n";

/* ---- sd15: runwayml/stable-diffusion-v1-5 ----------------------------------- */

static const char sd15_unet[] =
    "{\n"
    "  \"_class_name\": \"UNet2DConditionModel\",\n"
    "  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"attention_head_dim\": 8,\n"
    "  \"block_out_channels\": [320, 640, 1280, 1280],\n"
    "  \"center_input_sample\": false,\n"
    "  \"cross_attention_dim\": 768,\n"
    "  \"down_block_types\": [\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"DownBlock2D\"\n"
    "  ],\n"
    "  \"downsample_padding\": 1,\n"
    "  \"flip_sin_to_cos\": true,\n"
    "  \"freq_shift\": 0,\n"
    "  \"in_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"mid_block_scale_factor\": 1,\n"
    "  \"norm_eps\": 1e-05,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"out_channels\": 4,\n"
    "  \"sample_size\": 64,\n"
    "  \"up_block_types\": [\n"
    "    \"UpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\"\n"
    "  ]\n"
    "}\n";

static const char sd15_vae[] =
    "{\n"
    "  \"_class_name\": \"AutoencoderKL\",\n"
    "  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"block_out_channels\": [128, 256, 512, 512],\n"
    "  \"down_block_types\": [\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\"\n"
    "  ],\n"
    "  \"in_channels\": 3,\n"
    "  \"latent_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"out_channels\": 3,\n"
    "  \"sample_size\": 512,\n"
    "  \"up_block_types\": [\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\"\n"
    "  ]\n"
    "}\n";

static const char sd15_text_encoder[] =
    "{\n"
    "  \"_name_or_path\": \"openai/clip-vit-large-patch14\",\n"
    "  \"architectures\": [\n"
    "    \"CLIPTextModel\"\n"
    "  ],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 0,\n"
    "  \"dropout\": 0.0,\n"
    "  \"eos_token_id\": 2,\n"
    "  \"hidden_act\": \"quick_gelu\",\n"
    "  \"hidden_size\": 768,\n"
    "  \"initializer_factor\": 1.0,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 3072,\n"
    "  \"layer_norm_eps\": 1e-05,\n"
    "  \"max_position_embeddings\": 77,\n"
    "  \"model_type\": \"clip_text_model\",\n"
    "  \"num_attention_heads\": 12,\n"
    "  \"num_hidden_layers\": 12,\n"
    "  \"pad_token_id\": 1,\n"
    "  \"projection_dim\": 768,\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"transformers_version\": \"4.22.0.dev0\",\n"
    "  \"vocab_size\": 49408\n"
    "}\n";

static const char sd15_model_index[] =
    "{\n"
    "  \"_class_name\": \"StableDiffusionPipeline\",\n"
    "  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"feature_extractor\": [null, null],\n"
    "  \"requires_safety_checker\": false,\n"
    "  \"safety_checker\": [null, null],\n"
    "  \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n"
    "}\n";

/* ---- sd21: stabilityai/stable-diffusion-2-1 --------------------------------- */

static const char sd21_unet[] =
    "{\n"
    "  \"_class_name\": \"UNet2DConditionModel\",\n"
    "  \"_diffusers_version\": \"0.10.0.dev0\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"attention_head_dim\": [\n"
    "    5,\n"
    "    10,\n"
    "    20,\n"
    "    20\n"
    "  ],\n"
    "  \"block_out_channels\": [\n"
    "    320,\n"
    "    640,\n"
    "    1280,\n"
    "    1280\n"
    "  ],\n"
    "  \"center_input_sample\": false,\n"
    "  \"cross_attention_dim\": 1024,\n"
    "  \"down_block_types\": [\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"CrossAttnDownBlock2D\",\n"
    "    \"DownBlock2D\"\n"
    "  ],\n"
    "  \"downsample_padding\": 1,\n"
    "  \"dual_cross_attention\": false,\n"
    "  \"flip_sin_to_cos\": true,\n"
    "  \"freq_shift\": 0,\n"
    "  \"in_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"mid_block_scale_factor\": 1,\n"
    "  \"norm_eps\": 1e-05,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"num_class_embeds\": null,\n"
    "  \"only_cross_attention\": false,\n"
    "  \"out_channels\": 4,\n"
    "  \"sample_size\": 96,\n"
    "  \"up_block_types\": [\n"
    "    \"UpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\",\n"
    "    \"CrossAttnUpBlock2D\"\n"
    "  ],\n"
    "  \"upcast_attention\": true,\n"
    "  \"use_linear_projection\": true\n"
    "}\n";

static const char sd21_vae[] =
    "{\n"
    "  \"_class_name\": \"AutoencoderKL\",\n"
    "  \"_diffusers_version\": \"0.10.0.dev0\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"block_out_channels\": [\n"
    "    128,\n"
    "    256,\n"
    "    512,\n"
    "    512\n"
    "  ],\n"
    "  \"down_block_types\": [\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\",\n"
    "    \"DownEncoderBlock2D\"\n"
    "  ],\n"
    "  \"in_channels\": 3,\n"
    "  \"latent_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"out_channels\": 3,\n"
    "  \"sample_size\": 768,\n"
    "  \"up_block_types\": [\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\",\n"
    "    \"UpDecoderBlock2D\"\n"
    "  ]\n"
    "}\n";

static const char sd21_text_encoder[] =
    "{\n"
    "  \"_name_or_path\": \"hf-models/stable-diffusion-v2-768x768/text_encoder\",\n"
    "  \"architectures\": [\n"
    "    \"CLIPTextModel\"\n"
    "  ],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 0,\n"
    "  \"dropout\": 0.0,\n"
    "  \"eos_token_id\": 2,\n"
    "  \"hidden_act\": \"gelu\",\n"
    "  \"hidden_size\": 1024,\n"
    "  \"initializer_factor\": 1.0,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 4096,\n"
    "  \"layer_norm_eps\": 1e-05,\n"
    "  \"max_position_embeddings\": 77,\n"
    "  \"model_type\": \"clip_text_model\",\n"
    "  \"num_attention_heads\": 16,\n"
    "  \"num_hidden_layers\": 23,\n"
    "  \"pad_token_id\": 1,\n"
    "  \"projection_dim\": 512,\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"transformers_version\": \"4.25.0.dev0\",\n"
    "  \"vocab_size\": 49408\n"
    "}\n";

static const char sd21_scheduler[] =
    "{\n"
    "  \"_class_name\": \"DDIMScheduler\",\n"
    "  \"_diffusers_version\": \"0.8.0\",\n"
    "  \"beta_end\": 0.012,\n"
    "  \"beta_schedule\": \"scaled_linear\",\n"
    "  \"beta_start\": 0.00085,\n"
    "  \"clip_sample\": false,\n"
    "  \"num_train_timesteps\": 1000,\n"
    "  \"prediction_type\": \"v_prediction\",\n"
    "  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n"
    "  \"trained_betas\": null\n"
    "}\n";

static const char sd21_model_index[] =
    "{\n"
    "  \"_class_name\": \"StableDiffusionPipeline\",\n"
    "  \"_diffusers_version\": \"0.10.0.dev0\",\n"
    "  \"feature_extractor\": [null, null],\n"
    "  \"requires_safety_checker\": false,\n"
    "  \"safety_checker\": [null, null],\n"
    "  \"scheduler\": [\"diffusers\", \"DDIMScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n"
    "}\n";

/* ---- the table ---------------------------------------------------------------- */

typedef struct Preset {
    const char *name;
    const char *unet, *vae, *text_encoder, *scheduler, *model_index;
    const char *pad_token;
} Preset;

static const Preset presets[] = {
    {"tiny", tiny_unet, tiny_vae, tiny_text_encoder, sd15_scheduler, tiny_model_index, "<|endoftext|>"},
    {"sd15", sd15_unet, sd15_vae, sd15_text_encoder, sd15_scheduler, sd15_model_index, "<|endoftext|>"},
    {"sd21", sd21_unet, sd21_vae, sd21_text_encoder, sd21_scheduler, sd21_model_index, "!"},
};

static const Preset *find_preset(const char *name)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

int preset_exists(const char *name) { return find_preset(name) != NULL; }

const char *preset_names(void) { return "tiny, sd15, sd21"; }

const char *preset_pad_token(const char *preset)
{
    const Preset *p = find_preset(preset);
    return p ? p->pad_token : NULL;
}

const char *preset_config_json(const char *preset, const char *sub)
{
    const Preset *p = find_preset(preset);
    if (!p || !sub) return NULL;
    if (strcmp(sub, "unet") == 0) return p->unet;
    if (strcmp(sub, "vae") == 0) return p->vae;
    if (strcmp(sub, "text_encoder") == 0) return p->text_encoder;
    if (strcmp(sub, "scheduler") == 0) return p->scheduler;
    if (strcmp(sub, "model_index") == 0) return p->model_index;
    return NULL;
}
