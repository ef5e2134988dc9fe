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
all=$("$sdc" stats tiny --width 64 --height 64 --json)
check "stats of every component is one JSON object" '[ "$(echo "$all" | json "len(d)")" = 4 ]'

dot=$("$sdc" graph tiny --component unet --width 64 --height 64 --dot)
check "graph --dot writes Graphviz" 'echo "$dot" | head -1 | grep -q "^digraph"'
check "graph --dot draws the attention ops" 'echo "$dot" | grep -q "attention f32"'
exit $fail
