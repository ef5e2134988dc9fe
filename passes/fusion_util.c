/* fusion_util.c — see fusion_util.h. */
#include "fusion_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "fused_ops.h"
#include "interp.h"
#include "safetensors.h"

int fusion_legal(const Graph *g, const int *uses, int inner, const int *group, int ngroup)
{
    const Node *in = &g->nodes[inner], *top = &g->nodes[group[0]];
    if (graph_is_output(g, inner) || in->stage != top->stage || in->dtype != top->dtype) return 0;
    int refs = 0;
    for (int k = 0; k < ngroup; k++)
        for (int s = 0; s < g->nodes[group[k]].nin; s++) refs += g->nodes[group[k]].in[s] == inner;
    return refs == uses[inner];
}

/* --- FusedGemm ------------------------------------------------------------------------ */

int fused_gemm_read(const Graph *g, int id, FusedGemm *f)
{
    const Node *n = &g->nodes[id];
    *f = (FusedGemm){.x = -1, .gamma = -1, .beta = -1, .w = -1, .bias = -1, .chan_add = -1, .residual = -1,
                     .eps = 1e-5, .out_scale = 1.0, .stride = {1, 1}, .dilation = {1, 1}};
    f->conv = n->op == OP_CONV2D || n->op == OP_FUSED_CONV2D;
    if (f->conv) {
        node_ints(n, "stride", f->stride, 2);
        node_ints(n, "pad", f->pad, 4);
        node_ints(n, "dilation", f->dilation, 2);
    }
    switch (n->op) {
    case OP_CONV2D:
        if (node_int(n, "groups", 1) != 1) return 0;
        /* fall through */
    case OP_LINEAR:
        f->x = n->in[0];
        f->w = n->in[1];
        f->bias = n->nin == 3 ? n->in[2] : -1;
        return 1;
    case OP_FUSED_CONV2D:
    case OP_FUSED_LINEAR: {
        FusedSlots s;
        fused_slots(n, &s);
        const int *in = n->in;
        f->x = in[s.x], f->w = in[s.w];
        f->gamma = s.gamma >= 0 ? in[s.gamma] : -1, f->beta = s.beta >= 0 ? in[s.beta] : -1;
        f->bias = s.bias >= 0 ? in[s.bias] : -1;
        f->chan_add = s.chan_add >= 0 ? in[s.chan_add] : -1;
        f->residual = s.residual >= 0 ? in[s.residual] : -1;
        f->norm_groups = (int)node_int(n, "norm_groups", 0);
        f->norm = (int)node_int(n, "norm", 0);
        f->eps = node_float(n, "eps", 1e-5);
        f->silu = (int)node_int(n, "silu", 0);
        f->geglu = (int)node_int(n, "geglu", 0);
        f->out_scale = node_float(n, "out_scale", 1.0);
        return 1;
    }
    default: return 0;
    }
}

/* Adds the fused node; attributes at their defaults are left out. */
static int gemm_add(Graph *g, const FusedGemm *f, SdcErr *err)
{
    int ops[IR_MAX_IN], nops = 0, na = 0;
    Attr a[IR_MAX_ATTR];
    ops[nops++] = f->x;
    if (f->gamma >= 0) ops[nops++] = f->gamma, ops[nops++] = f->beta;
    ops[nops++] = f->w;
    if (f->bias >= 0) ops[nops++] = f->bias;
    if (f->chan_add >= 0) ops[nops++] = f->chan_add;
    if (f->residual >= 0) ops[nops++] = f->residual;
    if (f->conv) {
        a[na++] = attr_ints("stride", 2, f->stride);
        a[na++] = attr_ints("pad", 4, f->pad);
        if (f->dilation[0] != 1 || f->dilation[1] != 1) a[na++] = attr_ints("dilation", 2, f->dilation);
        if (f->norm_groups > 0) a[na++] = attr_int("norm_groups", f->norm_groups), a[na++] = attr_float("eps", f->eps);
        if (f->silu) a[na++] = attr_int("silu", 1);
        if (f->chan_add >= 0) a[na++] = attr_int("chan_add", 1);
    } else {
        if (f->norm) a[na++] = attr_int("norm", 1), a[na++] = attr_float("eps", f->eps);
        if (f->norm_groups > 0) a[na++] = attr_int("norm_groups", f->norm_groups), a[na++] = attr_float("eps", f->eps);
        if (f->geglu) a[na++] = attr_int("geglu", 1);
    }
    if (f->bias >= 0) a[na++] = attr_int("bias", 1);
    if (f->residual >= 0) a[na++] = attr_int("residual", 1);
    if (f->out_scale != 1.0) a[na++] = attr_float("out_scale", f->out_scale);
    return graph_add_op(g, f->conv ? OP_FUSED_CONV2D : OP_FUSED_LINEAR, "fused", nops, ops, na, a, err);
}

/* --- rewrites ----------------------------------------------------------------------------- */

void fusion_rewrite_begin(FusionRewrite *r, Graph *g)
{
    r->g = g;
    r->cap = g->n + 16;
    int *uses = graph_use_counts(g);
    r->uses = xcalloc((size_t)r->cap, sizeof(int));
    memcpy(r->uses, uses, sizeof(int) * (size_t)g->n);
    free(uses);
    r->drop = xcalloc((size_t)r->cap, 1);
}

static void rewrite_grow(FusionRewrite *r)
{
    if (r->g->n <= r->cap) return;
    int cap = r->g->n * 2;
    r->uses = xrealloc(r->uses, sizeof(int) * (size_t)cap);
    r->drop = xrealloc(r->drop, (size_t)cap);
    memset(r->uses + r->cap, 0, sizeof(int) * (size_t)(cap - r->cap));
    memset(r->drop + r->cap, 0, (size_t)(cap - r->cap));
    r->cap = cap;
}

static void forget_operands(FusionRewrite *r, int v)
{
    const Node *n = &r->g->nodes[v];
    for (int k = 0; k < n->nin; k++) r->uses[n->in[k]]--;
}

void fusion_rewrite_added(FusionRewrite *r, int id)
{
    rewrite_grow(r);
    const Node *n = &r->g->nodes[id];
    for (int k = 0; k < n->nin; k++) r->uses[n->in[k]]++;
}

void fusion_rewrite_node(FusionRewrite *r, int id, int old, const int *dead, int ndead)
{
    Graph *g = r->g;
    fusion_rewrite_added(r, id);
    forget_operands(r, old);
    for (int k = 0; k < ndead; k++) forget_operands(r, dead[k]), r->drop[dead[k]] = 1;
    graph_replace_uses(g, old, id);
    r->uses[id] = r->uses[old];
    r->uses[old] = 0;
    r->drop[old] = 1;
    g->nodes[id].stage = g->nodes[old].stage;
    char *name = xstrdup(g->nodes[old].name);
    graph_rename(g, old, "\x01fused"); /* frees the name for the new node */
    graph_rename(g, id, name);
    free(name);
}

int fusion_rewrite_gemm(FusionRewrite *r, const FusedGemm *f, int old, const int *dead, int ndead, SdcErr *err)
{
    int id = gemm_add(r->g, f, err);
    if (id < 0) return -1;
    fusion_rewrite_node(r, id, old, dead, ndead);
    return id;
}

void fusion_rewrite_end(FusionRewrite *r)
{
    int any = 0;
    for (int i = 0; i < r->g->n && !any; i++) any = r->drop[i];
    if (any) graph_remove_nodes(r->g, r->drop);
    free(r->uses), free(r->drop);
    memset(r, 0, sizeof *r);
}

/* --- constant folding ---------------------------------------------------------------------------- */

int fusion_fold_consts(Graph *g, const int *nodes, int count, const char *dir, const char *stem, SdcErr *err)
{
    if (count == 0) return 0;
    /* constants without values (a preset imported for stats) cannot be folded: keep the nodes */
    for (int i = 0; i < count; i++)
        for (int k = 0; k < g->nodes[nodes[i]].nin; k++) {
            const Node *c = &g->nodes[g->nodes[nodes[i]].in[k]];
            if (c->ckind == CONST_FILE && strcmp(c->cfile, CONST_NO_WEIGHTS) == 0) return 0;
        }
    char *absdir = realpath(dir, NULL);
    if (!absdir) return sdc_err(err, "scratch folder %s: %s", dir, strerror(errno));
    /* a new file each time: constants folded earlier point into the old ones */
    char file[256];
    char *path = NULL;
    for (int k = 0; !path || access(path, F_OK) == 0; k++) {
        free(path);
        if (k) snprintf(file, sizeof file, "%s_%s.%d.safetensors", g->name ? g->name : "graph", stem, k);
        else snprintf(file, sizeof file, "%s_%s.safetensors", g->name ? g->name : "graph", stem);
        path = path_join(absdir, file);
    }
    free(absdir);
    Tensor **vals = xcalloc((size_t)count, sizeof(Tensor *));
    StEntry *e = xcalloc((size_t)count, sizeof(StEntry));
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        const Node *n = &g->nodes[nodes[i]];
        Tensor *in[IR_MAX_IN] = {0};
        for (int k = 0; k < n->nin && rc == 0; k++) {
            SDC_ASSERT(g->nodes[n->in[k]].op == OP_CONST);
            if (!(in[k] = interp_load_const(g, &g->nodes[n->in[k]], err))) rc = -1;
        }
        vals[i] = tensor_like_node(n);
        /* the exec functions use no interpreter state */
        if (rc == 0) rc = op_table[n->op].exec(NULL, n, in, vals[i], err);
        for (int k = 0; k < n->nin; k++) tensor_free(in[k]);
        e[i] = (StEntry){.name = n->name, .dtype = DT_F32, .ndim = n->ndim, .data = vals[i]->f};
        memcpy(e[i].shape, n->shape, sizeof(int64_t) * (size_t)n->ndim);
    }
    if (rc == 0) rc = st_write(path, count, e, err);
    StFile sf = {0};
    if (rc == 0) rc = st_open(&sf, path, err);
    for (int i = 0; i < count && rc == 0; i++) {
        Node *n = &g->nodes[nodes[i]];
        const StTensor *t = st_find(&sf, n->name);
        SDC_ASSERT(t != NULL);
        n->op = OP_CONST;
        n->nin = 0;
        for (int a = 0; a < n->nattr; a++) free(n->attr[a].s);
        n->nattr = 0;
        n->ckind = CONST_FILE;
        n->cfile = xstrdup(path);
        n->coffset = t->offset;
        n->cdtype = DT_F32;
        n->stage = NODE_STAGE_CALL; /* a weight: no stage */
    }
    st_close(&sf);
    for (int i = 0; i < count; i++) tensor_free(vals[i]);
    free(vals), free(e), free(path);
    return rc;
}
