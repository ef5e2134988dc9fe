/* stats.h — what a graph costs: parameters, FLOPs, bytes, ops by kind. */
#ifndef SDC_STATS_H
#define SDC_STATS_H

#include "ir.h"

typedef struct GraphStats {
    int nodes;
    int64_t params;       /* elements of file constants, each distinct tensor counted once */
    double param_bytes;   /* as stored in the files */
    double flops;
    double bytes_read, bytes_written; /* if every op reads and writes memory */
    int ops_by_kind[OP_COUNT];
    double flops_by_kind[OP_COUNT];
} GraphStats;

void graph_stats(const Graph *g, GraphStats *s);

/* Memory facts of a graph as the backend will plan it. */
#define STATS_LARGEST 10
typedef struct MemStats {
    uint64_t planned_peak, lower_bound, prompt_bytes;
    double bytes_materialised;  /* every value written to memory once (views excluded) */
    int attention_score_buffers; /* softmax outputs of shape [..., Lq, Lk] still stored (0 after attention-fusion) */
    int stored_norm_before_conv; /* group_norm outputs written to memory and read by a conv, or by a linear
                                  * through the tokens transpose (SD 2.x proj_in): 0 after gsc-fusion */
    /* Activation layout changes the graph still makes (permute nodes that
     * move data: NCHW <-> token-major around the spatial transformers), and
     * the bytes they write.  Weights change layout at compile time instead
     * (packed for the GEMM kernels by sdc compile), which costs nothing here. */
    int layout_conversions;
    double layout_conversion_bytes;
    int nlargest;
    int largest[STATS_LARGEST]; /* node ids of the largest arena buffers, largest first */
} MemStats;

void graph_mem_stats(const Graph *g, MemStats *m);
/* JSON object with flops, bytes_moved, planned_peak_bytes, peak_lower_bound_bytes,
 * bytes_materialised, params, ops_by_kind, fusions, largest_buffers, ... */
void stats_print_json(const Graph *g, FILE *out, const char *indent);

#endif
