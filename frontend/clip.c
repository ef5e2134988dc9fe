/* clip.c — transformers (4.40) CLIPTextModel as a graph: input_ids ->
 * last_hidden_state, the encoder_hidden_states of SD 1.x/2.x.
 *
 *   h = token_embedding(ids) + position_embedding.weight[0:L]
 *   per layer: h += out_proj(attention(layer_norm1(h)))   (causal, biases)
 *              h += fc2(act(fc1(layer_norm2(h))))
 *   out = final_layer_norm(h)
 *
 * diffusers' clip_skip K takes the hidden state K layers before the last
 * (hidden_states[-(K+1)]) and applies final_layer_norm to it.  The skipped
 * layers are still built — so their weights are bound and checked against
 * the config like every other — and then dropped as dead code.
 * No attention mask: SD pipelines pass none, the padding is attended to. */
#include <math.h>
#include <string.h>

#include "builder.h"
#include "import.h"

typedef struct ClipCfg {
    int hidden;    /* hidden_size D */
    int inter;     /* intermediate_size of the MLP */
    int heads;     /* num_attention_heads */
    int layers;    /* num_hidden_layers */
    int positions; /* max_position_embeddings */
    int vocab;     /* vocab_size */
    double eps;    /* layer_norm_eps */
    OpKind act;    /* OP_QUICK_GELU or OP_GELU */
} ClipCfg;

/* Reads every CLIPTextConfig field that shapes the graph.  Dropouts are
 * inactive at inference; projection_dim and the token ids (bos/eos/pad)
 * only matter to the pooled output and the tokenizer. */
static int clip_cfg_read(Cfg *c, ClipCfg *k)
{
    static const char *const model_types[] = {"clip_text_model", NULL};
    static const char *const acts[] = {"quick_gelu", "gelu", NULL};
    memset(k, 0, sizeof *k);
    cfg_enum(c, "model_type", "clip_text_model", model_types);
    if (cfg_has(c, "architectures")) {
        const char *arch[4];
        int n = cfg_str_list(c, "architectures", arch, 4);
        for (int i = 0; i < n && !c->failed; i++)
            if (strcmp(arch[i], "CLIPTextModel") != 0) {
                char key[32];
                snprintf(key, sizeof key, "architectures[%d]", i);
                cfg_fail(c, key, "unsupported value \"%s\" (sdc supports: CLIPTextModel)", arch[i]);
            }
    }
    k->hidden = (int)cfg_int(c, "hidden_size", 512, 1, 1 << 16);
    k->inter = (int)cfg_int(c, "intermediate_size", 2048, 1, 1 << 18);
    k->heads = (int)cfg_int(c, "num_attention_heads", 8, 1, 1 << 10);
    k->layers = (int)cfg_int(c, "num_hidden_layers", 12, 1, 1 << 10);
    k->positions = (int)cfg_int(c, "max_position_embeddings", 77, 1, 1 << 16);
    k->vocab = (int)cfg_int(c, "vocab_size", 49408, 1, 1 << 24);
    k->eps = cfg_num(c, "layer_norm_eps", 1e-5, 0.0, 1.0);
    k->act = cfg_enum(c, "hidden_act", "quick_gelu", acts) == 0 ? OP_QUICK_GELU : OP_GELU;
    if (!c->failed && k->hidden % k->heads != 0)
        cfg_fail(c, "num_attention_heads", "%d does not divide hidden_size %d", k->heads, k->hidden);
    return c->failed ? -1 : 0;
}

/* CLIPEncoderLayer (pre-norm): self-attention and MLP, each with a residual. */
static int clip_layer(Builder *b, int i, int x, const ClipCfg *k)
{
    if (b->failed || x < 0) return -1;
    int hd = k->hidden / k->heads;
    b_push(b, "layers.%d", i);
    int h = b_layer_norm(b, "layer_norm1", x, k->eps);
    b_push(b, "self_attn");
    int q = b_linear(b, "q_proj", h, k->hidden, 1);
    int kk = b_linear(b, "k_proj", h, k->hidden, 1);
    int v = b_linear(b, "v_proj", h, k->hidden, 1);
    /* transformers scales q by head_dim^-0.5 before q kᵀ; the chain scales the scores */
    int a = b_attention_chain(b, "attention", q, kk, v, k->heads, 1.0 / sqrt((double)hd), 1, 0);
    a = b_linear(b, "out_proj", a, k->hidden, 1);
    b_pop(b);
    x = b_binary(b, OP_ADD, "attn_residual", x, a);
    h = b_layer_norm(b, "layer_norm2", x, k->eps);
    b_push(b, "mlp");
    h = b_linear(b, "fc1", h, k->inter, 1);
    h = b_unary(b, k->act, "act", h);
    h = b_linear(b, "fc2", h, k->hidden, 1);
    b_pop(b);
    x = b_binary(b, OP_ADD, "out", x, h);
    b_pop(b);
    return x;
}

/* A buffer some transformers versions save with the weights; not a parameter. */
static const char *const clip_ignore[] = {"text_model.embeddings.position_ids", NULL};

Graph *build_text_encoder(Cfg *cfg, WeightSet *ws, const ImportShape *s, SdcErr *err)
{
    ClipCfg k;
    if (clip_cfg_read(cfg, &k) < 0) {
        if (cfg->err && cfg->err != err && err) *err = *cfg->err;
        return NULL;
    }
    if (s->seq_len < 1 || s->seq_len > k.positions)
        return sdc_err(err, "%s: max_position_embeddings: text length %d is outside [1, %d]", cfg->file, s->seq_len,
                       k.positions),
               NULL;
    if (s->clip_skip < 0 || s->clip_skip >= k.layers)
        return sdc_err(err, "text-encoder: clip_skip %d: the model has %d layers (%s: num_hidden_layers)",
                       s->clip_skip, k.layers, cfg->file),
               NULL;
    if (s->batch < 1) return sdc_err(err, "text-encoder: batch %d must be positive", s->batch), NULL;
    if (!ws->ignore) ws->ignore = clip_ignore;

    Graph *g = graph_new("text_encoder");
    Builder b;
    b_init(&b, g, ws, err);
    int64_t bs = s->batch, len = s->seq_len, d = k.hidden;
    int ids = b_input(&b, "input_ids", DT_I64, 2, (int64_t[]){bs, len});

    b_push(&b, "text_model");
    b_push(&b, "embeddings");
    b_push(&b, "token_embedding");
    int table = b_weight(&b, "weight", WK_EMBEDDING, 2, (int64_t[]){k.vocab, d});
    int tok = b_op(&b, OP_EMBEDDING, "", 2, (int[]){ids, table}, 0, NULL);
    b_pop(&b);
    b_push(&b, "position_embedding"); /* position_ids = arange(L): rows 0..L-1 */
    int pos = b_weight(&b, "weight", WK_EMBEDDING, 2, (int64_t[]){k.positions, d});
    pos = b_slice(&b, "", pos, 0, 0, len);
    b_pop(&b);
    int h = b_binary(&b, OP_ADD, "", tok, pos);
    b_pop(&b);

    b_push(&b, "encoder");
    int kept = h; /* hidden_states[-(clip_skip+1)] */
    for (int i = 0; i < k.layers; i++) {
        h = clip_layer(&b, i, h, &k);
        if (i == k.layers - 1 - s->clip_skip) kept = h;
    }
    b_pop(&b);
    int out = b_layer_norm(&b, "final_layer_norm", kept, k.eps);
    b_pop(&b);

    if (b.failed) {
        graph_free(g);
        return NULL;
    }
    graph_rename(g, out, "out");
    graph_add_output(g, out);
    if (s->clip_skip) graph_compact(g, 1); /* the layers after `kept` */
    return g;
}
