/* pipeline_bench.c — the --bench report and the per-node profile.
 *
 * Scripts read the report, so its keys are fixed; new keys may be added,
 * none renamed or removed.  Times are seconds, means over the timed runs
 * (the warm-up is not counted):
 *   "model", "sdc_version", "width", "height", "batch" (images per run),
 *   "steps" (inference steps), "unet_evals" (denoising steps run per image:
 *   pndm runs steps + 1, img2img fewer), "sampler", "guidance", "img2img",
 *   "threads", "runs",
 *   "text_encoder_s", "unet_step_s" {"mean", "min", "max"} (the UNet calls of
 *   one denoising step, over every step of every run), "vae_decoder_s",
 *   "vae_encoder_s" (0 without --init-image), "total_s" (one generation: B
 *   images, tokens to RGB bytes), "total_per_image_s" (total_s / batch),
 *   "ready_s" (from pipeline_main's start, flags and weights included, to the
 *   first UNet call), "peak_rss_bytes" (VmHWM),
 *   "gflops" {"text_encoder", "unet", "vae_decoder"} (GFLOP/s from
 *   SdcGraphInfo.flops),
 *   "image_checksum", "latents_checksum" (FNV-1a 64 of the RGB bytes of all
 *   B images / of the final latents' float32 bytes, 16 hex digits),
 *   "deterministic" (every timed run gave the warm-up's checksums),
 *   "op_profile" [{"kind", "name", "seconds"}] (per OpKind, slowest first;
 *   "name" is null without SdcPipeline.op_kind_names),
 *   "slowest_nodes" [{"graph", "node", "name", "kind", "seconds"}] (the ten
 *   slowest nodes of all graphs; graph is "text_encoder", "unet",
 *   "vae_decoder" or "vae_encoder", node its index, name its node_names entry).
 * Per-node seconds are per run (summed over the calls of one generation).
 *   "unet_step_profile" [{"kind", "name", "seconds", "gflop", "gflops"}]
 *   (the UNet alone, per denoising step: all its calls of one step, values
 *   computed once per prompt shared out over the steps; per OpKind, slowest
 *   first; gflop is the kind's work per step). */
#include "pipeline_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "progress.h"
#include "scheduler.h"

#define BENCH_SLOWEST 10

/* ---- profiling hooks ---------------------------------------------------- */

int sdc_prof_on;

/* seconds per node of each graph, summed over the profiled runs */
static double *prof_node_s[SDC_GRAPH_COUNT];
static int prof_nnodes[SDC_GRAPH_COUNT];

void sdc_prof_node(int graph, int node, double seconds)
{
    if (graph < 0 || graph >= SDC_GRAPH_COUNT || node < 0 || node >= prof_nnodes[graph]) return;
    prof_node_s[graph][node] += seconds;
}

double sdc_prof_now(void) { return rt_now(); }

static const SdcGraphInfo *graph_by_index(const SdcPipeline *p, int g)
{
    switch (g) {
    case SDC_GRAPH_TEXT_ENCODER: return &p->text_encoder;
    case SDC_GRAPH_UNET: return &p->unet;
    case SDC_GRAPH_VAE_DECODER: return &p->vae_decoder;
    default: return &p->vae_encoder;
    }
}

static const char *const graph_key[SDC_GRAPH_COUNT] = {"text_encoder", "unet", "vae_decoder", "vae_encoder"};

void bench_prof_start(const SdcPipeline *p)
{
    bench_prof_stop();
    for (int g = 0; g < SDC_GRAPH_COUNT; g++) {
        const SdcGraphInfo *gi = graph_by_index(p, g);
        int n = gi->run && gi->nnodes > 0 ? gi->nnodes : 0;
        prof_node_s[g] = n ? xcalloc((size_t)n, sizeof(double)) : NULL;
        prof_nnodes[g] = n;
    }
}

void bench_prof_stop(void)
{
    for (int g = 0; g < SDC_GRAPH_COUNT; g++) {
        free(prof_node_s[g]);
        prof_node_s[g] = NULL;
        prof_nnodes[g] = 0;
    }
}

/* ---- statistics --------------------------------------------------------- */

uint64_t fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void bench_stats_init(BenchStats *b)
{
    memset(b, 0, sizeof *b);
    b->step_min = 1e300;
    b->deterministic = 1;
}

void bench_stats_add(BenchStats *b, const PipelineTimes *t)
{
    b->runs++;
    b->text_encoder += t->text_encoder;
    b->vae_encoder += t->vae_encoder;
    b->vae_decoder += t->vae_decoder;
    b->total += t->total;
    for (int i = 0; i < t->n_steps; i++) {
        double s = t->unet_step[i];
        b->step_sum += s;
        if (s < b->step_min) b->step_min = s;
        if (s > b->step_max) b->step_max = s;
        b->n_step_samples++;
    }
}

/* VmHWM of /proc/self/status in bytes, or 0 if it cannot be read. */
static double peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
    fclose(f);
    return kb * 1024.0;
}

static double gflops(double flops_per_call, int calls, double seconds)
{
    return seconds > 0 ? flops_per_call * calls / seconds * 1e-9 : 0.0;
}

static void add_hex(cJSON *o, const char *key, uint64_t v)
{
    char buf[20];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, key, buf);
}

static const char *kind_name(const SdcPipeline *p, int kind)
{
    return p->op_kind_names && kind < p->n_op_kinds ? p->op_kind_names[kind] : NULL;
}

typedef struct NodeTime {
    int graph, node;
    double s;
} NodeTime;

static int node_time_slower_first(const void *x, const void *y)
{
    const NodeTime *a = x, *b = y;
    if (a->s != b->s) return a->s < b->s ? 1 : -1;
    if (a->graph != b->graph) return a->graph - b->graph; /* stable order for ties */
    return a->node - b->node;
}

/* The op kinds that ran (used[k]), slowest first; returns how many. */
static int kinds_slowest_first(const double *per_kind, const int *used, NodeTime *kinds)
{
    int n = 0;
    for (int k = 0; k < 256; k++)
        if (used[k]) kinds[n++] = (NodeTime){0, k, per_kind[k]};
    qsort(kinds, (size_t)n, sizeof kinds[0], node_time_slower_first);
    return n;
}

static void add_profile(cJSON *root, const SdcPipeline *p, int runs)
{
    double per_kind[256] = {0};
    int used_kind[256] = {0};
    NodeTime top[BENCH_SLOWEST];
    int n_top = 0;
    for (int g = 0; g < SDC_GRAPH_COUNT; g++) {
        const SdcGraphInfo *gi = graph_by_index(p, g);
        for (int n = 0; n < prof_nnodes[g]; n++) {
            double s = prof_node_s[g][n] / (runs > 0 ? runs : 1);
            int kind = gi->node_kind ? gi->node_kind[n] : 0;
            per_kind[kind] += s;
            used_kind[kind] = 1;
            NodeTime t = {g, n, s};
            if (n_top < BENCH_SLOWEST) {
                top[n_top++] = t;
            } else if (node_time_slower_first(&t, &top[BENCH_SLOWEST - 1]) < 0) {
                top[BENCH_SLOWEST - 1] = t;
            } else {
                continue;
            }
            qsort(top, (size_t)n_top, sizeof top[0], node_time_slower_first);
        }
    }

    NodeTime kinds[256];
    int n_kinds = kinds_slowest_first(per_kind, used_kind, kinds);
    cJSON *ops = cJSON_AddArrayToObject(root, "op_profile");
    for (int i = 0; i < n_kinds; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "kind", kinds[i].node);
        const char *name = kind_name(p, kinds[i].node);
        if (name) cJSON_AddStringToObject(o, "name", name);
        else cJSON_AddNullToObject(o, "name");
        cJSON_AddNumberToObject(o, "seconds", kinds[i].s);
        cJSON_AddItemToArray(ops, o);
    }

    cJSON *slow = cJSON_AddArrayToObject(root, "slowest_nodes");
    for (int i = 0; i < n_top; i++) {
        const SdcGraphInfo *gi = graph_by_index(p, top[i].graph);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "graph", graph_key[top[i].graph]);
        cJSON_AddNumberToObject(o, "node", top[i].node);
        if (gi->node_names && gi->node_names[top[i].node]) cJSON_AddStringToObject(o, "name", gi->node_names[top[i].node]);
        else cJSON_AddNullToObject(o, "name");
        cJSON_AddNumberToObject(o, "kind", gi->node_kind ? gi->node_kind[top[i].node] : 0);
        cJSON_AddNumberToObject(o, "seconds", top[i].s);
        cJSON_AddItemToArray(slow, o);
    }
}

/* Where a denoising step's time goes, with the FLOPs of each kind. */
static void add_unet_profile(cJSON *root, const SdcPipeline *p, const BenchStats *b)
{
    const SdcGraphInfo *gi = &p->unet;
    double steps = (double)b->n_step_samples, per_kind[256] = {0}, flops[256] = {0};
    int used_kind[256] = {0};
    if (steps <= 0 || !gi->node_kind) return;
    /* UNet calls per step: the graph's FLOPs per node are per call */
    double calls = b->runs > 0 ? (double)b->unet_calls / (steps / b->runs) : 1.0;
    for (int n = 0; n < prof_nnodes[SDC_GRAPH_UNET]; n++) {
        int kind = gi->node_kind[n];
        per_kind[kind] += prof_node_s[SDC_GRAPH_UNET][n] / steps;
        if (gi->node_flops) flops[kind] += gi->node_flops[n] * calls;
        used_kind[kind] = 1;
    }
    NodeTime kinds[256];
    int n_kinds = kinds_slowest_first(per_kind, used_kind, kinds);
    cJSON *arr = cJSON_AddArrayToObject(root, "unet_step_profile");
    for (int i = 0; i < n_kinds; i++) {
        int k = kinds[i].node;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "kind", k);
        const char *name = kind_name(p, k);
        if (name) cJSON_AddStringToObject(o, "name", name);
        else cJSON_AddNullToObject(o, "name");
        cJSON_AddNumberToObject(o, "seconds", per_kind[k]);
        cJSON_AddNumberToObject(o, "gflop", flops[k] * 1e-9);
        cJSON_AddNumberToObject(o, "gflops", per_kind[k] > 0 ? flops[k] * 1e-9 / per_kind[k] : 0);
        cJSON_AddItemToArray(arr, o);
    }
}

void bench_print_json(FILE *f, const SdcPipeline *p, const PipelineArgs *a, const BenchStats *b)
{
    double runs = b->runs > 0 ? b->runs : 1;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", p->model ? p->model : "");
    cJSON_AddStringToObject(root, "sdc_version", p->sdc_version ? p->sdc_version : "");
    cJSON_AddNumberToObject(root, "width", p->width);
    cJSON_AddNumberToObject(root, "height", p->height);
    cJSON_AddNumberToObject(root, "batch", p->batch);
    cJSON_AddNumberToObject(root, "steps", p->sched.steps);
    cJSON_AddNumberToObject(root, "unet_evals", b->runs > 0 ? (double)b->n_step_samples / b->runs : 0);
    cJSON_AddStringToObject(root, "sampler", sampler_name(p->sched.kind));
    cJSON_AddNumberToObject(root, "guidance", p->guidance);
    cJSON_AddBoolToObject(root, "img2img", a->init_image != NULL);
    cJSON_AddNumberToObject(root, "threads", rt_threads());
    cJSON_AddNumberToObject(root, "runs", b->runs);

    cJSON_AddNumberToObject(root, "text_encoder_s", b->text_encoder / runs);
    cJSON *step = cJSON_AddObjectToObject(root, "unet_step_s");
    cJSON_AddNumberToObject(step, "mean", b->n_step_samples ? b->step_sum / (double)b->n_step_samples : 0);
    cJSON_AddNumberToObject(step, "min", b->n_step_samples ? b->step_min : 0);
    cJSON_AddNumberToObject(step, "max", b->step_max);
    cJSON_AddNumberToObject(root, "vae_decoder_s", b->vae_decoder / runs);
    cJSON_AddNumberToObject(root, "vae_encoder_s", b->vae_encoder / runs);
    cJSON_AddNumberToObject(root, "total_s", b->total / runs);
    cJSON_AddNumberToObject(root, "total_per_image_s", b->total / runs / (p->batch > 0 ? p->batch : 1));
    cJSON_AddNumberToObject(root, "ready_s", b->ready);
    cJSON_AddNumberToObject(root, "peak_rss_bytes", peak_rss_bytes());

    cJSON *gf = cJSON_AddObjectToObject(root, "gflops");
    cJSON_AddNumberToObject(gf, "text_encoder", gflops(p->text_encoder.flops, b->text_encoder_calls, b->text_encoder / runs));
    cJSON_AddNumberToObject(gf, "unet", gflops(p->unet.flops, b->unet_calls, b->step_sum / runs));
    cJSON_AddNumberToObject(gf, "vae_decoder", gflops(p->vae_decoder.flops, b->vae_decoder_calls, b->vae_decoder / runs));

    add_hex(root, "image_checksum", b->image_checksum);
    add_hex(root, "latents_checksum", b->latents_checksum);
    cJSON_AddBoolToObject(root, "deterministic", b->deterministic);
    add_profile(root, p, b->runs);
    add_unet_profile(root, p, b);

    char *text = cJSON_Print(root);
    fprintf(f, "%s\n", text);
    fflush(f);
    free(text);
    cJSON_Delete(root);
}
