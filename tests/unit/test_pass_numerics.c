/* test_pass_numerics.c — every golden pass test also preserves values.
 *
 * For each .ir file in tests/passes whose RUN line runs `sdc opt --passes=...`,
 * the graph before and after those passes is run by the interpreter on the
 * same fresh random inputs and the outputs must agree (relative error below
 * 1e-5): a rewrite that prints the expected text but computes something
 * else fails here.  Integer inputs get small ids (0 or 1).  A file whose
 * RUN line gives --timesteps (fold-time-embedding) is checked step by step:
 * the graph before with `timestep` set to step s's value against the graph
 * after with the new `step` input set to s. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "interp.h"
#include "pass.h"
#include "test.h"

/* The --passes=... value of the file's first RUN line, or NULL. */
static char *passes_of(const char *text)
{
    const char *run = strstr(text, "# RUN: sdc opt");
    if (!run) return NULL;
    const char *p = strstr(run, "--passes=");
    const char *eol = strchr(run, '\n');
    if (!p || (eol && p > eol)) return NULL;
    p += 9;
    size_t n = strcspn(p, " \n|");
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* The comma-separated floats after `flag` on the file's first RUN line. */
static int floats_of(const char *text, const char *flag, float *out, int max)
{
    const char *run = strstr(text, "# RUN: sdc opt"), *p = run ? strstr(run, flag) : NULL;
    const char *eol = run ? strchr(run, '\n') : NULL;
    if (!p || (eol && p > eol)) return 0;
    p += strlen(flag);
    int n = 0;
    for (char *end; n < max; p = end + 1) {
        out[n++] = strtof(p, &end);
        if (*end != ',') break;
    }
    return n;
}

/* Runs g and h on the same inputs and compares their outputs.  With a
 * step (>= 0): g's `timestep` input holds ts, h's `step` input holds step. */
static void compare(const char *path, const Graph *g, const Graph *h, int step, float ts)
{
    SdcErr err = {{0}};
    Tensor *in[16] = {0}, *hin[16] = {0};
    int nin = 0, nhin = 0;
    for (int i = 0; i < g->n && nin < 16; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT) continue;
        in[nin] = tensor_like_node(n);
        int64_t numel = tensor_numel(in[nin]);
        if (step >= 0 && !strcmp(n->name, "timestep"))
            for (int64_t k = 0; k < numel; k++) in[nin]->f[k] = ts;
        else if (in[nin]->f) test_fill_randn(in[nin]->f, (size_t)numel, 1.0f);
        else
            for (int64_t k = 0; k < numel; k++) in[nin]->i[k] = (int64_t)(test_uniform(0, 1) < 0.5f);
        nin++;
    }
    /* h's inputs by name: g's, plus `step` */
    for (int i = 0; i < h->n && nhin < 16; i++) {
        const Node *n = &h->nodes[i];
        if (n->op != OP_INPUT) continue;
        int at = -1;
        for (int j = 0, k = 0; j < g->n; j++)
            if (g->nodes[j].op == OP_INPUT) {
                if (!strcmp(g->nodes[j].name, n->name)) at = k;
                k++;
            }
        if (at >= 0) { /* the same values */
            hin[nhin] = tensor_like_node(n);
            size_t bytes = (size_t)tensor_numel(hin[nhin]) * (hin[nhin]->f ? sizeof(float) : sizeof(int64_t));
            memcpy(hin[nhin]->f ? (void *)hin[nhin]->f : (void *)hin[nhin]->i,
                   in[at]->f ? (void *)in[at]->f : (void *)in[at]->i, bytes);
            nhin++;
            continue;
        }
        CHECK_MSG(step >= 0 && !strcmp(n->name, "step"), "%s: input %%%s appeared", path, n->name);
        hin[nhin] = tensor_like_node(n);
        for (int64_t k = 0; k < tensor_numel(hin[nhin]); k++) hin[nhin]->i[k] = step;
        nhin++;
    }
    Tensor *a[8] = {0}, *b[8] = {0};
    int ok = interp_run(g, in, a, 0, &err) == 0;
    CHECK_MSG(ok, "%s before: %s", path, err.msg);
    ok = ok && interp_run(h, hin, b, 0, &err) == 0;
    CHECK_MSG(ok || !a[0], "%s after: %s", path, err.msg);
    if (ok) {
        CHECK(g->nout == h->nout);
        for (int o = 0; o < g->nout && o < h->nout; o++)
            if (a[o]->f) CHECK_REL(b[o]->f, a[o]->f, (size_t)tensor_numel(a[o]), 1e-5);
    }
    for (int o = 0; o < 8; o++) tensor_free(a[o]), tensor_free(b[o]);
    for (int i = 0; i < nin; i++) tensor_free(in[i]);
    for (int i = 0; i < nhin; i++) tensor_free(hin[i]);
}

static void check_file(const char *path)
{
    SdcErr err = {{0}};
    char *text = file_read_all(path, NULL, &err);
    CHECK_MSG(text != NULL, "%s", err.msg);
    if (!text) return;
    char *passes = strstr(text, "# RUN-FAIL") ? NULL : passes_of(text);
    Graph *g = passes ? ir_parse(text, path, &err) : NULL;
    CHECK_MSG(g || !passes, "%s does not parse: %s", path, err.msg); /* only RUN-FAIL files may not */
    if (!g) goto done;
    float ts[16];
    int nts = floats_of(text, "--timesteps=", ts, 16);
    Graph *h = graph_clone(g);
    PassOptions po = {.pipeline = passes, .verify = 1, .n_steps = nts, .timesteps = ts,
                      .scratch_dir = nts ? test_tmpdir() : NULL};
    CHECK_MSG(pass_run_pipeline(h, &po, &err) == 0, "%s: %s", path, err.msg);
    if (nts) {
        CHECK_MSG(graph_find(h, "step") >= 0, "%s: no step input after the passes", path);
        for (int s = 0; s < nts; s++) compare(path, g, h, s, ts[s]);
    } else {
        compare(path, g, h, -1, 0.0f);
    }
    fprintf(stderr, "  %s (%s%s)\n", path, passes, nts ? ", per step" : "");
    graph_free(h);
done:
    graph_free(g);
    free(passes);
    free(text);
}

static void test_all_pass_files(void)
{
    const char *dir = SDC_SOURCE_DIR "/tests/passes";
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".ir") != 0) continue;
        char *p = path_join(dir, e->d_name);
        check_file(p);
        free(p);
        count++;
    }
    closedir(d);
    CHECK(count > 0);
}

/* The manager verifies after every pass and names the pass in the error: a
 * graph broken behind the verifier's back (a declared shape that its op
 * does not produce) fails right after the first pass that runs. */
static void test_verifier_names_the_pass(void)
{
    SdcErr err = {{0}};
    Graph *g = ir_parse("graph @g {\n  %x = input : f32[2,3]\n  %y = silu(%x) : f32[2,3]\n  return %y\n}\n", "mem.ir",
                        &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    g->nodes[graph_find(g, "y")].shape[1] = 4; /* silu of [2,3] declared [2,4] */
    PassOptions po = {.pipeline = "cse,dce", .verify = 1};
    CHECK(pass_run_pipeline(g, &po, &err) < 0);
    CHECK_MSG(strstr(err.msg, "verifier failed after pass cse") != NULL, "message: %s", err.msg);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "one line: %s", err.msg);
    graph_free(g);
}

int main(void)
{
    RUN(test_all_pass_files);
    RUN(test_verifier_names_the_pass);
    return test_finish();
}
