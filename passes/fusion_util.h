/* fusion_util.h — what the fusion passes share.
 *
 * fusion_legal is the one rule every fusion obeys.  FusedGemm describes a
 * conv or a linear with everything the fused ops can add around it
 * (fused_ops.h): a pass reads the node it extends (conv2d, linear, or one
 * already fused), adds its part, and FusionRewrite writes the fused node in
 * place of the value it now computes.  Since every pass accepts the fused
 * forms, the fusion passes compose in any order. */
#ifndef SDC_FUSION_UTIL_H
#define SDC_FUSION_UTIL_H

#include "pass.h"

/* May the value of `inner` be computed inside a fused op made of the nodes
 * `group` (group[0] the node whose value the fused op computes), and never
 * be stored?  Legal when
 *   - every use of inner is an operand of a node in the group (another
 *     reader would need it stored anyway),
 *   - inner is not a graph output (the caller needs it stored),
 *   - inner is computed at the same stage as group[0] (a @prompt value is
 *     kept across calls, a per-call one is not),
 *   - inner has group[0]'s dtype (a fused kernel computes in one precision).
 * Shapes are each pattern's business, and what it builds goes through the
 * op's type inference; every backend that has a fused op's row (the
 * interpreter, C) supports it, so backend support needs no check here. */
int fusion_legal(const Graph *g, const int *uses, int inner, const int *group, int ngroup);

/* A conv2d / linear with its prologue and epilogue (node ids, -1 absent). */
typedef struct FusedGemm {
    int conv; /* 1: conv2d family; 0: linear family */
    int x, gamma, beta, w, bias, chan_add, residual;
    int norm_groups; /* GroupNorm groups of the prologue (0: none); a linear's x is then channel-major */
    int norm;        /* linear: LayerNorm prologue */
    double eps;
    int silu, geglu;
    double out_scale;
    int64_t stride[2], pad[4], dilation[2];
} FusedGemm;

/* Reads node `id` into f when it is a conv2d (groups 1), linear,
 * fused_conv2d or fused_linear; returns 0 (f undefined) otherwise. */
int fused_gemm_read(const Graph *g, int id, FusedGemm *f);

/* A pass's rewrites: new nodes take the place of old ones, the nodes they
 * absorb are removed at the end.  Use counts stay up to date, so a node
 * made by one rewrite can be extended by a later one in the same sweep. */
typedef struct FusionRewrite {
    Graph *g;
    int *uses;  /* per node (graph_use_counts) */
    char *drop; /* per node: removed by fusion_rewrite_end */
    int cap;
} FusionRewrite;

void fusion_rewrite_begin(FusionRewrite *r, Graph *g);
/* Adds the node f describes as the new value of node `old` (its uses, its
 * name and its stage move over) and drops `old` and the `ndead` nodes it
 * absorbs.  Returns the new node, or -1 if type inference refuses it. */
int fusion_rewrite_gemm(FusionRewrite *r, const FusedGemm *f, int old, const int *dead, int ndead, SdcErr *err);
/* The same for a node built by the caller (id, already added). */
void fusion_rewrite_node(FusionRewrite *r, int id, int old, const int *dead, int ndead);
/* Counts the reads of a node the caller added that feeds the new value
 * (call it before fusion_rewrite_node, operands first). */
void fusion_rewrite_added(FusionRewrite *r, int id);
/* Removes the dropped nodes and restores topological order; frees r. */
void fusion_rewrite_end(FusionRewrite *r);

/* Constant folding for passes that make new weights: evaluates each of the
 * `count` nodes (all their operands constants) with the interpreter's
 * kernels, writes the values as float32 to "<dir>/<graph>_<stem>.safetensors"
 * and turns each node into a constant reading that file. */
int fusion_fold_consts(Graph *g, const int *nodes, int count, const char *dir, const char *stem, SdcErr *err);

#endif
