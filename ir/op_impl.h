/* op_impl.h — declarations of the functions named in ops.def. */
#ifndef SDC_OP_IMPL_H
#define SDC_OP_IMPL_H

#include "ir.h"

#define OP(id, name, min_in, max_in, flags, attrs, infer, cost, exec)                    \
    int infer(const Graph *g, Node *n, SdcErr *err);                                 \
    void cost(const Graph *g, const Node *n, OpCost *c);                              \
    int exec(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err);
#include "ops.def"
#undef OP

#endif
