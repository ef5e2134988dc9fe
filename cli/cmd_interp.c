/* cmd_interp.c — `sdc interp FILE.ir --inputs IN.safetensors --out OUT.safetensors`
 * runs a graph in the reference interpreter.  Inputs are matched to graph
 * inputs by name; outputs are written under their value names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "interp.h"
#include "safetensors.h"
#include "tensor_io.h"

int cmd_interp(int argc, char **argv)
{
    const char *inputs = NULL, *out = NULL;
    int verbose = 0;
    const OptSpec opts[] = {
        {"--inputs", ARG_STR, &inputs, "IN.safetensors", "graph inputs, by name (required if the graph has inputs)"},
        {"--out", ARG_STR, &out, "OUT.safetensors", "where to write the outputs (required)"},
        {"--verbose", ARG_BOOL, &verbose, "", "print each node as it runs"},
    };
    const CmdSpec spec = {"interp", "sdc interp FILE.ir --inputs IN.safetensors --out OUT.safetensors",
                          "Runs FILE.ir in the reference interpreter (plain loops: the oracle, not fast).", 1, 1,
                          opts, sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    if (!out) {
        sdc_err(&err, "sdc interp: --out is required");
        return cli_fail(&err);
    }
    if (path_check_output("--out", out, &err) < 0) return cli_fail(&err);
    Graph *g = ir_parse_file(pos[0], &err);
    if (!g) return cli_fail(&err);
    if (ir_verify(g, &err) < 0) {
        sdc_err_prefix(&err, "%s", pos[0]);
        graph_free(g);
        return cli_fail(&err);
    }
    Tensor **in = NULL, **res = NULL;
    int nin = 0;
    rc = 1;
    if (tensor_io_load_inputs(g, inputs, &in, &nin, &err) < 0) goto done;
    res = xcalloc((size_t)g->nout, sizeof(Tensor *));
    if (interp_run(g, in, res, verbose, &err) < 0) goto done;
    const char **names = xmalloc(sizeof(char *) * (size_t)g->nout);
    for (int o = 0; o < g->nout; o++) names[o] = g->nodes[g->outputs[o]].name;
    int wrc = tensor_io_save(out, g->nout, names, res, &err);
    free(names);
    if (wrc < 0) goto done;
    rc = 0;
done:
    if (rc) cli_fail(&err);
    for (int i = 0; i < nin; i++) tensor_free(in[i]);
    for (int o = 0; res && o < g->nout; o++) tensor_free(res[o]);
    free(in);
    free(res);
    graph_free(g);
    return rc;
}
