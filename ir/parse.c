/* parse.c — reads the textual form written by print.c.
 *
 * A hand-written scanner over the whole text; every error carries
 * file:line:col.  Names must be defined before use (SSA in order); types
 * are read as declared and checked by the verifier, not here, so that a
 * wrong type in a file is reported as such rather than silently fixed. */
#include "ir.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct Parser {
    const char *src, *p, *file;
    int line;
    const char *line_start;
    Graph *g;
    SdcErr *err;
} Parser;

/* Reports an error at `at`, a position on the current line. */
static int perr_at(Parser *ps, const char *at, const char *fmt, const char *arg)
{
    const char *keep = ps->p;
    ps->p = at >= ps->line_start ? at : ps->p;
    char what[600];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    sdc_err(ps->err, "%s:%d:%d: %s", ps->file, ps->line, (int)(ps->p - ps->line_start) + 1, what);
    ps->p = keep;
    return -1;
}

static int perr(Parser *ps, const char *fmt, const char *arg)
{
    char what[600];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    return sdc_err(ps->err, "%s:%d:%d: %s", ps->file, ps->line, (int)(ps->p - ps->line_start) + 1, what);
}

/* Skips blanks and comments ("#" or "//" to the end of the line);
 * newlines are ordinary whitespace. */
static void skip_ws(Parser *ps)
{
    for (;;) {
        char c = *ps->p;
        if (c == '\n') {
            ps->p++;
            ps->line++;
            ps->line_start = ps->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else if (c == '#' || (c == '/' && ps->p[1] == '/')) {
            while (*ps->p && *ps->p != '\n') ps->p++;
        } else {
            return;
        }
    }
}

static int accept(Parser *ps, char c)
{
    skip_ws(ps);
    if (*ps->p != c) return 0;
    ps->p++;
    return 1;
}

static int expect(Parser *ps, char c)
{
    char s[2] = {c, 0};
    if (!accept(ps, c)) return perr(ps, "expected '%s'", s);
    return 0;
}

static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '/'; }

/* Reads [A-Za-z0-9_./-]+ into buf. */
static int read_word(Parser *ps, char *buf, size_t len, const char *what)
{
    skip_ws(ps);
    size_t n = 0;
    while (is_name_char(*ps->p)) {
        if (n + 1 >= len) return perr(ps, "%s is too long", what);
        buf[n++] = *ps->p++;
    }
    buf[n] = 0;
    if (!n) return perr(ps, "expected %s", what);
    return 0;
}

static int read_value_name(Parser *ps, char *buf, size_t len)
{
    if (expect(ps, '%')) return -1;
    if (!is_name_char(*ps->p)) return perr(ps, "expected a value name after '%%'", NULL);
    return read_word(ps, buf, len, "value name");
}

static int read_string(Parser *ps, char **out)
{
    skip_ws(ps);
    if (*ps->p != '"') return perr(ps, "expected a string", NULL);
    ps->p++;
    size_t cap = 64, n = 0;
    char *s = xmalloc(cap);
    while (*ps->p != '"') {
        char c = *ps->p;
        if (!c || c == '\n') {
            free(s);
            return perr(ps, "unterminated string", NULL);
        }
        if (c == '\\') {
            c = *++ps->p;
            if (c == 'n') c = '\n';
            else if (c != '"' && c != '\\') {
                free(s);
                return perr(ps, "unknown escape in string", NULL);
            }
        }
        if (n + 2 > cap) s = xrealloc(s, cap *= 2);
        s[n++] = c;
        ps->p++;
    }
    ps->p++;
    s[n] = 0;
    *out = s;
    return 0;
}

/* A number: sets *is_float when it has '.', 'e', inf or nan. */
static int read_number(Parser *ps, double *f, int64_t *i, int *is_float)
{
    skip_ws(ps);
    const char *start = ps->p;
    char *end;
    errno = 0;
    long long iv = strtoll(start, &end, 10);
    if (end != start && !strchr(".eEinINfF", *end) && !isalpha((unsigned char)*end)) {
        if (errno == ERANGE) return perr(ps, "integer out of range", NULL);
        ps->p = end;
        *i = iv;
        *f = (double)iv;
        *is_float = 0;
        return 0;
    }
    double dv = strtod(start, &end);
    if (end == start) return perr(ps, "expected a number", NULL);
    ps->p = end;
    *f = dv;
    *i = dv > -9.2e18 && dv < 9.2e18 ? (int64_t)dv : 0; /* unused for floats; the cast of a huge or NaN value is undefined */
    *is_float = 1;
    return 0;
}

static int read_int(Parser *ps, int64_t *v)
{
    double f = 0;
    int is_float = 0;
    if (read_number(ps, &f, v, &is_float)) return -1;
    if (is_float) return perr(ps, "expected an integer", NULL);
    return 0;
}

/* "f32[2,4,8,8]" */
static int read_type(Parser *ps, DType *dt, int *ndim, int64_t *shape)
{
    char word[32];
    skip_ws(ps);
    size_t n = 0;
    while (isalnum((unsigned char)*ps->p) && n + 1 < sizeof word) word[n++] = *ps->p++;
    word[n] = 0;
    if (dtype_from_name(word, dt) < 0) return perr(ps, "unknown dtype \"%s\"", word);
    if (expect(ps, '[')) return -1;
    *ndim = 0;
    if (accept(ps, ']')) return 0;
    do {
        if (*ndim == IR_MAX_DIMS) return perr(ps, "more than 5 dimensions", NULL);
        int64_t d;
        if (read_int(ps, &d)) return -1;
        if (d < 0) return perr(ps, "negative dimension", NULL);
        shape[(*ndim)++] = d;
    } while (accept(ps, ','));
    return expect(ps, ']');
}

static int read_attr(Parser *ps, Node *n)
{
    char key[64];
    skip_ws(ps);
    if (!isalpha((unsigned char)*ps->p) && *ps->p != '_') return perr(ps, "expected an attribute name", NULL);
    if (read_word(ps, key, sizeof key, "attribute name") || expect(ps, '=')) return -1;
    if (node_attr(n, key)) return perr(ps, "attribute %s given twice", key);
    if (n->nattr == IR_MAX_ATTR) return perr(ps, "too many attributes", NULL);
    Attr a = {.key = key};
    skip_ws(ps);
    if (*ps->p == '"') {
        a.kind = ATTR_STR;
        if (read_string(ps, &a.s)) return -1;
        node_set_attr(ps->g, n, a);
        free(a.s);
        return 0;
    }
    if (accept(ps, '[')) {
        a.kind = ATTR_INTS;
        if (!accept(ps, ']')) {
            do {
                if (a.n == IR_MAX_INTS) return perr(ps, "more than 8 values in a list", NULL);
                if (read_int(ps, &a.ints[a.n++])) return -1;
            } while (accept(ps, ','));
            if (expect(ps, ']')) return -1;
        }
    } else {
        int is_float;
        if (read_number(ps, &a.f, &a.i, &is_float)) return -1;
        a.kind = is_float ? ATTR_FLOAT : ATTR_INT;
    }
    node_set_attr(ps->g, n, a);
    return 0;
}

static int read_operand(Parser *ps, int *id)
{
    char name[512];
    skip_ws(ps);
    const char *start = ps->p;
    if (read_value_name(ps, name, sizeof name)) return -1;
    *id = graph_find(ps->g, name);
    if (*id < 0) {
        ps->p = start; /* point at the name, not after it */
        return perr(ps, "use of undefined value %%%s", name);
    }
    return 0;
}

static int read_const_body(Parser *ps, Node *n)
{
    char word[16];
    if (read_word(ps, word, sizeof word, "file(...) or dense(...)") || expect(ps, '(')) return -1;
    if (strcmp(word, "file") == 0) {
        char dt[16];
        int64_t off = 0;
        n->ckind = CONST_FILE;
        if (read_string(ps, &n->cfile) || expect(ps, ',') || read_int(ps, &off) || expect(ps, ',') ||
            read_word(ps, dt, sizeof dt, "stored dtype"))
            return -1;
        if (off < 0) return perr(ps, "negative file offset", NULL);
        if (dtype_from_name(dt, &n->cdtype) < 0) return perr(ps, "unknown dtype \"%s\"", dt);
        n->coffset = (uint64_t)off;
        return expect(ps, ')');
    }
    if (strcmp(word, "dense") == 0) {
        n->ckind = CONST_DENSE;
        int64_t cap = 16;
        n->cdense = xmalloc(sizeof(double) * (size_t)cap);
        if (accept(ps, ')')) return 0;
        do {
            int64_t iv;
            int is_float;
            if (n->ndense == cap) n->cdense = xrealloc(n->cdense, sizeof(double) * (size_t)(cap *= 2));
            if (read_number(ps, &n->cdense[n->ndense], &iv, &is_float)) return -1;
            n->ndense++;
        } while (accept(ps, ','));
        return expect(ps, ')');
    }
    return perr(ps, "expected file(...) or dense(...), not \"%s\"", word);
}

static int read_node(Parser *ps)
{
    char name[512], opname[64];
    int line = ps->line, col;
    skip_ws(ps);
    col = (int)(ps->p - ps->line_start) + 1;
    line = ps->line;
    if (read_value_name(ps, name, sizeof name)) return -1;
    if (graph_find(ps->g, name) >= 0) return perr_at(ps, ps->line_start + col - 1, "value %%%s is defined twice", name);
    if (expect(ps, '=')) return -1;
    skip_ws(ps);
    const char *op_at = ps->p;
    if (read_word(ps, opname, sizeof opname, "op name")) return -1;
    OpKind op;
    if (op_from_name(opname, &op) < 0) return perr_at(ps, op_at, "unknown op \"%s\"", opname);
    int in[IR_MAX_IN], nin = 0;
    if (op != OP_INPUT && op != OP_CONST) {
        if (expect(ps, '(')) return -1;
        if (!accept(ps, ')')) {
            do {
                if (nin == IR_MAX_IN) return perr(ps, "too many operands", NULL);
                if (read_operand(ps, &in[nin++])) return -1;
            } while (accept(ps, ','));
            if (expect(ps, ')')) return -1;
        }
    }
    int id = graph_add(ps->g, op, name, nin, in);
    Node *n = &ps->g->nodes[id];
    n->line = line;
    n->col = col;
    if (op == OP_CONST && read_const_body(ps, n)) return -1;
    if (accept(ps, '{') && !accept(ps, '}')) {
        do {
            if (read_attr(ps, n)) return -1;
        } while (accept(ps, ','));
        if (expect(ps, '}')) return -1;
    }
    if (expect(ps, ':') || read_type(ps, &n->dtype, &n->ndim, n->shape)) return -1;
    if (accept(ps, '@')) {
        char stage[32];
        if (read_word(ps, stage, sizeof stage, "stage")) return -1;
        if (strcmp(stage, "prompt") != 0) return perr(ps, "unknown stage \"@%s\" (only @prompt)", stage);
        n->stage = NODE_STAGE_PROMPT;
    }
    return 0;
}

Graph *ir_parse(const char *text, const char *file, SdcErr *err)
{
    Parser ps = {.src = text, .p = text, .file = file ? file : "<input>", .line = 1, .line_start = text, .err = err};
    char word[256];
    skip_ws(&ps);
    const char *at = ps.p;
    if (read_word(&ps, word, sizeof word, "'graph'")) return NULL;
    if (strcmp(word, "graph") != 0) {
        perr_at(&ps, at, "expected 'graph', not \"%s\"", word);
        return NULL;
    }
    if (expect(&ps, '@') || read_word(&ps, word, sizeof word, "graph name") || expect(&ps, '{')) return NULL;
    ps.g = graph_new(word);
    for (;;) {
        skip_ws(&ps);
        if (strncmp(ps.p, "return", 6) == 0 && !is_name_char(ps.p[6])) {
            ps.p += 6;
            skip_ws(&ps);
            if (*ps.p == '%') {
                do {
                    int id;
                    if (read_operand(&ps, &id)) goto fail;
                    graph_add_output(ps.g, id);
                } while (accept(&ps, ','));
            }
            break;
        }
        if (*ps.p != '%') {
            perr(&ps, *ps.p ? "expected a value definition or 'return'" : "unexpected end of file (missing 'return')",
                 NULL);
            goto fail;
        }
        if (read_node(&ps)) goto fail;
    }
    if (expect(&ps, '}')) goto fail;
    skip_ws(&ps);
    if (*ps.p) {
        perr(&ps, "unexpected text after the graph", NULL);
        goto fail;
    }
    return ps.g;
fail:
    graph_free(ps.g);
    return NULL;
}

Graph *ir_parse_file(const char *path, SdcErr *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sdc_err(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f) ? errno : 0; /* EISDIR for a folder */
    fclose(f);
    buf[n] = 0;
    if (bad || memchr(buf, 0, n)) {
        sdc_err(err, "%s: %s", path, bad ? strerror(bad) : "not a text file (NUL byte)");
        free(buf);
        return NULL;
    }
    Graph *g = ir_parse(buf, path, err);
    free(buf);
    if (g) {
        /* constants with relative paths are relative to the IR file */
        const char *slash = strrchr(path, '/');
        free(g->base_dir);
        if (slash) {
            g->base_dir = xmalloc((size_t)(slash - path) + 1);
            memcpy(g->base_dir, path, (size_t)(slash - path));
            g->base_dir[slash - path] = 0;
            if (!*g->base_dir) strcpy(g->base_dir, "/");
        } else {
            g->base_dir = xstrdup(".");
        }
    }
    return g;
}
