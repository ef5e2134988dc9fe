/* weight_pack.h — which constants `sdc compile` stores packed for the
 * runtime's GEMM (kernel_params.h: RtWeightPack), and in which precision.
 *
 * A constant is packed when every use of it is as the weight of a conv
 * (conv2d, fused_conv2d) or every use is as the weight of a linear layer
 * (linear, fused_linear): the weights file then holds it in the
 * micro-kernel's panel layout (rt_pack_weight) and the C backend tells the
 * kernel so (Conv2dParams.wpack, MatmulParams.bpack, FusedLinearParams.wpack).
 * Anything else (biases, norms, a weight also read by another op) stays
 * plain f32, as the graph has it. */
#ifndef SDC_WEIGHT_PACK_H
#define SDC_WEIGHT_PACK_H

#include <stdint.h>

#include "ir.h"
#include "kernel_params.h"

typedef struct WeightPack {
    RtWeightPack pack; /* RT_WPACK_NONE: not packed */
    int groups;        /* rt_pack_weight's arguments */
    int64_t rows, k;
} WeightPack;

/* out[i] for every node of g (all RT_WPACK_NONE but packable constants);
 * wdtype (DT_F32, DT_F16 or DT_BF16) is the precision packed weights are
 * stored in. */
void weight_pack_plan(const Graph *g, DType wdtype, WeightPack *out);

/* The RtWeightPack of operand k of node n (its value's root constant), for
 * the backend: RT_WPACK_NONE when plans is NULL or the operand is not a
 * packed constant. */
RtWeightPack weight_pack_of(const WeightPack *plans, const Node *n, int k);

#endif
