/* main.c — sdc's entry point: dispatches to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"

#ifndef SDC_VERSION
#define SDC_VERSION "0.0.0"
#endif

static int cmd_version(int argc, char **argv)
{
    const CmdSpec spec = {"version", "sdc version", "Prints sdc's version.", 0, 0, NULL, 0};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    printf("sdc %s\n", SDC_VERSION);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"opt", cmd_opt, "parse an IR file, run passes, print the result"},
    {"interp", cmd_interp, "run an IR file in the reference interpreter"},
    {"compile", cmd_compile, "compile a model into a standalone text-to-image executable"},
    {"compile-graph", cmd_compile_graph, "compile one IR graph into an executable (backend tests)"},
    {"run", cmd_run, "compile (cached) and run a model once"},
    {"eval", cmd_eval, "run one model component in the interpreter on given inputs"},
    {"import", cmd_import, "import a model component into the IR"},
    {"graph", cmd_graph, "draw a graph as Graphviz (--dot)"},
    {"stats", cmd_stats, "parameters, FLOPs and bytes of a model's components"},
    {"random-model", cmd_random_model, "write a diffusers folder with seeded random weights (presets tiny, sd15, sd21)"},
    {"merge", cmd_merge, "merge models (weighted sum, add-difference, block weights) and LoRAs into a new model or LoRA"},
    {"passes", cmd_passes, "list the passes and the default pipeline"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *out)
{
    fputs("usage: sdc COMMAND [options]   (sdc COMMAND --help for each)\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

static char scratch[64];

static void remove_scratch(void) { remove_flat_dir(scratch); }

const char *cli_scratch_dir(void)
{
    if (scratch[0]) return scratch;
    snprintf(scratch, sizeof scratch, "/tmp/sdc-XXXXXX");
    if (!mkdtemp(scratch)) return scratch[0] = 0, NULL; /* passes then keep their graph-level fallback */
    atexit(remove_scratch);
    return scratch;
}

int cli_fail(const SdcErr *err)
{
    fprintf(stderr, "sdc: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cmd_version(0, NULL);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "sdc: unknown command \"%s\" (sdc --help lists them)\n", argv[1]);
    return 1;
}
