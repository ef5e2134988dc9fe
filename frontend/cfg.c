/* cfg.c — see cfg.h. */
#include "cfg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

int cfg_parse(Cfg *c, const char *text, const char *shown, SdcErr *err)
{
    memset(c, 0, sizeof *c);
    c->file = xstrdup(shown);
    c->err = err;
    const char *end = NULL;
    c->root = cJSON_ParseWithOpts(text, &end, 1);
    if (!c->root) {
        /* find the line of the syntax error */
        int line = 1;
        for (const char *p = text; end && p < end && *p; p++) line += *p == '\n';
        c->failed = 1;
        return sdc_err(err, "%s: line %d: invalid JSON", shown, line);
    }
    if (!cJSON_IsObject(c->root)) {
        c->failed = 1;
        return sdc_err(err, "%s: expected a JSON object at the top level", shown);
    }
    return 0;
}

int cfg_load(Cfg *c, const char *path, const char *shown, SdcErr *err)
{
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) {
        memset(c, 0, sizeof *c);
        c->file = xstrdup(shown);
        c->failed = 1;
        return -1;
    }
    if (memchr(text, 0, len)) {
        free(text);
        memset(c, 0, sizeof *c);
        c->file = xstrdup(shown);
        c->failed = 1;
        return sdc_err(err, "%s: not a text file", shown);
    }
    int rc = cfg_parse(c, text, shown, err);
    free(text);
    return rc;
}

void cfg_free(Cfg *c)
{
    cJSON_Delete(c->root);
    free(c->file);
    memset(c, 0, sizeof *c);
}

int cfg_fail(Cfg *c, const char *key, const char *fmt, ...)
{
    if (c->failed) return -1;
    c->failed = 1;
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sdc_err(c->err, "%s: %s: %s", c->file, key, what);
}

static cJSON *field(const Cfg *c, const char *key)
{
    if (!c->root) return NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int cfg_has(const Cfg *c, const char *key) { return field(c, key) != NULL; }

static const char *json_type(const cJSON *v)
{
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

/* A JSON number that is a whole number, in range. */
static int as_int(Cfg *c, const char *key, const cJSON *v, long long lo, long long hi, long long *out)
{
    if (!cJSON_IsNumber(v)) return cfg_fail(c, key, "expected an integer, found %s", json_type(v));
    double d = v->valuedouble;
    if (d != floor(d) || fabs(d) > 9e15) return cfg_fail(c, key, "expected an integer, found %g", d);
    if (d < (double)lo || d > (double)hi)
        return cfg_fail(c, key, "%lld is out of range [%lld, %lld]", (long long)d, lo, hi);
    *out = (long long)d;
    return 0;
}

long long cfg_int(Cfg *c, const char *key, long long dflt, long long lo, long long hi)
{
    cJSON *v = field(c, key);
    long long out = dflt;
    if (!v || c->failed) return dflt;
    return as_int(c, key, v, lo, hi, &out) < 0 ? dflt : out;
}

double cfg_num(Cfg *c, const char *key, double dflt, double lo, double hi)
{
    cJSON *v = field(c, key);
    if (!v || c->failed) return dflt;
    if (!cJSON_IsNumber(v)) return cfg_fail(c, key, "expected a number, found %s", json_type(v)), dflt;
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return cfg_fail(c, key, "%g is out of range [%g, %g]", v->valuedouble, lo, hi), dflt;
    return v->valuedouble;
}

int cfg_bool(Cfg *c, const char *key, int dflt)
{
    cJSON *v = field(c, key);
    if (!v || c->failed) return dflt;
    if (!cJSON_IsBool(v)) return cfg_fail(c, key, "expected true or false, found %s", json_type(v)), dflt;
    return cJSON_IsTrue(v);
}

const char *cfg_str(Cfg *c, const char *key, const char *dflt)
{
    cJSON *v = field(c, key);
    if (!v || c->failed) return dflt;
    if (!cJSON_IsString(v)) return cfg_fail(c, key, "expected a string, found %s", json_type(v)), dflt;
    return v->valuestring;
}

int cfg_enum(Cfg *c, const char *key, const char *dflt, const char *const *allowed)
{
    const char *s = cfg_str(c, key, dflt);
    for (int i = 0; allowed[i]; i++)
        if (s && strcmp(s, allowed[i]) == 0) return i;
    if (c->failed) return 0;
    char list[512] = "";
    for (int i = 0; allowed[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, allowed[i], sizeof list - strlen(list) - 1);
    }
    cfg_fail(c, key, "unsupported value \"%s\" (sdc supports: %s)", s ? s : "null", list);
    return 0;
}

int cfg_int_list(Cfg *c, const char *key, int *out, int n, int max, long long dflt, long long lo, long long hi)
{
    cJSON *v = field(c, key);
    if (c->failed) return 0;
    if (!v || cJSON_IsNumber(v)) {
        long long x = dflt;
        if (v && as_int(c, key, v, lo, hi, &x) < 0) return 0;
        int count = n < 0 ? 1 : n;
        for (int i = 0; i < count && i < max; i++) out[i] = (int)x;
        return count;
    }
    if (!cJSON_IsArray(v)) return cfg_fail(c, key, "expected an integer or a list of integers, found %s", json_type(v)), 0;
    int count = cJSON_GetArraySize(v);
    if (n >= 0 && count != n) return cfg_fail(c, key, "expected %d entries, found %d", n, count), 0;
    if (count > max || count < 1) return cfg_fail(c, key, "expected 1 to %d entries, found %d", max, count), 0;
    int i = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        char k[160];
        long long x;
        snprintf(k, sizeof k, "%s[%d]", key, i);
        if (as_int(c, k, e, lo, hi, &x) < 0) return 0;
        out[i++] = (int)x;
    }
    return count;
}

int cfg_str_list(Cfg *c, const char *key, const char **out, int max)
{
    cJSON *v = field(c, key);
    if (c->failed) return 0;
    if (!v) return cfg_fail(c, key, "missing (a list of strings is required)"), 0;
    if (!cJSON_IsArray(v)) return cfg_fail(c, key, "expected a list of strings, found %s", json_type(v)), 0;
    int count = cJSON_GetArraySize(v), i = 0;
    if (count < 1 || count > max) return cfg_fail(c, key, "expected 1 to %d entries, found %d", max, count), 0;
    cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        char k[160];
        snprintf(k, sizeof k, "%s[%d]", key, i);
        if (!cJSON_IsString(e)) return cfg_fail(c, k, "expected a string, found %s", json_type(e)), 0;
        out[i++] = e->valuestring;
    }
    return count;
}

void cfg_only(Cfg *c, const char *key, const char *allowed)
{
    cJSON *v = field(c, key);
    if (!v || c->failed) return;
    cJSON *want = cJSON_Parse(allowed);
    int ok = want && cJSON_Compare(v, want, 1);
    /* numbers compare by value: 1 and 1.0 are the same */
    if (!ok && want && cJSON_IsNumber(v) && cJSON_IsNumber(want)) ok = v->valuedouble == want->valuedouble;
    cJSON_Delete(want);
    if (!ok) {
        char *s = cJSON_PrintUnformatted(v);
        cfg_fail(c, key, "value %s is not supported by sdc (only %s)", s ? s : "?", allowed);
        free(s);
    }
}
