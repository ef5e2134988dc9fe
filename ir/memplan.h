/* memplan.h — static memory planning: every intermediate value gets a
 * fixed offset in one arena.
 *
 * Liveness is taken over the graph's order (the schedule): a value lives
 * from the node that defines it to its last use.  Reshapes are views and
 * share their source's buffer (extending its life).  Graph inputs,
 * constants and outputs live outside the arena (caller buffers, the weights
 * file).  Offsets are chosen greedily, largest buffer first, at the lowest
 * address free during the whole lifetime; the plan reports its peak and
 * the lower bound no plan can beat: the most bytes live at any one point. */
#ifndef SDC_MEMPLAN_H
#define SDC_MEMPLAN_H

#include "ir.h"

#define MEMPLAN_ALIGN 64

/* BUF_PERSIST: a value computed once per prompt (Node.stage) that must
 * survive between calls: it lives in a buffer of its own, not the arena. */
typedef enum BufKind { BUF_NONE, BUF_ARENA, BUF_INPUT, BUF_OUTPUT, BUF_WEIGHT, BUF_PERSIST } BufKind;

typedef struct MemPlan {
    int n;
    BufKind *kind;    /* per node: where its value lives */
    int *root;        /* per node: the node that owns the buffer (itself, or a reshape's source) */
    int64_t *offset;  /* BUF_ARENA: byte offset; BUF_INPUT/OUTPUT: index among inputs/outputs */
    int *first, *last; /* live range of each root, in node order */
    uint64_t peak;        /* arena size */
    uint64_t lower_bound; /* the most bytes live at once */
    uint64_t persist_bytes; /* the once-per-prompt values */
    int peak_at;          /* a node where lower_bound is reached */
} MemPlan;

void memplan_compute(const Graph *g, MemPlan *p);
void memplan_free(MemPlan *p);

#endif
