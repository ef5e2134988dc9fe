/* merge_internal.h — what merge.c (reading, combining) and merge_out.c
 * (writing) share; not an interface for anything else. */
#ifndef SDC_MERGE_INTERNAL_H
#define SDC_MERGE_INTERNAL_H

#include "lora.h"
#include "merge.h"
#include "model.h"

#define NIN 3   /* A, B, C */
#define NPART 4 /* unet, vae, text_encoder, text_encoder_2 */

typedef struct Part {
    const char *sub; /* "unet", ...; NULL for a single file */
    WeightSet ws[NIN];
    int nfiles[NIN];
    const StFile *files[NIN][WS_MAX_FILES];
} Part;

/* One LoRA module applied to one tensor of A (named by its bytes). */
typedef struct Target {
    char *file;
    uint64_t offset;
    int lora, module;
} Target;

typedef struct Merge {
    const MergeOptions *o;
    int nin; /* 1: LoRAs only, 2: weighted sum, 3: add-difference */
    const char *arg[NIN];
    Model m[NIN];
    int opened[NIN];
    int single_in, single_out;
    int nparts;
    Part part[NPART];
    LdmNames names; /* A's single-file names (folders: for MBW and a single-file output) */
    int have_names;
    LoraFile *lora;
    int nlora;
    Target *targets;
    int ntargets;
    int64_t changed_by_lora, written;
    char recipe[1024];
} Merge;

/* One output tensor: A's tensor and how it is written. */
typedef struct Item {
    const Part *p;
    const StFile *fa;
    const StTensor *ta;
    char *name; /* in the output */
    StDesc desc;
} Item;

/* The dtypes a merge computes in (others are copied from A). */
static inline int merge_is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16; }

/* merge.c */
const Part *merge_find_part(const Merge *mg, const char *sub);
/* The output bytes of one item (xmalloc-ed): A (B, C) combined, LoRAs added, converted. */
int merge_compute(Merge *mg, const Item *it, void **bytes, SdcErr *err);

/* merge_out.c */
int merge_write_folder(Merge *mg, const char *tmp, SdcErr *err);
int merge_write_single(Merge *mg, SdcErr *err);
/* Removes a file or a folder and everything under it (best effort). */
void merge_remove_tree(const char *path);
/* Moves tmp to out; an existing out (allowed by the caller) is replaced. */
int merge_commit(const char *tmp, const char *out, SdcErr *err);

#endif
