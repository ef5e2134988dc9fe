/* fused_ops.h — the operand layout and kernel parameters of the fused ops
 * that the fusion passes make (ops.def: fused_conv2d, fused_linear).
 *
 *   fused_conv2d(x, [gamma, beta], w, [bias], [chan_add], [residual])
 *   fused_linear(x, [gamma, beta], w, [bias], [residual])
 *
 * gamma and beta are there when the op normalises its input (fused_conv2d:
 * norm_groups > 0, a GroupNorm; fused_linear: norm=1, a LayerNorm); bias,
 * chan_add and residual when their attribute is 1.  Type inference, the
 * interpreter, the backends and the passes all find operands through
 * fused_slots, so the layout is written down once. */
#ifndef SDC_FUSED_OPS_H
#define SDC_FUSED_OPS_H

#include "ir.h"
#include "kernel_params.h"

typedef struct FusedSlots {
    int x, gamma, beta, w, bias, chan_add, residual; /* operand positions, -1 when absent */
    int count;                                       /* operands the attributes call for */
} FusedSlots;

/* n is a fused_conv2d or fused_linear node. */
void fused_slots(const Node *n, FusedSlots *s);

/* Kernel parameters of a fused_conv2d from its attributes and operand
 * shapes (x [N,C,H,W], w [O,C,KH,KW]; chan_rows: chan_add's first dim, or
 * 0 without one).  Returns -1 when the conv geometry is invalid. */
int fused_conv2d_params(const Node *n, const int64_t *xshape, const int64_t *wshape, int64_t chan_rows,
                        FusedConv2dParams *p);
/* ... of a fused_linear from x's shape (xnd dims) and w's ([N, K]). */
void fused_linear_params(const Node *n, const int64_t *xshape, int xnd, const int64_t *wshape, FusedLinearParams *p);

#endif
