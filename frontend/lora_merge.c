/* lora_merge.c — LoRA + LoRA into one LoRA file (kohya naming).
 *
 * Modules are matched across files by their kohya spelling (component
 * prefix + name with '.' -> '_'), so kohya and PEFT files of the same model
 * combine; the result is written as lora_down / lora_up / alpha.
 *
 * Concatenation (exact): with s_i = mult_i * alpha_i / rank_i,
 *     sum_i s_i up_i down_i = [s_1 up_1 | s_2 up_2 | ...] @ [down_1; down_2; ...]
 * so down is the rows stacked, up the scaled columns side by side and
 * alpha = the total rank (scale 1).
 *
 * Re-factoring to rank R: the sum has rank K <= sum of ranks.  With
 * U = [s_i up_i] = Q1 R1 and D^T = [down_i]^T = Q2 R2 (Gram-Schmidt, done
 * twice for orthogonality), the delta is Q1 (R1 R2^T) Q2^T and the SVD of the
 * small K x K middle (one-sided Jacobi) gives the SVD of the delta.  The
 * best rank-R factors are up = Q1 U_R sqrt(S_R), down = sqrt(S_R) V_R^T Q2^T;
 * the error ||delta - approx||_F is the root of the dropped singular values'
 * squares (Eckart-Young), reported relative to ||delta||_F.  Double precision
 * throughout; the factors are rounded once when written. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "lora.h"
#include "merge.h"

typedef struct Contrib {
    int file, module;
} Contrib;

typedef struct Group {
    char key[512]; /* kohya key */
    int n;
    Contrib c[16];
    int rank_in;   /* sum of ranks */
    int rank_out;
} Group;

static int group_cmp(const void *a, const void *b) { return strcmp(((const Group *)a)->key, ((const Group *)b)->key); }

/* ---- small dense linear algebra (column-major, double) ---------------------- */

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* a [m x k] -> Q (in place, zero columns where a column depends on the
 * earlier ones) and r [k x k] upper triangular with a = Q r. */
static void qr_mgs(double *a, int64_t m, int k, double *r)
{
    memset(r, 0, sizeof(double) * (size_t)k * (size_t)k);
    for (int j = 0; j < k; j++) {
        double *v = a + (int64_t)j * m;
        double norm0 = sqrt(dot(v, v, m));
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < j; i++) {
                double *q = a + (int64_t)i * m, d = dot(q, v, m);
                r[i + j * k] += d;
                for (int64_t t = 0; t < m; t++) v[t] -= d * q[t];
            }
        double norm = sqrt(dot(v, v, m));
        if (norm <= 1e-12 * norm0 || norm == 0) {
            memset(v, 0, sizeof(double) * (size_t)m);
            r[j + j * k] = 0;
        } else {
            for (int64_t t = 0; t < m; t++) v[t] /= norm;
            r[j + j * k] = norm;
        }
    }
}

/* One-sided Jacobi: w [k x k] -> w's columns become U S, v gets V (w = U S V^T). */
static void jacobi_svd(double *w, double *v, int k)
{
    memset(v, 0, sizeof(double) * (size_t)k * (size_t)k);
    for (int i = 0; i < k; i++) v[i + i * k] = 1;
    for (int sweep = 0; sweep < 100; sweep++) {
        int rotated = 0;
        for (int p = 0; p < k; p++)
            for (int q = p + 1; q < k; q++) {
                double *wp = w + p * k, *wq = w + q * k;
                double alpha = dot(wp, wp, k), beta = dot(wq, wq, k), gamma = dot(wp, wq, k);
                if (gamma == 0 || fabs(gamma) <= 1e-15 * sqrt(alpha * beta)) continue;
                rotated = 1;
                double zeta = (beta - alpha) / (2 * gamma);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                double c = 1 / sqrt(1 + t * t), s = c * t;
                double *vp = v + p * k, *vq = v + q * k;
                for (int i = 0; i < k; i++) {
                    double a = wp[i], b = wq[i];
                    wp[i] = c * a - s * b, wq[i] = s * a + c * b;
                    a = vp[i], b = vq[i];
                    vp[i] = c * a - s * b, vq[i] = s * a + c * b;
                }
            }
        if (!rotated) break;
    }
}

/* ---- per module --------------------------------------------------------------- */

typedef struct Factors {
    int64_t out, fan;
    int k;      /* stacked rank */
    double *u;  /* [out x k] column-major: column j = s * up[:, j] */
    double *d;  /* [fan x k] column-major: column j = down[j, :] */
} Factors;

static int stack(LoraFile *files, const double *mults, const Group *g, Factors *f, SdcErr *err)
{
    const LoraModule *m0 = &files[g->c[0].file].mod[g->c[0].module];
    f->out = m0->out, f->fan = m0->fan, f->k = g->rank_in;
    f->u = xmalloc(sizeof(double) * (size_t)(f->out * f->k));
    f->d = xmalloc(sizeof(double) * (size_t)(f->fan * f->k));
    int col = 0;
    for (int i = 0; i < g->n; i++) {
        LoraFile *lf = &files[g->c[i].file];
        const LoraModule *m = &lf->mod[g->c[i].module];
        float *down, *up;
        if (lora_read_factors(lf, m, &down, &up, err) < 0) return -1;
        double s = mults[g->c[i].file] * m->scale;
        for (int j = 0; j < m->rank; j++, col++) {
            for (int64_t o = 0; o < f->out; o++) f->u[col * f->out + o] = s * up[o * m->rank + j];
            for (int64_t t = 0; t < f->fan; t++) f->d[col * f->fan + t] = down[(int64_t)j * f->fan + t];
        }
        free(down), free(up);
    }
    return 0;
}

/* Re-factors f to rank r: up [out x r] row-major, down [r x fan] row-major.
 * *dropped and *total get the sums of the squared singular values dropped / in all. */
static void refactor(Factors *f, int r, float *up, float *down, double *dropped, double *total)
{
    int k = f->k;
    double *r1 = xmalloc(sizeof(double) * (size_t)(k * k)), *r2 = xmalloc(sizeof(double) * (size_t)(k * k));
    double *w = xmalloc(sizeof(double) * (size_t)(k * k)), *v = xmalloc(sizeof(double) * (size_t)(k * k));
    qr_mgs(f->u, f->out, k, r1);
    qr_mgs(f->d, f->fan, k, r2);
    for (int i = 0; i < k; i++) /* w = r1 r2^T */
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) s += r1[i + l * k] * r2[j + l * k];
            w[i + j * k] = s;
        }
    jacobi_svd(w, v, k);
    double *sig = xmalloc(sizeof(double) * (size_t)k);
    int *order = xmalloc(sizeof(int) * (size_t)k);
    for (int j = 0; j < k; j++) sig[j] = sqrt(dot(w + j * k, w + j * k, k)), order[j] = j;
    for (int a = 1; a < k; a++) /* by singular value, largest first (k is small) */
        for (int b = a; b > 0 && sig[order[b]] > sig[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    *dropped = *total = 0;
    for (int j = 0; j < k; j++) {
        *total += sig[order[j]] * sig[order[j]];
        if (j >= r) *dropped += sig[order[j]] * sig[order[j]];
    }
    double *col = xmalloc(sizeof(double) * (size_t)(f->out > f->fan ? f->out : f->fan));
    for (int j = 0; j < r; j++) {
        int c = order[j];
        double sg = sig[c], root = sqrt(sg);
        /* up[:, j] = Q1 (w[:, c] / sg) * root = Q1 w[:, c] / root */
        for (int64_t o = 0; o < f->out; o++) col[o] = 0;
        for (int l = 0; l < k && sg > 0; l++) {
            double a = w[l + c * k] / root;
            for (int64_t o = 0; o < f->out; o++) col[o] += f->u[l * f->out + o] * a;
        }
        for (int64_t o = 0; o < f->out; o++) up[o * r + j] = (float)col[o];
        /* down[j, :] = root * (Q2 v[:, c])^T */
        for (int64_t t = 0; t < f->fan; t++) col[t] = 0;
        for (int l = 0; l < k; l++) {
            double a = v[l + c * k] * root;
            for (int64_t t = 0; t < f->fan; t++) col[t] += f->d[l * f->fan + t] * a;
        }
        for (int64_t t = 0; t < f->fan; t++) down[(int64_t)j * f->fan + t] = (float)col[t];
    }
    free(col), free(sig), free(order), free(r1), free(r2), free(w), free(v);
}

/* Concatenation: up [out x k] row-major with the scales, down [k x fan]. */
static void concat(const Factors *f, float *up, float *down)
{
    for (int64_t o = 0; o < f->out; o++)
        for (int j = 0; j < f->k; j++) up[o * f->k + j] = (float)f->u[j * f->out + o];
    for (int j = 0; j < f->k; j++)
        for (int64_t t = 0; t < f->fan; t++) down[(int64_t)j * f->fan + t] = (float)f->d[j * f->fan + t];
}

/* ---- driver ----------------------------------------------------------------------- */

static int build_groups(LoraFile *files, int n, Group **out, int *ngroups, SdcErr *err)
{
    Group *g = NULL;
    int ng = 0;
    for (int f = 0; f < n; f++)
        for (int k = 0; k < files[f].n; k++) {
            char key[512];
            const LoraModule *m = &files[f].mod[k];
            if (lora_kohya_key(m, key, sizeof key) < 0) return free(g), sdc_err(err, "%s: %s: no kohya name", files[f].path, m->key);
            int at = -1;
            for (int i = 0; i < ng && at < 0; i++)
                if (strcmp(g[i].key, key) == 0) at = i;
            if (at < 0) {
                g = xrealloc(g, sizeof(Group) * (size_t)(ng + 1));
                memset(&g[ng], 0, sizeof(Group));
                snprintf(g[ng].key, sizeof g[ng].key, "%s", key);
                at = ng++;
            }
            Group *gr = &g[at];
            if (gr->n == (int)(sizeof gr->c / sizeof gr->c[0])) return free(g), sdc_err(err, "%s: more than 16 modules to combine", key);
            if (gr->n) {
                const LoraModule *m0 = &files[gr->c[0].file].mod[gr->c[0].module];
                if (m0->out != m->out || m0->fan != m->fan || m0->kh != m->kh || m0->kw != m->kw)
                    return free(g), sdc_err(err, "%s: %s has delta [%lld, %lld] (kernel %dx%d) but %s [%lld, %lld] (kernel %dx%d)",
                                            key, files[gr->c[0].file].path, (long long)m0->out, (long long)m0->fan, m0->kh,
                                            m0->kw, files[f].path, (long long)m->out, (long long)m->fan, m->kh, m->kw);
            }
            gr->c[gr->n++] = (Contrib){f, k};
            gr->rank_in += m->rank;
        }
    qsort(g, (size_t)ng, sizeof(Group), group_cmp);
    *out = g;
    *ngroups = ng;
    return 0;
}

static int write_merged(const LoraMergeOptions *o, LoraFile *files, Group *g, int ng, DType dt, LoraMergeReport *rep,
                        SdcErr *err)
{
    size_t nd3 = ng > 0 ? 3 * (size_t)ng : 1;
    StDesc *descs = xcalloc(nd3, sizeof(StDesc));
    char **names = xcalloc(nd3, sizeof(char *));
    for (int i = 0; i < ng; i++) {
        const LoraModule *m = &files[g[i].c[0].file].mod[g[i].c[0].module];
        int r = g[i].rank_in;
        if (o->rank > 0) {
            int64_t lim = m->out < m->fan ? m->out : m->fan;
            if (r > o->rank) r = o->rank;
            if (r > lim) r = (int)lim;
        }
        g[i].rank_out = r;
        if (r > rep->max_rank) rep->max_rank = r;
        static const char *const suffix[3] = {".lora_down.weight", ".lora_up.weight", ".alpha"};
        for (int s = 0; s < 3; s++) {
            size_t len = strlen(g[i].key) + 24;
            names[3 * i + s] = xmalloc(len);
            snprintf(names[3 * i + s], len, "%s%s", g[i].key, suffix[s]);
            descs[3 * i + s].name = names[3 * i + s];
            descs[3 * i + s].dtype = s == 2 ? DT_F32 : dt;
        }
        StDesc *d = &descs[3 * i], *u = &descs[3 * i + 1];
        d->ndim = m->conv ? 4 : 2;
        d->shape[0] = r, d->shape[1] = m->conv ? m->down->shape[1] : m->fan;
        if (m->conv) d->shape[2] = m->kh, d->shape[3] = m->kw;
        u->ndim = m->conv ? 4 : 2;
        u->shape[0] = m->out, u->shape[1] = r;
        if (m->conv) u->shape[2] = u->shape[3] = 1;
        descs[3 * i + 2].ndim = 0;
    }
    const char *keys[] = {"sdc.lora_merge"}, *vals[] = {o->rank > 0 ? "svd" : "concat"};
    StWriter *w = NULL;
    int rc = st_writer_open(&w, o->out, 3 * ng, descs, 1, keys, vals, err);
    double all_dropped = 0, all_total = 0;
    for (int i = 0; i < ng && rc == 0; i++) {
        Factors f = {0};
        rc = stack(files, o->mults, &g[i], &f, err);
        int r = g[i].rank_out;
        float *up = xmalloc(sizeof(float) * (size_t)(f.out * (r > f.k ? r : f.k) + 1));
        float *down = xmalloc(sizeof(float) * (size_t)(f.fan * (r > f.k ? r : f.k) + 1));
        if (rc == 0) {
            if (o->rank > 0) {
                double dropped, total;
                refactor(&f, r, up, down, &dropped, &total);
                all_dropped += dropped, all_total += total;
                double rel = total > 0 ? sqrt(dropped / total) : 0;
                if (rel > rep->worst_err || !rep->worst[0]) rep->worst_err = rel, snprintf(rep->worst, sizeof rep->worst, "%s", g[i].key);
            } else {
                concat(&f, up, down);
            }
            size_t nd = (size_t)(r * f.fan), nu = (size_t)(f.out * r);
            void *bd = xmalloc(dtype_size(dt) * (nd ? nd : 1)), *bu = xmalloc(dtype_size(dt) * (nu ? nu : 1));
            dtype_from_f32(dt, down, bd, nd);
            dtype_from_f32(dt, up, bu, nu);
            float alpha = (float)r;
            rc = st_writer_put(w, bd, err);
            if (rc == 0) rc = st_writer_put(w, bu, err);
            if (rc == 0) rc = st_writer_put(w, &alpha, err);
            free(bd), free(bu);
        }
        free(up), free(down), free(f.u), free(f.d);
    }
    if (rc == 0) rc = st_writer_finish(w, err);
    else if (w) st_writer_abort(w);
    rep->rel_err = all_total > 0 ? sqrt(all_dropped / all_total) : 0;
    for (int i = 0; i < 3 * ng; i++) free(names[i]);
    free(names), free(descs);
    return rc;
}

int lora_merge(const LoraMergeOptions *o, LoraMergeReport *rep, SdcErr *err)
{
    memset(rep, 0, sizeof *rep);
    size_t n = strlen(o->out);
    if (n < 12 || strcmp(o->out + n - 12, ".safetensors") != 0)
        return sdc_err(err, "-o %s: merging LoRAs writes one LoRA file: give an output ending in .safetensors", o->out);
    if (o->n < 1) return sdc_err(err, "no LoRA to merge");
    LoraFile *files = xcalloc((size_t)o->n, sizeof(LoraFile));
    Group *g = NULL;
    int ng = 0, opened = 0, rc = 0;
    for (int i = 0; i < o->n && rc == 0; i++) {
        rc = lora_open(&files[i], o->files[i], err);
        if (rc == 0) opened++;
        char a[PATH_MAX], b[PATH_MAX];
        if (rc == 0 && realpath(o->out, a) && realpath(o->files[i], b) && strcmp(a, b) == 0)
            rc = sdc_err(err, "-o %s: is an input LoRA (merges never touch their inputs)", o->out);
    }
    if (rc == 0 && path_exists(o->out) && !o->force) rc = sdc_err(err, "-o %s: exists (use --force to replace it)", o->out);
    if (rc == 0 && path_is_dir(o->out)) rc = sdc_err(err, "-o %s: is a folder", o->out);
    if (rc == 0) rc = build_groups(files, o->n, &g, &ng, err);
    if (rc == 0 && ng == 0) rc = sdc_err(err, "the LoRAs hold no modules");
    DType dt = DT_F32;
    if (rc == 0) {
        const LoraModule *m0 = &files[g[0].c[0].file].mod[g[0].c[0].module];
        dt = o->dtype_set ? o->dtype : m0->up->dtype;
        if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16) dt = DT_F32;
        rep->modules = ng;
        rc = write_merged(o, files, g, ng, dt, rep, err);
    }
    free(g);
    for (int i = 0; i < opened; i++) lora_close(&files[i]);
    free(files);
    return rc;
}
