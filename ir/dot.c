/* dot.c — a graph as Graphviz: one box per op (name, op, type), inputs as
 * ellipses, constants folded into their users' labels (a UNet has a
 * thousand weights; drawing them hides the structure). */
#include <stdio.h>

#include "ir.h"

static void label_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
}

void ir_print_dot(const Graph *g, FILE *out)
{
    char type[128];
    fprintf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n", g->name);
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_CONST) continue;
        fprintf(out, "  n%d [shape=%s, label=\"", i, n->op == OP_INPUT ? "ellipse" : "box");
        label_escape(out, n->name);
        fprintf(out, "\\n%s %s", op_table[n->op].name, node_type_str(n, type, sizeof type));
        int consts = 0;
        for (int k = 0; k < n->nin; k++) consts += g->nodes[n->in[k]].op == OP_CONST;
        if (consts) fprintf(out, "\\n(+%d weight%s)", consts, consts > 1 ? "s" : "");
        fprintf(out, "\"%s];\n", n->stage == NODE_STAGE_PROMPT ? ", style=dashed" : graph_is_output(g, i) ? ", style=bold" : "");
        for (int k = 0; k < n->nin; k++)
            if (g->nodes[n->in[k]].op != OP_CONST) fprintf(out, "  n%d -> n%d;\n", n->in[k], i);
    }
    fprintf(out, "}\n");
}
