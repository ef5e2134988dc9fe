/* fused_ops.c — see fused_ops.h. */
#include "fused_ops.h"

void fused_slots(const Node *n, FusedSlots *s)
{
    int conv = n->op == OP_FUSED_CONV2D;
    int norm = node_int(n, "norm_groups", 0) > 0 || (!conv && node_int(n, "norm", 0) != 0);
    int k = 0;
    s->x = k++;
    s->gamma = norm ? k++ : -1;
    s->beta = norm ? k++ : -1;
    s->w = k++;
    s->bias = node_int(n, "bias", 0) ? k++ : -1;
    s->chan_add = conv && node_int(n, "chan_add", 0) ? k++ : -1;
    s->residual = node_int(n, "residual", 0) ? k++ : -1;
    s->count = k;
}

int fused_conv2d_params(const Node *n, const int64_t *xs, const int64_t *ws, int64_t chan_rows, FusedConv2dParams *p)
{
    int64_t stride[2] = {1, 1}, pad[4] = {0, 0, 0, 0}, dil[2] = {1, 1};
    node_ints(n, "stride", stride, 2);
    node_ints(n, "pad", pad, 4);
    node_ints(n, "dilation", dil, 2);
    *p = (FusedConv2dParams){
        .conv = {.n = (int)xs[0], .c = (int)xs[1], .h = (int)xs[2], .w = (int)xs[3], .oc = (int)ws[0],
                 .kh = (int)ws[2], .kw = (int)ws[3], .sh = (int)stride[0], .sw = (int)stride[1], .pt = (int)pad[0],
                 .pl = (int)pad[1], .pb = (int)pad[2], .pr = (int)pad[3], .dh = (int)dil[0], .dw = (int)dil[1],
                 .groups = 1},
        .norm_groups = (int)node_int(n, "norm_groups", 0),
        .eps = (float)node_float(n, "eps", 1e-5),
        .silu = (int)node_int(n, "silu", 0),
        .chan_add_n = (int)chan_rows,
        .out_scale = (float)node_float(n, "out_scale", 1.0),
    };
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0) return -1;
    return conv2d_params_finish(&p->conv);
}

void fused_linear_params(const Node *n, const int64_t *xs, int xnd, const int64_t *ws, FusedLinearParams *p)
{
    int groups = (int)node_int(n, "norm_groups", 0);
    int64_t k = ws[1], numel = 1;
    for (int d = 0; d < xnd; d++) numel *= xs[d];
    *p = (FusedLinearParams){.m = (int)(numel / (k ? k : 1)), .k = (int)k, .n = (int)ws[0],
                             .norm = (int)node_int(n, "norm", 0), .norm_groups = groups,
                             .hw = groups > 0 && xs[0] > 0 ? (int)(numel / xs[0] / (k ? k : 1)) : 0,
                             .eps = (float)node_float(n, "eps", 1e-5), .geglu = (int)node_int(n, "geglu", 0),
                             .out_scale = (float)node_float(n, "out_scale", 1.0)};
}
