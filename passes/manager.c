/* manager.c — runs a pipeline of passes by name. */
#include "pass.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void pass_count(PassCounters *c, const char *name, int64_t v)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0) {
            c->value[i] += v;
            return;
        }
    SDC_ASSERT(c->n < PASS_MAX_COUNTERS);
    c->name[c->n] = name;
    c->value[c->n++] = v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Is `name` an element of the comma-separated `list`? */
static int in_list(const char *list, const char *name)
{
    if (!list) return 0;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

int pass_check_list(const char *list, const char *what, SdcErr *err)
{
    if (!list) return 0;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char name[128];
        if (n == 0 || n >= sizeof name) return sdc_err(err, "%s: empty or overlong pass name in \"%s\"", what, list);
        memcpy(name, p, n);
        name[n] = 0;
        if (!pass_find(name)) return sdc_err(err, "%s: unknown pass \"%s\" (sdc passes lists them)", what, name);
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

static void print_ir(const Graph *g, const PassOptions *opt, const char *after)
{
    FILE *out = opt->ir_out ? opt->ir_out : stdout;
    fprintf(out, "# IR after %s\n", after);
    ir_print(g, out);
}

int pass_run_pipeline(Graph *g, const PassOptions *opt, SdcErr *err)
{
    const char *pipeline = opt->pipeline ? opt->pipeline : pass_default_pipeline();
    FILE *report = opt->report ? opt->report : stderr;
    if (pass_check_list(pipeline, "--passes", err) || pass_check_list(opt->disabled, "--disable-pass", err)) return -1;
    if (opt->print_after && strcmp(opt->print_after, "all") != 0 &&
        pass_check_list(opt->print_after, "--print-ir-after", err))
        return -1;
    char *list = xstrdup(pipeline);
    int rc = 0;
    double total = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name && rc == 0; name = strtok_r(NULL, ",", &save)) {
        if (in_list(opt->disabled, name)) continue;
        const Pass *p = pass_find(name);
        PassCounters c = {0};
        double t0 = now();
        rc = p->run(g, opt, &c, err);
        double dt = now() - t0;
        total += dt;
        if (rc < 0) {
            sdc_err_prefix(err, "pass %s", name);
            break;
        }
        if (opt->verify && ir_verify(g, err) < 0) {
            sdc_err_prefix(err, "verifier failed after pass %s", name);
            rc = -1;
            break;
        }
        if (opt->timing) {
            fprintf(report, "pass %-24s %8.3f ms  %5d nodes", name, dt * 1e3, g->n);
            for (int i = 0; i < c.n; i++) fprintf(report, "  %s=%lld", c.name[i], (long long)c.value[i]);
            fputc('\n', report);
        }
        if (opt->print_after && (strcmp(opt->print_after, "all") == 0 || in_list(opt->print_after, name)))
            print_ir(g, opt, name);
    }
    if (opt->timing && rc == 0) fprintf(report, "pass %-24s %8.3f ms\n", "(total)", total * 1e3);
    free(list);
    return rc;
}
