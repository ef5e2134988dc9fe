/* pipeline_internal.h — what the files of pipeline_main share (not for
 * generated code): the parsed flags (pipeline_args.c), per-generation
 * timings and the --bench report (pipeline_bench.c). */
#ifndef SDC_PIPELINE_INTERNAL_H
#define SDC_PIPELINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "pipeline.h"

#define PIPELINE_DEFAULT_OUT "out.png"
#define PIPELINE_DEFAULT_STRENGTH 0.8 /* diffusers' img2img default */
#define PIPELINE_BENCH_PROMPT "a photograph of an astronaut riding a horse"
#define PIPELINE_MAX_THREADS 4096
#define PIPELINE_MAX_BENCH 100000

typedef struct PipelineArgs {
    const char *prompt;       /* NULL: not given */
    const char *negative;     /* "" by default */
    uint64_t seed;
    const char *out;          /* PIPELINE_DEFAULT_OUT unless given */
    int out_given;
    const char *save_latents; /* NULL: not asked for */
    const char *init_image;   /* NULL: text-to-image */
    double strength;          /* img2img, (0, 1] */
    int threads;              /* 0: all cores */
    int bench;                /* timed runs; 0: no benchmark */
    const char *weights;      /* NULL: embedded, else <exe>.weights */
    int quiet;
    int help;
} PipelineArgs;

/* Reads argv[1..argc-1] into a (defaults first).  A bad flag gives -1 and a
 * message naming it ("--seed: \"abc\" is not an unsigned integer"). */
int pipeline_args_parse(PipelineArgs *a, int argc, char **argv, SdcErr *err);
void pipeline_usage(FILE *f, const char *prog, const SdcPipeline *p);

/* Writes --save-latents (latents: [batch][C][h][w]) and, if with_images,
 * the batch's PNGs (rgb: [batch][H][W][3]) to --out, FILE-1.png, ...  On
 * failure nothing is left at any output path. */
int pipeline_write_outputs(const SdcPipeline *p, const PipelineArgs *a, const float *latents, const uint8_t *rgb,
                           int with_images, SdcErr *err);

/* Seconds spent in one generation. */
typedef struct PipelineTimes {
    double text_encoder; /* all text encoder calls */
    double vae_encoder;  /* img2img only */
    double vae_decoder;
    double total;        /* tokens to RGB bytes */
    double *unet_step;   /* [n_steps] UNet calls of each denoising step */
    int n_steps;
} PipelineTimes;

/* The --bench accumulator over the timed runs. */
typedef struct BenchStats {
    int runs;
    double text_encoder, vae_encoder, vae_decoder, total; /* sums over runs */
    double step_sum, step_min, step_max;
    int64_t n_step_samples;
    double ready;        /* seconds from pipeline_main's start to the first UNet call */
    int img2img;
    /* graph calls per generation, for GFLOP/s */
    int text_encoder_calls, unet_calls, vae_decoder_calls, vae_encoder_calls;
    uint64_t image_checksum, latents_checksum; /* of the last run */
    int deterministic;   /* every run gave the warm-up's checksums */
} BenchStats;

void bench_stats_init(BenchStats *b);
void bench_stats_add(BenchStats *b, const PipelineTimes *t);
/* Allocates the per-node accumulators for the graphs of p and zeroes them. */
void bench_prof_start(const SdcPipeline *p);
void bench_prof_stop(void);
/* The JSON report (keys in pipeline_bench.c). */
void bench_print_json(FILE *f, const SdcPipeline *p, const PipelineArgs *a, const BenchStats *b);

/* FNV-1a, 64 bits, continuing from h (start with FNV1A64_INIT). */
#define FNV1A64_INIT 0xcbf29ce484222325ull
uint64_t fnv1a64(uint64_t h, const void *data, size_t n);

#endif
