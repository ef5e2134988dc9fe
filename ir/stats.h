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

#endif
