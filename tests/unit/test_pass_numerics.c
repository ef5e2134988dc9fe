/* test_pass_numerics.c — every golden pass test also preserves values.
 *
 * For each .ir file in tests/passes whose RUN line runs `sdc opt --passes=...`,
 * the graph before and after those passes is run by the interpreter on the
 * same fresh random inputs and the outputs must agree (relative error below
 * 1e-5): a rewrite that prints the expected text but computes something
 * else fails here.  Integer inputs get small ids (0 or 1). */
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

static void check_file(const char *path)
{
    SdcErr err = {{0}};
    char *text = file_read_all(path, NULL, &err);
    CHECK_MSG(text != NULL, "%s", err.msg);
    if (!text) return;
    char *passes = strstr(text, "# RUN-FAIL") ? NULL : passes_of(text);
    Graph *g = passes ? ir_parse(text, path, &err) : NULL;
    if (!g) goto done;
    Graph *h = graph_clone(g);
    PassOptions po = {.pipeline = passes, .verify = 1};
    CHECK_MSG(pass_run_pipeline(h, &po, &err) == 0, "%s: %s", path, err.msg);
    int nin = 0;
    Tensor *in[16] = {0};
    for (int i = 0; i < g->n && nin < 16; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT) continue;
        in[nin] = tensor_like_node(n);
        int64_t numel = tensor_numel(in[nin]);
        if (in[nin]->f) test_fill_randn(in[nin]->f, (size_t)numel, 1.0f);
        else
            for (int64_t k = 0; k < numel; k++) in[nin]->i[k] = (int64_t)(test_uniform(0, 1) < 0.5f);
        nin++;
    }
    Tensor *a[8] = {0}, *b[8] = {0};
    int ok = interp_run(g, in, a, 0, &err) == 0;
    CHECK_MSG(ok, "%s before: %s", path, err.msg);
    ok = ok && interp_run(h, in, b, 0, &err) == 0;
    CHECK_MSG(ok || !a[0], "%s after: %s", path, err.msg);
    if (ok) {
        CHECK(g->nout == h->nout);
        for (int o = 0; o < g->nout && o < h->nout; o++)
            if (a[o]->f) CHECK_REL(b[o]->f, a[o]->f, (size_t)tensor_numel(a[o]), 1e-5);
    }
    fprintf(stderr, "  %s (%s)\n", path, passes);
    for (int o = 0; o < 8; o++) tensor_free(a[o]), tensor_free(b[o]);
    for (int i = 0; i < nin; i++) tensor_free(in[i]);
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

int main(void)
{
    RUN(test_all_pass_files);
    return test_finish();
}
