/* graph_main.h — the main() of a single-graph executable (`sdc compile-graph`).
 *
 * Such an executable runs one IR graph compiled by a backend on inputs read
 * from a safetensors file and writes its outputs to another: the backend's
 * differential tests compare it with the reference interpreter op by op. */
#ifndef SDC_GRAPH_MAIN_H
#define SDC_GRAPH_MAIN_H

#include <stdint.h>

#include "pipeline.h"

#define SDC_STANDALONE_MAX_IO 8

typedef struct SdcTensorDesc {
    const char *name;
    int is_int; /* i64 values (token ids); otherwise f32 */
    int ndim;
    int64_t shape[5];
} SdcTensorDesc;

typedef struct SdcStandaloneGraph {
    SdcGraphFn run;
    uint64_t arena_bytes;
    int nin, nout;
    SdcTensorDesc in[SDC_STANDALONE_MAX_IO], out[SDC_STANDALONE_MAX_IO];
    uint64_t weights_id;
} SdcStandaloneGraph;

/* EXE --inputs IN.safetensors --out OUT.safetensors [--weights W] [--threads N] [--repeat N] */
int graph_main(const SdcStandaloneGraph *g, int argc, char **argv);

#endif
