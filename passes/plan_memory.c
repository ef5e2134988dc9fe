/* plan_memory.c — plans the activation arena and reports how good the plan is.
 *
 * The graph is not changed: the pass runs the same planner the backend uses
 * (ir/memplan.c: liveness over the node order, greedy placement by size)
 * and reports the planned peak and the lower bound no placement can beat
 * (the most bytes live at one point of the schedule), so that
 * `--timing` and `sdc stats` show what each fusion saves in memory. */
#include "memplan.h"
#include "pass.h"

int pass_plan_memory(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt, (void)err;
    MemPlan p;
    memplan_compute(g, &p);
    pass_count(c, "peak-kib", (int64_t)(p.peak >> 10));
    pass_count(c, "lower-bound-kib", (int64_t)(p.lower_bound >> 10));
    pass_count(c, "prompt-kib", (int64_t)(p.persist_bytes >> 10));
    memplan_free(&p);
    return 0;
}
