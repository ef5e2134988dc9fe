/* pipeline_args.c — the flags of a compiled executable.
 *
 * "--flag VALUE" and "--flag=VALUE" both work; a repeated flag keeps its
 * last value.  Every malformed value, missing value, value out of range or
 * unknown flag is refused with one line naming the flag, before any work is
 * done.  Flag combinations that need the pipeline (the image size of
 * --init-image, writable output directories) are checked in pipeline.c. */
#include "pipeline_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

static int parse_u64(const char *flag, const char *s, uint64_t *out, SdcErr *err)
{
    /* strtoull accepts " -1" and wraps it; we want digits only */
    if (s[0] < '0' || s[0] > '9') return sdc_err(err, "%s: \"%s\" is not an unsigned integer", flag, s);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return sdc_err(err, "%s: \"%s\" is not an unsigned integer", flag, s);
    if (errno == ERANGE) return sdc_err(err, "%s: %s is out of range (0..%llu)", flag, s, (unsigned long long)UINT64_MAX);
    *out = v;
    return 0;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out, SdcErr *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || s[0] == ' ' || s[0] == '\t') return sdc_err(err, "%s: \"%s\" is not an integer", flag, s);
    if (errno == ERANGE || v < lo || v > hi) return sdc_err(err, "%s: %s is out of range (%ld..%ld)", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_strength(const char *flag, const char *s, double *out, SdcErr *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || s[0] == ' ' || s[0] == '\t' || !isfinite(v))
        return sdc_err(err, "%s: \"%s\" is not a number", flag, s);
    if (!(v > 0.0 && v <= 1.0)) return sdc_err(err, "%s: %s is out of range (0 < S <= 1)", flag, s);
    *out = v;
    return 0;
}

int pipeline_args_parse(PipelineArgs *a, int argc, char **argv, SdcErr *err)
{
    memset(a, 0, sizeof *a);
    a->negative = "";
    a->out = PIPELINE_DEFAULT_OUT;
    a->strength = PIPELINE_DEFAULT_STRENGTH;
    int strength_given = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) return sdc_err(err, "unexpected argument \"%s\" (flags start with --)", arg);
        /* the flag name, without "=VALUE" */
        char flag[64];
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag) return sdc_err(err, "unknown flag \"%s\" (see --help)", arg);
        memcpy(flag, arg, flen);
        flag[flen] = 0;

        if (!strcmp(flag, "--quiet") || !strcmp(flag, "--help")) {
            if (eq) return sdc_err(err, "%s: takes no value", flag);
            if (!strcmp(flag, "--quiet")) a->quiet = 1;
            else a->help = 1;
            continue;
        }
        static const char *const with_value[] = {"--prompt",  "--negative",   "--seed",     "--out",
                                                 "--save-latents", "--init-image", "--strength", "--threads",
                                                 "--bench",   "--weights"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(flag, with_value[k]);
        if (!known) return sdc_err(err, "unknown flag \"%s\" (see --help)", flag);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return sdc_err(err, "%s: missing value", flag);
            val = argv[++i];
        }

        if (!strcmp(flag, "--prompt")) {
            a->prompt = val;
        } else if (!strcmp(flag, "--negative")) {
            a->negative = val;
        } else if (!strcmp(flag, "--seed")) {
            if (parse_u64(flag, val, &a->seed, err)) return -1;
        } else if (!strcmp(flag, "--out") || !strcmp(flag, "--save-latents") || !strcmp(flag, "--init-image") ||
                   !strcmp(flag, "--weights")) {
            if (!val[0]) return sdc_err(err, "%s: empty path", flag);
            if (!strcmp(flag, "--out")) a->out = val, a->out_given = 1;
            else if (!strcmp(flag, "--save-latents")) a->save_latents = val;
            else if (!strcmp(flag, "--init-image")) a->init_image = val;
            else a->weights = val;
        } else if (!strcmp(flag, "--strength")) {
            if (parse_strength(flag, val, &a->strength, err)) return -1;
            strength_given = 1;
        } else if (!strcmp(flag, "--threads")) {
            if (parse_int(flag, val, 0, PIPELINE_MAX_THREADS, &a->threads, err)) return -1;
        } else { /* --bench */
            if (parse_int(flag, val, 1, PIPELINE_MAX_BENCH, &a->bench, err)) return -1;
        }
    }
    if (a->help) return 0;
    if (strength_given && !a->init_image) return sdc_err(err, "--strength: only with --init-image");
    if (!a->prompt && !a->bench) return sdc_err(err, "--prompt: missing (what should the image show?)");
    if (!a->prompt) a->prompt = PIPELINE_BENCH_PROMPT;
    return 0;
}

void pipeline_usage(FILE *f, const char *prog, const SdcPipeline *p)
{
    fprintf(f, "usage: %s --prompt TEXT [options]\n", prog);
    fprintf(f, "Makes %d image%s of %dx%d with %s: %s, %d steps, guidance %g (sdc %s).\n", p->batch,
            p->batch > 1 ? "s" : "", p->width, p->height, p->model ? p->model : "?", sampler_name(p->sched.kind),
            p->sched.steps, (double)p->guidance, p->sdc_version ? p->sdc_version : "?");
    fprintf(f,
            "  --prompt TEXT          what to draw (required unless --bench)\n"
            "  --negative TEXT        what to avoid (default \"\")\n"
            "  --seed N               random seed, 0..18446744073709551615 (default 0); with the same seed\n"
            "                         diffusers makes the same image\n"
            "  --out FILE.png         the image (default %s); a batch of B writes FILE.png, FILE-1.png, ...\n"
            "  --save-latents FILE    also write the final latents (tensor \"latents\") as .safetensors\n"
            "  --init-image FILE.png  img2img: start from this %dx%d image\n"
            "  --strength S           img2img: how much to change it, 0 < S <= 1 (default %g)\n"
            "  --threads N            threads (default 0: all cores)\n"
            "  --bench N              one warm-up and N timed generations; JSON report on stdout;\n"
            "                         files are written only if --out or --save-latents is given\n"
            "  --weights PATH         weights file (default: the embedded copy, else <executable>.weights)\n"
            "  --quiet                no progress bar or messages\n"
            "  --help                 this text\n"
            "Environment: SDC_RNG=scalar draws noise with PyTorch's scalar randn kernel instead of its\n"
            "AVX2 kernel (the default, what diffusers gives on AVX2 and AVX-512 machines).\n",
            PIPELINE_DEFAULT_OUT, p->width, p->height, PIPELINE_DEFAULT_STRENGTH);
}
