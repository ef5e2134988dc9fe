/* builder.h — the layers Stable Diffusion models are made of, as graph
 * fragments.  The UNet, the VAE and the CLIP text encoder are written with
 * these, so each reads like the diffusers module it mirrors.
 *
 * Names: a builder keeps a module path (b_push/b_pop); parameters are
 * requested as "<path>.<suffix>" (the diffusers parameter name) and op
 * nodes are named after their module, so the IR of an imported model can
 * be read next to the diffusers source.
 *
 * Errors are sticky: after the first, every call returns -1 and does
 * nothing; the caller checks b->failed once at the end. */
#ifndef SDC_BUILDER_H
#define SDC_BUILDER_H

#include "ir.h"
#include "weights.h"

typedef struct Builder {
    Graph *g;
    WeightSet *ws;
    SdcErr *err;
    int failed;
    char path[512];
    int depth;
    int mark[16]; /* path length at each push */
} Builder;

void b_init(Builder *b, Graph *g, WeightSet *ws, SdcErr *err);
void b_push(Builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void b_pop(Builder *b);
/* "<path>.<suffix>" (or suffix alone at the top) into a static buffer. */
const char *b_name(Builder *b, const char *suffix);

/* --- plain ops ------------------------------------------------------------ */
int b_input(Builder *b, const char *name, DType dt, int ndim, const int64_t *shape);
int b_weight(Builder *b, const char *suffix, WeightKind kind, int ndim, const int64_t *shape);
int b_op(Builder *b, OpKind op, const char *name, int nin, const int *in, int nattr, const Attr *attrs);
int b_unary(Builder *b, OpKind op, const char *name, int x);
int b_binary(Builder *b, OpKind op, const char *name, int x, int y);
int b_scale(Builder *b, const char *name, int x, double value);
int b_reshape(Builder *b, const char *name, int x, int ndim, const int64_t *shape);
int b_permute(Builder *b, const char *name, int x, int ndim, const int64_t *perm);
int b_slice(Builder *b, const char *name, int x, int axis, int64_t start, int64_t end);
int b_concat(Builder *b, const char *name, int n, const int *xs, int axis);
const Node *b_node(Builder *b, int id);

/* --- layers (parameters under the current path) ----------------------------- */
/* Conv2d "<path>.<mod>" with weight [cout, cin, k, k] and bias; pad is
 * top,left,bottom,right. */
int b_conv(Builder *b, const char *mod, int x, int cout, int k, int stride, const int64_t pad[4], int bias);
/* Conv with symmetric padding (k-1)/2 and stride 1: the common case. */
int b_conv_same(Builder *b, const char *mod, int x, int cout, int k);
int b_linear(Builder *b, const char *mod, int x, int out, int bias);
int b_group_norm(Builder *b, const char *mod, int x, int groups, double eps);
int b_layer_norm(Builder *b, const char *mod, int x, double eps);

/* softmax(scale · q kᵀ (+ causal mask)) v with heads split in channels,
 * written out as diffusers computes it: reshape and permute to heads, two
 * batched matmuls, scale, softmax.  attention-fusion turns it into one
 * attention op.  q: [B,Lq,H*D], k: [B,Lk,H*D], v: [B,Lk,H*Dv]. */
int b_attention_chain(Builder *b, const char *mod, int q, int k, int v, int heads, double scale, int causal,
                      int upcast);

#endif
