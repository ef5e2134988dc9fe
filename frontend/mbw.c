/* mbw.c — Merge Block Weighted: which of the 25 UNet blocks a tensor is in.
 *
 * The community's MBW tools (merge-block-weighted, supermerger) number the
 * blocks by the single-file (LDM) key names: input_blocks.N -> IN0N,
 * middle_block -> M00, output_blocks.N -> OUT0N, time_embed -> IN00 and
 * out.* (the final norm and conv) -> OUT11.  A diffusers parameter is first
 * renamed to its LDM name by ldm.c's tables (built for the UNet's layout,
 * which is read here from the parameter names), so there is one mapping
 * between the two namings in sdc, not two. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"

int mbw_parse(const char *list, double *w, SdcErr *err)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v))
            return sdc_err(err, "--mbw: \"%s\": weight %d is not a number (give 25 comma-separated weights: IN00-IN11, "
                                "M00, OUT00-OUT11)", list, n + 1);
        if (n < MBW_NBLOCKS) w[n] = v;
        n++;
        while (*end == ' ') end++;
        if (*end == 0) break;
        if (*end != ',') return sdc_err(err, "--mbw: \"%s\": expected a comma after weight %d", list, n);
        p = end + 1;
    }
    if (n != MBW_NBLOCKS)
        return sdc_err(err, "--mbw: %d weights given, 25 needed (IN00-IN11, M00, OUT00-OUT11)", n);
    return 0;
}

const char *mbw_block_name(int block, char *buf, size_t len)
{
    if (block < MBW_M00) snprintf(buf, len, "IN%02d", block);
    else if (block == MBW_M00) snprintf(buf, len, "M00");
    else snprintf(buf, len, "OUT%02d", block - MBW_OUT00);
    return buf;
}

/* "<prefix>N." at the start of s: N, or -1. */
static int index_after(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return -1;
    char *end;
    long v = strtol(s + n, &end, 10);
    return end > s + n && *end == '.' && v >= 0 && v < 1000 ? (int)v : -1;
}

int mbw_block_of(const char *ldm_name)
{
    static const char prefix[] = "model.diffusion_model.";
    const char *s = strncmp(ldm_name, prefix, strlen(prefix)) == 0 ? ldm_name + strlen(prefix) : ldm_name;
    if (strncmp(s, "time_embed.", 11) == 0) return 0;
    if (strncmp(s, "middle_block.", 13) == 0) return MBW_M00;
    if (strncmp(s, "out.", 4) == 0) return MBW_NBLOCKS - 1;
    int k = index_after(s, "input_blocks.");
    if (k >= 0) return k < MBW_M00 ? k : -1;
    k = index_after(s, "output_blocks.");
    if (k >= 0) return k < MBW_M00 ? MBW_OUT00 + k : -1;
    return -1;
}

/* "<a>I<b>J." at the start of s sets *i, *j. */
static int two_indices(const char *s, const char *a, const char *b, int *i, int *j)
{
    *i = index_after(s, a);
    if (*i < 0) return 0;
    const char *rest = strchr(s + strlen(a), '.') + 1;
    *j = index_after(rest, b);
    return *j >= 0;
}

int ldm_layout_from_names(LdmLayout *l, const char *sub, int n, const char *const *names)
{
    memset(l, 0, sizeof *l);
    int resnets[LDM_MAX_LEVELS] = {0}, levels = 0, i, j;
    int unet = strcmp(sub, "unet") == 0;
    const char *down = unet ? "down_blocks." : "encoder.down_blocks.";
    for (int k = 0; k < n; k++) {
        const char *s = names[k];
        if (two_indices(s, down, "resnets.", &i, &j)) {
            if (i >= LDM_MAX_LEVELS) return -1;
            if (j + 1 > resnets[i]) resnets[i] = j + 1;
            if (i + 1 > levels) levels = i + 1;
        } else if (unet && two_indices(s, "down_blocks.", "attentions.", &i, &j)) {
            if (i >= LDM_MAX_LEVELS) return -1;
            l->attn_down[i] = 1;
        } else if (unet && two_indices(s, "up_blocks.", "attentions.", &i, &j)) {
            if (i >= LDM_MAX_LEVELS) return -1;
            l->attn_up[i] = 1;
        }
    }
    if (levels == 0) return -1;
    for (int k = 1; k < levels; k++)
        if (resnets[k] != resnets[0]) return -1; /* the LDM numbering assumes the same count everywhere */
    if (unet) l->unet_levels = levels, l->unet_layers = resnets[0];
    else l->vae_levels = levels, l->vae_layers = resnets[0];
    return 0;
}
