/* memplan.c — see memplan.h. */
#include "memplan.h"

#include <stdlib.h>
#include <string.h>

static uint64_t align_up(uint64_t v) { return (v + MEMPLAN_ALIGN - 1) / MEMPLAN_ALIGN * MEMPLAN_ALIGN; }

typedef struct Placed {
    int64_t lo, hi; /* address range */
    int first, last;
} Placed;

static int by_size_desc(const void *a, const void *b, void *ctx)
{
    const uint64_t *size = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (size[x] != size[y]) return size[x] < size[y] ? 1 : -1;
    return x - y; /* stable: earlier node first */
}

static int by_lo(const void *a, const void *b)
{
    const Placed *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* qsort_r is a GNU extension; a small insertion-merge keeps this portable. */
static void sort_ids(int *ids, int n, const uint64_t *size)
{
    int *tmp = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = by_size_desc(&ids[i], &ids[j], (void *)size) <= 0 ? ids[i++] : ids[j++];
            while (i < mid) tmp[k++] = ids[i++];
            while (j < hi) tmp[k++] = ids[j++];
        }
        memcpy(ids, tmp, sizeof(int) * (size_t)n);
    }
    free(tmp);
}

void memplan_compute(const Graph *g, MemPlan *p)
{
    int n = g->n;
    memset(p, 0, sizeof *p);
    p->n = n;
    p->kind = xcalloc((size_t)(n ? n : 1), sizeof(BufKind));
    p->root = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    p->offset = xcalloc((size_t)(n ? n : 1), sizeof(int64_t));
    p->first = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    p->last = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int nin = 0;
    for (int i = 0; i < n; i++) {
        const Node *nd = &g->nodes[i];
        p->root[i] = i;
        p->first[i] = p->last[i] = i;
        if (nd->op == OP_INPUT) p->kind[i] = BUF_INPUT, p->offset[i] = nin++;
        else if (nd->op == OP_CONST) p->kind[i] = BUF_WEIGHT;
        else if (nd->op == OP_RESHAPE) p->root[i] = p->root[nd->in[0]], p->kind[i] = p->kind[p->root[i]],
                                       p->offset[i] = -1;
        else if (nd->stage == NODE_STAGE_PROMPT) {
            p->kind[i] = BUF_PERSIST;
            p->offset[i] = (int64_t)p->persist_bytes;
            p->persist_bytes += align_up(node_bytes(nd));
        } else p->kind[i] = BUF_ARENA;
    }
    /* outputs write straight into the caller's buffers (a view or a leaf that
     * is an output is copied there by the backend, so it keeps its own kind) */
    for (int o = 0; o < g->nout; o++) {
        int v = g->outputs[o];
        if (p->kind[v] == BUF_ARENA && p->root[v] == v) p->kind[v] = BUF_OUTPUT, p->offset[v] = o;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) {
            int r = p->root[g->nodes[i].in[k]];
            if (p->last[r] < i) p->last[r] = i;
        }
    for (int o = 0; o < g->nout; o++) p->last[p->root[g->outputs[o]]] = n; /* copied out at the end */

    uint64_t *size = xcalloc((size_t)(n ? n : 1), sizeof(uint64_t));
    int *ids = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), count = 0;
    for (int i = 0; i < n; i++)
        if (p->kind[i] == BUF_ARENA && p->root[i] == i) {
            size[i] = align_up(node_bytes(&g->nodes[i]));
            ids[count++] = i;
        }
    /* lower bound: sweep the schedule */
    int64_t *delta = xcalloc((size_t)n + 2, sizeof(int64_t));
    for (int k = 0; k < count; k++) {
        delta[p->first[ids[k]]] += (int64_t)size[ids[k]];
        delta[p->last[ids[k]] + 1] -= (int64_t)size[ids[k]];
    }
    int64_t live = 0;
    for (int i = 0; i <= n; i++) {
        live += delta[i];
        if ((uint64_t)live > p->lower_bound) p->lower_bound = (uint64_t)live, p->peak_at = i;
    }
    free(delta);

    sort_ids(ids, count, size);
    Placed *placed = xmalloc(sizeof(Placed) * (size_t)(count ? count : 1));
    Placed *busy = xmalloc(sizeof(Placed) * (size_t)(count ? count : 1));
    for (int k = 0; k < count; k++) {
        int v = ids[k], nb = 0;
        /* the address ranges taken while v is live, by start address */
        for (int j = 0; j < k; j++)
            if (placed[j].first <= p->last[v] && p->first[v] <= placed[j].last) busy[nb++] = placed[j];
        qsort(busy, (size_t)nb, sizeof(Placed), by_lo);
        /* first gap that fits */
        int64_t at = 0;
        for (int j = 0; j < nb && busy[j].lo < at + (int64_t)size[v]; j++)
            if (busy[j].hi > at) at = busy[j].hi;
        placed[k] = (Placed){at, at + (int64_t)size[v], p->first[v], p->last[v]};
        p->offset[v] = at;
        if ((uint64_t)(at + (int64_t)size[v]) > p->peak) p->peak = (uint64_t)(at + (int64_t)size[v]);
    }
    /* views take their root's placement */
    for (int i = 0; i < n; i++)
        if (p->root[i] != i) p->kind[i] = p->kind[p->root[i]], p->offset[i] = p->offset[p->root[i]];
    free(placed), free(busy), free(size), free(ids);
}

void memplan_free(MemPlan *p)
{
    free(p->kind), free(p->root), free(p->offset), free(p->first), free(p->last);
    memset(p, 0, sizeof *p);
}
