/* backend.h — the interface every code generator implements.
 *
 * A backend turns verified graphs (after the passes) into source code for
 * one target: `c` emits C that calls the runtime's kernels (its own GEMM
 * engine, runtime/gemm.h); `cuda` and `llvm` will fit the same interface
 * (backends/cuda/README.md, backends/llvm/README.md).  A backend says
 * which ops it supports, so the compiler refuses a graph it cannot lower
 * with a message naming the node, before any code is written. */
#ifndef SDC_BACKEND_H
#define SDC_BACKEND_H

#include <stdio.h>

#include "ir.h"
#include "memplan.h"

/* One graph to emit, with everything already decided about it. */
typedef struct EmitGraph {
    const char *name;       /* "unet": the C function is graph_<name> */
    int index;              /* profiling index: 0 text encoder, 1 unet, 2 vae decoder, 3 vae encoder */
    const Graph *g;
    const MemPlan *plan;
    const int64_t *weight_offset; /* per node: absolute offset of a constant in the weights file, -1 otherwise */
    const struct WeightPack *weight_pack; /* per node: how a constant is packed (weight_pack.h); NULL: none is */
    int attention_bf16; /* attention products on bf16 operands where the CPU can (--weights-dtype bf16) */
} EmitGraph;

typedef struct Backend {
    const char *name;
    /* 1 if the backend can lower this node; otherwise 0 and a reason in err */
    int (*supports_op)(const Graph *g, const Node *n, SdcErr *err);
    /* Emits the graph functions (and their profiling tables) to out. */
    int (*emit_graphs)(const EmitGraph *graphs, int n, FILE *out, SdcErr *err);
} Backend;

const Backend *backend_find(const char *name);
/* Checks every node of g against the backend. */
int backend_check(const Backend *b, const Graph *g, SdcErr *err);

#endif
