/* random_model.h — complete diffusers model folders with seeded random weights.
 *
 * `sdc random-model` makes test models of any architecture sdc imports,
 * without downloading anything: the configs come from a preset (presets.h)
 * or from a folder of config.json files, the list of tensors comes from the
 * graph builders themselves (WeightSet collect mode: every parameter a
 * builder asks for, with its kind and shape), and the weights are drawn
 * from a seeded generator.  So the tensors written are exactly the tensors
 * the importer binds — no second copy of the architecture to drift.
 *
 * Weights (float32 drawn, then stored as f32 or f16), per WeightKind:
 *   WK_MATRIX      N(0, 1/fan_in), fan_in = product of all dims but the first
 *   WK_BIAS        N(0, 0.05^2)
 *   WK_NORM_SCALE  1 + N(0, 0.1^2)
 *   WK_NORM_SHIFT  N(0, 0.05^2)
 *   WK_EMBEDDING   N(0, 1/2): a token row plus a position row then has unit
 *                  variance, the scale the matrices above preserve (CLIP's
 *                  own 0.02 would leave the embeddings negligible next to
 *                  the first layer's O(1) residual branch)
 * Every tensor is thus non-zero and every path of the model is exercised.
 *
 * The generator: each tensor is cut into chunks of RM_CHUNK elements; chunk
 * c of tensor `name` seeds a xoshiro256** state by splitmix64 from
 * (seed, FNV-1a(name), c), and normals come from Box-Muller on pairs of
 * 53-bit uniforms (in double, rounded to float).  A tensor's bytes therefore
 * depend only on (seed, name, kind, shape) — not on the order of tensors,
 * nor on the number of threads that fill the chunks. */
#ifndef SDC_RANDOM_MODEL_H
#define SDC_RANDOM_MODEL_H

#include <stdint.h>

#include "dtype.h"
#include "err.h"
#include "weights.h"

#define RM_CHUNK 65536 /* elements per independently seeded chunk */

/* The components that have weight files. */
typedef enum RmComponent { RM_UNET, RM_VAE, RM_TEXT_ENCODER, RM_NCOMP } RmComponent;

/* The config files of a model folder. */
typedef enum RmConfig {
    RM_CFG_UNET,
    RM_CFG_VAE,
    RM_CFG_TEXT_ENCODER,
    RM_CFG_SCHEDULER,
    RM_CFG_MODEL_INDEX,
    RM_NCFG
} RmConfig;

/* Everything a model folder needs, decided from the configs alone. */
typedef struct RandomModelPlan {
    char *config[RM_NCFG];      /* JSON text as it will be written */
    int ntensors[RM_NCOMP];
    WeightReq *tensors[RM_NCOMP]; /* sorted by name, each name once */
    int64_t params[RM_NCOMP];   /* elements over all tensors of the component */
    int vocab_size;             /* text encoder's vocab_size */
    int max_length;             /* text encoder's max_position_embeddings */
    char *pad_token;            /* the tokenizer's pad token */
} RandomModelPlan;

/* "unet", "vae", "text_encoder" and their weight files' names. */
const char *rm_component_dir(RmComponent c);
const char *rm_component_file(RmComponent c);

/* Reads the configs of a preset or a folder (presets win: "tiny" is the
 * preset even if ./tiny exists; write ./tiny for the folder) and collects
 * the tensors each component's graph binds.  A folder must hold
 * unet/config.json, vae/config.json and text_encoder/config.json;
 * scheduler/scheduler_config.json and model_index.json are taken when
 * present, else SD 1.5's.  model_index.json is rewritten to list exactly
 * the components written (safety checker and feature extractor: null). */
int random_model_plan(const char *preset_or_dir, RandomModelPlan *p, SdcErr *err);
void random_model_plan_free(RandomModelPlan *p);

/* The values of one tensor: out[numel] (see the top of the file). */
void random_tensor_fill(uint64_t seed, const WeightReq *r, float *out);

typedef struct RandomModelOptions {
    uint64_t seed;
    DType dtype; /* DT_F32 or DT_F16 */
    int quiet;   /* no progress on stderr */
    int force;   /* replace an existing model folder at out_dir */
} RandomModelOptions;

/* Writes the folder: unet/, vae/, text_encoder/ (config.json and weights),
 * scheduler/scheduler_config.json, tokenizer/ (synthesised, see below),
 * model_index.json.  It is built in "<out_dir>.tmp.<pid>" and renamed into
 * place at the end; an existing out_dir must be empty, or (with force) a
 * model folder (it has model_index.json or unet/), which is then replaced.
 * One tensor is in memory at a time. */
int random_model_write_opts(const char *preset_or_dir, const char *out_dir, const RandomModelOptions *o, SdcErr *err);
/* The same with force off. */
int random_model_write(const char *preset_or_dir, const char *out_dir, uint64_t seed, DType dtype, int quiet,
                       SdcErr *err);

/* ---- tokenizer_synth.c -----------------------------------------------------
 * A CLIP-format BPE tokenizer without CLIP's vocabulary (which cannot be
 * downloaded here): the 256 byte symbols and the 256 byte+"</w>" symbols in
 * the order openai/CLIP's SimpleTokenizer lists them (bytes_to_unicode),
 * then merges learned by plain BPE on a few KB of built-in prompt-like
 * English, then <|startoftext|> and <|endoftext|>: at most
 * min(vocab_size - 514, RM_TOK_MAX_MERGES) merges, so that every id fits the
 * text encoder's embedding table.  Writes vocab.json, merges.txt
 * ("#version: 0.2" first), tokenizer_config.json and
 * special_tokens_map.json into dir (which must exist). */
#define RM_TOK_MAX_MERGES 2000
int tokenizer_synth_write(const char *dir, int vocab_size, int max_length, const char *pad_token, SdcErr *err);

#endif
