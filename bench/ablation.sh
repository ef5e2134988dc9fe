#!/usr/bin/env bash
# bench/ablation.sh — what each pass is worth: for each pass of the default
# pipeline, build the benchmark executable with that pass switched off
# (--disable-pass) and compare it with all passes on, measured in the same
# run: UNet step time, bytes moved and planned activation peak per UNet call.
#
#   bench/ablation.sh [--build DIR] [--presets tiny,sd15] [--size N] [--steps N] [--out DIR]
#                     [--weights-dtype f32|bf16]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build presets=tiny,sd15 size=512 steps=2 out=$here/out/ablation wdtype=f32
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --weights-dtype) wdtype=$2; shift 2 ;;
    *) echo "bench/ablation.sh: unknown option $1"; exit 1 ;;
  esac
done
sdc=$build/sdc
[ -x "$sdc" ] || { echo "bench/ablation.sh: $sdc not found"; exit 1; }
mkdir -p "$out/models"
pipeline=$("$sdc" compile --print-pipeline)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F); weights $wdtype; default pipeline: $pipeline"
for preset in ${presets//,/ }; do
  model=$out/models/$preset
  [ -d "$model" ] || "$sdc" random-model "$preset" -o "$model" --seed 0 --dtype f16 --quiet
  psize=$size
  [ "$preset" = tiny ] && psize=64
  for off in none ${pipeline//,/ }; do
    case $off in canonicalize|dce|plan-memory) continue ;; esac  # structural: not optional
    dis=()
    [ "$off" != none ] && dis=(--disable-pass=$off)
    exe=$out/$preset-$off
    "$sdc" compile "$model" --width $psize --height $psize --steps $steps "${dis[@]}" --weights-dtype "$wdtype" \
      --quiet -o "$exe"
    "$sdc" stats "$model" --component unet --width $psize --height $psize --batch 2 "${dis[@]}" --json > "$exe.stats.json"
    "$exe" --prompt "a photo of a cat" --seed 0 --bench 1 --quiet > "$exe.json"
    rm -f "$exe.weights"
  done
done
python3 - "$out" "$presets" "$pipeline" <<'PY'
import json, os, sys
out, presets, pipeline = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
print("| preset | pass off | UNet step s | time vs all on | bytes moved GB | planned peak MiB | peak RSS MiB | same image bytes |")
print("|---|---|---|---|---|---|---|---|")
for p in presets:
    ref = json.load(open(os.path.join(out, f'{p}-none.json')))
    for off in ['none'] + [x for x in pipeline if x not in ('canonicalize', 'dce', 'plan-memory')]:
        d = json.load(open(os.path.join(out, f'{p}-{off}.json')))
        s = json.load(open(os.path.join(out, f'{p}-{off}.stats.json')))
        t = d['unet_step_s']['mean']
        print(f"| {p} | {off if off != 'none' else '(all on)'} | {t:.3f} | {t / ref['unet_step_s']['mean']:.2f}x | "
              f"{s['bytes_moved'] / 1e9:.2f} | {s['planned_peak_bytes'] / 2**20:.0f} | {d['peak_rss_bytes'] / 2**20:.0f} | "
              f"{'yes' if d['image_checksum'] == ref['image_checksum'] else 'no'} |")
PY
