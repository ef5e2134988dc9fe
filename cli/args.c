/* args.c — see args.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int parse_bytes(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            if (v > (UINT64_MAX >> units[i].shift)) return -1;
            *out = (uint64_t)v << units[i].shift;
            return 0;
        }
    return -1;
}

void args_print_help(const CmdSpec *cmd, FILE *out)
{
    fprintf(out, "usage: %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->nopts) fputs("\noptions:\n", out);
    for (int i = 0; i < cmd->nopts; i++) {
        const OptSpec *o = &cmd->opts[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->kind == ARG_BOOL ? "" : " ", o->kind == ARG_BOOL ? "" : o->meta);
        fprintf(out, "  %-28s %s\n", left, o->help);
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this help");
}

static int set_value(const OptSpec *o, const char *v, SdcErr *err)
{
    switch (o->kind) {
    case ARG_STR: *(const char **)o->dst = v; return 0;
    case ARG_STRS: {
        StrList *l = o->dst;
        if (l->n == ARGS_MAX_MULTI) return sdc_err(err, "%s: given more than %d times", o->name, ARGS_MAX_MULTI);
        l->v[l->n++] = v;
        return 0;
    }
    case ARG_INT: {
        long long x;
        if (parse_ll(v, &x) < 0) return sdc_err(err, "%s: \"%s\" is not an integer", o->name, v);
        if ((o->min != 0 || o->max != 0) && (x < o->min || x > o->max))
            return sdc_err(err, "%s: %lld is out of range [%.0f, %.0f]", o->name, x, o->min, o->max);
        *(long long *)o->dst = x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x;
        if (parse_double(v, &x) < 0) return sdc_err(err, "%s: \"%s\" is not a number", o->name, v);
        if ((o->min != 0 || o->max != 0) && (x < o->min || x > o->max))
            return sdc_err(err, "%s: %g is out of range [%g, %g]", o->name, x, o->min, o->max);
        *(double *)o->dst = x;
        return 0;
    }
    case ARG_BOOL: *(int *)o->dst = 1; return 0;
    }
    return -1;
}

int args_parse(const CmdSpec *cmd, int argc, char **argv, const char **pos, int *npos, SdcErr *err)
{
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            args_print_help(cmd, stdout);
            return 1;
        }
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*npos >= cmd->max_pos)
                return sdc_err(err, "sdc %s: unexpected argument \"%s\" (see sdc %s --help)", cmd->name, a, cmd->name);
            pos[(*npos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const OptSpec *o = NULL;
        for (int k = 0; k < cmd->nopts && !o; k++)
            if (strlen(cmd->opts[k].name) == len && strncmp(cmd->opts[k].name, a, len) == 0) o = &cmd->opts[k];
        if (!o) return sdc_err(err, "sdc %s: unknown option %.*s (see sdc %s --help)", cmd->name, (int)len, a, cmd->name);
        const char *v = NULL;
        if (o->kind == ARG_BOOL) {
            if (eq) return sdc_err(err, "%s takes no value", o->name);
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return sdc_err(err, "%s needs a value (%s)", o->name, o->meta);
            v = argv[++i];
        }
        if (set_value(o, v, err) < 0) return -1;
    }
    if (*npos < cmd->min_pos)
        return sdc_err(err, "sdc %s: missing argument (usage: %s)", cmd->name, cmd->usage);
    return 0;
}
