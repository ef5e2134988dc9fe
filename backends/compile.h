/* compile.h — `sdc compile`: a model and fixed options in, a standalone
 * text-to-image executable out (plus its weights file next to it). */
#ifndef SDC_COMPILE_H
#define SDC_COMPILE_H

#include <stdint.h>

#include "dtype.h"
#include "err.h"

typedef struct CompileOptions {
    const char *model;     /* diffusers folder or .safetensors checkpoint */
    const char *out;       /* executable path; weights go to "<out>.weights" */
    const char *sampler;   /* NULL: the scheduler config's class */
    const char *backend;   /* "c" */
    const char *passes;    /* NULL: the default pipeline */
    const char *disabled;  /* passes to skip */
    const char *print_after;
    const char *variant;   /* weight file variant, e.g. "fp16" */
    const char *tokenizer; /* tokenizer folder override (single-file checkpoints) */
    const char *cc;        /* C compiler (default: $CC or cc) */
    int width, height, steps, batch, clip_skip;
    double guidance, eta;
    DType weights_dtype; /* storage of the packed GEMM weights: DT_F32 (default), DT_F16 or DT_BF16 */
    int embed_weights; /* put the weights inside the executable */
    int keep_c;        /* keep "<out>.c" */
    int quiet, timing;
    uint64_t max_memory; /* bytes; 0: no limit.  The plan's activations + weights must fit */
    int nloras;                    /* LoRAs folded into the weights (pass fold-lora) */
    const char *const *lora_files;
    const double *lora_mults;
} CompileOptions;

void compile_options_default(CompileOptions *o);
int sdc_compile(const CompileOptions *o, SdcErr *err);
/* One IR file (o->model) into an executable that reads inputs and writes
 * outputs as safetensors: how backends are tested against the interpreter. */
int sdc_compile_graph(const CompileOptions *o, SdcErr *err);

#endif
