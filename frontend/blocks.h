/* blocks.h — building blocks shared by the UNet and the VAE. */
#ifndef SDC_BLOCKS_H
#define SDC_BLOCKS_H

#include "builder.h"

/* diffusers ResnetBlock2D:
 *   h = conv1(silu(norm1(x)));  h += time_emb_proj(silu(temb))[:, :, None, None]
 *   h = conv2(silu(norm2(h)));  out = (shortcut(x) + h) / output_scale
 * temb < 0: no time embedding (the VAE).  scale_shift: resnet_time_scale_shift
 * "scale_shift" (h = norm2(h) * (1 + scale) + shift).  The shortcut is a 1x1
 * conv when the channel count changes. */
int b_resnet(Builder *b, const char *mod, int x, int cout, int temb, int groups, double eps, int scale_shift,
             double output_scale);

/* diffusers Downsample2D with a conv: stride 2, padding `pad`; pad 0 means
 * diffusers' asymmetric (0,1,0,1) padding first. */
int b_downsample(Builder *b, const char *mod, int x, int pad);
/* diffusers Upsample2D with a conv: nearest to [oh, ow], then a 3x3 conv. */
int b_upsample(Builder *b, const char *mod, int x, int64_t oh, int64_t ow);

#endif
