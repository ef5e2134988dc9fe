/* pipeline.h — what a compiled text-to-image executable is made of.
 *
 * The C backend emits one function per graph (text encoder, UNet, VAE
 * decoder, VAE encoder) with every shape and buffer offset a constant, the
 * sampler's tables, and an SdcPipeline describing them; its main() calls
 * pipeline_main(), which is the same for every model: flags, weights,
 * tokenizer, seeded noise, the sampling loop with classifier-free guidance,
 * VAE decoding, PNG writing, benchmarks.  Keeping this loop in the runtime
 * keeps generated code to the graphs alone and lets the loop be tested on
 * its own. */
#ifndef SDC_PIPELINE_H
#define SDC_PIPELINE_H

#include <stdint.h>

#include "scheduler.h"

/* A compiled graph.  inputs/outputs are float32 (or int64 for token ids)
 * buffers in graph input/output order; arena has arena_bytes of scratch;
 * weights is the base of the mmap-ed weights file (offsets are absolute). */
typedef void (*SdcGraphFn)(uint8_t *arena, const uint8_t *weights, void *const *inputs, void *const *outputs);

#define SDC_GRAPH_MAX_IO 4

typedef struct SdcGraphInfo {
    const char *name;     /* "unet" */
    SdcGraphFn run;       /* NULL if the executable does not have this graph */
    uint64_t arena_bytes; /* planned activation peak */
    double flops;         /* per call */
    int nin, nout;
    int64_t in_numel[SDC_GRAPH_MAX_IO], out_numel[SDC_GRAPH_MAX_IO];
    /* per-node profile: when sdc_prof_on is set, the emitted code times each
     * node and calls sdc_prof_node(graph index, node, seconds) (see below) */
    int nnodes;
    const char *const *node_names; /* [nnodes] "%name = op" for the slowest-node report */
    const unsigned char *node_kind; /* [nnodes] OpKind of each profiled node */
    const double *node_flops;       /* [nnodes] FLOPs of each profiled node per call */
} SdcGraphInfo;

typedef struct SdcPipeline {
    const char *model;        /* where it was compiled from */
    const char *sdc_version;
    const char *options;      /* the compile options, for the PNG text chunk and reports */
    int width, height;        /* image size in pixels */
    int batch;                /* images per prompt */
    int latent_c, latent_h, latent_w;
    int seq_len, text_dim;    /* 77, hidden size of the text encoder */
    float guidance;           /* classifier-free guidance scale; <= 1 turns guidance off */
    float scaling_factor;     /* vae scaling_factor */
    int clip_skip;
    SchedPlan sched;          /* every table computed at compile time */
    /* text encoder: input_ids [2 or 1, seq_len] i64 -> [2 or 1, seq_len, text_dim]  ([negative, prompt])
     * unet: sample [2B or B, C, h, w], timestep [2B or B], encoder_hidden_states -> [same as sample]
     * vae_decoder: latents [B, C, h, w] -> image [B, 3, H, W]
     * vae_encoder: image [B, 3, H, W] -> mean, logvar [B, C, h, w] */
    SdcGraphInfo text_encoder, unet, vae_decoder, vae_encoder;
    uint64_t weights_id;      /* must equal the weights file's "sdc.weights_id" metadata */
    const unsigned char *embedded_weights; /* whole weights file when compiled with --embed-weights */
    uint64_t embedded_size;
    /* names of the OpKind values in node_kind, for the --bench op profile;
     * NULL (or a kind >= n_op_kinds) prints the number alone */
    const char *const *op_kind_names;
    int n_op_kinds;
} SdcPipeline;

/* The graph argument of sdc_prof_node. */
enum {
    SDC_GRAPH_TEXT_ENCODER = 0,
    SDC_GRAPH_UNET = 1,
    SDC_GRAPH_VAE_DECODER = 2,
    SDC_GRAPH_VAE_ENCODER = 3,
    SDC_GRAPH_COUNT
};

/* The text of a weights file's "sdc.weights_id" metadata for an id: 16
 * lowercase hex digits, zero-padded ("00ab12...").  The compiler writes the
 * metadata with this function and the executable compares its own id,
 * formatted the same way, with the file's. */
void pipeline_weights_id_str(uint64_t id, char buf[32]);

/* The executable's main:
 *   EXE --prompt TEXT [--negative TEXT] [--seed N] [--out FILE.png]
 *       [--save-latents FILE.safetensors] [--init-image FILE.png [--strength S]]
 *       [--threads N] [--bench N] [--weights PATH] [--quiet] [--help]
 * Weights: PATH, or the embedded copy, or "<executable>.weights" by default
 * (the executable's real path, from /proc/self/exe).  The weights file's
 * metadata carries the tokenizer: sdc.weights_id, sdc.vocab_json,
 * sdc.merges_txt, sdc.pad_token, sdc.max_length (= seq_len).
 * With batch B > 1 the images go to FILE.png, FILE-1.png, ... FILE-(B-1).png.
 * SDC_RNG=scalar in the environment draws noise with PyTorch's scalar randn
 * kernel instead of its AVX2 one (the default; what diffusers gives on
 * AVX2/AVX-512 machines).
 * Returns the process exit status (0, or 1 after one line on stderr); never
 * calls exit(), so tests may call it in-process.  The --bench JSON report's
 * keys are listed in pipeline_bench.c. */
int pipeline_main(const SdcPipeline *p, int argc, char **argv);

/* Per-node profiling hooks for generated code (cheap when off): --bench
 * turns sdc_prof_on on for its timed runs.  Call sdc_prof_node from the
 * thread that called the graph function (not from inside a parallel
 * region); out-of-range graph/node indices are ignored. */
extern int sdc_prof_on;
void sdc_prof_node(int graph, int node, double seconds);
double sdc_prof_now(void);

#endif
