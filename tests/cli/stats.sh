#!/usr/bin/env bash
# sdc stats and sdc graph on the presets (no weights needed): the SD 1.5 and
# 2.1 UNets have the real models' parameter counts and FLOPs, and the JSON
# report has the keys scripts depend on.
set -u
sdc=$1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

out=$("$sdc" stats sd15 --component unet --width 512 --height 512 --batch 1 --passes= --json) || { echo "FAIL: stats sd15"; exit 1; }
check "sd15 unet has 859,520,964 parameters" '[ "$(echo "$out" | json "d[\"params\"]")" = 859520964 ]'
check "sd15 unet call at 512x512 is ~803 GFLOP" '[ "$(echo "$out" | json "int(800e9 < d[\"flops\"] < 812e9)")" = 1 ]'
out=$("$sdc" stats sd21 --component unet --width 768 --height 768 --passes= --json) || { echo "FAIL: stats sd21"; exit 1; }
check "sd21 unet has 865,910,724 parameters" '[ "$(echo "$out" | json "d[\"params\"]")" = 865910724 ]'
out=$("$sdc" stats sd15 --component text-encoder --width 512 --height 512 --passes= --json)
check "sd15 text encoder has 123,060,480 parameters" '[ "$(echo "$out" | json "d[\"params\"]")" = 123060480 ]'

# all passes on, batch 2 (guidance): no tokens x tokens buffer; the keys scripts use
out=$("$sdc" stats sd15 --component unet --width 512 --height 512 --batch 2 --json) || { echo "FAIL: stats sd15 b2"; exit 1; }
for k in flops bytes_moved planned_peak_bytes peak_lower_bound_bytes ops_by_kind fusions largest_buffers; do
  check "stats --json has $k" '[ "$(echo "$out" | json "int(\"'$k'\" in d)")" = 1 ]'
done
check "no attention score buffer after the passes" '[ "$(echo "$out" | json "d[\"attention_score_buffers\"]")" = 0 ]'
check "largest_buffers entries have name, shape, bytes" \
  '[ "$(echo "$out" | json "int(all(set(b) >= {\"name\",\"shape\",\"bytes\"} for b in d[\"largest_buffers\"]))")" = 1 ]'
check "the plan is within 10% of its lower bound" \
  '[ "$(echo "$out" | json "int(d[\"planned_peak_bytes\"] <= 1.1 * d[\"peak_lower_bound_bytes\"])")" = 1 ]'
check "one guided sd15 UNet call at 512x512 plans at most 192 MiB of activations" \
  '[ "$(echo "$out" | json "int(0 < d[\"planned_peak_bytes\"] <= 192 * 2**20)")" = 1 ]'
check "layout conversions are counted (the transformers' permutes)" \
  '[ "$(echo "$out" | json "int(d[\"layout_conversions\"][\"count\"] == d[\"ops_by_kind\"].get(\"permute\", 0) > 0 and d[\"layout_conversions\"][\"bytes\"] > 0)")" = 1 ]'
check "no GroupNorm output is stored before a conv" '[ "$(echo "$out" | json "d[\"stored_norm_before_conv\"]")" = 0 ]'
check "every GroupNorm+SiLU+conv of the UNet is fused" \
  '[ "$(echo "$out" | json "int(d[\"fusions\"][\"fused_conv2d\"] >= 60 and d[\"ops_by_kind\"].get(\"group_norm\", 0) == 0)")" = 1 ]'
# SD 2.x: the transformers' proj_in is a linear on the GroupNorm's tokens; fused too
s21=$("$sdc" stats sd21 --component unet --width 768 --height 768 --batch 2 --json) || { echo "FAIL: stats sd21 b2"; exit 1; }
check "sd21: no GroupNorm output stored, before a conv or a linear" \
  '[ "$(echo "$s21" | json "int(d[\"stored_norm_before_conv\"] == 0 and d[\"ops_by_kind\"].get(\"group_norm\", 0) == 0)")" = 1 ]'
vae=$("$sdc" stats sd15 --component vae-decoder --width 512 --height 512 --json) || { echo "FAIL: stats vae"; exit 1; }
check "the VAE decoder's plan is reported and within 10% of its lower bound" \
  '[ "$(echo "$vae" | json "int(0 < d[\"planned_peak_bytes\"] <= 1.1 * d[\"peak_lower_bound_bytes\"] and d[\"attention_score_buffers\"] == 0)")" = 1 ]'
# diffusers' upcast_attention (sd21) reaches the fused attention ops; sd15 has none
check "sd21's attention ops keep upcast_attention" \
  '[ "$("$sdc" import sd21 --component unet --width 64 --height 64 --emit-ir --passes=canonicalize,attention-fusion,qkv-fusion,dce |
      grep -cE "= attention(_qkv)?\(.*upcast=1")" = 32 ]'
check "sd15's attention ops do not upcast" \
  '! "$sdc" import sd15 --component unet --width 64 --height 64 --emit-ir --passes=canonicalize,attention-fusion,dce |
      grep -q "upcast=1"'
# latents that do not halve evenly (65x63): diffusers passes upsample_size so that
# each up block matches its skip connection; the graph must verify and keep the size
uir=$("$sdc" import sd15 --component unet --width 520 --height 504 --emit-ir 2>&1) || { echo "FAIL: import 520x504: $uir" | head -3; fail=1; }
check "a 520x504 image (latent 65x63) imports and its UNet output is 65x63" \
  'echo "$uir" | grep -q "^  return %out" && echo "$uir" | grep -qE "^  %out = conv2d.*: f32\[1,4,63,65\]"'
all=$("$sdc" stats tiny --width 64 --height 64 --json)
check "stats of every component is one JSON object" '[ "$(echo "$all" | json "len(d)")" = 4 ]'

dot=$("$sdc" graph tiny --component unet --width 64 --height 64 --dot)
check "graph --dot writes Graphviz" 'echo "$dot" | head -1 | grep -q "^digraph"'
check "graph --dot draws the attention ops" 'echo "$dot" | grep -q "attention f32"'
exit $fail
