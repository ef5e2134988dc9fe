/* test_ir_text.c — the textual IR: printing, parsing, round trips, errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "test.h"

static char *roundtrip(const char *text, SdcErr *err)
{
    Graph *g = ir_parse(text, "t.ir", err);
    if (!g) return NULL;
    char *s = ir_print_str(g);
    graph_free(g);
    return s;
}

/* print(parse(print(g))) == print(g) for a graph built in code. */
static void test_built_graph_roundtrips(void)
{
    Graph *g = graph_new("built");
    SdcErr err = {{0}};
    int64_t xs[4] = {1, 4, 8, 8}, ws[4] = {8, 4, 3, 3}, bs[1] = {8};
    int x = graph_add_input(g, "x", DT_F32, 4, xs);
    int w = graph_add_const_file(g, "conv.weight", DT_F32, 4, ws, "weights/model \"a\".safetensors", 1234, DT_F16);
    double bias[8] = {0.1, -0.2, 1e-5, 1.0 / 3.0, -INFINITY, 3e38, -0.0, 42};
    int b = graph_add_const_dense(g, "conv.bias", DT_F32, 1, bs, bias, 8);
    int64_t pad[4] = {1, 1, 1, 1};
    Attr a[2] = {attr_ints("pad", 4, pad), attr_int("groups", 1)};
    int c = graph_add_op(g, OP_CONV2D, "conv", 3, (int[]){x, w, b}, 2, a, &err);
    CHECK(c >= 0);
    Attr gn[2] = {attr_int("groups", 4), attr_float("eps", 1e-6)};
    int gamma = graph_add_const_dense(g, "gamma", DT_F32, 1, bs, (double[]){1.5}, 1);
    int n = graph_add_op(g, OP_GROUP_NORM, NULL, 3, (int[]){c, gamma, gamma}, 2, gn, &err);
    CHECK(n >= 0);
    Attr cast = attr_str("to", "f16");
    int h = graph_add_op(g, OP_CAST, "half", 1, &n, 1, &cast, &err);
    graph_add_output(g, h);
    graph_add_output(g, c);
    CHECK(ir_verify(g, &err) == 0);
    char *s1 = ir_print_str(g);
    char *s2 = roundtrip(s1, &err);
    CHECK_MSG(s2 && strcmp(s1, s2) == 0, "first:\n%s\nsecond:\n%s\nerr: %s", s1, s2 ? s2 : "(null)", err.msg);
    /* the parsed graph keeps exact values */
    Graph *p = ir_parse(s1, "t.ir", &err);
    CHECK(p != NULL);
    if (p) {
        const Node *pb = &p->nodes[graph_find(p, "conv.bias")];
        CHECK(pb->ndense == 8 && memcmp(pb->cdense, bias, sizeof bias) == 0);
        const Node *pw = &p->nodes[graph_find(p, "conv.weight")];
        CHECK(strcmp(pw->cfile, "weights/model \"a\".safetensors") == 0 && pw->coffset == 1234 && pw->cdtype == DT_F16);
        CHECK(graph_find(p, "5") >= 0 && p->nodes[graph_find(p, "5")].op == OP_GROUP_NORM);
        CHECK(node_float(&p->nodes[graph_find(p, "5")], "eps", 0) == 1e-6);
        CHECK(p->nout == 2);
        graph_free(p);
    }
    free(s1);
    free(s2);
    graph_free(g);
}

static void test_names_made_unique(void)
{
    Graph *g = graph_new("u");
    int64_t s[1] = {2};
    int a = graph_add_input(g, "x", DT_F32, 1, s);
    int b = graph_add_input(g, "x", DT_F32, 1, s);
    CHECK(strcmp(g->nodes[a].name, "x") == 0);
    CHECK(strcmp(g->nodes[b].name, "x.1") == 0);
    CHECK(graph_find(g, "x.1") == b);
    graph_free(g);
}

typedef struct BadCase {
    const char *text;
    const char *want; /* substring of the message */
} BadCase;

static void test_parse_errors(void)
{
    static const BadCase cases[] = {
        {"", "t.ir:1:1: expected 'graph'"},
        {"grph @g {}", "t.ir:1:1: expected 'graph', not \"grph\""},
        {"graph @g {\n  %x = input : f32[2]\n", "t.ir:3:1: unexpected end of file (missing 'return')"},
        {"graph @g {\n  %x = inptu : f32[2]\n  return %x\n}", "t.ir:2:8: unknown op \"inptu\""},
        {"graph @g {\n  %x = input : f33[2]\n  return %x\n}", "unknown dtype \"f33\""},
        {"graph @g {\n  %x = input : f32[2,-1]\n  return %x\n}", "negative dimension"},
        {"graph @g {\n  %x = input : f32[1,2,3,4,5,6]\n  return %x\n}", "more than 5 dimensions"},
        {"graph @g {\n  %x = input : f32[2]\n  %x = silu(%x) : f32[2]\n  return %x\n}", "t.ir:3:3: value %x is defined twice"},
        {"graph @g {\n  %y = silu(%x) : f32[2]\n  return %y\n}", "t.ir:2:13: use of undefined value %x"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = scale(%x) {value=} : f32[2]\n  return %y\n}", "expected a number"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = scale(%x) {value=1, value=2} : f32[2]\n  return %y\n}",
         "attribute value given twice"},
        {"graph @g {\n  %c = const dense(1, 2 : f32[2]\n  return %c\n}", "expected ')'"},
        {"graph @g {\n  %c = const file(\"a.st\", -5, f32) : f32[2]\n  return %c\n}", "negative file offset"},
        {"graph @g {\n  %c = const blob(1) : f32[2]\n  return %c\n}", "expected file(...) or dense(...)"},
        {"graph @g {\n  %c = const file(\"unterminated, 0, f32) : f32[2]\n  return %c\n}", "unterminated string"},
        {"graph @g {\n  %x = input : f32[2]\n  return %x\n}\nextra", "t.ir:5:1: unexpected text after the graph"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = slice(%x) {axis=99999999999999999999} : f32[2]\n  return %y\n}",
         "integer out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SdcErr err = {{0}};
        Graph *g = ir_parse(cases[i].text, "t.ir", &err);
        CHECK_MSG(g == NULL, "case %zu parsed", i);
        CHECK_MSG(strstr(err.msg, cases[i].want) != NULL, "case %zu: got \"%s\", want \"%s\"", i, err.msg, cases[i].want);
        graph_free(g);
    }
}

static void test_verify_errors(void)
{
    static const BadCase cases[] = {
        {"graph @g {\n  %x = input : f32[2,3]\n  %y = silu(%x) : f32[3,2]\n  return %y\n}",
         "line 3: %y: declared type f32[3,2], but silu gives f32[2,3]"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = silu(%x, %x) : f32[2]\n  return %y\n}", "silu takes 1 operand(s), not 2"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = scale(%x) {valu=2.0} : f32[2]\n  return %y\n}", "scale has no attribute valu"},
        {"graph @g {\n  %x = input : f32[2]\n  %y = scale(%x) : f32[2]\n  return %y\n}", "missing attribute value"},
        {"graph @g {\n  %x = input : f32[2,3]\n  %y = input : f32[4,3]\n  %z = add(%x, %y) : f32[2,3]\n  return %z\n}",
         "shapes do not broadcast at dim 0 (2 vs 4)"},
        {"graph @g {\n  %x = input : f32[2,3]\n  %y = reshape(%x) {shape=[7]} : f32[7]\n  return %y\n}",
         "cannot reshape 6 elements into 7"},
        {"graph @g {\n  %x = input : f32[1,6,4,4]\n  %g = const dense(1.0) : f32[6]\n"
         "  %y = group_norm(%x, %g, %g) {groups=4} : f32[1,6,4,4]\n  return %y\n}",
         "groups 4 does not divide 6 channels"},
        {"graph @g {\n  %x = input : f32[1,6,4,4]\n  %y = permute(%x) {perm=[0,1,1,2]} : f32[1,6,6,4]\n  return %y\n}",
         "perm is not a permutation"},
        {"graph @g {\n  %i = input : f32[2,3]\n  %t = const dense(1.0) : f32[10,4]\n"
         "  %e = embedding(%i, %t) : f32[2,3,4]\n  return %e\n}",
         "ids %i must be i32 or i64"},
        {"graph @g {\n  %q = input : f32[1,4,6]\n  %y = attention(%q, %q, %q) {heads=4, scale=1.0} : f32[1,4,6]\n  return %y\n}",
         "heads 4 does not divide the channels"},
        {"graph @g {\n  %x = input : f32[2]\n  return\n}", "has no outputs"},
        {"graph @g {\n  %c = const dense(1.0, 2.0) : f32[3]\n  return %c\n}", "dense constant has 2 values for 3 elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SdcErr err = {{0}};
        Graph *g = ir_parse(cases[i].text, "t.ir", &err);
        CHECK_MSG(g != NULL, "case %zu: %s", i, err.msg);
        if (!g) continue;
        CHECK_MSG(ir_verify(g, &err) < 0, "case %zu verified", i);
        CHECK_MSG(strstr(err.msg, cases[i].want) != NULL, "case %zu: got \"%s\", want \"%s\"", i, err.msg, cases[i].want);
        graph_free(g);
    }
}

/* Every float attribute prints in a form that reads back bit-exactly. */
static void test_float_attrs_exact(void)
{
    for (int i = 0; i < 200; i++) {
        double v = (double)test_randn() * pow(10.0, (double)(i % 20 - 10));
        char text[256];
        Graph *g = graph_new("f");
        int64_t s[1] = {2};
        int x = graph_add_input(g, "x", DT_F32, 1, s);
        Attr a = attr_float("value", v);
        SdcErr err = {{0}};
        int y = graph_add_op(g, OP_SCALE, "y", 1, &x, 1, &a, &err);
        graph_add_output(g, y);
        char *s1 = ir_print_str(g);
        Graph *p = ir_parse(s1, "f.ir", &err);
        CHECK(p != NULL);
        if (p) {
            double back = node_float(&p->nodes[1], "value", NAN);
            snprintf(text, sizeof text, "%.17g", v);
            CHECK_MSG(back == v, "%s read back as %.17g", text, back);
            CHECK(p->nodes[1].attr[0].kind == ATTR_FLOAT);
            graph_free(p);
        }
        free(s1);
        graph_free(g);
    }
}

int main(void)
{
    RUN(test_built_graph_roundtrips);
    RUN(test_names_made_unique);
    RUN(test_parse_errors);
    RUN(test_verify_errors);
    RUN(test_float_attrs_exact);
    return test_finish();
}
