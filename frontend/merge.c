/* merge.c — `sdc merge` for models: SD + SD and SD + LoRA (see merge.h).
 *
 * Steps:
 *  1. open the models (all diffusers folders, or all single files) and list
 *     the parts: per folder the components that hold weights (unet, vae,
 *     text_encoder, text_encoder_2), or the one file;
 *  2. check that B and C hold the tensors A holds (names, shapes; dtypes may
 *     differ between float types, which are all computed in float32) and
 *     report every difference in one message;
 *  3. resolve the LoRAs against the graphs sdc imports for the UNet and the
 *     text encoder: their constants carry both the diffusers parameter name
 *     (which LoRA keys are spelled from) and the file and offset of the bytes
 *     (which the merge reads), whatever the model's form;
 *  4. stream: per tensor read A (B, C) as float32, combine, add the LoRA
 *     deltas, convert (merge_compute), and write (merge_out.c: a folder
 *     with A's other files, or one file). */
#include "merge_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

#define REPORT 4

static const char *const part_subs[NPART] = {"unet", "vae", "text_encoder", "text_encoder_2"};
static const char *const input_label[NIN] = {"A", "B", "C"};

/* ---- 1: inputs ------------------------------------------------------------- */

static int open_inputs(Merge *mg, SdcErr *err)
{
    for (int i = 0; i < mg->nin; i++) {
        if (!path_exists(mg->arg[i])) return sdc_err(err, "%s: no such model (a diffusers folder or a .safetensors file)", mg->arg[i]);
        if (model_open(&mg->m[i], mg->arg[i], NULL, err) < 0) return -1;
        mg->opened[i] = 1;
        if (mg->m[i].single_file != mg->m[0].single_file)
            return sdc_err(err, "%s is a %s but %s a %s: merge models of the same form", mg->arg[0],
                           mg->m[0].single_file ? "single file" : "diffusers folder", mg->arg[i],
                           mg->m[i].single_file ? "single file" : "diffusers folder");
    }
    mg->single_in = mg->m[0].single_file;
    if (mg->single_in) {
        Part *p = &mg->part[mg->nparts++];
        for (int i = 0; i < mg->nin; i++) p->nfiles[i] = 1, p->files[i][0] = &mg->m[i].ldm.file;
        return 0;
    }
    for (int s = 0; s < NPART; s++) {
        /* a component folder is merged or refused (e.g. .bin weights), never copied unmerged */
        char *dir = path_join(mg->m[0].root, part_subs[s]);
        int present = path_is_dir(dir);
        free(dir);
        if (!present) continue;
        Part *p = &mg->part[mg->nparts++];
        p->sub = part_subs[s];
        for (int i = 0; i < mg->nin; i++) {
            if (model_weights(&mg->m[i], p->sub, &p->ws[i], err) < 0)
                return sdc_err_prefix(err, "%s (%s)", mg->arg[i], input_label[i]);
            p->nfiles[i] = p->ws[i].nfiles;
            for (int f = 0; f < p->ws[i].nfiles; f++) p->files[i][f] = &p->ws[i].files[f];
        }
    }
    if (mg->nparts == 0) return sdc_err(err, "%s: no component weights found (unet/, vae/, text_encoder/)", mg->arg[0]);
    return 0;
}

static const StTensor *part_find(const Part *p, int in, const char *name, const StFile **file)
{
    for (int f = 0; f < p->nfiles[in]; f++) {
        const StTensor *t = st_find(p->files[in][f], name);
        if (t) {
            if (file) *file = p->files[in][f];
            return t;
        }
    }
    return NULL;
}

/* ---- 2: compatibility --------------------------------------------------------- */

typedef struct Diffs {
    int n[4]; /* only in A, only in X, shape, dtype */
    char *first[4][REPORT];
} Diffs;

static void diff_note(Diffs *d, int kind, const Part *p, const char *fmt, const char *a, const char *b, const char *c)
{
    if (d->n[kind]++ >= REPORT) return;
    char buf[700], what[600];
    snprintf(what, sizeof what, fmt, a, b, c);
    snprintf(buf, sizeof buf, "%s%s%s", p->sub ? p->sub : "", p->sub ? "/" : "", what);
    d->first[kind][d->n[kind] - 1] = xstrdup(buf);
}

static void shape_str(char *buf, size_t len, const StTensor *t)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && at < len; d++) at += (size_t)snprintf(buf + at, len - at, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

static int check_pair(Merge *mg, int x, SdcErr *err)
{
    Diffs d = {0};
    for (int pi = 0; pi < mg->nparts; pi++) {
        const Part *p = &mg->part[pi];
        for (int f = 0; f < p->nfiles[0]; f++)
            for (int k = 0; k < p->files[0][f]->n; k++) {
                const StTensor *ta = &p->files[0][f]->tensors[k], *tx = part_find(p, x, ta->name, NULL);
                char sa[128], sx[128];
                if (!tx) {
                    diff_note(&d, 0, p, "%s", ta->name, "", "");
                } else if (ta->ndim != tx->ndim || memcmp(ta->shape, tx->shape, sizeof(int64_t) * (size_t)ta->ndim)) {
                    shape_str(sa, sizeof sa, ta), shape_str(sx, sizeof sx, tx);
                    diff_note(&d, 2, p, "%s %s vs %s", ta->name, sa, sx);
                } else if (ta->dtype != tx->dtype && !(dtype_is_float(ta->dtype) && dtype_is_float(tx->dtype))) {
                    diff_note(&d, 3, p, "%s %s vs %s", ta->name, ta->dtype_str, tx->dtype_str);
                }
            }
        for (int f = 0; f < p->nfiles[x]; f++)
            for (int k = 0; k < p->files[x][f]->n; k++)
                if (!part_find(p, 0, p->files[x][f]->tensors[k].name, NULL))
                    diff_note(&d, 1, p, "%s", p->files[x][f]->tensors[k].name, "", "");
    }
    char what[4][64];
    snprintf(what[0], sizeof what[0], "tensors only in A");
    snprintf(what[1], sizeof what[1], "tensors only in %s", input_label[x]);
    snprintf(what[2], sizeof what[2], "shapes differ");
    snprintf(what[3], sizeof what[3], "dtypes differ");
    char buf[900] = "";
    for (int kind = 0; kind < 4; kind++) {
        if (!d.n[kind]) continue;
        size_t at = strlen(buf);
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%d %s (", at ? "; " : "", d.n[kind], what[kind]);
        for (int i = 0; i < d.n[kind] && i < REPORT && at < sizeof buf; i++)
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? ", " : "", d.first[kind][i]);
        if (d.n[kind] > REPORT && at < sizeof buf) at += (size_t)snprintf(buf + at, sizeof buf - at, ", and %d more", d.n[kind] - REPORT);
        if (at < sizeof buf) snprintf(buf + at, sizeof buf - at, ")");
        for (int i = 0; i < d.n[kind] && i < REPORT; i++) free(d.first[kind][i]);
    }
    if (!buf[0]) return 0;
    return sdc_err(err, "%s (A) and %s (%s) cannot be merged: %s", mg->arg[0], mg->arg[x], input_label[x], buf);
}

/* ---- block weights ---------------------------------------------------------------- */

const Part *merge_find_part(const Merge *mg, const char *sub)
{
    for (int i = 0; i < mg->nparts; i++)
        if (mg->part[i].sub && strcmp(mg->part[i].sub, sub) == 0) return &mg->part[i];
    return NULL;
}

/* The names of every tensor of A's part (pointers into the files). */
static const char **part_names(const Part *p, int *n)
{
    int total = 0;
    for (int f = 0; f < p->nfiles[0]; f++) total += p->files[0][f]->n;
    const char **names = xmalloc(sizeof(char *) * (size_t)(total ? total : 1));
    *n = 0;
    for (int f = 0; f < p->nfiles[0]; f++)
        for (int k = 0; k < p->files[0][f]->n; k++) names[(*n)++] = p->files[0][f]->tensors[k].name;
    return names;
}

/* Builds A's single-file names from its UNet's and VAE's parameter names. */
static void build_names(Merge *mg)
{
    LdmLayout lay = {0}, v = {0};
    const Part *u = merge_find_part(mg, "unet"), *va = merge_find_part(mg, "vae");
    int n;
    if (u) {
        const char **names = part_names(u, &n);
        if (ldm_layout_from_names(&lay, "unet", n, names) < 0) lay.unet_levels = 0;
        free(names);
    }
    if (va) {
        const char **names = part_names(va, &n);
        if (ldm_layout_from_names(&v, "vae", n, names) == 0) lay.vae_levels = v.vae_levels, lay.vae_layers = v.vae_layers;
        free(names);
    }
    ldm_names_init(&mg->names, &lay);
    mg->have_names = 1;
}

/* The merge ratio (or, for LoRAs without B, the strength factor) of a tensor. */
static int tensor_weight(const Merge *mg, const Part *p, const char *name, double *w, SdcErr *err)
{
    const MergeOptions *o = mg->o;
    if (!o->use_mbw) {
        *w = mg->nin > 1 ? o->alpha : 1.0;
        return 0;
    }
    const char *ldm = NULL;
    char buf[512];
    if (mg->single_in) {
        if (strncmp(name, "model.diffusion_model.", 22) == 0) ldm = name;
    } else if (strcmp(p->sub, "unet") == 0) {
        if (ldm_names_get(&mg->names, "unet", name, buf, sizeof buf, NULL) < 0)
            return sdc_err(err, "unet/%s: no single-file name, so no MBW block (MBW needs an SD-style UNet)", name);
        ldm = buf;
    }
    if (!ldm) {
        *w = o->base_alpha;
        return 0;
    }
    int b = mbw_block_of(ldm);
    if (b < 0)
        return sdc_err(err, "%s: in none of the 25 MBW blocks (MBW needs a UNet with at most 12 input and 12 output blocks)",
                       ldm);
    *w = o->mbw[b];
    return 0;
}

/* ---- 3: LoRAs ------------------------------------------------------------------------ */

static int resolve_component(Merge *mg, Component comp, const char *sub, SdcErr *err)
{
    int any = 0;
    for (int l = 0; l < mg->nlora && !any; l++)
        for (int k = 0; k < mg->lora[l].n && !any; k++) any = strcmp(mg->lora[l].mod[k].comp, sub) == 0;
    if (!any) return 0;
    ModelInfo info;
    SdcErr ignore;
    int seq = model_info(&mg->m[0], &info, &ignore) == 0 ? info.max_positions : 77;
    ImportShape shape = {.batch = 1, .height = 64, .width = 64, .seq_len = seq};
    Graph *g = model_import(&mg->m[0], comp, &shape, err);
    if (!g) return sdc_err_prefix(err, "%s: LoRAs for the %s", mg->arg[0], sub);
    int np = 0;
    LoraParam *params = xmalloc(sizeof(LoraParam) * (size_t)g->n);
    int *node = xmalloc(sizeof(int) * (size_t)g->n);
    for (int i = 0; i < g->n; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_CONST || n->ckind != CONST_FILE) continue;
        node[np] = i;
        params[np++] = (LoraParam){n->name, n->ndim, n->shape};
    }
    int rc = 0;
    for (int l = 0; l < mg->nlora && rc == 0; l++) {
        int *target = xmalloc(sizeof(int) * (size_t)(mg->lora[l].n ? mg->lora[l].n : 1));
        rc = lora_resolve(&mg->lora[l], sub, np, params, target, err);
        for (int k = 0; k < mg->lora[l].n && rc == 0; k++) {
            if (target[k] < 0) continue;
            const Node *n = &g->nodes[node[target[k]]];
            mg->targets = xrealloc(mg->targets, sizeof(Target) * (size_t)(mg->ntargets + 1));
            mg->targets[mg->ntargets++] = (Target){xstrdup(n->cfile), n->coffset, l, k};
        }
        free(target);
    }
    free(params), free(node);
    graph_free(g);
    return rc;
}

static int open_loras(Merge *mg, SdcErr *err)
{
    const MergeOptions *o = mg->o;
    static const char *const comps[] = {"unet", "text_encoder", NULL};
    mg->lora = xcalloc((size_t)(o->nloras ? o->nloras : 1), sizeof(LoraFile));
    for (int l = 0; l < o->nloras; l++) {
        if (lora_open(&mg->lora[l], o->lora_files[l], err) < 0) return -1;
        mg->nlora++;
        if (lora_check_components(&mg->lora[l], comps, err) < 0) return -1;
    }
    if (resolve_component(mg, COMP_UNET, "unet", err) < 0) return -1;
    return resolve_component(mg, COMP_TEXT_ENCODER, "text_encoder", err);
}

/* ---- 4: computing ------------------------------------------------------------------------ */

int merge_compute(Merge *mg, const Item *it, void **bytes, SdcErr *err)
{
    const StTensor *ta = it->ta;
    if (!merge_is_float(ta->dtype)) { /* integer or foreign tensors: A's bytes */
        *bytes = xmalloc(ta->nbytes ? ta->nbytes : 1);
        memcpy(*bytes, st_data(it->fa, ta), ta->nbytes);
        return 0;
    }
    int64_t n = st_numel(ta);
    float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1)), *y = NULL, *z = NULL;
    double w = 1;
    int rc = st_read_f32(it->fa, ta, x, err);
    if (rc == 0 && (mg->nin > 1 || mg->o->use_mbw)) rc = tensor_weight(mg, it->p, ta->name, &w, err);
    if (rc == 0 && mg->nin > 1) {
        const StFile *fb = NULL, *fc = NULL;
        const StTensor *tb = part_find(it->p, 1, ta->name, &fb);
        y = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
        rc = st_read_f32(fb, tb, y, err);
        if (rc == 0 && mg->nin == 3) {
            const StTensor *tc = part_find(it->p, 2, ta->name, &fc);
            z = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
            rc = st_read_f32(fc, tc, z, err);
            for (int64_t i = 0; i < n && rc == 0; i++) x[i] = (float)((double)x[i] + w * ((double)y[i] - (double)z[i]));
        } else {
            for (int64_t i = 0; i < n && rc == 0; i++) x[i] = (float)((1.0 - w) * (double)x[i] + w * (double)y[i]);
        }
    }
    /* LoRAs after the merge; block weights scale them only when there is no B */
    double lw = mg->nin == 1 ? w : 1.0;
    int touched = 0;
    for (int t = 0; t < mg->ntargets && rc == 0; t++) {
        const Target *tg = &mg->targets[t];
        if (tg->offset != ta->offset || strcmp(tg->file, it->fa->path) != 0) continue;
        const LoraFile *lf = &mg->lora[tg->lora];
        rc = lora_add_delta(lf, &lf->mod[tg->module], mg->o->lora_mults[tg->lora] * lw, x, err);
        touched = 1;
    }
    mg->changed_by_lora += touched;
    if (rc == 0) {
        *bytes = xmalloc(dtype_size(it->desc.dtype) * (size_t)(n ? n : 1));
        dtype_from_f32(it->desc.dtype, x, *bytes, (size_t)n);
    }
    free(x), free(y), free(z);
    return rc;
}

/* ---- driver ---------------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The absolute form of a path that may not exist yet (its folder must). */
static char *absolute(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real)) return xstrdup(real);
    char *copy = xstrdup(path), *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : copy) : ".", *base = slash ? slash + 1 : copy;
    if (slash) *slash = 0;
    char *res = realpath(dir, real) ? path_join(real, base) : xstrdup(path);
    free(copy);
    return res;
}

static int inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strcmp(path, dir) == 0 || (strncmp(path, dir, n) == 0 && path[n] == '/');
}

static int check_output(Merge *mg, SdcErr *err)
{
    const char *out = mg->o->out;
    char *abs = absolute(out);
    int rc = 0;
    for (int i = 0; i < mg->nin && rc == 0; i++)
        if (inside(abs, mg->m[i].root) || inside(mg->m[i].root, abs))
            rc = sdc_err(err, "-o %s: would write over or inside the input %s (merges never touch their inputs)", out, mg->arg[i]);
    for (int l = 0; l < mg->o->nloras && rc == 0; l++) {
        char *la = absolute(mg->o->lora_files[l]);
        if (strcmp(la, abs) == 0) rc = sdc_err(err, "-o %s: is the input LoRA %s", out, mg->o->lora_files[l]);
        free(la);
    }
    free(abs);
    if (rc == 0 && path_exists(out) && !mg->o->force)
        rc = sdc_err(err, "-o %s: exists (use --force to replace it)", out);
    if (rc == 0 && path_exists(out) && mg->o->force) {
        /* --force replaces what a merge writes, nothing else */
        char *idx = path_join(out, "model_index.json"), *unet = path_join(out, "unet");
        if (path_is_dir(out) ? !path_exists(idx) && !path_is_dir(unet) : !ends_with(out, ".safetensors"))
            rc = sdc_err(err, "-o %s: exists and is not a model (--force replaces model folders and .safetensors files only)",
                         out);
        free(idx), free(unet);
    }
    if (rc == 0 && mg->single_out && path_is_dir(out))
        rc = sdc_err(err, "-o %s: is a folder; a single-file output must not exist or be a file", out);
    if (rc == 0 && !mg->single_out && mg->single_in)
        rc = sdc_err(err, "-o %s: a single-file model merges into a single file: give an output ending in .safetensors", out);
    return rc;
}

static void describe(Merge *mg)
{
    const MergeOptions *o = mg->o;
    size_t at = 0, len = sizeof mg->recipe;
    char ratio[64];
    if (o->use_mbw) snprintf(ratio, sizeof ratio, "mbw(base %g)", o->base_alpha);
    else snprintf(ratio, sizeof ratio, "%g", o->alpha);
    if (mg->nin == 3) at += (size_t)snprintf(mg->recipe, len, "%s + %s * (%s - %s)", o->a, ratio, o->b, o->c);
    else if (mg->nin == 2) at += (size_t)snprintf(mg->recipe, len, "(1 - %s) * %s + %s * %s", ratio, o->a, ratio, o->b);
    else at += (size_t)snprintf(mg->recipe, len, "%s", o->a);
    for (int l = 0; l < o->nloras && at < len; l++)
        at += (size_t)snprintf(mg->recipe + at, len - at, " + lora %s:%g%s", o->lora_files[l], o->lora_mults[l],
                               o->use_mbw && mg->nin == 1 ? " (mbw)" : "");
}

int sdc_merge(const MergeOptions *o, SdcErr *err)
{
    Merge mg = {.o = o};
    mg.arg[0] = o->a, mg.arg[1] = o->b, mg.arg[2] = o->c;
    mg.nin = o->c ? 3 : o->b ? 2 : 1;
    mg.single_out = ends_with(o->out, ".safetensors");
    if (o->c && !o->b) return sdc_err(err, "--minus needs --with (add-difference is A + alpha * (B - C))");
    if (mg.nin == 1 && o->nloras == 0) return sdc_err(err, "nothing to merge: give --with MODEL or --lora FILE");
    int rc = open_inputs(&mg, err);
    if (rc == 0) rc = check_output(&mg, err);
    for (int i = 1; i < mg.nin && rc == 0; i++) rc = check_pair(&mg, i, err);
    if (rc == 0 && !mg.single_in) build_names(&mg);
    if (rc == 0 && o->nloras) rc = open_loras(&mg, err);
    describe(&mg);
    if (rc == 0) {
        if (mg.single_out) {
            rc = merge_write_single(&mg, err);
        } else {
            size_t len = strlen(o->out) + 32;
            char *tmp = xmalloc(len);
            snprintf(tmp, len, "%s.tmp.%ld", o->out, (long)getpid());
            merge_remove_tree(tmp);
            rc = merge_write_folder(&mg, tmp, err);
            if (rc == 0) rc = merge_commit(tmp, o->out, err);
            if (rc < 0) merge_remove_tree(tmp);
            free(tmp);
        }
    }
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "sdc merge: wrote %s (%lld tensors, %lld changed by LoRAs)\n", o->out, (long long)mg.written,
                (long long)mg.changed_by_lora);
    for (int l = 0; l < mg.nlora; l++) lora_close(&mg.lora[l]);
    free(mg.lora);
    for (int t = 0; t < mg.ntargets; t++) free(mg.targets[t].file);
    free(mg.targets);
    if (mg.have_names) ldm_names_free(&mg.names);
    for (int p = 0; p < mg.nparts; p++)
        for (int i = 0; i < mg.nin; i++)
            if (mg.part[p].sub) ws_close(&mg.part[p].ws[i]);
    for (int i = 0; i < mg.nin; i++)
        if (mg.opened[i]) model_close(&mg.m[i]);
    return rc;
}
