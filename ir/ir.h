/* ir.h — sdc's graph IR.
 *
 * A Graph is a list of Nodes in topological order (SSA: each node defines
 * one value, named once).  Nodes refer to their operands by index.  Leaves
 * are graph inputs (op input) and constants (op const), which either name
 * bytes inside a tensor file (path, byte offset, stored dtype — nothing is
 * copied) or hold a few values inline.  Shapes are static, at most
 * IR_MAX_DIMS dims.  Every op's properties live in one table (ops.def). */
#ifndef SDC_IR_H
#define SDC_IR_H

#include <stdint.h>
#include <stdio.h>

#include "dtype.h"
#include "err.h"

#define IR_MAX_DIMS 5
#define IR_MAX_IN 10
#define IR_MAX_ATTR 10
#define IR_MAX_INTS 8
/* Most bytes all values of one graph may hold together (so each value too):
 * 4 EiB, so that element counts, byte counts and every sum of them (memory
 * plans, statistics) fit in int64.  The verifier refuses larger graphs. */
#define IR_MAX_GRAPH_BYTES ((uint64_t)1 << 62)

typedef enum OpKind {
#define OP(id, name, min_in, max_in, flags, attrs, infer, cost, exec) OP_##id,
#include "ops.def"
#undef OP
    OP_COUNT
} OpKind;

/* Op flags (a column of ops.def). */
enum {
    OPF_LEAF = 1 << 0,        /* input or const: no operands */
    OPF_ELEMENTWISE = 1 << 1, /* output element i depends on input element i (after broadcast) */
    OPF_UNARY_EW = 1 << 2,    /* one operand, elementwise */
    OPF_SHAPE = 1 << 3,       /* moves data only (reshape, permute, slice, concat) */
    OPF_FUSED = 1 << 4,       /* made by a fusion pass */
    OPF_VARIADIC = 1 << 5,    /* any number of operands >= min (concat) */
};

typedef enum AttrKind { ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_STR } AttrKind;

typedef struct Attr {
    const char *key; /* interned by the graph */
    AttrKind kind;
    int n;           /* ATTR_INTS: count */
    int64_t i;       /* ATTR_INT */
    double f;        /* ATTR_FLOAT */
    int64_t ints[IR_MAX_INTS];
    char *s;         /* ATTR_STR */
} Attr;

/* The file name of constants that stand for weights not on disk (a preset
 * imported for stats, a missing tensor): they have a shape but no values, so
 * nothing may read them. */
#define CONST_NO_WEIGHTS "(no weights)"

/* Where a constant's values come from. */
typedef enum ConstKind { CONST_NONE, CONST_FILE, CONST_DENSE } ConstKind;

typedef struct Node {
    OpKind op;
    DType dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    int nin;
    int in[IR_MAX_IN];
    int nattr;
    Attr attr[IR_MAX_ATTR];
    char *name; /* value name, unique in the graph, printed as %name */
    /* const only */
    ConstKind ckind;
    char *cfile;      /* CONST_FILE: tensor file (relative paths are relative to the graph's base_dir) */
    uint64_t coffset; /* CONST_FILE: absolute byte offset of the data in the file */
    DType cdtype;     /* CONST_FILE: dtype stored in the file (converted to dtype on load) */
    double *cdense;   /* CONST_DENSE: numel values (or 1 value, splatted) */
    int64_t ndense;
    int line, col; /* where the parser found it (0 when built) */
    /* When the value is computed: NODE_STAGE_CALL on every call of the graph,
     * NODE_STAGE_PROMPT once per prompt (hoist-text-kv marks values that
     * depend only on the text; the backend keeps them across calls).
     * Printed after the type as "@prompt".  The interpreter ignores it. */
    int stage;
} Node;

enum { NODE_STAGE_CALL = 0, NODE_STAGE_PROMPT = 1 };

typedef struct Graph {
    char *name;
    char *base_dir; /* for relative constant paths; "." by default */
    Node *nodes;
    int n, cap;
    int *outputs;
    int nout;
    /* name -> node index, open addressing */
    int *hash;
    int hcap;
    /* interned attribute keys */
    char **keys;
    int nkeys;
} Graph;

/* --- op table --------------------------------------------------------- */

typedef struct OpCost {
    double flops;         /* multiply-adds count 2 */
    double bytes_read;    /* operand bytes (weights included) */
    double bytes_written; /* result bytes */
} OpCost;

typedef struct Interp Interp;
typedef struct Tensor Tensor;

typedef struct OpInfo {
    const char *name;
    int min_in, max_in;
    unsigned flags;
    const char *attrs; /* accepted attribute names, space-separated */
    /* Computes the node's dtype and shape from operands and attributes;
     * returns -1 with a message (no place prefix) when they do not fit. */
    int (*infer)(const Graph *g, Node *n, SdcErr *err);
    void (*cost)(const Graph *g, const Node *n, OpCost *c);
    /* Reference implementation: out is allocated with the node's type. */
    int (*exec)(Interp *it, const Node *n, Tensor *const *in, Tensor *out, SdcErr *err);
} OpInfo;

extern const OpInfo op_table[OP_COUNT];
int op_from_name(const char *name, OpKind *out);

/* --- graph building and queries ---------------------------------------- */

Graph *graph_new(const char *name);
void graph_free(Graph *g);
Graph *graph_clone(const Graph *g);

/* Adds a node; the name is made unique (a suffix .1, .2 ... is added) and
 * the node's type is left for the caller (or graph_add_op) to set.  Returns
 * its index.  `name` may be NULL for an automatic numeric name. */
int graph_add(Graph *g, OpKind op, const char *name, int nin, const int *in);
/* Adds an op node and infers its type; on a type error returns -1. */
int graph_add_op(Graph *g, OpKind op, const char *name, int nin, const int *in, int nattr, const Attr *attrs, SdcErr *err);
int graph_add_input(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape);
int graph_add_const_file(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape, const char *file,
                         uint64_t offset, DType stored);
int graph_add_const_dense(Graph *g, const char *name, DType dt, int ndim, const int64_t *shape, const double *vals,
                          int64_t nvals);
void graph_add_output(Graph *g, int node);

int graph_find(const Graph *g, const char *name); /* -1 if absent */
void graph_rename(Graph *g, int node, const char *name);
const char *graph_intern(Graph *g, const char *key);

/* Attributes. */
Attr attr_int(const char *key, int64_t v);
Attr attr_float(const char *key, double v);
Attr attr_ints(const char *key, int n, const int64_t *v);
Attr attr_str(const char *key, const char *s);
const Attr *node_attr(const Node *n, const char *key);
int64_t node_int(const Node *n, const char *key, int64_t dflt);
double node_float(const Node *n, const char *key, double dflt);
int node_ints(const Node *n, const char *key, int64_t *out, int max); /* count, -1 if absent */
void node_set_attr(Graph *g, Node *n, Attr a); /* adds or replaces */

int64_t node_numel(const Node *n);
uint64_t node_bytes(const Node *n);
/* "f32[2,4,64,64]" into buf; returns buf. */
const char *node_type_str(const Node *n, char *buf, size_t len);

/* Replaces every use of `from` (operands and outputs) by `to`. */
void graph_replace_uses(Graph *g, int from, int to);
/* uses[i] = number of operand slots and outputs referring to node i (caller frees). */
int *graph_use_counts(const Graph *g);
int graph_is_output(const Graph *g, int node);

/* Re-establishes topological order (stable: a node moves only to follow its
 * operands) and drops nodes that no output depends on when `drop_dead`.
 * Inputs are always kept.  Returns the number of nodes dropped. */
int graph_compact(Graph *g, int drop_dead);
/* Removes the nodes with drop[i] set (none of them may still be used) and
 * re-establishes topological order.  Returns the number removed. */
int graph_remove_nodes(Graph *g, const char *drop);

/* --- textual form -------------------------------------------------------- */

void ir_print(const Graph *g, FILE *out);
char *ir_print_str(const Graph *g); /* xmalloc-ed */
/* Parses text; `file` names the source in messages (file:line:col: ...). */
Graph *ir_parse(const char *text, const char *file, SdcErr *err);
Graph *ir_parse_file(const char *path, SdcErr *err);
/* Graphviz (dot) rendering: ops as boxes, weights folded into their users. */
void ir_print_dot(const Graph *g, FILE *out);

/* --- verifier --------------------------------------------------------------- */

/* Checks operand counts, indices (topological order), dtypes and shapes
 * against the op table, attribute kinds, unique names.  The message names
 * the node (%name) and its source line when known. */
int ir_verify(const Graph *g, SdcErr *err);
/* The size part of ir_verify alone: every value's element and byte counts,
 * and their sum, within IR_MAX_GRAPH_BYTES. */
int ir_check_sizes(const Graph *g, SdcErr *err);
/* One value's part of it (graph_add_op checks each value it adds). */
int ir_check_value_size(const Node *n, SdcErr *err);

#endif
