/* interp.h — the reference interpreter: runs any graph with plain loops.
 *
 * It is the oracle for passes and backends.  Float values are held as
 * float32 whatever their dtype; after each op a value of type f16 or bf16 is
 * rounded to that precision, so reduced-precision graphs mean the same here
 * as in a backend that stores them.  Integer values are held as int64. */
#ifndef SDC_INTERP_H
#define SDC_INTERP_H

#include "ir.h"

struct Tensor {
    DType dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    float *f;   /* float dtypes */
    int64_t *i; /* integer dtypes */
};

Tensor *tensor_new(DType dt, int ndim, const int64_t *shape);
Tensor *tensor_like_node(const Node *n);
void tensor_free(Tensor *t);
int64_t tensor_numel(const Tensor *t);

/* Runs g.  inputs[k] is the value of the k-th input node (in graph order);
 * their dtypes and shapes must match.  outputs receives nout new tensors.
 * Values are freed after their last use.  `verbose` prints each node. */
int interp_run(const Graph *g, Tensor *const *inputs, Tensor **outputs, int verbose, SdcErr *err);

/* Loads a constant node's values (file or dense) into a new tensor. */
Tensor *interp_load_const(const Graph *g, const Node *n, SdcErr *err);

#endif
