/* cmd_merge.c — `sdc merge`: models and LoRAs into a new model or LoRA.
 *
 *   sdc merge A --with B --alpha X -o OUT              (1 - X) * A + X * B
 *   sdc merge A --with B --minus C --alpha X -o OUT    A + X * (B - C)
 *   ... --mbw W0,...,W24 [--base-alpha X]              per UNet block instead of --alpha
 *   sdc merge A --lora FILE[:MULT] ... -o OUT          LoRAs baked into A (--mbw: per block strengths)
 *   sdc merge --lora L1[:M1] --lora L2[:M2] -o OUT.safetensors [--rank R]   one LoRA
 * OUT is a diffusers folder unless it ends in .safetensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lora.h"
#include "merge.h"

static int parse_dtype(const char *s, int *set, DType *dt, SdcErr *err)
{
    if (!s) return 0;
    if (dtype_from_name(s, dt) < 0 || (*dt != DT_F32 && *dt != DT_F16 && *dt != DT_BF16))
        return sdc_err(err, "--dtype: \"%s\" is not supported (f32, f16 or bf16)", s);
    *set = 1;
    return 0;
}

/* LoRA + LoRA: no base model. */
static int merge_loras(int n, char **files, const double *mults, const char *out, long long rank, int dtype_set,
                       DType dt, int force, int quiet, SdcErr *err)
{
    LoraMergeOptions o = {.n = n, .files = (const char *const *)files, .mults = mults, .out = out, .rank = (int)rank,
                          .dtype_set = dtype_set, .dtype = dt, .force = force};
    LoraMergeReport r;
    if (lora_merge(&o, &r, err) < 0) return -1;
    if (quiet) return 0;
    if (rank > 0)
        fprintf(stderr, "sdc merge: wrote %s: %d modules, rank <= %d; relative error %.3g (worst %.3g in %s)\n", out,
                r.modules, r.max_rank, r.rel_err, r.worst_err, r.worst);
    else
        fprintf(stderr, "sdc merge: wrote %s: %d modules, ranks concatenated (up to %d), exact\n", out, r.modules,
                r.max_rank);
    return 0;
}

int cmd_merge(int argc, char **argv)
{
    const char *with = NULL, *minus = NULL, *mbw = NULL, *out = NULL, *dtype = NULL;
    double alpha = NAN, base_alpha = NAN;
    long long rank = 0;
    int force = 0, quiet = 0;
    StrList loras = {0};
    const OptSpec opts[] = {
        {"-o", ARG_STR, &out, "OUT", "the model folder, or OUT.safetensors (a single file / a LoRA) (required)"},
        {"--with", ARG_STR, &with, "B", "merge A with model B"},
        {"--minus", ARG_STR, &minus, "C", "add-difference: A + alpha * (B - C)"},
        {"--alpha", ARG_DOUBLE, &alpha, "X", "weight of B: (1 - X) * A + X * B, or A + X * (B - C)"},
        {"--mbw", ARG_STR, &mbw, "W0,...,W24", "Merge Block Weighted: 25 weights IN00-IN11, M00, OUT00-OUT11 for --alpha"},
        {"--base-alpha", ARG_DOUBLE, &base_alpha, "X", "with --mbw: weight outside the UNet (default 0; LoRAs: 1)"},
        {"--lora", ARG_STRS, &loras, "FILE[:MULT]", "apply a LoRA (repeatable; MULT default 1); without A: merge LoRAs"},
        {"--rank", ARG_INT, &rank, "R", "LoRA + LoRA: re-factor to rank R by SVD (default: concatenate, exact)", 1, 1e6},
        {"--dtype", ARG_STR, &dtype, "f32|f16|bf16", "output element type (default: as in the first input)"},
        {"--force", ARG_BOOL, &force, "", "replace OUT if it exists (a model folder or a .safetensors file)"},
        {"--quiet", ARG_BOOL, &quiet, "", "no progress on stderr"},
    };
    const CmdSpec spec = {
        "merge", "sdc merge [A] [--with B [--minus C]] [--alpha X | --mbw W0,...,W24] [--lora FILE[:MULT] ...] -o OUT",
        "Writes a new model from A and B (weighted sum), A, B and C (add-difference) and/or LoRAs, or one LoRA\n"
        "from several (no A).  OUT is a diffusers folder unless it ends in .safetensors.  See docs/MERGING.md.",
        0, 1, opts, sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    char *files[ARGS_MAX_MULTI] = {0};
    double mults[ARGS_MAX_MULTI], w[MBW_NBLOCKS];
    int nl = 0, dtype_set = 0;
    DType dt = DT_F32;
    rc = -1;
    if (!out) {
        sdc_err(&err, "sdc merge: -o OUT is required (see sdc merge --help)");
        goto done;
    }
    char out_buf[4096];
    snprintf(out_buf, sizeof out_buf, "%s", out);
    for (size_t n = strlen(out_buf); n > 1 && out_buf[n - 1] == '/'; n--) out_buf[n - 1] = 0; /* "M/" is M */
    out = out_buf;
    if (parse_dtype(dtype, &dtype_set, &dt, &err) < 0) goto done;
    for (; nl < loras.n; nl++)
        if (lora_spec_parse(loras.v[nl], &files[nl], &mults[nl], &err) < 0) goto done;
    if (mbw && mbw_parse(mbw, w, &err) < 0) goto done;
    if (npos == 0) {
        if (!nl) sdc_err(&err, "sdc merge: give a model A, or LoRAs to merge into one (see sdc merge --help)");
        else if (with || minus || mbw || !isnan(alpha) || !isnan(base_alpha))
            sdc_err(&err, "sdc merge: --with, --minus, --alpha and --mbw need a model A (LoRA + LoRA takes --lora, --rank)");
        else rc = merge_loras(nl, files, mults, out, rank, dtype_set, dt, force, quiet, &err);
        goto done;
    }
    if (rank) {
        sdc_err(&err, "--rank: only for merging LoRAs into one LoRA (no model A)");
        goto done;
    }
    if (minus && !with) {
        sdc_err(&err, "--minus needs --with (add-difference is A + alpha * (B - C))");
        goto done;
    }
    if (with && !!isnan(alpha) == !mbw) {
        sdc_err(&err, mbw ? "--alpha and --mbw: give one of them" : "--with needs --alpha X or --mbw W0,...,W24");
        goto done;
    }
    if (!with && !isnan(alpha)) {
        sdc_err(&err, "--alpha needs --with (a LoRA's strength is FILE:MULT)");
        goto done;
    }
    if (!isnan(base_alpha) && !mbw) {
        sdc_err(&err, "--base-alpha needs --mbw");
        goto done;
    }
    MergeOptions o = {.a = pos[0], .b = with, .c = minus, .alpha = isnan(alpha) ? 0 : alpha, .use_mbw = mbw != NULL,
                      .nloras = nl, .lora_files = (const char *const *)files, .lora_mults = mults, .out = out,
                      .dtype_set = dtype_set, .dtype = dt, .force = force, .quiet = quiet};
    if (mbw) memcpy(o.mbw, w, sizeof w);
    /* outside the UNet: MBW tools keep A there; a LoRA's text encoder part keeps its strength */
    o.base_alpha = !isnan(base_alpha) ? base_alpha : with ? 0.0 : 1.0;
    rc = sdc_merge(&o, &err);
done:
    for (int i = 0; i < nl; i++) free(files[i]);
    return rc < 0 ? cli_fail(&err) : 0;
}
