/* pass.h — passes and the pass manager.
 *
 * A pass is a function from graph to graph with a name: it rewrites the
 * graph in place and counts what it changed in named counters.  The
 * manager runs a list of passes, verifies after each one (a failure names
 * the pass), prints the IR after the passes asked for, and times them. */
#ifndef SDC_PASS_H
#define SDC_PASS_H

#include "ir.h"

#define PASS_MAX_COUNTERS 8

typedef struct PassCounters {
    int n;
    const char *name[PASS_MAX_COUNTERS];
    int64_t value[PASS_MAX_COUNTERS];
} PassCounters;

/* Adds v to the counter `name` (a string literal). */
void pass_count(PassCounters *c, const char *name, int64_t v);

typedef struct PassOptions PassOptions;

/* Returns 0, or -1 with a message (a pass may refuse a graph). */
typedef int (*PassFn)(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);

typedef struct Pass {
    const char *name;
    const char *summary; /* one line */
    PassFn run;
} Pass;

/* The registry (passes/registry.c). */
const Pass *pass_find(const char *name);
int pass_count_registered(void);
const Pass *pass_at(int i);
/* The default pipeline for a compile, comma-separated. */
const char *pass_default_pipeline(void);

/* What the manager was asked to do. */
struct PassOptions {
    const char *pipeline;       /* comma-separated pass names; NULL = default */
    const char *disabled;       /* comma-separated names to skip */
    const char *print_after;    /* a pass name, or "all" */
    int timing;                 /* print per-pass time and counters to `report` */
    int verify;                 /* verify after each pass (tests, debug) */
    FILE *ir_out;               /* where --print-ir-after goes (stdout by default) */
    FILE *report;               /* where timing goes (stderr by default) */
    /* A folder where passes that compute new constants (folded weights,
     * per-step tables) write them as safetensors files; the constant nodes
     * then point there.  NULL: such passes do nothing (sdc opt, tests). */
    const char *scratch_dir;
    /* The sampler's timesteps when they are fixed (sdc compile): passes
     * that specialise on the step read them.  n_steps == 0: unknown. */
    int n_steps;
    const float *timesteps;
    /* LoRA files and multipliers to fold into the weights (fold-lora). */
    int nloras;
    const char *const *lora_files;
    const double *lora_mults;
};

/* Checks that every name in a comma-separated list is a registered pass. */
int pass_check_list(const char *list, const char *what, SdcErr *err);
/* Runs the pipeline on g. */
int pass_run_pipeline(Graph *g, const PassOptions *opt, SdcErr *err);
/* -1 when LoRAs are given but the pipeline would not run fold-lora. */
int pass_fold_lora_check(const PassOptions *opt, SdcErr *err);

#endif
