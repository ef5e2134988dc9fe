/* dce.c — dead code elimination: drop what no output depends on.
 * Graph inputs stay (they are the graph's interface). */
#include "pass.h"

int pass_dce(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt, (void)err;
    pass_count(c, "removed", graph_compact(g, 1));
    return 0;
}
