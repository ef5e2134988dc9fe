/* fold_lora.c — LoRAs folded into the weights at compile time.
 *
 * For the UNet and the text encoder (graphs named "unet", "text_encoder"),
 * every weight a LoRA module targets becomes
 *     W' = W + sum over LoRAs of mult * (alpha / rank) * up @ down
 * computed in float32 by lora_add_delta (the code `sdc merge` uses, so a
 * model merged with a LoRA and one compiled with --lora hold the same
 * bits).  The new weights are streamed into "<scratch>/<graph>_lora.safetensors"
 * and the constants are repointed there; the compiler copies them into the
 * executable's weights file like any other constant, so nothing of the LoRA
 * is needed at run time.
 *
 * Module keys are resolved against the graph's constant names (diffusers
 * parameter names); a module of this graph's component that matches
 * nothing, or a module for a component sdc does not apply LoRAs to, is an
 * error naming it.  Other graphs (the VAE) are left alone.  Without LoRAs
 * the pass changes nothing, so it sits in the default pipeline. */
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "interp.h"
#include "lora.h"
#include "pass.h"

static int in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

int pass_fold_lora_check(const PassOptions *opt, SdcErr *err)
{
    if (opt->nloras == 0) return 0;
    const char *pipeline = opt->pipeline ? opt->pipeline : pass_default_pipeline();
    if (!in_list(pipeline, "fold-lora") || in_list(opt->disabled, "fold-lora"))
        return sdc_err(err, "--lora: the pass pipeline does not run fold-lora (keep it in --passes and do not disable it)");
    return 0;
}

typedef struct Fold {
    int node;         /* the constant */
    int lora, module; /* what is added to it */
} Fold;

/* Writes the changed weights and repoints their constants. */
static int fold(Graph *g, const PassOptions *opt, LoraFile *loras, const Fold *f, int nf, int *nweights, SdcErr *err)
{
    int *uniq = xmalloc(sizeof(int) * (size_t)nf), nu = 0;
    for (int i = 0; i < nf; i++) {
        int seen = 0;
        for (int j = 0; j < nu && !seen; j++) seen = uniq[j] == f[i].node;
        if (!seen) uniq[nu++] = f[i].node;
    }
    StDesc *descs = xcalloc((size_t)nu, sizeof(StDesc));
    for (int j = 0; j < nu; j++) {
        const Node *n = &g->nodes[uniq[j]];
        descs[j] = (StDesc){.name = n->name, .dtype = DT_F32, .ndim = n->ndim};
        memcpy(descs[j].shape, n->shape, sizeof(int64_t) * (size_t)n->ndim);
    }
    char file[160];
    snprintf(file, sizeof file, "%s_lora.safetensors", g->name);
    char *path = path_join(opt->scratch_dir, file);
    StWriter *w = NULL;
    int rc = st_writer_open(&w, path, nu, descs, 0, NULL, NULL, err);
    for (int j = 0; j < nu && rc == 0; j++) {
        Tensor *t = interp_load_const(g, &g->nodes[uniq[j]], err);
        if (!t) rc = -1;
        for (int i = 0; i < nf && rc == 0; i++) /* in LoRA order, then module order: as sdc merge */
            if (f[i].node == uniq[j])
                rc = lora_add_delta(&loras[f[i].lora], &loras[f[i].lora].mod[f[i].module], opt->lora_mults[f[i].lora], t->f, err);
        if (rc == 0) rc = st_writer_put(w, t->f, err);
        tensor_free(t);
    }
    if (rc == 0) rc = st_writer_finish(w, err);
    else if (w) st_writer_abort(w);
    StFile sf = {0};
    if (rc == 0) rc = st_open(&sf, path, err);
    for (int j = 0; j < nu && rc == 0; j++) {
        Node *n = &g->nodes[uniq[j]];
        const StTensor *t = st_find(&sf, n->name);
        SDC_ASSERT(t);
        free(n->cfile);
        n->cfile = xstrdup(path);
        n->coffset = t->offset;
        n->cdtype = DT_F32;
    }
    st_close(&sf);
    *nweights = nu;
    free(path), free(descs), free(uniq);
    return rc;
}

int pass_fold_lora(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err)
{
    if (opt->nloras == 0) return 0;
    static const char *const comps[] = {"unet", "text_encoder", NULL};
    const char *comp = NULL;
    for (int i = 0; comps[i] && g->name; i++)
        if (strcmp(g->name, comps[i]) == 0) comp = comps[i];
    LoraFile *loras = xcalloc((size_t)opt->nloras, sizeof(LoraFile));
    int opened = 0, rc = 0, nf = 0, nweights = 0;
    Fold *f = NULL;
    for (int l = 0; l < opt->nloras && rc == 0; l++) {
        rc = lora_open(&loras[l], opt->lora_files[l], err);
        if (rc == 0) opened++, rc = lora_check_components(&loras[l], comps, err);
    }
    if (rc == 0 && comp && !opt->scratch_dir) rc = sdc_err(err, "LoRAs need a scratch folder for the new weights (sdc compile gives one)");
    if (rc == 0 && comp) {
        LoraParam *params = xmalloc(sizeof(LoraParam) * (size_t)g->n);
        int *node = xmalloc(sizeof(int) * (size_t)g->n), np = 0;
        for (int i = 0; i < g->n; i++) {
            const Node *n = &g->nodes[i];
            if (n->op != OP_CONST || n->ckind != CONST_FILE) continue;
            node[np] = i;
            params[np++] = (LoraParam){n->name, n->ndim, n->shape};
        }
        for (int l = 0; l < opened && rc == 0; l++) {
            int *target = xmalloc(sizeof(int) * (size_t)(loras[l].n ? loras[l].n : 1));
            rc = lora_resolve(&loras[l], comp, np, params, target, err);
            for (int k = 0; k < loras[l].n && rc == 0; k++) {
                if (target[k] < 0) continue;
                f = xrealloc(f, sizeof(Fold) * (size_t)(nf + 1));
                f[nf++] = (Fold){node[target[k]], l, k};
            }
            free(target);
        }
        free(params), free(node);
        if (rc == 0 && nf) rc = fold(g, opt, loras, f, nf, &nweights, err);
    }
    pass_count(c, "loras", comp ? opened : 0);
    pass_count(c, "weights", nweights);
    free(f);
    for (int l = 0; l < opened; l++) lora_close(&loras[l]);
    free(loras);
    return rc;
}
