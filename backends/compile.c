/* compile.c — `sdc compile`: import, optimise, plan, write weights, emit C,
 * run the C compiler.
 *
 * Phases (shown on stderr unless --quiet):
 *   1. import the four graphs at the fixed size and batch (the UNet at twice
 *      the batch when classifier-free guidance is on);
 *   2. run the pass pipeline on each;
 *   3. build the sampler's plan from scheduler_config.json;
 *   4. write "<out>.weights": every constant in the compute dtype, plus the
 *      tokenizer files as metadata, so the executable needs nothing else;
 *   5. plan memory and emit C through the backend;
 *   6. compile and link against the runtime. */
#include "compile.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "fsutil.h"
#include "graph_main.h"
#include "interp.h"
#include "kernels.h"
#include "model.h"
#include "pass.h"
#include "pipeline.h"
#include "safetensors.h"
#include "scheduler.h"
#include "stats.h"
#include "tokenizer.h"
#include "weight_pack.h"

#ifndef SDC_SOURCE_DIR
#define SDC_SOURCE_DIR "."
#endif
#ifndef SDC_BINARY_DIR
#define SDC_BINARY_DIR "."
#endif
#ifndef SDC_VERSION
#define SDC_VERSION "0.0.0"
#endif
#ifndef SDC_RUNTIME_CFLAGS
#define SDC_RUNTIME_CFLAGS ""
#endif

enum { PART_TE, PART_UNET, PART_VAE_DEC, PART_VAE_ENC, NPARTS };
static const char *const part_names[NPARTS] = {"text_encoder", "unet", "vae_decoder", "vae_encoder"};
static const Component part_comp[NPARTS] = {COMP_TEXT_ENCODER, COMP_UNET, COMP_VAE_DECODER, COMP_VAE_ENCODER};

typedef struct Part {
    Graph *g;
    MemPlan plan;
    int64_t *woff;      /* per node: offset in the weights file */
    int *wtensor;       /* per node: index of its tensor in the weights file, -1 if none */
    WeightPack *wpack;  /* per node: how a constant is stored (packed GEMM weights) */
} Part;

typedef struct Compile {
    const CompileOptions *o;
    int nparts;
    const char *const *names; /* graph (part) names */
    Model model;
    ModelInfo info;
    Part part[NPARTS];
    SchedConfig sched_cfg;
    SchedPlan plan;
    char *vocab, *merges;
    const char *pad_token_owned;
    char pad_token[64];
    int max_length;
    char *weights_path, *c_path;
    char scratch[64]; /* where passes write the constants they compute; removed at the end */
    uint64_t weights_id, weights_size;
    char options[1024];
    int cfg; /* classifier-free guidance */
} Compile;

void compile_options_default(CompileOptions *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "c";
    o->width = o->height = 512;
    o->steps = 20;
    o->batch = 1;
    o->guidance = 7.5;
}

static void phase(const Compile *c, const char *fmt, const char *arg)
{
    if (c->o->quiet) return;
    fprintf(stderr, "sdc compile: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
}

/* --- 1-2: graphs -------------------------------------------------------------- */

static int import_parts(Compile *c, SdcErr *err)
{
    const CompileOptions *o = c->o;
    int scale = c->info.vae_scale;
    if (o->width % scale || o->height % scale)
        return sdc_err(err, "--width/--height: %dx%d is not a multiple of %d (the VAE's scale)", o->width, o->height, scale);
    int text_batch = c->cfg ? 2 : 1;
    ImportShape shapes[NPARTS] = {
        [PART_TE] = {.batch = text_batch, .seq_len = c->info.max_positions, .clip_skip = o->clip_skip},
        [PART_UNET] = {.batch = text_batch * o->batch, .height = o->height / scale, .width = o->width / scale,
                       .seq_len = c->info.max_positions},
        [PART_VAE_DEC] = {.batch = o->batch, .height = o->height / scale, .width = o->width / scale},
        [PART_VAE_ENC] = {.batch = o->batch, .height = o->height, .width = o->width},
    };
    const Backend *be = backend_find(o->backend);
    if (!be) return sdc_err(err, "--backend: unknown backend \"%s\" (available: c)", o->backend);
    PassOptions lora_po = {.pipeline = o->passes, .disabled = o->disabled, .nloras = o->nloras};
    if (pass_fold_lora_check(&lora_po, err) < 0) return -1;
    for (int p = 0; p < NPARTS; p++) {
        phase(c, "importing %s", part_names[p]);
        Graph *g = model_import(&c->model, part_comp[p], &shapes[p], err);
        if (!g) return -1;
        c->part[p].g = g;
        free(g->name);
        g->name = xstrdup(part_names[p]);
        PassOptions po = {.pipeline = o->passes, .disabled = o->disabled, .print_after = o->print_after,
                          .timing = o->timing, .verify = 1, .ir_out = stdout, .report = stderr,
                          .scratch_dir = c->scratch, .n_steps = c->plan.n_evals, .timesteps = c->plan.timesteps,
                          .nloras = o->nloras, .lora_files = o->lora_files, .lora_mults = o->lora_mults};
        if (pass_run_pipeline(g, &po, err) < 0) return sdc_err_prefix(err, "%s", part_names[p]);
        if (backend_check(be, g, err) < 0) return -1;
    }
    return 0;
}

/* --- 3: sampler ------------------------------------------------------------------ */

static int plan_sampler(Compile *c, SdcErr *err)
{
    const CompileOptions *o = c->o;
    SamplerKind kind = SAMPLER_PNDM;
    char *path = c->model.single_file ? NULL : path_join(c->model.root, "scheduler/scheduler_config.json");
    if (path && !path_exists(path)) free(path), path = NULL;
    if (o->sampler) {
        if (sampler_from_name(o->sampler, &kind) < 0) {
            free(path);
            return sdc_err(err, "--sampler: unknown sampler \"%s\" (ddim, pndm, lms, euler, euler_a, dpmpp_2m, "
                                "dpmpp_2m_karras)", o->sampler);
        }
    } else if (path) {
        Cfg sc;
        if (cfg_load(&sc, path, "scheduler/scheduler_config.json", err) < 0) return free(path), cfg_free(&sc), -1;
        const char *cls = cfg_str(&sc, "_class_name", "PNDMScheduler");
        if (!sc.failed && sampler_from_class_name(cls, &kind) < 0)
            cfg_fail(&sc, "_class_name", "unknown scheduler \"%s\": choose one with --sampler", cls);
        int bad = sc.failed;
        cfg_free(&sc);
        if (bad) return free(path), -1;
    }
    int rc = 0;
    if (path) rc = sched_config_load(&c->sched_cfg, path, kind, err);
    else sched_config_default(&c->sched_cfg, kind);
    free(path);
    if (rc < 0) return -1;
    if (sched_plan(&c->plan, &c->sched_cfg, o->steps, o->eta, err) < 0) return sdc_err_prefix(err, "--steps %d", o->steps);
    return 0;
}

/* --- tokenizer ------------------------------------------------------------------- */

static int load_tokenizer(Compile *c, SdcErr *err)
{
    char *dir = c->o->tokenizer ? xstrdup(c->o->tokenizer)
                                : c->model.single_file ? NULL : path_join(c->model.root, "tokenizer");
    if (!dir) return sdc_err(err, "%s: a single-file checkpoint has no tokenizer: give one with --tokenizer DIR", c->model.root);
    Tokenizer *t = NULL;
    int rc = tok_load_dir(&t, dir, err);
    if (rc == 0) {
        snprintf(c->pad_token, sizeof c->pad_token, "%s", tok_pad_token(t));
        c->max_length = tok_max_length(t);
        const Node *table = NULL;
        const Graph *te = c->part[PART_TE].g;
        for (int i = 0; i < te->n && !table; i++)
            if (te->nodes[i].op == OP_EMBEDDING) table = &te->nodes[te->nodes[i].in[1]];
        if (table && tok_vocab_size(t) > table->shape[0])
            rc = sdc_err(err, "%s: the tokenizer has %d tokens, the text encoder's table only %lld rows", dir,
                         tok_vocab_size(t), (long long)table->shape[0]);
        if (c->max_length != c->info.max_positions)
            rc = sdc_err(err, "%s: model_max_length %d differs from the text encoder's %d positions", dir, c->max_length,
                         c->info.max_positions);
    }
    tok_free(t);
    if (rc == 0) {
        char *vp = path_join(dir, "vocab.json"), *mp = path_join(dir, "merges.txt");
        c->vocab = file_read_all(vp, NULL, err);
        c->merges = c->vocab ? file_read_all(mp, NULL, err) : NULL;
        if (!c->merges) rc = -1;
        free(vp), free(mp);
    }
    free(dir);
    return rc;
}

/* --- 4: weights file ---------------------------------------------------------------- */

typedef struct WTensor {
    int part, node;
} WTensor;

static int same_source(const Node *a, const Node *b)
{
    return a->ckind == CONST_FILE && b->ckind == CONST_FILE && a->coffset == b->coffset && a->cdtype == b->cdtype &&
           node_numel(a) == node_numel(b) && a->ndim == b->ndim && strcmp(a->cfile, b->cfile) == 0;
}

static int same_pack(const WeightPack *a, const WeightPack *b)
{
    return a->pack == b->pack && a->groups == b->groups && a->rows == b->rows && a->k == b->k;
}

static DType pack_dtype(RtWeightPack pack)
{
    return pack == RT_WPACK_CONV_F16 || pack == RT_WPACK_LINEAR_F16     ? DT_F16
           : pack == RT_WPACK_CONV_BF16 || pack == RT_WPACK_LINEAR_BF16 ? DT_BF16
                                                                         : DT_F32;
}

/* Writes one constant as the weights file stores it: f32, or packed for the
 * GEMM micro-kernel (rt_pack_weight) in the chosen precision. */
static int put_weight(StWriter *w, const Graph *g, const Node *nd, const WeightPack *wp, SdcErr *err)
{
    Tensor *t = interp_load_const(g, nd, err);
    if (!t) return -1;
    int rc;
    if (wp->pack == RT_WPACK_NONE) {
        rc = st_writer_put(w, t->f, err);
    } else {
        int64_t bytes = rt_packed_weight_size(wp->pack, wp->groups, wp->rows, wp->k);
        void *packed = xmalloc((size_t)bytes);
        rt_pack_weight(wp->pack, wp->groups, wp->rows, wp->k, t->f, packed);
        rc = st_writer_put_n(w, packed, (uint64_t)bytes, err);
        free(packed);
    }
    tensor_free(t);
    return rc;
}

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int write_weights(Compile *c, SdcErr *err)
{
    WTensor *list = NULL;
    int n = 0;
    for (int p = 0; p < c->nparts; p++) {
        const Graph *g = c->part[p].g;
        c->part[p].wtensor = xmalloc(sizeof(int) * (size_t)g->n);
        c->part[p].woff = xmalloc(sizeof(int64_t) * (size_t)g->n);
        c->part[p].wpack = xmalloc(sizeof(WeightPack) * (size_t)g->n);
        weight_pack_plan(g, c->o->weights_dtype, c->part[p].wpack);
        for (int i = 0; i < g->n; i++) {
            c->part[p].wtensor[i] = -1;
            c->part[p].woff[i] = -1;
            const Node *nd = &g->nodes[i];
            if (nd->op != OP_CONST) continue;
            int found = -1;
            /* the same bytes used twice (tied weights, a VAE file shared by two graphs) are stored once */
            for (int k = n - 1; k >= 0 && found < 0; k--)
                if (same_source(nd, &c->part[list[k].part].g->nodes[list[k].node]) &&
                    same_pack(&c->part[p].wpack[i], &c->part[list[k].part].wpack[list[k].node]))
                    found = k;
            if (found < 0) {
                list = xrealloc(list, sizeof(WTensor) * (size_t)(n + 1));
                list[n] = (WTensor){p, i};
                found = n++;
            }
            c->part[p].wtensor[i] = found;
        }
    }
    /* tensors whose size is a multiple of 64 bytes first: the data section
     * starts 64-aligned, so they all start on a cache line (packed linear
     * weights are read with aligned-size vector loads) */
    int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), no = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < n; k++) {
            const WeightPack *wp = &c->part[list[k].part].wpack[list[k].node];
            int64_t bytes = wp->pack ? rt_packed_weight_size(wp->pack, wp->groups, wp->rows, wp->k)
                                     : 4 * node_numel(&c->part[list[k].part].g->nodes[list[k].node]);
            if ((bytes % 64 == 0) == (pass == 0)) order[no++] = k;
        }
    StDesc *descs = xcalloc((size_t)(n ? n : 1), sizeof(StDesc));
    char **names = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    uint64_t id = 1469598103934665603ull;
    id = fnv(id, c->options, strlen(c->options));
    if (c->model.root) id = fnv(id, c->model.root, strlen(c->model.root));
    for (int k = 0; k < n; k++) {
        const Node *nd = &c->part[list[k].part].g->nodes[list[k].node];
        const WeightPack *wp = &c->part[list[k].part].wpack[list[k].node];
        size_t len = strlen(c->names[list[k].part]) + strlen(nd->name) + 2;
        names[k] = xmalloc(len);
        snprintf(names[k], len, "%s/%s", c->names[list[k].part], nd->name);
        StDesc *d = &descs[k];
        d->name = names[k];
        d->dtype = DT_F32;
        d->ndim = nd->ndim;
        memcpy(d->shape, nd->shape, sizeof(int64_t) * (size_t)nd->ndim);
        if (wp->pack != RT_WPACK_NONE) { /* packed: a flat run of its storage type */
            d->dtype = pack_dtype(wp->pack);
            d->ndim = 1;
            d->shape[0] = rt_packed_weight_size(wp->pack, wp->groups, wp->rows, wp->k) / (int64_t)dtype_size(d->dtype);
        }
        id = fnv(id, names[k], len);
        id = fnv(id, nd->shape, sizeof(int64_t) * (size_t)nd->ndim);
        id = fnv(id, &wp->pack, sizeof wp->pack);
        if (nd->ckind == CONST_FILE) id = fnv(id, &nd->coffset, sizeof nd->coffset);
    }
    /* descs in file order */
    StDesc *file_descs = xmalloc(sizeof(StDesc) * (size_t)(n ? n : 1));
    for (int k = 0; k < n; k++) file_descs[k] = descs[order[k]];
    c->weights_id = id;
    char id_str[32], maxlen[16];
    pipeline_weights_id_str(id, id_str);
    snprintf(maxlen, sizeof maxlen, "%d", c->max_length);
    char packing[160];
    snprintf(packing, sizeof packing, "%s %s", dtype_name(c->o->weights_dtype), rt_weight_packing());
    /* a single graph (compile-graph) has no model or tokenizer */
    const char *keys[] = {"sdc.weights_id", "sdc.version", "sdc.packing", "sdc.model", "sdc.vocab_json",
                          "sdc.merges_txt", "sdc.pad_token", "sdc.max_length"};
    const char *vals[] = {id_str, SDC_VERSION, packing, c->model.root, c->vocab, c->merges, c->pad_token, maxlen};
    StWriter *w;
    if (st_writer_open_aligned(&w, c->weights_path, n, file_descs, c->vocab ? 8 : 3, keys, vals, 64, err) < 0)
        goto fail;
    for (int k = 0; k < n; k++) {
        const Graph *g = c->part[list[order[k]].part].g;
        int node = list[order[k]].node;
        if (put_weight(w, g, &g->nodes[node], &c->part[list[order[k]].part].wpack[node], err) < 0) {
            st_writer_abort(w);
            goto fail;
        }
    }
    if (st_writer_finish(w, err) < 0) goto fail;
    /* read back where each tensor landed */
    StFile f;
    if (st_open(&f, c->weights_path, err) < 0) goto fail;
    c->weights_size = f.size;
    for (int p = 0; p < c->nparts; p++)
        for (int i = 0; i < c->part[p].g->n; i++)
            if (c->part[p].wtensor[i] >= 0) c->part[p].woff[i] = (int64_t)st_find(&f, names[c->part[p].wtensor[i]])->offset;
    st_close(&f);
    for (int k = 0; k < n; k++) free(names[k]);
    free(names), free(descs), free(file_descs), free(order), free(list);
    return 0;
fail:
    for (int k = 0; k < n; k++) free(names[k]);
    free(names), free(descs), free(file_descs), free(order), free(list);
    return -1;
}

/* --- 5: C ------------------------------------------------------------------------------ */

static void show_bytes(char out[32], uint64_t b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 6) v /= 1024, u++;
    snprintf(out, 32, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* Plans each graph's memory and refuses plans that cannot run: more than a
 * 64-bit process can map (47-bit user addresses), or more than --max-memory.
 * The executable holds one arena (the largest plan: graphs run one at a
 * time), the once-per-prompt values of every graph and the mmap-ed weights.
 * (The verifier keeps every graph within IR_MAX_GRAPH_BYTES, so the sums
 * below and the planner's offsets cannot overflow.) */
static int plan_memory(Compile *c, SdcErr *err)
{
    const uint64_t mappable = (uint64_t)1 << 47;
    uint64_t arena = 0, persist = 0;
    for (int p = 0; p < c->nparts; p++) {
        memplan_compute(c->part[p].g, &c->part[p].plan);
        if (c->part[p].plan.peak > arena) arena = c->part[p].plan.peak;
        persist += c->part[p].plan.persist_bytes;
    }
    uint64_t total = arena + persist + c->weights_size;
    char a[32], w[32], t[32], m[32];
    show_bytes(a, arena + persist), show_bytes(w, c->weights_size), show_bytes(t, total), show_bytes(m, c->o->max_memory);
    if (total > mappable)
        return sdc_err(err, "%s: the plan needs %s (activations %s + weights %s), more than a process can map", c->o->model,
                       t, a, w);
    if (c->o->max_memory && total > c->o->max_memory)
        return sdc_err(err, "--max-memory: the plan needs %s (activations %s + weights %s), more than %s", t, a, w, m);
    return 0;
}

/* A float literal that reads back as the same float32. */
static void cfloat(FILE *f, float v)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    if (!strpbrk(buf, ".en")) strcat(buf, ".0");
    fprintf(f, "%sf", buf);
}

static void float_array(FILE *f, const char *name, const float *v, int n)
{
    fprintf(f, "static float %s[] = {", name);
    for (int i = 0; i < n; i++) {
        fputs(i % 8 ? ", " : (i ? ",\n    " : "\n    "), f);
        cfloat(f, v[i]);
    }
    fprintf(f, "%s};\n", n ? "\n" : "0");
}

static void c_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 32) fprintf(f, "\\%03o", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void graph_info(FILE *f, Compile *c, int p)
{
    const Graph *g = c->part[p].g;
    GraphStats st;
    graph_stats(g, &st);
    int nin = 0, np = 0;
    int64_t in_numel[SDC_GRAPH_MAX_IO] = {0};
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_INPUT && nin < SDC_GRAPH_MAX_IO) in_numel[nin++] = node_numel(n);
        if (n->op != OP_INPUT && n->op != OP_CONST && n->op != OP_RESHAPE) np++;
    }
    fprintf(f, "    .%s = {\"%s\", graph_%s, %" PRIu64 ", %.17g, %d, %d, {", part_names[p], part_names[p],
            part_names[p], c->part[p].plan.peak, st.flops, nin, g->nout);
    for (int k = 0; k < nin; k++) fprintf(f, k ? ", %" PRId64 : "%" PRId64, in_numel[k]);
    fprintf(f, "}, {");
    for (int k = 0; k < g->nout; k++) fprintf(f, k ? ", %" PRId64 : "%" PRId64, node_numel(&g->nodes[g->outputs[k]]));
    fprintf(f, "}, %d, %s_node_names, %s_node_kind, %s_node_flops},\n", np, part_names[p], part_names[p],
            part_names[p]);
}

static int emit_c(Compile *c, SdcErr *err)
{
    AtomicFile af;
    if (atomic_open(&af, c->c_path, err) < 0) return -1;
    FILE *f = af.f;
    fprintf(f, "/* Generated by sdc %s: a text-to-image executable for\n *   %s\n *   %s\n * Do not edit; recompile. */\n",
            SDC_VERSION, c->model.root, c->options);
    EmitGraph eg[NPARTS];
    if (plan_memory(c, err) < 0) {
        atomic_abort(&af);
        return -1;
    }
    for (int p = 0; p < NPARTS; p++)
        eg[p] = (EmitGraph){part_names[p], p, c->part[p].g, &c->part[p].plan, c->part[p].woff, c->part[p].wpack,
                            c->o->weights_dtype == DT_BF16};
    const Backend *be = backend_find(c->o->backend);
    if (be->emit_graphs(eg, NPARTS, f, err) < 0) {
        atomic_abort(&af);
        return -1;
    }
    const SchedPlan *sp = &c->plan;
    float_array(f, "sched_timesteps", sp->timesteps, sp->n_evals);
    float_array(f, "sched_in_scale", sp->in_scale, sp->n_evals);
    if (sp->sigmas) float_array(f, "sched_sigmas", sp->sigmas, sp->n_evals + 1);
    float_array(f, "sched_coef", sp->coef, sp->n_evals * SCHED_NCOEF);
    if (c->o->embed_weights) {
        /* the assembler copies the file into .rodata (paths with quotes were refused earlier) */
        fprintf(f, "__asm__(\".section .rodata\\n.balign 64\\n.globl sdc_embedded_weights\\n"
                   "sdc_embedded_weights:\\n.incbin \\\"%s\\\"\\n.previous\\n\");\n"
                   "extern const unsigned char sdc_embedded_weights[];\n",
                c->weights_path);
    }
    fprintf(f, "\nstatic const char *const sdc_op_names[] = {");
    for (int k = 0; k < OP_COUNT; k++) fprintf(f, k ? ", \"%s\"" : "\"%s\"", op_table[k].name);
    fprintf(f, "};\n");
    fprintf(f, "\nconst SdcPipeline sdc_pipeline = {\n    .model = ");
    c_string(f, c->model.root);
    fprintf(f, ",\n    .sdc_version = \"%s\",\n    .options = ", SDC_VERSION);
    c_string(f, c->options);
    const CompileOptions *o = c->o;
    fprintf(f, ",\n    .width = %d, .height = %d, .batch = %d,\n", o->width, o->height, o->batch);
    fprintf(f, "    .latent_c = %d, .latent_h = %d, .latent_w = %d, .seq_len = %d, .text_dim = %d,\n",
            c->info.latent_channels, o->height / c->info.vae_scale, o->width / c->info.vae_scale, c->info.max_positions,
            c->info.text_hidden);
    fprintf(f, "    .guidance = ");
    cfloat(f, (float)o->guidance);
    fprintf(f, ", .scaling_factor = ");
    cfloat(f, (float)c->info.scaling_factor);
    fprintf(f, ", .clip_skip = %d,\n", o->clip_skip);
    fprintf(f, "    .sched = {.kind = %d, .prediction = %d, .steps = %d, .n_evals = %d, .num_train_timesteps = %d,\n",
            (int)sp->kind, (int)sp->prediction, sp->steps, sp->n_evals, sp->num_train_timesteps);
    fprintf(f, "              .init_noise_sigma = ");
    cfloat(f, sp->init_noise_sigma);
    fprintf(f, ", .noise = %d, .eta = %.17g, .clip_sample = %d, .clip_range = ", (int)sp->noise, sp->eta, sp->clip_sample);
    cfloat(f, sp->clip_range);
    fprintf(f, ",\n              .timesteps = sched_timesteps, .in_scale = sched_in_scale, .sigmas = %s, .coef = sched_coef},\n",
            sp->sigmas ? "sched_sigmas" : "NULL");
    for (int p = 0; p < NPARTS; p++) graph_info(f, c, p);
    fprintf(f, "    .op_kind_names = sdc_op_names, .n_op_kinds = %d,\n", OP_COUNT);
    fprintf(f, "    .weights_id = 0x%016" PRIx64 "ull,\n", c->weights_id);
    if (o->embed_weights)
        fprintf(f, "    .embedded_weights = sdc_embedded_weights, .embedded_size = %" PRIu64 "ull,\n", c->weights_size);
    fprintf(f, "};\n\nint main(int argc, char **argv) { return pipeline_main(&sdc_pipeline, argc, argv); }\n");
    return atomic_commit(&af, err);
}

/* --- 6: cc ---------------------------------------------------------------------------- */

static int run_cc(Compile *c, SdcErr *err)
{
    const char *cc = c->o->cc ? c->o->cc : getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    const char *inc = getenv("SDC_RUNTIME_INCLUDE") ? getenv("SDC_RUNTIME_INCLUDE") : SDC_SOURCE_DIR "/runtime";
    const char *lib = getenv("SDC_RUNTIME_LIB") ? getenv("SDC_RUNTIME_LIB") : SDC_BINARY_DIR "/libsdc_runtime.a";
    if (!path_exists(lib)) return sdc_err(err, "%s: the sdc runtime library is missing (build sdc, or set SDC_RUNTIME_LIB)", lib);
    size_t n = strlen(c->o->out) + 32;
    char *tmp = xmalloc(n), *log = xmalloc(n + 8);
    snprintf(tmp, n, "%s.tmp.%ld", c->o->out, (long)getpid());
    snprintf(log, n + 8, "%s.cc.log", tmp);
    char incflag[PATH_MAX + 8];
    snprintf(incflag, sizeof incflag, "-I%s", inc);
    /* flags the runtime library was built with and its users must share
     * (the sanitizers, in an SDC_SANITIZE build) */
    char *rt_flags = xstrdup(SDC_RUNTIME_CFLAGS);
    const char *argv[48] = {cc, "-std=gnu17", "-O1", "-fopenmp", incflag};
    int na = 5;
    for (char *f = strtok(rt_flags, " "); f && na < 32; f = strtok(NULL, " ")) argv[na++] = f;
    const char *const rest[] = {c->c_path, lib, "-lpng", "-lz", "-lcjson", "-lm", "-o", tmp, NULL};
    for (size_t k = 0; k < sizeof rest / sizeof rest[0]; k++) argv[na++] = rest[k];
    pid_t pid = fork();
    if (pid < 0) {
        free(tmp), free(log), free(rt_flags);
        return sdc_err(err, "cannot start the C compiler: %s", strerror(errno));
    }
    if (pid == 0) {
        FILE *lf = freopen(log, "w", stderr);
        (void)lf;
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execvp(cc, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", cc, strerror(errno));
        fflush(stderr); /* _exit does not flush, and freopen made stderr buffered */
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *text = file_read_all(log, NULL, NULL);
        char first[300] = "";
        if (text) {
            char *nl = strchr(text, '\n');
            if (nl && nl[1]) nl = strchr(nl + 1, '\n'); /* the first two lines */
            if (nl) *nl = 0;
            for (char *s = text; *s; s++)
                if (*s == '\n') *s = ' ';
            snprintf(first, sizeof first, "%s", text);
        }
        free(text);
        rc = sdc_err(err, "%s failed on %s: %s", cc, c->c_path, first);
        unlink(tmp);
    } else if (rename(tmp, c->o->out) != 0) {
        rc = sdc_err(err, "%s: %s", c->o->out, strerror(errno));
        unlink(tmp);
    }
    unlink(log);
    free(tmp), free(log), free(rt_flags);
    return rc;
}

/* Gives the weights their final name "<out>.weights", once the executable is
 * in place (before, they live under a temporary name that is removed on
 * failure, so that a failed compile leaves no half-made pair). */
static int commit_weights(Compile *c, SdcErr *err)
{
    size_t n = strlen(c->o->out) + 16;
    char *final = xmalloc(n);
    snprintf(final, n, "%s.weights", c->o->out);
    int rc = rename(c->weights_path, final) == 0 ? 0 : sdc_err(err, "%s: %s", final, strerror(errno));
    if (rc) unlink(c->o->out);
    free(final);
    return rc;
}

static void free_parts(Compile *c)
{
    for (int p = 0; p < NPARTS; p++) {
        graph_free(c->part[p].g);
        memplan_free(&c->part[p].plan);
        free(c->part[p].woff), free(c->part[p].wtensor), free(c->part[p].wpack);
    }
}

static void describe(Compile *c)
{
    const CompileOptions *o = c->o;
    snprintf(c->options, sizeof c->options,
             "width=%d height=%d steps=%d sampler=%s guidance=%g batch=%d clip_skip=%d eta=%g backend=%s passes=%s%s%s",
             o->width, o->height, o->steps, sampler_name(c->plan.kind), o->guidance, o->batch, o->clip_skip, o->eta,
             o->backend, o->passes ? o->passes : pass_default_pipeline(), o->disabled ? " disabled=" : "",
             o->disabled ? o->disabled : "");
    if (o->weights_dtype != DT_F32) {
        size_t at = strlen(c->options);
        snprintf(c->options + at, sizeof c->options - at, " weights_dtype=%s", dtype_name(o->weights_dtype));
    }
    for (int l = 0; l < o->nloras; l++) { /* the LoRAs are part of what was compiled */
        size_t at = strlen(c->options);
        snprintf(c->options + at, sizeof c->options - at, " lora=%s:%g", o->lora_files[l], o->lora_mults[l]);
    }
}

int sdc_compile(const CompileOptions *o, SdcErr *err)
{
    Compile c = {.o = o, .nparts = NPARTS, .names = part_names};
    int rc = -1;
    if (o->steps < 1) return sdc_err(err, "--steps must be at least 1");
    if (o->batch < 1) return sdc_err(err, "--batch must be at least 1");
    if (o->embed_weights && strpbrk(o->out, "\"\\\n"))
        return sdc_err(err, "--embed-weights: the output path must not contain quotes or backslashes");
    c.cfg = o->guidance > 1.0;
    size_t n = strlen(o->out) + 48;
    c.weights_path = xmalloc(n);
    c.c_path = xmalloc(n);
    /* the weights get their final name only with the executable: a failed
     * compile leaves neither, nor replaces an older build's weights */
    snprintf(c.weights_path, n, "%s.weights.tmp.%ld", o->out, (long)getpid());
    snprintf(c.c_path, n, "%s.c", o->out);
    snprintf(c.scratch, sizeof c.scratch, "/tmp/sdc-compile-XXXXXX");
    if (!mkdtemp(c.scratch)) {
        c.scratch[0] = 0;
        sdc_err(err, "cannot create a temporary folder: %s", strerror(errno));
        goto done;
    }
    if (model_open(&c.model, o->model, o->variant, err) < 0) goto done;
    if (model_info(&c.model, &c.info, err) < 0) goto done;
    if (plan_sampler(&c, err) < 0) goto done;
    describe(&c);
    if (import_parts(&c, err) < 0) goto done;
    if (load_tokenizer(&c, err) < 0) goto done;
    phase(&c, "writing %s.weights", o->out);
    if (write_weights(&c, err) < 0) goto done;
    phase(&c, "emitting %s", c.c_path);
    if (emit_c(&c, err) < 0) goto done;
    phase(&c, "compiling %s", o->out);
    if (run_cc(&c, err) < 0) goto done;
    if (!o->embed_weights && commit_weights(&c, err) < 0) goto done;
    rc = 0;
done:
    if (!o->keep_c) unlink(c.c_path);
    unlink(c.weights_path);
    remove_flat_dir(c.scratch);
    free_parts(&c);
    if (c.plan.timesteps) sched_plan_free(&c.plan);
    free(c.vocab), free(c.merges), free(c.weights_path), free(c.c_path);
    if (c.model.root) model_close(&c.model);
    return rc;
}

/* --- compile-graph: one IR file into a test executable ------------------------------ */

static void tensor_desc(FILE *f, const Node *n, const char *name)
{
    fprintf(f, "{\"%s\", %d, %d, {", name, !dtype_is_float(n->dtype), n->ndim);
    for (int d = 0; d < n->ndim; d++) fprintf(f, d ? ", %" PRId64 : "%" PRId64, n->shape[d]);
    fprintf(f, "}}");
}

static int emit_graph_main(Compile *c, SdcErr *err)
{
    AtomicFile af;
    if (atomic_open(&af, c->c_path, err) < 0) return -1;
    FILE *f = af.f;
    const Graph *g = c->part[0].g;
    fprintf(f, "/* Generated by sdc %s from %s. Do not edit. */\n", SDC_VERSION, c->o->model);
    if (plan_memory(c, err) < 0) {
        atomic_abort(&af);
        return -1;
    }
    EmitGraph eg = {"standalone", 0, g, &c->part[0].plan, c->part[0].woff, c->part[0].wpack,
                    c->o->weights_dtype == DT_BF16};
    if (backend_find(c->o->backend)->emit_graphs(&eg, 1, f, err) < 0) {
        atomic_abort(&af);
        return -1;
    }
    int nin = 0;
    for (int i = 0; i < g->n; i++) nin += g->nodes[i].op == OP_INPUT;
    if (nin > SDC_STANDALONE_MAX_IO || g->nout > SDC_STANDALONE_MAX_IO) {
        atomic_abort(&af);
        return sdc_err(err, "%s: compile-graph handles at most %d inputs and outputs", c->o->model, SDC_STANDALONE_MAX_IO);
    }
    fprintf(f, "#include \"graph_main.h\"\n\nstatic const SdcStandaloneGraph sdc_graph = {graph_standalone, %" PRIu64
               ", %d, %d, {", c->part[0].plan.peak, nin, g->nout);
    for (int i = 0, k = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT) fputs(k++ ? ", " : "", f), tensor_desc(f, &g->nodes[i], g->nodes[i].name);
    fprintf(f, "}, {");
    for (int o = 0; o < g->nout; o++) fputs(o ? ", " : "", f), tensor_desc(f, &g->nodes[g->outputs[o]], g->nodes[g->outputs[o]].name);
    fprintf(f, "}, 0x%016" PRIx64 "ull};\n\nint main(int argc, char **argv) { return graph_main(&sdc_graph, argc, argv); }\n",
            c->weights_id);
    return atomic_commit(&af, err);
}

int sdc_compile_graph(const CompileOptions *o, SdcErr *err)
{
    static const char *const names[1] = {"standalone"};
    Compile c = {.o = o, .nparts = 1, .names = names};
    snprintf(c.options, sizeof c.options, "graph %s passes=%s", o->model, o->passes ? o->passes : pass_default_pipeline());
    int rc = -1;
    size_t n = strlen(o->out) + 48;
    c.weights_path = xmalloc(n);
    c.c_path = xmalloc(n);
    snprintf(c.weights_path, n, "%s.weights.tmp.%ld", o->out, (long)getpid()); /* see commit_weights */
    snprintf(c.c_path, n, "%s.c", o->out);
    const Backend *be = backend_find(o->backend);
    if (!be) {
        sdc_err(err, "--backend: unknown backend \"%s\" (available: c)", o->backend);
        goto done;
    }
    snprintf(c.scratch, sizeof c.scratch, "/tmp/sdc-compile-XXXXXX");
    if (!mkdtemp(c.scratch)) {
        c.scratch[0] = 0;
        sdc_err(err, "cannot create a temporary folder: %s", strerror(errno));
        goto done;
    }
    if (!(c.part[0].g = ir_parse_file(o->model, err))) goto done;
    if (ir_verify(c.part[0].g, err) < 0) {
        sdc_err_prefix(err, "%s", o->model);
        goto done;
    }
    PassOptions po = {.pipeline = o->passes, .disabled = o->disabled, .print_after = o->print_after,
                      .timing = o->timing, .verify = 1, .ir_out = stdout, .report = stderr, .scratch_dir = c.scratch};
    if (pass_run_pipeline(c.part[0].g, &po, err) < 0 || backend_check(be, c.part[0].g, err) < 0) goto done;
    if (write_weights(&c, err) < 0 || emit_graph_main(&c, err) < 0 || run_cc(&c, err) < 0 || commit_weights(&c, err) < 0)
        goto done;
    rc = 0;
done:
    if (!o->keep_c) unlink(c.c_path);
    unlink(c.weights_path);
    remove_flat_dir(c.scratch);
    free_parts(&c);
    free(c.weights_path), free(c.c_path);
    return rc;
}
