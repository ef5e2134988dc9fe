/* cmd_random_model.c — sdc random-model: a complete diffusers folder with
 * seeded random weights, for a preset or a folder of config files. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "random_model.h"

int cmd_random_model(int argc, char **argv)
{
    const char *out = NULL, *dtype = "f32";
    long long seed = 0;
    int force = 0, quiet = 0;
    const OptSpec opts[] = {
        {"-o", ARG_STR, &out, "DIR", "the model folder to create (required)"},
        {"--seed", ARG_INT, &seed, "N", "seed of the weights (default 0); same seed, same bytes", 0, 1e18},
        {"--dtype", ARG_STR, &dtype, "f32|f16", "element type of the weight files (default f32)"},
        {"--force", ARG_BOOL, &force, "", "replace DIR if it is a model folder"},
        {"--quiet", ARG_BOOL, &quiet, "", "no progress on stderr"},
    };
    const CmdSpec spec = {
        "random-model", "sdc random-model PRESET_OR_CONFIG_DIR -o DIR [--seed N] [--dtype f32|f16] [--force]",
        "Writes a diffusers model folder (configs, tokenizer, safetensors weights) with seeded random weights.\n"
        "Presets: tiny, sd15 (runwayml/stable-diffusion-v1-5), sd21 (stabilityai/stable-diffusion-2-1);\n"
        "or a folder with unet/, vae/ and text_encoder/config.json (a preset name wins: write ./NAME for a folder).",
        1, 1, opts, sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    RandomModelOptions o = {.seed = (uint64_t)seed, .quiet = quiet, .force = force};
    if (strcmp(dtype, "f32") == 0) o.dtype = DT_F32;
    else if (strcmp(dtype, "f16") == 0) o.dtype = DT_F16;
    else {
        sdc_err(&err, "--dtype: \"%s\" is not supported (f32 or f16)", dtype);
        return cli_fail(&err);
    }
    if (!out) {
        sdc_err(&err, "sdc random-model: -o DIR is required");
        return cli_fail(&err);
    }
    if (random_model_write_opts(pos[0], out, &o, &err) < 0) return cli_fail(&err);
    if (!quiet) fprintf(stderr, "wrote %s (%s, seed %llu, %s)\n", out, pos[0], (unsigned long long)o.seed, dtype);
    return 0;
}
