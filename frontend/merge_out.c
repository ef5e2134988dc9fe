/* merge_out.c — writing a merge's result (see merge.c for what is computed).
 *
 * A folder: A's files are copied except the merged components' weight files
 * (configs, tokenizer, scheduler, other folders), then each component's
 * tensors are streamed into one plain safetensors file.  A single file:
 * every tensor into one file, renamed to the LDM layout when the inputs are
 * folders, read back with ldm.c, and the config fields the shapes cannot
 * show written next to it as "<OUT>.config.json".  Both are built under a
 * temporary name and moved into place by merge_commit. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "merge_internal.h"

static int copy_file(const char *src, const char *dst, SdcErr *err)
{
    FILE *in = fopen(src, "rb");
    if (!in) return sdc_err(err, "%s: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return sdc_err(err, "%s: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = sdc_err(err, "%s: %s", dst, strerror(errno));
            break;
        }
    if (rc == 0 && ferror(in)) rc = sdc_err(err, "%s: read error", src);
    fclose(in);
    if (fclose(out) != 0 && rc == 0) rc = sdc_err(err, "%s: %s", dst, strerror(errno));
    return rc;
}

static int copy_dir(const char *src, const char *dst, const char *rel, int (*skip)(const char *, void *), void *ctx,
                    SdcErr *err)
{
    if (mkdir(dst, 0777) != 0 && errno != EEXIST) return sdc_err(err, "%s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return sdc_err(err, "%s: %s", src, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *s = path_join(src, e->d_name), *t = path_join(dst, e->d_name);
        char *r = rel[0] ? path_join(rel, e->d_name) : xstrdup(e->d_name);
        struct stat st;
        if (stat(s, &st) != 0) rc = sdc_err(err, "%s: %s", s, strerror(errno));
        else if (S_ISDIR(st.st_mode)) rc = copy_dir(s, t, r, skip, ctx, err);
        else if (S_ISREG(st.st_mode) && !(skip && skip(r, ctx))) rc = copy_file(s, t, err);
        free(s), free(t), free(r);
    }
    closedir(d);
    return rc;
}

/* Copies the folder src into dst, skipping the files for which skip(path
 * relative to src, ctx) is true; symbolic links are followed. */
static int copy_tree(const char *src, const char *dst, int (*skip)(const char *rel, void *ctx), void *ctx, SdcErr *err)
{
    return copy_dir(src, dst, "", skip, ctx, err);
}

void merge_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = path_join(path, e->d_name);
            merge_remove_tree(p);
            free(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int merge_commit(const char *tmp, const char *out, SdcErr *err)
{
    size_t n = strlen(out) + 32;
    char *old = xmalloc(n);
    snprintf(old, n, "%s.old.%ld", out, (long)getpid());
    struct stat st;
    int had = lstat(out, &st) == 0;
    if (had && rename(out, old) != 0) {
        free(old);
        return sdc_err(err, "%s: cannot move the old output aside: %s", out, strerror(errno));
    }
    if (rename(tmp, out) != 0) {
        int e = errno;
        if (had) rename(old, out);
        free(old);
        return sdc_err(err, "%s: %s", out, strerror(e));
    }
    if (had) merge_remove_tree(old);
    free(old);
    return 0;
}

/* ---- the merged tensors ------------------------------------------------------------- */

static int write_items(Merge *mg, const char *path, int n, Item *items, SdcErr *err)
{
    StDesc *descs = xmalloc(sizeof(StDesc) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) descs[i] = items[i].desc;
    const char *keys[] = {"format", "sdc.merge"}, *vals[] = {"pt", mg->recipe};
    StWriter *w;
    int rc = st_writer_open(&w, path, n, descs, 2, keys, vals, err);
    free(descs);
    if (rc < 0) return -1;
    for (int i = 0; i < n; i++) {
        void *bytes = NULL;
        if (merge_compute(mg, &items[i], &bytes, err) < 0 || st_writer_put(w, bytes, err) < 0) {
            free(bytes);
            st_writer_abort(w);
            return -1;
        }
        free(bytes);
        mg->written++;
    }
    return st_writer_finish(w, err);
}

/* Items for A's tensors of part p; names mapped to the single-file layout when asked. */
static int add_items(Merge *mg, const Part *p, int ldm_names, Item **items, int *n, SdcErr *err)
{
    for (int f = 0; f < p->nfiles[0]; f++)
        for (int k = 0; k < p->files[0][f]->n; k++) {
            const StTensor *ta = &p->files[0][f]->tensors[k];
            *items = xrealloc(*items, sizeof(Item) * (size_t)(*n + 1));
            Item *it = &(*items)[(*n)++];
            memset(it, 0, sizeof *it);
            it->p = p, it->fa = p->files[0][f], it->ta = ta;
            it->desc.ndim = ta->ndim;
            memcpy(it->desc.shape, ta->shape, sizeof ta->shape);
            it->desc.dtype = merge_is_float(ta->dtype) ? (mg->o->dtype_set ? mg->o->dtype : ta->dtype) : ta->dtype;
            if (ta->dtype == DT_OTHER)
                return sdc_err(err, "%s: %s: dtype %s cannot be written by sdc", p->files[0][f]->path, ta->name, ta->dtype_str);
            if (ldm_names) {
                char name[512];
                int view = 0;
                if (ldm_names_get(&mg->names, p->sub, ta->name, name, sizeof name, &view) < 0)
                    return sdc_err(err, "%s/%s: no single-file (SD 1.x LDM) name; write a diffusers folder instead", p->sub,
                                   ta->name);
                if (view && ta->ndim == 2) it->desc.ndim = 4, it->desc.shape[2] = it->desc.shape[3] = 1;
                it->name = xstrdup(name);
            } else {
                it->name = xstrdup(ta->name);
            }
            it->desc.name = it->name;
        }
    return 0;
}

static void free_items(Item *items, int n)
{
    for (int i = 0; i < n; i++) free(items[i].name);
    free(items);
}

/* ---- outputs --------------------------------------------------------------------------------- */

static char *override_path(const char *path)
{
    size_t n = strlen(path), k = strlen(".safetensors");
    if (n > k && strcmp(path + n - k, ".safetensors") == 0) n -= k;
    char *out = xmalloc(n + sizeof ".config.json");
    memcpy(out, path, n);
    strcpy(out + n, ".config.json");
    return out;
}

typedef struct SkipCtx {
    const Merge *mg;
} SkipCtx;

/* Weight files of the merged components are written, not copied. */
static int skip_weights(const char *rel, void *ctx)
{
    const Merge *mg = ((SkipCtx *)ctx)->mg;
    const char *slash = strchr(rel, '/');
    if (!slash) return 0;
    int merged = 0;
    for (int i = 0; i < mg->nparts && !merged; i++)
        merged = strlen(mg->part[i].sub) == (size_t)(slash - rel) && strncmp(rel, mg->part[i].sub, (size_t)(slash - rel)) == 0;
    if (!merged) return 0;
    static const char *const ext[] = {".safetensors", ".bin", ".index.json", ".ckpt", ".msgpack", ".h5", ".onnx"};
    size_t n = strlen(rel);
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++)
        if (n > strlen(ext[e]) && strcmp(rel + n - strlen(ext[e]), ext[e]) == 0) return 1;
    return 0;
}

int merge_write_folder(Merge *mg, const char *tmp, SdcErr *err)
{
    SkipCtx ctx = {mg};
    if (copy_tree(mg->m[0].root, tmp, skip_weights, &ctx, err) < 0) return -1;
    for (int pi = 0; pi < mg->nparts; pi++) {
        const Part *p = &mg->part[pi];
        const char *shown = strrchr(p->ws[0].shown[0], '/');
        const char *base = shown && strncmp(shown + 1, "model.", 6) == 0 ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
        char *dir = path_join(tmp, p->sub), *path = path_join(dir, base);
        Item *items = NULL;
        int n = 0;
        if (!mg->o->quiet) fprintf(stderr, "sdc merge: %s\n", p->sub);
        int rc = mkdir_p(dir, err);
        if (rc == 0) rc = add_items(mg, p, 0, &items, &n, err);
        if (rc == 0) rc = write_items(mg, path, n, items, err);
        free_items(items, n);
        free(dir), free(path);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Config fields of A that the single file's inferred configs lack or contradict. */
static int single_file_overrides(Merge *mg, const char *tmp_file, cJSON **override, SdcErr *err)
{
    LdmCheckpoint ck;
    if (ldm_open(&ck, tmp_file, err) < 0) return sdc_err_prefix(err, "%s: not writable as an SD 1.x single file", mg->o->out);
    *override = cJSON_CreateObject();
    static const char *const subs[] = {"unet", "vae", "text_encoder"};
    int rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++) {
        Cfg src;
        if (!merge_find_part(mg, subs[s])) continue;
        if (model_config(&mg->m[0], subs[s], &src, err) < 0) {
            cfg_free(&src);
            rc = -1;
            break;
        }
        cJSON *inferred = cJSON_Parse(ldm_config_json(&ck, subs[s])), *field, *fields = cJSON_CreateObject();
        cJSON_ArrayForEach(field, src.root)
        {
            if (field->string[0] == '_' || cJSON_IsNull(field)) continue;
            cJSON *have = cJSON_GetObjectItemCaseSensitive(inferred, field->string);
            if (!have || !cJSON_Compare(have, field, 1)) cJSON_AddItemToObject(fields, field->string, cJSON_Duplicate(field, 1));
        }
        if (cJSON_GetArraySize(fields)) cJSON_AddItemToObject(*override, subs[s], fields);
        else cJSON_Delete(fields);
        cJSON_Delete(inferred);
        cfg_free(&src);
    }
    ldm_close(&ck);
    return rc;
}

int merge_write_single(Merge *mg, SdcErr *err)
{
    const char *out = mg->o->out;
    size_t len = strlen(out) + 48;
    char *tmp = xmalloc(len);
    snprintf(tmp, len, "%s.tmp.%ld.safetensors", out, (long)getpid());
    Item *items = NULL;
    int n = 0, rc = 0;
    if (!mg->single_in) {
        for (int pi = 0; pi < mg->nparts && rc == 0; pi++)
            if (strcmp(mg->part[pi].sub, "text_encoder_2") == 0)
                rc = sdc_err(err, "%s: a single file holds unet, vae and text_encoder only; this model has text_encoder_2: "
                                  "write a folder", out);
        if (!merge_find_part(mg, "unet") && rc == 0) rc = sdc_err(err, "%s: the model has no unet: write a folder", out);
    }
    static const char *const order[] = {"unet", "vae", "text_encoder"};
    for (int s = 0; s < 3 && rc == 0; s++) {
        const Part *p = mg->single_in ? (s == 0 ? &mg->part[0] : NULL) : merge_find_part(mg, order[s]);
        if (p) rc = add_items(mg, p, !mg->single_in, &items, &n, err);
    }
    if (!mg->o->quiet && rc == 0) fprintf(stderr, "sdc merge: %d tensors\n", n);
    if (rc == 0) rc = write_items(mg, tmp, n, items, err);
    free_items(items, n);
    /* the config fields a single file cannot show go next to it */
    char *ovr = override_path(out), *src_ovr = mg->single_in ? override_path(mg->m[0].root) : NULL;
    cJSON *fields = NULL;
    if (rc == 0 && !mg->single_in) rc = single_file_overrides(mg, tmp, &fields, err);
    if (rc == 0) {
        char *text = NULL;
        size_t tlen = 0;
        if (fields && cJSON_GetArraySize(fields)) text = cJSON_Print(fields), tlen = strlen(text);
        else if (src_ovr && path_exists(src_ovr)) text = file_read_all(src_ovr, &tlen, err), rc = text ? 0 : -1;
        if (text) rc = file_write_atomic(ovr, text, tlen, err);
        else if (rc == 0 && path_exists(ovr)) unlink(ovr); /* the replaced output's */
        free(text);
    }
    cJSON_Delete(fields);
    if (rc == 0) rc = merge_commit(tmp, out, err);
    if (rc < 0) unlink(tmp);
    free(tmp), free(ovr), free(src_ovr);
    return rc;
}
