/* cmd_model.c — commands on a model: eval, import, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "interp.h"
#include "model.h"
#include "pass.h"
#include "stats.h"
#include "tensor_io.h"

/* The component's graph inputs as named in diffusers' forward(). */
static const char *const input_names[COMP_COUNT][3] = {
    {"sample", "timestep", "encoder_hidden_states"}, {"latents"}, {"sample"}, {"input_ids"}};

static int parse_component(const char *s, Component *c, SdcErr *err)
{
    if (!s) return sdc_err(err, "--component is required (unet, vae-decoder, vae-encoder, text-encoder)");
    if (component_from_name(s, c) < 0)
        return sdc_err(err, "--component: unknown component \"%s\" (unet, vae-decoder, vae-encoder, text-encoder)", s);
    return 0;
}

static const StTensor *need(const StFile *f, const char *name, int ndim, SdcErr *err)
{
    const StTensor *t = st_find(f, name);
    if (!t) sdc_err(err, "%s: no tensor named \"%s\"", f->path, name);
    else if (ndim >= 0 && t->ndim != ndim) sdc_err(err, "%s: tensor \"%s\" must have %d dims", f->path, name, ndim), t = NULL;
    return t;
}

/* Reads the inputs of component c from f, derives the graph shape from them
 * and returns the tensors in graph input order. */
static int eval_inputs(const StFile *f, Component c, ImportShape *s, Tensor **in, SdcErr *err)
{
    const StTensor *t;
    memset(s, 0, sizeof *s);
    s->seq_len = 77;
    switch (c) {
    case COMP_UNET: {
        const StTensor *x = need(f, "sample", 4, err), *e = x ? need(f, "encoder_hidden_states", 3, err) : NULL,
                       *ts = e ? need(f, "timestep", -1, err) : NULL;
        if (!ts) return -1;
        s->batch = (int)x->shape[0], s->height = x->shape[2], s->width = x->shape[3], s->seq_len = (int)e->shape[1];
        int64_t tn = st_numel(ts);
        if (ts->ndim > 1 || (tn != 1 && tn != s->batch))
            return sdc_err(err, "%s: tensor \"timestep\" must be a scalar or have %d elements", f->path, s->batch);
        if (!(in[0] = tensor_io_read(f, x, DT_F32, err)) || !(in[2] = tensor_io_read(f, e, DT_F32, err))) return -1;
        Tensor *tv = tensor_io_read(f, ts, DT_F32, err);
        if (!tv) return -1;
        /* a scalar timestep is broadcast over the batch, as diffusers does */
        in[1] = tensor_new(DT_F32, 1, (int64_t[]){s->batch});
        for (int i = 0; i < s->batch; i++) in[1]->f[i] = tv->f[tn == 1 ? 0 : i];
        tensor_free(tv);
        return 0;
    }
    case COMP_VAE_DECODER:
    case COMP_VAE_ENCODER:
        if (!(t = need(f, input_names[c][0], 4, err))) return -1;
        s->batch = (int)t->shape[0], s->height = t->shape[2], s->width = t->shape[3];
        return (in[0] = tensor_io_read(f, t, DT_F32, err)) ? 0 : -1;
    case COMP_TEXT_ENCODER:
        if (!(t = need(f, "input_ids", 2, err))) return -1;
        s->batch = (int)t->shape[0], s->seq_len = (int)t->shape[1];
        return (in[0] = tensor_io_read(f, t, DT_I64, err)) ? 0 : -1;
    default: return -1;
    }
}

int cmd_eval(int argc, char **argv)
{
    const char *comp = NULL, *inputs = NULL, *out = NULL, *passes = "", *variant = NULL;
    long long clip_skip = 0;
    int verbose = 0;
    const OptSpec opts[] = {
        {"--component", ARG_STR, &comp, "NAME", "unet, vae-decoder, vae-encoder or text-encoder (required)"},
        {"--inputs", ARG_STR, &inputs, "IN.safetensors", "inputs named as diffusers' forward arguments (required)"},
        {"--out", ARG_STR, &out, "OUT.safetensors", "output tensors: out (and logvar for vae-encoder) (required)"},
        {"--clip-skip", ARG_INT, &clip_skip, "K", "text encoder: use the hidden state K layers before the last", 0, 64},
        {"--passes", ARG_STR, &passes, "A,B", "passes to run before interpreting (default: none)"},
        {"--variant", ARG_STR, &variant, "NAME", "prefer weight files of this variant (e.g. fp16)"},
        {"--verbose", ARG_BOOL, &verbose, "", "print each node as it runs"},
    };
    const CmdSpec spec = {"eval", "sdc eval MODEL --component NAME --inputs IN.safetensors --out OUT.safetensors",
                          "Runs one component of MODEL in the reference interpreter; shapes come from the inputs.", 1,
                          1, opts, sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    Component c;
    if (parse_component(comp, &c, &err) < 0) return cli_fail(&err);
    if (!inputs || !out) {
        sdc_err(&err, "sdc eval: --inputs and --out are required");
        return cli_fail(&err);
    }
    Model m;
    StFile f = {0};
    Graph *g = NULL;
    Tensor *in[3] = {0}, *res[2] = {0};
    rc = 1;
    if (path_check_output("--out", out, &err) < 0 || model_open(&m, pos[0], variant, &err) < 0) return cli_fail(&err);
    if (st_open(&f, inputs, &err) < 0) goto done;
    ImportShape s;
    if (eval_inputs(&f, c, &s, in, &err) < 0) goto done;
    s.clip_skip = (int)clip_skip;
    if (!(g = model_import(&m, c, &s, &err))) goto done;
    PassOptions po = {.pipeline = passes, .verify = 1, .scratch_dir = cli_scratch_dir()};
    if (pass_run_pipeline(g, &po, &err) < 0) goto done;
    if (interp_run(g, in, res, verbose, &err) < 0) goto done;
    const char *names[2] = {"out", "logvar"};
    if (tensor_io_save(out, g->nout, names, res, &err) < 0) goto done;
    rc = 0;
done:
    if (rc) cli_fail(&err);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
    for (int i = 0; i < 2; i++) tensor_free(res[i]);
    graph_free(g);
    st_close(&f);
    model_close(&m);
    return rc;
}

/* The input shape of component c for an image of width x height. */
static int shape_for_image(Model *m, Component c, long long width, long long height, long long batch, ImportShape *s,
                           SdcErr *err)
{
    ModelInfo info;
    if (model_info(m, &info, err) < 0) return -1;
    memset(s, 0, sizeof *s);
    s->batch = (int)batch;
    s->seq_len = info.max_positions;
    if (width % info.vae_scale || height % info.vae_scale)
        return sdc_err(err, "--width/--height: %lldx%lld is not a multiple of the VAE's factor %d", width, height,
                       info.vae_scale);
    int lat = c == COMP_UNET || c == COMP_VAE_DECODER;
    s->width = lat ? width / info.vae_scale : width;
    s->height = lat ? height / info.vae_scale : height;
    return 0;
}

typedef struct ModelArgs {
    const char *comp, *passes, *variant, *out, *disabled;
    long long width, height, batch, clip_skip;
    int emit_ir, json;
} ModelArgs;

/* The image size flags shared by import, stats and graph. */
#define SIZE_OPTS(a)                                                                              \
    {"--width", ARG_INT, &(a).width, "W", "image width in pixels (default 512)", 8, 16384},      \
    {"--height", ARG_INT, &(a).height, "H", "image height in pixels (default 512)", 8, 16384},   \
    {"--batch", ARG_INT, &(a).batch, "B", "batch size (default 1)", 1, 1024}

/* Imports component c at the size in a and runs a's passes on it. */
static Graph *import_component(Model *m, Component c, const ModelArgs *a, SdcErr *err)
{
    ImportShape s;
    if (shape_for_image(m, c, a->width, a->height, a->batch, &s, err) < 0) return NULL;
    s.clip_skip = (int)a->clip_skip;
    Graph *g = model_import(m, c, &s, err);
    PassOptions po = {.pipeline = a->passes, .disabled = a->disabled, .verify = 1, .scratch_dir = cli_scratch_dir()};
    if (g && pass_run_pipeline(g, &po, err) < 0) graph_free(g), g = NULL;
    return g;
}

int cmd_import(int argc, char **argv)
{
    ModelArgs a = {.width = 512, .height = 512, .batch = 1, .passes = ""};
    const OptSpec opts[] = {
        {"--component", ARG_STR, &a.comp, "NAME", "unet, vae-decoder, vae-encoder or text-encoder (required)"},
        SIZE_OPTS(a),
        {"--clip-skip", ARG_INT, &a.clip_skip, "K", "text encoder: hidden state K layers before the last", 0, 64},
        {"--passes", ARG_STR, &a.passes, "A,B", "passes to run on the imported graph (default: none)"},
        {"--emit-ir", ARG_BOOL, &a.emit_ir, "", "print the graph's IR (otherwise a summary)"},
        {"--variant", ARG_STR, &a.variant, "NAME", "prefer weight files of this variant (e.g. fp16)"},
        {"-o", ARG_STR, &a.out, "FILE", "write the IR to FILE"},
    };
    const CmdSpec spec = {"import", "sdc import MODEL --component NAME [--width W --height H --batch B] [--emit-ir]",
                          "Imports one component of MODEL into sdc's IR for a fixed image size and batch.", 1, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    Component c;
    Model m;
    if (parse_component(a.comp, &c, &err) < 0 || (a.out && path_check_output("-o", a.out, &err) < 0) ||
        model_open(&m, pos[0], a.variant, &err) < 0)
        return cli_fail(&err);
    rc = 1;
    Graph *g = import_component(&m, c, &a, &err);
    if (!g) goto done;
    if (a.emit_ir || a.out) {
        char *text = ir_print_str(g);
        if (a.out) {
            if (file_write_atomic(a.out, text, strlen(text), &err) < 0) {
                free(text);
                goto done;
            }
        } else {
            fputs(text, stdout);
        }
        free(text);
    } else {
        GraphStats st;
        graph_stats(g, &st);
        printf("%s: %d nodes, %lld parameters, %.3f GFLOP per call\n", component_name(c), st.nodes,
               (long long)st.params, st.flops / 1e9);
    }
    rc = 0;
done:
    if (rc) cli_fail(&err);
    graph_free(g);
    model_close(&m);
    return rc;
}

static void print_stats_text(Component c, const Graph *g)
{
    GraphStats st;
    MemStats m;
    graph_stats(g, &st);
    graph_mem_stats(g, &m);
    printf("%s\n  %d nodes, %lld parameters, %.3f GFLOP per call\n", component_name(c), st.nodes, (long long)st.params,
           st.flops / 1e9);
    printf("  bytes moved %.1f MB, materialised %.1f MB; arena %.1f MiB planned, %.1f MiB lower bound\n",
           (st.bytes_read + st.bytes_written) / 1e6, m.bytes_materialised / 1e6, m.planned_peak / 1048576.0,
           m.lower_bound / 1048576.0);
    printf("  layout conversions: %d permutes, %.1f MB written\n", m.layout_conversions,
           m.layout_conversion_bytes / 1e6);
    printf("  ops:");
    for (int op = 0; op < OP_COUNT; op++)
        if (st.ops_by_kind[op]) printf(" %s=%d", op_table[op].name, st.ops_by_kind[op]);
    printf("\n  largest buffers:");
    for (int k = 0; k < m.nlargest && k < 3; k++)
        printf(" %%%s (%.1f MiB)", g->nodes[m.largest[k]].name, node_bytes(&g->nodes[m.largest[k]]) / 1048576.0);
    printf("\n");
}

int cmd_stats(int argc, char **argv)
{
    ModelArgs a = {.width = 512, .height = 512, .batch = 1, .passes = NULL};
    const OptSpec opts[] = {
        {"--component", ARG_STR, &a.comp, "NAME", "one component (default: all four)"},
        SIZE_OPTS(a),
        {"--passes", ARG_STR, &a.passes, "A,B", "passes to run before counting (default: the compile pipeline; empty: none)"},
        {"--disable-pass", ARG_STR, &a.disabled, "A,B", "skip these passes"},
        {"--variant", ARG_STR, &a.variant, "NAME", "prefer weight files of this variant (e.g. fp16)"},
        {"--json", ARG_BOOL, &a.json, "", "print JSON (one object; per component unless --component is given)"},
    };
    const CmdSpec spec = {"stats", "sdc stats MODEL [--component NAME] [--width W --height H --batch B] [--json]",
                          "Parameters, FLOPs and bytes of each component for one call at a fixed size.", 1, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    Component only = COMP_COUNT;
    if (a.comp && parse_component(a.comp, &only, &err) < 0) return cli_fail(&err);
    Model m;
    if (model_open(&m, pos[0], a.variant, &err) < 0) return cli_fail(&err);
    if (a.json && only == COMP_COUNT) printf("{");
    rc = 0;
    int first = 1;
    for (int c = 0; c < COMP_COUNT && rc == 0; c++) {
        if (only != COMP_COUNT && c != (int)only) continue;
        Graph *g = import_component(&m, (Component)c, &a, &err);
        if (!g) {
            rc = 1;
            break;
        }
        if (a.json && only != COMP_COUNT) stats_print_json(g, stdout, "");
        else if (a.json) printf("%s\n  \"%s\": ", first ? "" : ",", component_name((Component)c)), stats_print_json(g, stdout, "  ");
        else print_stats_text((Component)c, g);
        first = 0;
        graph_free(g);
    }
    if (a.json && rc == 0) printf(only == COMP_COUNT ? "\n}\n" : "\n");
    model_close(&m);
    return rc ? cli_fail(&err) : 0;
}

int cmd_graph(int argc, char **argv)
{
    ModelArgs a = {.width = 512, .height = 512, .batch = 1, .passes = NULL};
    int dot = 0;
    const OptSpec opts[] = {
        {"--component", ARG_STR, &a.comp, "NAME", "for a model: unet, vae-decoder, vae-encoder or text-encoder"},
        SIZE_OPTS(a),
        {"--passes", ARG_STR, &a.passes, "A,B", "passes to run first (default: the compile pipeline; empty: none)"},
        {"--dot", ARG_BOOL, &dot, "", "write Graphviz (the only format for now)"},
        {"-o", ARG_STR, &a.out, "FILE", "write to FILE instead of stdout"},
    };
    const CmdSpec spec = {"graph", "sdc graph MODEL|FILE.ir [--component NAME] --dot [-o FILE.dot]",
                          "Draws a graph (an IR file, or a model component) as Graphviz.", 1, 1, opts,
                          sizeof opts / sizeof opts[0]};
    const char *pos[1];
    int npos;
    SdcErr err = {{0}};
    int rc = args_parse(&spec, argc, argv, pos, &npos, &err);
    if (rc) return rc < 0 ? cli_fail(&err) : 0;
    if (!dot) {
        sdc_err(&err, "sdc graph: give the output format (--dot)");
        return cli_fail(&err);
    }
    Graph *g = NULL;
    size_t len = strlen(pos[0]);
    if (len > 3 && strcmp(pos[0] + len - 3, ".ir") == 0) {
        PassOptions po = {.pipeline = a.passes, .verify = 1, .scratch_dir = cli_scratch_dir()};
        if (!(g = ir_parse_file(pos[0], &err)) || ir_verify(g, &err) < 0 || pass_run_pipeline(g, &po, &err) < 0)
            return graph_free(g), cli_fail(&err);
    } else {
        Component c;
        Model m;
        if (parse_component(a.comp, &c, &err) < 0 || model_open(&m, pos[0], NULL, &err) < 0) return cli_fail(&err);
        g = import_component(&m, c, &a, &err);
        model_close(&m);
        if (!g) return cli_fail(&err);
    }
    FILE *out = stdout;
    AtomicFile af = {0};
    if (a.out && atomic_open(&af, a.out, &err) < 0) {
        graph_free(g);
        return cli_fail(&err);
    }
    if (a.out) out = af.f;
    ir_print_dot(g, out);
    graph_free(g);
    if (a.out && atomic_commit(&af, &err) < 0) return cli_fail(&err);
    return 0;
}
