/* pipeline_output.c — the files a generation writes.
 *
 * The PNGs carry two text chunks: "parameters", the generation in
 * AUTOMATIC1111's infotext format (which image viewers and web UIs read),
 * and "sdc", the compile options.  --save-latents writes the final latents
 * (before the VAE) as the safetensors tensor "latents" [B, C, h, w] with the
 * same "parameters" text in its metadata.  Every file goes through a
 * temporary name and a rename (image_write_png, st_writer); if one write
 * fails, the files this call already wrote are removed, so an error never
 * leaves an output behind. */
#include "pipeline_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "safetensors.h"
#include "scheduler.h"

/* Copies s with each invalid UTF-8 sequence replaced by U+FFFD, so that
 * any prompt bytes can go into a PNG text chunk or safetensors JSON. */
static char *utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *o = xmalloc(3 * n + 1), *w = o;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        uint32_t cp = extra == 0 ? *p : extra == 1 ? *p & 0x1fu : extra == 2 ? *p & 0x0fu : *p & 0x07u;
        int ok = extra >= 0;
        for (int i = 1; ok && i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80) ok = 0;
            else cp = (cp << 6) | (p[i] & 0x3fu);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (ok && (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = 0;
        if (ok) {
            memcpy(w, p, (size_t)extra + 1);
            w += extra + 1;
            p += extra + 1;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            p++;
        }
    }
    *w = 0;
    return o;
}

/* The sampler as A1111 names it, so that tools reading its infotext
 * recognise it (sdc's own name is in the "sdc" chunk's options). */
static const char *a1111_sampler_name(SamplerKind k)
{
    switch (k) {
    case SAMPLER_DDIM: return "DDIM";
    case SAMPLER_PNDM: return "PLMS";
    case SAMPLER_LMS: return "LMS";
    case SAMPLER_EULER: return "Euler";
    case SAMPLER_EULER_A: return "Euler a";
    case SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case SAMPLER_DPMPP_2M_KARRAS: return "DPM++ 2M Karras";
    default: return sampler_name(k);
    }
}

/* A1111's "parameters" text, which image viewers and UIs read:
 *   PROMPT
 *   Negative prompt: NEGATIVE            (only when not empty and guidance is on)
 *   Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512,
 *   Model: PATH[, Denoising strength: 0.8][, Batch size: 2, Batch pos: 1], Version: sdc 0.1.0
 * (the last line is one line). */
static char *parameters_text(const SdcPipeline *p, const PipelineArgs *a, int pos)
{
    char *prompt = utf8_clean(a->prompt), *neg = utf8_clean(a->negative);
    char *model = utf8_clean(p->model ? p->model : "?");
    size_t cap = strlen(prompt) + strlen(neg) + strlen(model) + 512;
    char *s = xmalloc(cap);
    int len = snprintf(s, cap, "%s\n", prompt);
    if (neg[0] && p->guidance > 1.0f) len += snprintf(s + len, cap - (size_t)len, "Negative prompt: %s\n", neg);
    len += snprintf(s + len, cap - (size_t)len, "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model: %s",
                    p->sched.steps, a1111_sampler_name(p->sched.kind), (double)p->guidance, (unsigned long long)a->seed,
                    p->width, p->height, model);
    if (a->init_image) len += snprintf(s + len, cap - (size_t)len, ", Denoising strength: %g", a->strength);
    if (p->batch > 1) len += snprintf(s + len, cap - (size_t)len, ", Batch size: %d, Batch pos: %d", p->batch, pos);
    snprintf(s + len, cap - (size_t)len, ", Version: sdc %s", p->sdc_version ? p->sdc_version : "?");
    free(prompt);
    free(neg);
    free(model);
    return s;
}

/* Image b of a batch: path itself for b = 0, else "-b" before the
 * extension of the file name ("out.png" -> "out-1.png"). */
static char *batch_path(const char *path, int b)
{
    if (b == 0) return xstrdup(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - path) : strlen(path);
    size_t cap = strlen(path) + 16;
    char *s = xmalloc(cap);
    snprintf(s, cap, "%.*s-%d%s", (int)stem, path, b, path + stem);
    return s;
}

int pipeline_write_outputs(const SdcPipeline *p, const PipelineArgs *a, const float *latents, const uint8_t *rgb,
                           int with_images, SdcErr *err)
{
    const size_t img_bytes = (size_t)3 * (size_t)p->width * (size_t)p->height;
    char **done = xcalloc((size_t)p->batch + 1, sizeof(char *));
    int n_done = 0, rc = 0;

    if (a->save_latents) {
        char *params = parameters_text(p, a, 0);
        StDesc d = {"latents", DT_F32, 4, {p->batch, p->latent_c, p->latent_h, p->latent_w}};
        const char *mk[] = {"parameters"}, *mv[] = {params};
        StWriter *w;
        rc = st_writer_open(&w, a->save_latents, 1, &d, 1, mk, mv, err);
        if (rc == 0 && st_writer_put(w, latents, err) != 0) {
            st_writer_abort(w);
            rc = -1;
        } else if (rc == 0) {
            rc = st_writer_finish(w, err);
        }
        if (rc == 0) done[n_done++] = xstrdup(a->save_latents);
        free(params);
    }
    for (int b = 0; b < p->batch && rc == 0 && with_images; b++) {
        char *path = batch_path(a->out, b);
        char *params = parameters_text(p, a, b);
        const char *keys[2] = {"parameters", "sdc"}, *vals[2] = {params, p->options ? p->options : ""};
        rc = image_write_png(path, rgb + (size_t)b * img_bytes, p->width, p->height, 2, keys, vals, err);
        free(params);
        if (rc == 0) done[n_done++] = path;
        else free(path);
    }
    for (int i = 0; i < n_done; i++) {
        if (rc != 0) unlink(done[i]);
        else if (!a->quiet) fprintf(stderr, "wrote %s\n", done[i]);
        free(done[i]);
    }
    free(done);
    return rc;
}
