/* print.c — the textual form of a graph.
 *
 *   graph @name {
 *     %x = input : f32[1,4,8,8]
 *     %w = const file("unet.safetensors", 1024, f16) : f32[8,4,3,3]
 *     %k = const dense(0.5, 1, 2) : f32[3]
 *     %y = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1]} : f32[1,8,8,8]
 *     return %y
 *   }
 *
 * Numbers print in the shortest form that parses back to the same value,
 * so that print(parse(print(g))) == print(g). */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Shortest %g form that reads back as the same double; always marks a
 * float as such (a '.', 'e', "inf" or "nan" in it). */
static void fmt_double(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, len, v < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".en")) strncat(buf, ".0", len - strlen(buf) - 1);
}

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out), fputc(*s, out);
        else if (*s == '\n') fputs("\\n", out);
        else fputc(*s, out);
    }
    fputc('"', out);
}

static void print_attr(FILE *out, const Attr *a)
{
    char buf[64];
    fprintf(out, "%s=", a->key);
    switch (a->kind) {
    case ATTR_INT: fprintf(out, "%lld", (long long)a->i); break;
    case ATTR_FLOAT: fmt_double(buf, sizeof buf, a->f), fputs(buf, out); break;
    case ATTR_STR: print_string(out, a->s); break;
    case ATTR_INTS:
        fputc('[', out);
        for (int i = 0; i < a->n; i++) fprintf(out, i ? ",%lld" : "%lld", (long long)a->ints[i]);
        fputc(']', out);
        break;
    }
}

static void print_node(const Graph *g, const Node *n, FILE *out)
{
    char buf[128];
    fprintf(out, "  %%%s = %s", n->name, op_table[n->op].name);
    if (n->op == OP_CONST && n->ckind == CONST_FILE) {
        fputs(" file(", out);
        print_string(out, n->cfile);
        fprintf(out, ", %llu, %s)", (unsigned long long)n->coffset, dtype_name(n->cdtype));
    } else if (n->op == OP_CONST) {
        fputs(" dense(", out);
        for (int64_t i = 0; i < n->ndense; i++) {
            if (dtype_is_float(n->dtype)) fmt_double(buf, sizeof buf, n->cdense[i]);
            else snprintf(buf, sizeof buf, "%lld", (long long)n->cdense[i]);
            fprintf(out, i ? ", %s" : "%s", buf);
        }
        fputc(')', out);
    } else if (n->op != OP_INPUT) {
        fputc('(', out);
        for (int k = 0; k < n->nin; k++) fprintf(out, k ? ", %%%s" : "%%%s", g->nodes[n->in[k]].name);
        fputc(')', out);
    }
    if (n->nattr) {
        fputs(" {", out);
        for (int a = 0; a < n->nattr; a++) {
            if (a) fputs(", ", out);
            print_attr(out, &n->attr[a]);
        }
        fputc('}', out);
    }
    fprintf(out, " : %s%s\n", node_type_str(n, buf, sizeof buf), n->stage == NODE_STAGE_PROMPT ? " @prompt" : "");
}

void ir_print(const Graph *g, FILE *out)
{
    fprintf(out, "graph @%s {\n", g->name);
    for (int i = 0; i < g->n; i++) print_node(g, &g->nodes[i], out);
    fputs("  return", out);
    for (int o = 0; o < g->nout; o++) fprintf(out, o ? ", %%%s" : " %%%s", g->nodes[g->outputs[o]].name);
    fputs("\n}\n", out);
}

char *ir_print_str(const Graph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    SDC_ASSERT(f);
    ir_print(g, f);
    fclose(f);
    return buf;
}
