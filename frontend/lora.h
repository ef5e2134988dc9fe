/* lora.h — LoRA files: reading them and finding the weights they change.
 *
 * A LoRA holds, per adapted layer ("module"), a down and an up matrix and
 * optionally an alpha; the layer's weight W [out, in(, kh, kw)] becomes
 *     W' = W + mult * (alpha / rank) * up @ down
 * with down [rank, in(, kh, kw)] flattened to [rank, fan] and up
 * [out, rank(, 1, 1)].  This covers linear layers, 1x1 convs and LoCon's
 * kxk convs (the kernel lives in down).  No alpha means alpha = rank.
 *
 * Key formats read (the module key is what precedes the suffix):
 *   kohya             lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha
 *                     lora_te_<module> (lora_te1_, lora_te2_ for a second text encoder);
 *                     <module> is the diffusers name with '.' -> '_'
 *                     (down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q)
 *                     or, for the UNet, the single-file (LDM) name the same way
 *                     (input_blocks_1_1_transformer_blocks_0_attn1_to_q)
 *   diffusers / PEFT  unet.<module>.lora_A.weight / .lora_B.weight (/ .alpha),
 *                     text_encoder.<module>...; older diffusers
 *                     <module>.lora.down.weight / .lora.up.weight and the
 *                     attention-processor form attn1.processor.to_q_lora.down.weight
 * Underscored names cannot be split back into dotted ones, so a module is
 * resolved against the parameter names of the model it is applied to:
 * every parameter name is turned into each form and looked up.  Keys that
 * fit no format, and modules that match no parameter, are errors that list
 * them — never skipped. */
#ifndef SDC_LORA_H
#define SDC_LORA_H

#include "ldm.h"
#include "safetensors.h"

#define LORA_REPORT 4 /* names listed per problem before "and N more" */

typedef struct LoraModule {
    char *key;   /* module key without suffix, as in the file (processor form normalised) */
    char *comp;  /* "unet", "text_encoder", "text_encoder_2" */
    char *name;  /* the key after the component prefix */
    int kohya;   /* name is underscored (kohya); else dotted */
    const StTensor *down, *up, *alpha;
    int rank;
    int64_t out, fan; /* the delta is [out, fan]: fan = in * kh * kw */
    int kh, kw;       /* down's kernel (1, 1 for linears) */
    int conv;         /* down has 4 dims */
    double alpha_val; /* alpha (rank when absent) */
    double scale;     /* alpha / rank */
} LoraModule;

typedef struct LoraFile {
    char *path;
    StFile f;
    int n;
    LoraModule *mod; /* sorted by key */
} LoraFile;

/* Opens and checks a LoRA file: every key must belong to a module in a
 * known format, every module needs down and up of matching rank. */
int lora_open(LoraFile *l, const char *path, SdcErr *err);
void lora_close(LoraFile *l);

/* "FILE" or "FILE:MULT" (the multiplier after the last colon, default 1). */
int lora_spec_parse(const char *spec, char **file, double *mult, SdcErr *err);

/* 0 if every module belongs to one of comps (NULL-terminated), else -1
 * naming the others (what the model has is listed in the message). */
int lora_check_components(const LoraFile *l, const char *const *comps, SdcErr *err);

/* A parameter a LoRA may change: its diffusers name and shape. */
typedef struct LoraParam {
    const char *name;
    int ndim;
    const int64_t *shape;
} LoraParam;

/* For the modules of component `comp`: target[k] = index into params of
 * the weight module k changes; -1 for modules of other components.  -1 with
 * a message listing the modules of comp that match no parameter or whose
 * shape does not fit it. */
int lora_resolve(const LoraFile *l, const char *comp, int nparam, const LoraParam *params, int *target,
                 SdcErr *err);

/* The module's factors in float32: down[rank * fan], up[out * rank]. */
int lora_read_factors(const LoraFile *l, const LoraModule *m, float **down, float **up, SdcErr *err);

/* w[out * fan] += mult * scale * up @ down: products summed in double and
 * each element rounded to float once.  The one implementation that
 * `sdc merge` and the fold-lora pass share, so both give the same bits. */
int lora_add_delta(const LoraFile *l, const LoraModule *m, double mult, float *w, SdcErr *err);

/* kohya's spelling of a module: "lora_unet_" / "lora_te_" / "lora_te2_"
 * followed by the name with '.' -> '_'.  -1 for a component kohya has no
 * prefix for. */
int lora_kohya_key(const LoraModule *m, char *out, size_t len);

#endif
