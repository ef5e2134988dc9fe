/* cmd_opt.c — `sdc opt FILE.ir`: parse, verify, run passes, print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "pass.h"

int cmd_opt(int argc, char **argv)
{
    const char *passes = NULL, *disable = NULL, *print_after = NULL, *out = NULL, *scratch = NULL, *steps = NULL;
    int timing = 0, no_verify = 0;
    const OptSpec opts[] = {
        {"--passes", ARG_STR, &passes, "A,B,C", "passes to run, in order (default: canonicalize,cse,dce; empty: none)"},
        {"--disable-pass", ARG_STR, &disable, "A,B", "skip these passes"},
        {"--print-ir-after", ARG_STR, &print_after, "NAME|all", "print the IR after the named pass(es) to stderr"},
        {"--timing", ARG_BOOL, &timing, "", "print time and counters of each pass on stderr"},
        {"--no-verify", ARG_BOOL, &no_verify, "", "do not verify after each pass"},
        {"-o", ARG_STR, &out, "FILE", "write the result to FILE instead of stdout"},
        {"--timesteps", ARG_STR, &steps, "T1,T2,...", "the sampler's timesteps, for passes that specialise on them"},
        {"--scratch-dir", ARG_STR, &scratch, "DIR", "where passes may write the constants they compute"},
    };
    const CmdSpec spec = {"opt", "sdc opt FILE.ir [options]",
                          "Parses FILE.ir, verifies it, runs the passes and prints the resulting IR.", 1, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    if (out && path_check_output("-o", out, &err) < 0) return cli_fail(&err);
    Graph *g = ir_parse_file(pos[0], &err);
    if (!g) return cli_fail(&err);
    if (ir_verify(g, &err) < 0) {
        sdc_err_prefix(&err, "%s", pos[0]);
        graph_free(g);
        return cli_fail(&err);
    }
    float timesteps[1024];
    int n_steps = 0;
    for (const char *s = steps; s && *s && n_steps < 1024;) {
        char *end;
        timesteps[n_steps++] = strtof(s, &end);
        if (end == s || (*end && *end != ',')) {
            sdc_err(&err, "--timesteps: \"%s\" is not a comma-separated list of numbers", steps);
            graph_free(g);
            return cli_fail(&err);
        }
        s = *end ? end + 1 : end;
    }
    PassOptions po = {.pipeline = passes, .disabled = disable, .print_after = print_after, .timing = timing,
                      .verify = !no_verify, .ir_out = stderr, .report = stderr, .scratch_dir = scratch,
                      .n_steps = n_steps, .timesteps = timesteps};
    if (pass_run_pipeline(g, &po, &err) < 0) {
        graph_free(g);
        return cli_fail(&err);
    }
    char *text = ir_print_str(g);
    if (out) rc = file_write_atomic(out, text, strlen(text), &err) < 0 ? cli_fail(&err) : 0;
    else fputs(text, stdout);
    free(text);
    graph_free(g);
    return rc;
}

int cmd_passes(int argc, char **argv)
{
    const CmdSpec spec = {"passes", "sdc passes", "Lists every registered pass with its summary.", 0, 0, NULL, 0};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    for (int i = 0; i < pass_count_registered(); i++) printf("%-24s %s\n", pass_at(i)->name, pass_at(i)->summary);
    printf("\ndefault pipeline: %s\n", pass_default_pipeline());
    return 0;
}
