/* cmd_compile.c — `sdc compile` and `sdc run`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "compile.h"
#include "fsutil.h"
#include "lora.h"
#include "pass.h"

#ifndef SDC_VERSION
#define SDC_VERSION "0.0.0"
#endif

/* The flags both commands share: how to compile. */
#define COMPILE_OPTS(o, print_pipeline)                                                                             \
    {"--width", ARG_INT, &w, "W", "image width in pixels (default 512)", 8, 16384},                                 \
    {"--height", ARG_INT, &h, "H", "image height in pixels (default 512)", 8, 16384},                              \
    {"--steps", ARG_INT, &steps, "N", "sampling steps (default 20)", 1, 1000},                                      \
    {"--sampler", ARG_STR, &(o).sampler, "NAME", "ddim, pndm, lms, euler, euler_a, dpmpp_2m, dpmpp_2m_karras"},   \
    {"--guidance", ARG_DOUBLE, &(o).guidance, "G", "classifier-free guidance scale (default 7.5; <= 1: off)", 0, 100}, \
    {"--eta", ARG_DOUBLE, &(o).eta, "E", "ddim eta (default 0)", 0, 10},                                            \
    {"--batch", ARG_INT, &batch, "B", "images per prompt (default 1)", 1, 64},                                      \
    {"--clip-skip", ARG_INT, &clip_skip, "K", "use the text encoder's hidden state K layers before the last", 0, 64}, \
    {"--backend", ARG_STR, &(o).backend, "NAME", "code generator (default c)"},                                    \
    {"--passes", ARG_STR, &(o).passes, "A,B", "pass pipeline (default: see --print-pipeline)"},                     \
    {"--disable-pass", ARG_STR, &(o).disabled, "A,B", "skip these passes"},                                        \
    {"--print-ir-after", ARG_STR, &(o).print_after, "NAME|all", "print each graph's IR after these passes"},       \
    {"--print-pipeline", ARG_BOOL, &(print_pipeline), "", "print the default pass pipeline and exit"},             \
    {"--timing", ARG_BOOL, &(o).timing, "", "time each pass"},                                                     \
    {"--variant", ARG_STR, &(o).variant, "NAME", "prefer weight files of this variant (e.g. fp16)"},               \
    {"--tokenizer", ARG_STR, &(o).tokenizer, "DIR", "tokenizer folder (needed for single-file checkpoints)"},      \
    {"--embed-weights", ARG_BOOL, &(o).embed_weights, "", "put the weights inside the executable"},               \
    {"--keep-c", ARG_BOOL, &(o).keep_c, "", "keep the generated C next to the executable (OUT.c)"},               \
    {"--cc", ARG_STR, &(o).cc, "CC", "C compiler (default $CC or cc)"},                                            \
    {"--quiet", ARG_BOOL, &(o).quiet, "", "no progress on stderr"},                                                \
    {"--max-memory", ARG_STR, &max_memory, "BYTES", "refuse a plan whose activations + weights exceed this (e.g. 8GiB)"}, \
    {"--weights-dtype", ARG_STR, &weights_dtype, "f32|f16|bf16", "store conv/linear weights in this precision (default f32)"}, \
    {"--lora", ARG_STRS, &loras, "FILE[:MULT]", "fold a LoRA into the UNet/text encoder weights (repeatable; MULT default 1)"}

/* The --lora values, parsed into a CompileOptions. */
typedef struct LoraArgs {
    int n;
    char *files[ARGS_MAX_MULTI];
    double mults[ARGS_MAX_MULTI];
} LoraArgs;

static int lora_args(CompileOptions *o, const StrList *l, LoraArgs *a, SdcErr *err)
{
    for (a->n = 0; a->n < l->n; a->n++)
        if (lora_spec_parse(l->v[a->n], &a->files[a->n], &a->mults[a->n], err) < 0) return -1;
    o->nloras = a->n, o->lora_files = (const char *const *)a->files, o->lora_mults = a->mults;
    return 0;
}

static void lora_args_free(LoraArgs *a)
{
    for (int i = 0; i < a->n; i++) free(a->files[i]);
    a->n = 0;
}

/* --weights-dtype: f32, f16 or bf16 (the precisions the weight packing has). */
static int parse_weights_dtype(const char *s, DType *out, SdcErr *err)
{
    if (dtype_from_name(s, out) < 0 || (*out != DT_F32 && *out != DT_F16 && *out != DT_BF16))
        return sdc_err(err, "--weights-dtype: \"%s\" is not f32, f16 or bf16", s);
    return 0;
}

/* Copies the numbers into o and checks what the table's ranges cannot. */
static int finish_options(CompileOptions *o, long long w, long long h, long long steps, long long batch,
                          long long clip_skip, const char *max_memory, const char *weights_dtype, SdcErr *err)
{
    o->width = (int)w, o->height = (int)h, o->steps = (int)steps, o->batch = (int)batch, o->clip_skip = (int)clip_skip;
    if (weights_dtype && parse_weights_dtype(weights_dtype, &o->weights_dtype, err) < 0) return -1;
    /* diffusers' pipelines refuse other sizes (check_inputs) */
    if (w % 8 || h % 8) return sdc_err(err, "--width/--height: %lldx%lld: both must be multiples of 8", w, h);
    if (max_memory && parse_bytes(max_memory, &o->max_memory) < 0)
        return sdc_err(err, "--max-memory: \"%s\" is not a byte count (like 1073741824, 512MiB or 8GiB)", max_memory);
    return 0;
}

int cmd_compile(int argc, char **argv)
{
    CompileOptions o;
    compile_options_default(&o);
    long long w = 512, h = 512, steps = 20, batch = 1, clip_skip = 0;
    const char *max_memory = NULL, *weights_dtype = NULL;
    int print_pipeline = 0;
    StrList loras = {0};
    LoraArgs la = {0};
    const OptSpec opts[] = {
        {"-o", ARG_STR, &o.out, "EXE", "the executable to write (its weights go to EXE.weights)"},
        COMPILE_OPTS(o, print_pipeline),
    };
    const CmdSpec spec = {"compile", "sdc compile MODEL -o EXE [--width W --height H --steps N --sampler NAME ...]",
                          "Compiles MODEL into a standalone text-to-image executable for fixed options.", 0, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    if (print_pipeline) {
        printf("%s\n", pass_default_pipeline());
        return 0;
    }
    if (npos < 1 || !o.out) {
        sdc_err(&err, "sdc compile: a MODEL and -o EXE are required (see sdc compile --help)");
        return cli_fail(&err);
    }
    o.model = pos[0];
    if (finish_options(&o, w, h, steps, batch, clip_skip, max_memory, weights_dtype, &err) < 0 ||
        path_check_output("-o", o.out, &err) < 0)
        return cli_fail(&err);
    rc = lora_args(&o, &loras, &la, &err) < 0 || sdc_compile(&o, &err) < 0 ? cli_fail(&err) : 0;
    lora_args_free(&la);
    return rc;
}

static uint64_t fnv_str(uint64_t hsh, const char *s)
{
    for (; s && *s; s++) hsh = (hsh ^ (unsigned char)*s) * 1099511628211ull;
    return (hsh ^ 0xff) * 1099511628211ull;
}

/* The cache key: the model (path, and the mtime of its folder or file) and every compile option. */
static uint64_t cache_key(const CompileOptions *o)
{
    char buf[512];
    struct stat st;
    uint64_t k = 1469598103934665603ull;
    k = fnv_str(k, o->model);
    if (stat(o->model, &st) == 0) {
        snprintf(buf, sizeof buf, "%lld.%ld", (long long)st.st_mtime, (long)st.st_size);
        k = fnv_str(k, buf);
    }
    snprintf(buf, sizeof buf, "%d %d %d %d %d %.17g %.17g %d %d", o->width, o->height, o->steps, o->batch,
             o->clip_skip, o->guidance, o->eta, o->embed_weights, (int)o->weights_dtype);
    k = fnv_str(k, buf);
    const char *strs[] = {o->sampler, o->backend, o->passes, o->disabled, o->variant, o->tokenizer, SDC_VERSION};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) k = fnv_str(k, strs[i] ? strs[i] : "-");
    for (int l = 0; l < o->nloras; l++) { /* a LoRA changed on disk is another model */
        snprintf(buf, sizeof buf, "lora %.17g", o->lora_mults[l]);
        k = fnv_str(fnv_str(k, buf), o->lora_files[l]);
        if (stat(o->lora_files[l], &st) == 0) {
            snprintf(buf, sizeof buf, "%lld.%ld", (long long)st.st_mtime, (long)st.st_size);
            k = fnv_str(k, buf);
        }
    }
    return k;
}

int cmd_run(int argc, char **argv)
{
    CompileOptions o;
    compile_options_default(&o);
    long long w = 512, h = 512, steps = 20, batch = 1, clip_skip = 0, seed = 0, threads = 0, bench = 0;
    int print_pipeline = 0, rebuild = 0;
    const char *max_memory = NULL, *weights_dtype = NULL;
    StrList loras = {0};
    LoraArgs la = {0};
    double strength = 0.8;
    const char *prompt = NULL, *negative = NULL, *out = "out.png", *latents = NULL, *init = NULL, *strength_s = NULL;
    const OptSpec opts[] = {
        {"--prompt", ARG_STR, &prompt, "TEXT", "what to draw (required)"},
        {"--negative", ARG_STR, &negative, "TEXT", "negative prompt (default empty)"},
        {"--seed", ARG_INT, &seed, "N", "random seed (default 0)", 0, 9e18},
        {"--out", ARG_STR, &out, "FILE.png", "where to write the image (default out.png)"},
        {"--save-latents", ARG_STR, &latents, "FILE", "also write the final latents (safetensors)"},
        {"--init-image", ARG_STR, &init, "FILE.png", "img2img: start from this image"},
        {"--strength", ARG_STR, &strength_s, "S", "img2img strength in (0, 1] (default 0.8)"},
        {"--threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 1024},
        {"--bench", ARG_INT, &bench, "N", "time N generations after a warm-up, print JSON", 0, 100000},
        {"--rebuild", ARG_BOOL, &rebuild, "", "compile again even if the cache has this executable"},
        COMPILE_OPTS(o, print_pipeline),
    };
    const CmdSpec spec = {"run", "sdc run MODEL --prompt TEXT [--out FILE.png] [compile options]",
                          "Compiles MODEL (cached by model and options) and runs it once.", 1, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    (void)strength;
    if (!prompt && !bench) {
        sdc_err(&err, "sdc run: --prompt is required");
        return cli_fail(&err);
    }
    o.model = pos[0];
    if (finish_options(&o, w, h, steps, batch, clip_skip, max_memory, weights_dtype, &err) < 0) return cli_fail(&err);
    if (lora_args(&o, &loras, &la, &err) < 0) return lora_args_free(&la), cli_fail(&err);
    const char *home = getenv("XDG_CACHE_HOME");
    char dir[4096], exe[4200];
    if (home && *home) snprintf(dir, sizeof dir, "%s/sdc", home);
    else snprintf(dir, sizeof dir, "%s/.cache/sdc", getenv("HOME") ? getenv("HOME") : "/tmp");
    if (mkdir_p(dir, &err) < 0) return lora_args_free(&la), cli_fail(&err);
    snprintf(exe, sizeof exe, "%s/%016llx", dir, (unsigned long long)cache_key(&o));
    char weights[4300];
    snprintf(weights, sizeof weights, "%s.weights", exe);
    if (rebuild || !path_exists(exe) || (!o.embed_weights && !path_exists(weights))) {
        o.out = exe;
        if (sdc_compile(&o, &err) < 0) return lora_args_free(&la), cli_fail(&err);
    } else if (!o.quiet) {
        fprintf(stderr, "sdc run: using the cached executable %s\n", exe);
    }
    lora_args_free(&la); /* compiled in */
    /* hand over to the executable with the run-time flags */
    char seed_s[32], threads_s[32], bench_s[32];
    snprintf(seed_s, sizeof seed_s, "%lld", seed);
    snprintf(threads_s, sizeof threads_s, "%lld", threads);
    snprintf(bench_s, sizeof bench_s, "%lld", bench);
    const char *args[32];
    int n = 0;
    args[n++] = exe;
    if (prompt) args[n++] = "--prompt", args[n++] = prompt;
    if (negative) args[n++] = "--negative", args[n++] = negative;
    args[n++] = "--seed", args[n++] = seed_s;
    args[n++] = "--out", args[n++] = out;
    if (latents) args[n++] = "--save-latents", args[n++] = latents;
    if (init) args[n++] = "--init-image", args[n++] = init;
    if (strength_s) args[n++] = "--strength", args[n++] = strength_s;
    if (threads) args[n++] = "--threads", args[n++] = threads_s;
    if (bench) args[n++] = "--bench", args[n++] = bench_s;
    if (o.quiet) args[n++] = "--quiet";
    args[n] = NULL;
    fflush(stdout), fflush(stderr);
    execv(exe, (char *const *)args);
    sdc_err(&err, "%s: cannot run: %s", exe, strerror(errno));
    return cli_fail(&err);
}

int cmd_compile_graph(int argc, char **argv)
{
    CompileOptions o;
    compile_options_default(&o);
    const char *weights_dtype = NULL;
    const OptSpec opts[] = {
        {"-o", ARG_STR, &o.out, "EXE", "the executable to write (its constants go to EXE.weights)"},
        {"--backend", ARG_STR, &o.backend, "NAME", "code generator (default c)"},
        {"--passes", ARG_STR, &o.passes, "A,B", "pass pipeline (default: the default pipeline)"},
        {"--disable-pass", ARG_STR, &o.disabled, "A,B", "skip these passes"},
        {"--print-ir-after", ARG_STR, &o.print_after, "NAME|all", "print the IR after these passes"},
        {"--keep-c", ARG_BOOL, &o.keep_c, "", "keep the generated C (EXE.c)"},
        {"--cc", ARG_STR, &o.cc, "CC", "C compiler (default $CC or cc)"},
        {"--weights-dtype", ARG_STR, &weights_dtype, "f32|f16|bf16",
         "store conv/linear weights in this precision (default f32)"},
    };
    const CmdSpec spec = {"compile-graph", "sdc compile-graph FILE.ir -o EXE [--passes ...]",
                          "Compiles one IR graph into an executable: EXE --inputs IN.safetensors --out OUT.safetensors.",
                          1, 1, opts, sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    if (!o.out) {
        sdc_err(&err, "sdc compile-graph: -o EXE is required");
        return cli_fail(&err);
    }
    o.model = pos[0];
    o.quiet = 1;
    if (weights_dtype && parse_weights_dtype(weights_dtype, &o.weights_dtype, &err) < 0) return cli_fail(&err);
    if (path_check_output("-o", o.out, &err) < 0) return cli_fail(&err);
    return sdc_compile_graph(&o, &err) < 0 ? cli_fail(&err) : 0;
}
