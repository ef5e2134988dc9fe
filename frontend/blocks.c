/* blocks.c — see blocks.h. */
#include "blocks.h"

int b_resnet(Builder *b, const char *mod, int x, int cout, int temb, int groups, double eps, int scale_shift,
             double output_scale)
{
    if (b->failed || x < 0) return -1;
    int64_t bs = b_node(b, x)->shape[0], cin = b_node(b, x)->shape[1];
    b_push(b, "%s", mod);
    int h = b_group_norm(b, "norm1", x, groups, eps);
    h = b_unary(b, OP_SILU, "act1", h);
    h = b_conv_same(b, "conv1", h, cout, 3);
    int t = -1;
    if (temb >= 0) {
        t = b_unary(b, OP_SILU, "temb_act", temb);
        t = b_linear(b, "time_emb_proj", t, scale_shift ? 2 * cout : cout, 1);
    }
    if (t >= 0 && !scale_shift) {
        t = b_reshape(b, "temb", t, 4, (int64_t[]){bs, cout, 1, 1});
        h = b_binary(b, OP_ADD, "add_temb", h, t);
    }
    h = b_group_norm(b, "norm2", h, groups, eps);
    if (t >= 0 && scale_shift) {
        int sc = b_slice(b, "temb_scale", t, 1, 0, cout), sh = b_slice(b, "temb_shift", t, 1, cout, 2 * cout);
        sc = b_reshape(b, "temb_scale4", sc, 4, (int64_t[]){bs, cout, 1, 1});
        sh = b_reshape(b, "temb_shift4", sh, 4, (int64_t[]){bs, cout, 1, 1});
        int hs = b_binary(b, OP_MUL, "scaled", h, sc);
        h = b_binary(b, OP_ADD, "scaled_plus", h, hs); /* h * (1 + scale) as h + h*scale */
        h = b_binary(b, OP_ADD, "shifted", h, sh);
    }
    h = b_unary(b, OP_SILU, "act2", h);
    h = b_conv_same(b, "conv2", h, cout, 3);
    int skip = x;
    if (cin != cout) {
        int64_t zero[4] = {0, 0, 0, 0};
        skip = b_conv(b, "conv_shortcut", x, cout, 1, 1, zero, 1);
    }
    int y = b_binary(b, OP_ADD, "out", skip, h);
    if (output_scale != 1.0) y = b_scale(b, "out_scaled", y, 1.0 / output_scale);
    b_pop(b);
    return y;
}

int b_downsample(Builder *b, const char *mod, int x, int pad)
{
    if (b->failed || x < 0) return -1;
    int64_t c = b_node(b, x)->shape[1];
    int64_t p[4] = {pad, pad, pad, pad};
    if (pad == 0) p[2] = p[3] = 1; /* F.pad(x, (0, 1, 0, 1)): right and bottom */
    b_push(b, "%s", mod);
    int y = b_conv(b, "conv", x, (int)c, 3, 2, p, 1);
    b_pop(b);
    return y;
}

int b_upsample(Builder *b, const char *mod, int x, int64_t oh, int64_t ow)
{
    if (b->failed || x < 0) return -1;
    int64_t c = b_node(b, x)->shape[1];
    b_push(b, "%s", mod);
    Attr a = attr_ints("size", 2, (int64_t[]){oh, ow});
    int u = b_op(b, OP_UPSAMPLE_NEAREST2D, "interp", 1, &x, 1, &a);
    int y = b_conv_same(b, "conv", u, (int)c, 3);
    b_pop(b);
    return y;
}
