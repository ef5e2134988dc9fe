/* merge.h — `sdc merge`: new models from models and LoRAs.
 *
 *   SD + SD      weighted sum  (1 - a) * A + a * B
 *                add-difference A + a * (B - C)
 *   SD + LoRA    W += mult * (alpha / rank) * up @ down on every targeted weight
 *   LoRA + LoRA  one LoRA file: ranks concatenated (exact) or re-factored to a
 *                target rank by SVD (lora_merge.c)
 * With Merge Block Weighted (mbw.c) `a` (or a LoRA's multiplier) depends on
 * the UNet block a tensor belongs to; tensors outside the UNet take the base
 * weight.
 *
 * Everything is computed in float32 and written in the dtype asked for
 * (default: each tensor's dtype in the first model).  Inputs are read
 * through mmap and the output is streamed tensor by tensor, so memory stays
 * near the size of the largest tensor, not of a model.  The output goes to a
 * temporary name and is renamed into place only when complete. */
#ifndef SDC_MERGE_H
#define SDC_MERGE_H

#include "dtype.h"
#include "err.h"
#include "ldm.h"

/* ---- mbw.c: Merge Block Weighted ---------------------------------------------
 * 25 weights as the community's MBW tools count the UNet of a single-file
 * checkpoint: IN00-IN11 = input_blocks.0-11 (time_embed counts as IN00),
 * M00 = middle_block, OUT00-OUT11 = output_blocks.0-11 (the final norm and
 * conv, out.*, count as OUT11). */
#define MBW_NBLOCKS 25
#define MBW_M00 12
#define MBW_OUT00 13

/* "w0,w1,...,w24": exactly 25 numbers. */
int mbw_parse(const char *list, double *w, SdcErr *err);
/* "IN00", "M00", "OUT11". */
const char *mbw_block_name(int block, char *buf, size_t len);
/* The block of a UNet parameter by its single-file name (with or without
 * "model.diffusion_model."), or -1 when it is in none of the 25. */
int mbw_block_of(const char *ldm_name);
/* The LDM layout of the UNet ("unet") or VAE ("vae") read from their
 * diffusers parameter names; -1 when they do not follow SD's pattern (the
 * same number of resnets in every down block). */
int ldm_layout_from_names(LdmLayout *l, const char *sub, int n, const char *const *names);

/* ---- merge.c -------------------------------------------------------------------- */

typedef struct MergeOptions {
    const char *a;           /* the base model (diffusers folder or single file) */
    const char *b;           /* --with: NULL for LoRA-only */
    const char *c;           /* --minus: add-difference */
    double alpha;            /* when !use_mbw */
    int use_mbw;
    double mbw[MBW_NBLOCKS]; /* block weights: merge ratios, or LoRA strengths without b */
    double base_alpha;       /* outside the UNet, with use_mbw */
    int nloras;
    const char *const *lora_files;
    const double *lora_mults;
    const char *out;         /* a folder, or a single file when it ends in .safetensors */
    int dtype_set;
    DType dtype;             /* output element type when dtype_set */
    int force;               /* replace an existing output (never an input) */
    int quiet;               /* no progress on stderr */
} MergeOptions;

int sdc_merge(const MergeOptions *o, SdcErr *err);

/* ---- lora_merge.c: LoRA + LoRA ---------------------------------------------------------- */

typedef struct LoraMergeOptions {
    int n;
    const char *const *files;
    const double *mults;
    const char *out;  /* .safetensors */
    int rank;         /* 0: concatenate the ranks (exact); else re-factor to at most this rank */
    int dtype_set;
    DType dtype;      /* default: the first LoRA's up dtype */
    int force;
} LoraMergeOptions;

typedef struct LoraMergeReport {
    int modules;
    int max_rank;        /* of the result */
    double rel_err;      /* ||sum of deltas - result||_F / ||sum of deltas||_F over all modules */
    double worst_err;    /* the largest per-module relative error */
    char worst[256];     /* its module key */
} LoraMergeReport;

int lora_merge(const LoraMergeOptions *o, LoraMergeReport *r, SdcErr *err);

#endif
