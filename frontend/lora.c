/* lora.c — see lora.h.
 *
 * lora_open splits every key into (module key, part) by its suffix, sorts
 * the parts by module and checks each module; lora_resolve builds, from the
 * model's parameter names, every spelling a LoRA trainer may have used for
 * each weight ("d:" dotted, "k:" underscored, diffusers and LDM names) and
 * looks each module up in that sorted table. */
#include "lora.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"

typedef enum LoraPart { LP_DOWN, LP_UP, LP_ALPHA } LoraPart;

static const struct {
    const char *suffix;
    LoraPart part;
} suffixes[] = {
    {".lora_down.weight", LP_DOWN}, {".lora_up.weight", LP_UP}, /* kohya */
    {".lora_A.weight", LP_DOWN},    {".lora_B.weight", LP_UP},  /* PEFT */
    {".lora.down.weight", LP_DOWN}, {".lora.up.weight", LP_UP}, /* older diffusers */
    {".alpha", LP_ALPHA},
};

static const struct {
    const char *prefix, *comp;
    int kohya;
} prefixes[] = {
    {"lora_unet_", "unet", 1},         {"lora_te1_", "text_encoder", 1}, {"lora_te2_", "text_encoder_2", 1},
    {"lora_te_", "text_encoder", 1},   {"unet.", "unet", 0},             {"text_encoder.", "text_encoder", 0},
    {"text_encoder_2.", "text_encoder_2", 0},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* key -> module key and part; -1 if the key fits no format.  The
 * attention-processor form "X.processor.to_q_lora.down.weight" becomes
 * module "X.to_q" ("to_out" is "to_out.0" in the model). */
static int split_key(const char *key, char *module, size_t len, LoraPart *part)
{
    const char *proc = strstr(key, ".processor.");
    if (proc) {
        const char *proj = proc + strlen(".processor."), *u = strstr(proj, "_lora.");
        if (!u) return -1;
        if (strcmp(u, "_lora.down.weight") == 0) *part = LP_DOWN;
        else if (strcmp(u, "_lora.up.weight") == 0) *part = LP_UP;
        else return -1;
        int plen = (int)(u - proj);
        int n = plen == 6 && strncmp(proj, "to_out", 6) == 0
                    ? snprintf(module, len, "%.*s.to_out.0", (int)(proc - key), key)
                    : snprintf(module, len, "%.*s.%.*s", (int)(proc - key), key, plen, proj);
        return n < (int)len ? 0 : -1;
    }
    for (size_t i = 0; i < NELEM(suffixes); i++)
        if (ends_with(key, suffixes[i].suffix)) {
            size_t n = strlen(key) - strlen(suffixes[i].suffix);
            if (n == 0 || n >= len) return -1;
            memcpy(module, key, n);
            module[n] = 0;
            *part = suffixes[i].part;
            return 0;
        }
    return -1;
}

typedef struct Entry {
    char *module;
    LoraPart part;
    const StTensor *t;
} Entry;

static int entry_cmp(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    int c = strcmp(x->module, y->module);
    return c ? c : (int)x->part - (int)y->part;
}

/* Appends "N what (a, b, c, and K more)" for a list of names. */
static void list_names(char *buf, size_t len, int count, char *const *names, const char *what)
{
    size_t at = strlen(buf);
    if (!count || at >= len) return;
    at += (size_t)snprintf(buf + at, len - at, "%s%d %s (", at ? "; " : "", count, what);
    for (int i = 0; i < count && i < LORA_REPORT && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", names[i]);
    if (count > LORA_REPORT && at < len) at += (size_t)snprintf(buf + at, len - at, ", and %d more", count - LORA_REPORT);
    if (at < len) snprintf(buf + at, len - at, ")");
}

static void note(char **list, int *count, const char *name)
{
    if (*count < LORA_REPORT) list[*count] = xstrdup(name);
    (*count)++;
}

static void free_notes(char **list, int count)
{
    for (int i = 0; i < count && i < LORA_REPORT; i++) free(list[i]);
}

/* Checks one module and fills its shape fields. */
static int module_check(const LoraFile *l, LoraModule *m, SdcErr *err)
{
    const char *p = l->path, *k = m->key;
    if (!m->down || !m->up)
        return sdc_err(err, "%s: %s: %s", p, k, m->down ? "has down but no up" : m->up ? "has up but no down" : "has only an alpha");
    const StTensor *d = m->down, *u = m->up;
    if (!dtype_is_float(d->dtype) || !dtype_is_float(u->dtype))
        return sdc_err(err, "%s: %s: down/up must be float tensors (have %s, %s)", p, k, d->dtype_str, u->dtype_str);
    if ((d->ndim != 2 && d->ndim != 4) || (u->ndim != 2 && u->ndim != 4))
        return sdc_err(err, "%s: %s: down and up must have 2 or 4 dims (have %d and %d)", p, k, d->ndim, u->ndim);
    m->rank = (int)d->shape[0];
    if (m->rank < 1 || u->shape[1] != d->shape[0])
        return sdc_err(err, "%s: %s: up has rank %lld, down %lld", p, k, (long long)u->shape[1], (long long)d->shape[0]);
    if (u->ndim == 4 && (u->shape[2] != 1 || u->shape[3] != 1))
        return sdc_err(err, "%s: %s: up must be a 1x1 conv (has a %lldx%lld kernel)", p, k, (long long)u->shape[2],
                       (long long)u->shape[3]);
    m->conv = d->ndim == 4;
    m->kh = m->conv ? (int)d->shape[2] : 1;
    m->kw = m->conv ? (int)d->shape[3] : 1;
    m->out = u->shape[0];
    m->fan = st_numel(d) / m->rank;
    m->alpha_val = m->rank;
    if (m->alpha) {
        float v;
        if (st_numel(m->alpha) != 1) return sdc_err(err, "%s: %s: alpha must hold one number", p, m->alpha->name);
        if (st_read_f32(&l->f, m->alpha, &v, err) < 0) return -1;
        if (!isfinite(v)) return sdc_err(err, "%s: %s: alpha is not finite", p, m->alpha->name);
        m->alpha_val = v;
    }
    m->scale = m->alpha_val / m->rank;
    return 0;
}

static void module_name(LoraModule *m)
{
    for (size_t i = 0; i < NELEM(prefixes); i++) {
        size_t n = strlen(prefixes[i].prefix);
        if (strncmp(m->key, prefixes[i].prefix, n) == 0 && m->key[n]) {
            m->comp = xstrdup(prefixes[i].comp);
            m->name = xstrdup(m->key + n);
            m->kohya = prefixes[i].kohya;
            return;
        }
    }
}

int lora_open(LoraFile *l, const char *path, SdcErr *err)
{
    memset(l, 0, sizeof *l);
    l->path = xstrdup(path);
    if (st_open(&l->f, path, err) < 0) return lora_close(l), -1;
    Entry *e = xcalloc((size_t)(l->f.n ? l->f.n : 1), sizeof(Entry));
    char *unknown[LORA_REPORT] = {0};
    int ne = 0, nunknown = 0, rc = 0;
    for (int i = 0; i < l->f.n; i++) {
        char module[1024];
        LoraPart part;
        if (split_key(l->f.tensors[i].name, module, sizeof module, &part) < 0) {
            note(unknown, &nunknown, l->f.tensors[i].name);
            continue;
        }
        e[ne++] = (Entry){xstrdup(module), part, &l->f.tensors[i]};
    }
    qsort(e, (size_t)ne, sizeof(Entry), entry_cmp);
    l->mod = xcalloc((size_t)(ne ? ne : 1), sizeof(LoraModule));
    for (int i = 0; i < ne; i++) {
        if (i == 0 || strcmp(e[i].module, e[i - 1].module) != 0) l->mod[l->n++].key = xstrdup(e[i].module);
        LoraModule *m = &l->mod[l->n - 1];
        const StTensor **slot = e[i].part == LP_DOWN ? &m->down : e[i].part == LP_UP ? &m->up : &m->alpha;
        if (*slot && rc == 0)
            rc = sdc_err(err, "%s: %s: two tensors for the same part (%s and %s)", path, m->key, (*slot)->name, e[i].t->name);
        *slot = e[i].t;
    }
    for (int i = 0; i < ne; i++) free(e[i].module);
    free(e);
    for (int i = 0; i < l->n && rc == 0; i++) {
        module_name(&l->mod[i]);
        if (!l->mod[i].comp) note(unknown, &nunknown, l->mod[i].key);
        else rc = module_check(l, &l->mod[i], err);
    }
    if (rc == 0 && nunknown) {
        char buf[700] = "";
        list_names(buf, sizeof buf, nunknown, unknown, "unknown keys");
        rc = sdc_err(err, "%s: %s; sdc reads LoRA/LoCon keys lora_unet_*/lora_te_* (.lora_down/.lora_up/.alpha) and "
                          "unet.*/text_encoder.* (.lora_A/.lora_B, .lora.down/.lora.up)", path, buf);
    }
    free_notes(unknown, nunknown);
    if (rc < 0) lora_close(l);
    return rc;
}

void lora_close(LoraFile *l)
{
    for (int i = 0; i < l->n; i++) free(l->mod[i].key), free(l->mod[i].comp), free(l->mod[i].name);
    free(l->mod);
    st_close(&l->f);
    free(l->path);
    memset(l, 0, sizeof *l);
}

int lora_spec_parse(const char *spec, char **file, double *mult, SdcErr *err)
{
    const char *colon = strrchr(spec, ':');
    *mult = 1.0;
    if (colon) {
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (colon[1] && !*end && !errno && isfinite(v)) {
            if (colon == spec) return sdc_err(err, "--lora %s: no file before the multiplier", spec);
            *file = xmalloc((size_t)(colon - spec) + 1);
            memcpy(*file, spec, (size_t)(colon - spec));
            (*file)[colon - spec] = 0;
            *mult = v;
            return 0;
        }
    }
    if (!*spec) return sdc_err(err, "--lora: empty file name");
    *file = xstrdup(spec);
    return 0;
}

int lora_check_components(const LoraFile *l, const char *const *comps, SdcErr *err)
{
    char *bad[LORA_REPORT] = {0};
    int nbad = 0;
    for (int i = 0; i < l->n; i++) {
        int ok = 0;
        for (int c = 0; comps[c] && !ok; c++) ok = strcmp(l->mod[i].comp, comps[c]) == 0;
        if (!ok) note(bad, &nbad, l->mod[i].key);
    }
    if (!nbad) return 0;
    char have[256] = "", buf[700] = "";
    for (int c = 0; comps[c]; c++) {
        size_t at = strlen(have);
        snprintf(have + at, sizeof have - at, "%s%s", c ? ", " : "", comps[c]);
    }
    list_names(buf, sizeof buf, nbad, bad, "modules for components LoRAs are not applied to here");
    free_notes(bad, nbad);
    return sdc_err(err, "%s: %s (components: %s)", l->path, buf, have);
}

/* ---- resolving modules to parameters ---------------------------------------- */

typedef struct Cand {
    char *key; /* "d:" + dotted module, or "k:" + underscored module */
    int param;
} Cand;

static int cand_cmp(const void *a, const void *b)
{
    const Cand *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->param - y->param;
}

static void cand_add(Cand **c, int *n, int *cap, const char *form, const char *module, int param)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *c = xrealloc(*c, sizeof(Cand) * (size_t)*cap);
    }
    size_t len = strlen(module) + 3;
    char *key = xmalloc(len);
    snprintf(key, len, "%s%s", form, module);
    if (form[0] == 'k')
        for (char *s = key + 2; *s; s++)
            if (*s == '.') *s = '_';
    (*c)[(*n)++] = (Cand){key, param};
}

/* The module path of a weight parameter ("x.y.weight" -> "x.y"), or NULL. */
static char *module_of(const char *param)
{
    if (!ends_with(param, ".weight")) return NULL;
    size_t n = strlen(param) - strlen(".weight");
    char *m = xmalloc(n + 1);
    memcpy(m, param, n);
    m[n] = 0;
    return m;
}

static Cand *build_candidates(const char *comp, int nparam, const LoraParam *params, int *ncand)
{
    Cand *c = NULL;
    int n = 0, cap = 0;
    LdmNames ldm;
    int have_ldm = 0;
    if (strcmp(comp, "unet") == 0) {
        const char **names = xmalloc(sizeof(char *) * (size_t)(nparam ? nparam : 1));
        for (int i = 0; i < nparam; i++) names[i] = params[i].name;
        LdmLayout lay;
        if (ldm_layout_from_names(&lay, "unet", nparam, names) == 0) ldm_names_init(&ldm, &lay), have_ldm = 1;
        free(names);
    }
    static const char ldm_prefix[] = "model.diffusion_model.";
    for (int i = 0; i < nparam; i++) {
        if (params[i].ndim != 2 && params[i].ndim != 4) continue;
        char *m = module_of(params[i].name);
        if (!m) continue;
        cand_add(&c, &n, &cap, "d:", m, i);
        cand_add(&c, &n, &cap, "k:", m, i);
        char ldm_name[512];
        if (have_ldm && ldm_names_get(&ldm, "unet", params[i].name, ldm_name, sizeof ldm_name, NULL) == 0 &&
            strncmp(ldm_name, ldm_prefix, strlen(ldm_prefix)) == 0) {
            char *lm = module_of(ldm_name + strlen(ldm_prefix));
            if (lm && strcmp(lm, m) != 0) cand_add(&c, &n, &cap, "k:", lm, i);
            free(lm);
        }
        free(m);
    }
    if (have_ldm) ldm_names_free(&ldm);
    qsort(c, (size_t)n, sizeof(Cand), cand_cmp);
    *ncand = n;
    return c;
}

static int fits(const LoraModule *m, const LoraParam *p)
{
    int64_t numel = 1;
    for (int d = 0; d < p->ndim; d++) numel *= p->shape[d];
    if (p->shape[0] != m->out || numel != m->out * m->fan) return 0;
    if (m->kh * m->kw > 1) return p->ndim == 4 && p->shape[2] == m->kh && p->shape[3] == m->kw;
    return 1;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && at < len; d++) at += (size_t)snprintf(buf + at, len - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

int lora_resolve(const LoraFile *l, const char *comp, int nparam, const LoraParam *params, int *target, SdcErr *err)
{
    int ncand = 0;
    Cand *cand = build_candidates(comp, nparam, params, &ncand);
    char *missing[LORA_REPORT] = {0}, *misfit[LORA_REPORT] = {0};
    int nmissing = 0, nmisfit = 0;
    for (int k = 0; k < l->n; k++) {
        const LoraModule *m = &l->mod[k];
        target[k] = -1;
        if (strcmp(m->comp, comp) != 0) continue;
        size_t len = strlen(m->name) + 3;
        char *key = xmalloc(len);
        snprintf(key, len, "%s%s", m->kohya ? "k:" : "d:", m->name);
        Cand probe = {key, -1}; /* param -1 sorts before any match of the same key */
        int lo = 0, hi = ncand;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cand_cmp(&cand[mid], &probe) < 0) lo = mid + 1;
            else hi = mid;
        }
        int found = lo < ncand && strcmp(cand[lo].key, key) == 0;
        free(key);
        if (!found) {
            note(missing, &nmissing, m->key);
            continue;
        }
        const LoraParam *p = &params[cand[lo].param];
        if (!fits(m, p)) {
            char buf[600], want[128];
            shape_str(want, sizeof want, p->ndim, p->shape);
            snprintf(buf, sizeof buf, "%s: delta [%lld, %lld] (kernel %dx%d) for %s %s", m->key, (long long)m->out,
                     (long long)m->fan, m->kh, m->kw, p->name, want);
            note(misfit, &nmisfit, buf);
            continue;
        }
        target[k] = cand[lo].param;
    }
    for (int i = 0; i < ncand; i++) free(cand[i].key);
    free(cand);
    if (!nmissing && !nmisfit) return 0;
    char buf[900] = "", what[96];
    snprintf(what, sizeof what, "modules match no %s weight", comp);
    list_names(buf, sizeof buf, nmissing, missing, what);
    list_names(buf, sizeof buf, nmisfit, misfit, "modules do not fit their weight");
    free_notes(missing, nmissing);
    free_notes(misfit, nmisfit);
    return sdc_err(err, "%s: %s", l->path, buf);
}

/* ---- deltas ------------------------------------------------------------------------ */

int lora_read_factors(const LoraFile *l, const LoraModule *m, float **down, float **up, SdcErr *err)
{
    *down = xmalloc(sizeof(float) * (size_t)(m->rank * m->fan));
    *up = xmalloc(sizeof(float) * (size_t)(m->out * m->rank));
    if (st_read_f32(&l->f, m->down, *down, err) < 0 || st_read_f32(&l->f, m->up, *up, err) < 0) {
        free(*down), free(*up);
        *down = *up = NULL;
        return -1;
    }
    return 0;
}

int lora_add_delta(const LoraFile *l, const LoraModule *m, double mult, float *w, SdcErr *err)
{
    float *down, *up;
    if (lora_read_factors(l, m, &down, &up, err) < 0) return -1;
    double s = mult * m->scale, *row = xmalloc(sizeof(double) * (size_t)m->fan);
    for (int64_t o = 0; o < m->out; o++) {
        memset(row, 0, sizeof(double) * (size_t)m->fan);
        for (int k = 0; k < m->rank; k++) {
            double u = up[o * m->rank + k];
            const float *d = down + (int64_t)k * m->fan;
            for (int64_t i = 0; i < m->fan; i++) row[i] += u * d[i];
        }
        float *wr = w + o * m->fan;
        for (int64_t i = 0; i < m->fan; i++) wr[i] = (float)((double)wr[i] + s * row[i]);
    }
    free(row), free(down), free(up);
    return 0;
}

int lora_kohya_key(const LoraModule *m, char *out, size_t len)
{
    const char *prefix = strcmp(m->comp, "unet") == 0             ? "lora_unet_"
                         : strcmp(m->comp, "text_encoder") == 0   ? "lora_te_"
                         : strcmp(m->comp, "text_encoder_2") == 0 ? "lora_te2_"
                                                                  : NULL;
    if (!prefix || snprintf(out, len, "%s%s", prefix, m->name) >= (int)len) return -1;
    for (char *s = out + strlen(prefix); *s; s++)
        if (*s == '.') *s = '_';
    return 0;
}
