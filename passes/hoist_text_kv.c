/* hoist_text_kv.c — compute what depends only on the text once per prompt.
 *
 * In a UNet, the cross-attention keys and values are projections of
 * encoder_hidden_states, which the sampler does not change from step to
 * step.  Every node that depends on that input (and on constants) and on no
 * other input is marked @prompt: the backend computes these values on the
 * first call, keeps them in a buffer of their own, and recomputes them only
 * when the text changes.  Graphs without an encoder_hidden_states input are
 * left alone. */
#include <stdlib.h>

#include "pass.h"

enum { DEP_CONST = 0, DEP_TEXT = 1, DEP_OTHER = 2 };

int pass_hoist_text_kv(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    (void)opt, (void)err;
    int text = graph_find(g, "encoder_hidden_states");
    if (text < 0 || g->nodes[text].op != OP_INPUT) return 0;
    unsigned char *dep = xcalloc((size_t)g->n + 1, 1);
    int hoisted = 0;
    double flops = 0;
    for (int i = 0; i < g->n; i++) {
        Node *n = &g->nodes[i];
        if (n->op == OP_CONST) dep[i] = DEP_CONST;
        else if (n->op == OP_INPUT) dep[i] = i == text ? DEP_TEXT : DEP_OTHER;
        else
            for (int k = 0; k < n->nin; k++)
                if (dep[n->in[k]] > dep[i]) dep[i] = dep[n->in[k]];
        if (dep[i] == DEP_TEXT && n->op != OP_INPUT && n->stage != NODE_STAGE_PROMPT) {
            n->stage = NODE_STAGE_PROMPT;
            OpCost cost = {0};
            op_table[n->op].cost(g, n, &cost);
            flops += cost.flops;
            hoisted++;
        }
    }
    free(dep);
    pass_count(c, "hoisted", hoisted);
    pass_count(c, "mflop-per-call-saved", (int64_t)(flops / 1e6));
    return 0;
}
