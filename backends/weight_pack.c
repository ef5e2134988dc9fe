/* weight_pack.c — see weight_pack.h. */
#include "weight_pack.h"

#include <stdlib.h>

#include "err.h"
#include "fused_ops.h"

enum { USE_NONE, USE_CONV, USE_LINEAR, USE_OTHER };


/* How node n uses operand k: as a conv weight, a linear weight, or else. */
static int use_kind(const Graph *g, const Node *n, int k, int *groups)
{
    (void)g;
    *groups = 1;
    switch (n->op) {
    case OP_CONV2D:
        *groups = (int)node_int(n, "groups", 1);
        return k == 1 ? USE_CONV : USE_OTHER;
    case OP_LINEAR: return k == 1 ? USE_LINEAR : USE_OTHER;
    case OP_FUSED_CONV2D:
    case OP_FUSED_LINEAR: {
        FusedSlots s;
        fused_slots(n, &s);
        if (k != s.w) return USE_OTHER;
        if (n->op == OP_FUSED_CONV2D) return USE_CONV;
        /* GEGLU reads the gate columns from n/2 on: whole 16-column panels only */
        if (node_int(n, "geglu", 0) && n->shape[n->ndim - 1] % 16) return USE_OTHER;
        return USE_LINEAR;
    }
    default: return USE_OTHER;
    }
}

static RtWeightPack pack_for(int kind, DType wdtype)
{
    int conv = kind == USE_CONV;
    switch (wdtype) {
    case DT_F16: return conv ? RT_WPACK_CONV_F16 : RT_WPACK_LINEAR_F16;
    case DT_BF16: return conv ? RT_WPACK_CONV_BF16 : RT_WPACK_LINEAR_BF16;
    default: return conv ? RT_WPACK_CONV_F32 : RT_WPACK_LINEAR_F32;
    }
}

void weight_pack_plan(const Graph *g, DType wdtype, WeightPack *out)
{
    int *kind = xcalloc((size_t)g->n, sizeof(int)), *groups = xcalloc((size_t)g->n, sizeof(int));
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            int c = n->in[k], gr;
            int u = use_kind(g, n, k, &gr);
            if (kind[c] == USE_NONE) kind[c] = u, groups[c] = gr;
            else if (kind[c] != u || groups[c] != gr) kind[c] = USE_OTHER;
        }
    }
    for (int o = 0; o < g->nout; o++) kind[g->outputs[o]] = USE_OTHER; /* an output is returned as it is */
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        out[i] = (WeightPack){RT_WPACK_NONE, 1, 0, 0};
        if (n->op != OP_CONST || n->dtype != DT_F32 || (kind[i] != USE_CONV && kind[i] != USE_LINEAR)) continue;
        if (kind[i] == USE_CONV && (n->ndim != 4 || n->shape[0] % groups[i])) continue;
        if (kind[i] == USE_LINEAR && n->ndim != 2) continue;
        int64_t k = 1;
        for (int d = 1; d < n->ndim; d++) k *= n->shape[d];
        out[i] = (WeightPack){pack_for(kind[i], wdtype), groups[i], n->shape[0], k};
    }
    free(kind), free(groups);
}

RtWeightPack weight_pack_of(const WeightPack *plans, const Node *n, int k)
{
    if (!plans || k < 0 || k >= n->nin) return RT_WPACK_NONE;
    return plans[n->in[k]].pack;
}
