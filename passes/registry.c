/* registry.c — every pass by name, with its one-line summary. */
#include "pass.h"

#include <string.h>

int pass_dce(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_cse(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_canonicalize(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_attention_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_fold_time_embedding(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_hoist_text_kv(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_plan_memory(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_fold_lora(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_qkv_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_geglu_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_gsc_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);
int pass_epilogue_fusion(Graph *g, const PassOptions *opt, PassCounters *c, SdcErr *err);

static const Pass passes[] = {
    {"fold-lora", "add the --lora deltas (mult * alpha/rank * up @ down) into the UNet and text encoder weights; nothing without --lora", pass_fold_lora},
    {"attention-fusion", "Q·Kᵀ → scale → (mask) → softmax → ·V becomes one attention op: no tokens×tokens buffer", pass_attention_fusion},
    {"canonicalize", "drop identity ops (same-shape reshape, identity permute, scale by 1, full slice) and fold reshape/permute chains", pass_canonicalize},
    {"cse", "merge nodes that compute the same value from the same operands", pass_cse},
    {"fold-time-embedding", "with the sampler's timesteps known, turn the timestep-only part (time MLP, every time_emb_proj) into per-step tables", pass_fold_time_embedding},
    {"hoist-text-kv", "mark what depends only on the text (cross-attention K and V) @prompt: computed once per prompt, not per step", pass_hoist_text_kv},
    {"qkv-fusion", "a self-attention's Q, K, V projections become one GEMM (concatenated weights) read in place by attention_qkv", pass_qkv_fusion},
    {"geglu-fusion", "projection → split → gelu → multiply (GEGLU) becomes one fused_linear: the 2F-wide projection is never stored", pass_geglu_fusion},
    {"gsc-fusion", "GroupNorm (→ SiLU) → conv and LayerNorm → linear become one fused op that normalises while packing its input", pass_gsc_fusion},
    {"epilogue-fusion", "time-embedding add, residual add and output scale move into the producing conv/linear's epilogue", pass_epilogue_fusion},
    {"dce", "remove nodes that no output depends on", pass_dce},
    {"plan-memory", "plan the activation arena (liveness, greedy by size) and report its peak and the lower bound", pass_plan_memory},
};

const Pass *pass_find(const char *name)
{
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++)
        if (strcmp(passes[i].name, name) == 0) return &passes[i];
    return NULL;
}

int pass_count_registered(void) { return (int)(sizeof passes / sizeof passes[0]); }
const Pass *pass_at(int i) { return &passes[i]; }
const char *pass_default_pipeline(void) { return "fold-lora,canonicalize,cse,fold-time-embedding,attention-fusion,qkv-fusion,geglu-fusion,gsc-fusion,epilogue-fusion,hoist-text-kv,dce,plan-memory"; }
