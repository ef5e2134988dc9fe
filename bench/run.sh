#!/usr/bin/env bash
# bench/run.sh — reproducible benchmarks of compiled executables.
#
# For each preset and size it compiles three executables from the same random
# model (fixed seed, fixed prompt): a baseline without fusion or
# specialisation passes (fp32), the default pass pipeline (fp32) and the
# default pipeline with --weights-dtype bf16; runs each with --bench, and
# prints per component (text encoder, UNet step, VAE decode) the time,
# achieved GFLOP/s, fraction of this machine's peak (measured by
# bench/fma_probe.c in the same run: the fp32 FMA peak, or the bf16
# dot-product peak for the bf16 build), the weights file, peak RSS and its
# excess over the weights, the start-up time and the output checksum, with
# the speedup over the baseline measured side by side.  Then it times the
# runtime's kernels on SD 1.5 shapes next to OpenBLAS
# (bench/kernels_bench.c), once with OPENBLAS_CORETYPE unset (OpenBLAS
# picks from cpuid) and once with Haswell (its AVX2 kernels), for that
# process only.
#
#   bench/run.sh [--build DIR] [--presets tiny,sd15] [--sizes 256,512] [--steps N] [--runs N] [--out DIR]
#                [--variants baseline,default,bf16] [--no-kernels]
#
# Results (JSON per executable and the tables) go to bench/out/ by default.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build presets=tiny,sd15 sizes=256,512 steps=4 runs=1 out=$here/out sampler=euler_a kernels=1
variants=baseline,default,bf16
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sampler) sampler=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --no-kernels) kernels=0; shift ;;
    *) echo "bench/run.sh: unknown option $1"; exit 1 ;;
  esac
done
sdc=$build/sdc
[ -x "$sdc" ] || { echo "bench/run.sh: $sdc not found (build sdc first)"; exit 1; }
mkdir -p "$out/models"
# the baseline: no fusion or specialisation pass but attention-fusion, without
# which the attention scores alone need more memory than a 512x512 run has
# (34 GB planned for the tiny preset's VAE at 512x512)
baseline_passes=canonicalize,cse,attention-fusion,dce

cc -O2 -fopenmp "$here/fma_probe.c" -o "$out/fma_probe"
"$out/fma_probe" > "$out/fma.json"
echo "machine: $(nproc) cores, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed "s/^ //") (family $(grep -m1 "cpu family" /proc/cpuinfo | cut -d: -f2 | tr -d " "), model $(grep -m1 "^model\s" /proc/cpuinfo | cut -d: -f2 | tr -d " ")), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -u +%F)"
echo "FMA and bf16 dot-product peaks (this run): $(cat "$out/fma.json")"

for preset in ${presets//,/ }; do
  model=$out/models/$preset
  [ -d "$model" ] || "$sdc" random-model "$preset" -o "$model" --seed 0 --dtype f16 --quiet
  for size in ${sizes//,/ }; do
    for variant in ${variants//,/ }; do
      exe=$out/$preset-$size-$variant
      passes=() dtype=()
      case $variant in
        baseline) passes=(--passes=$baseline_passes) ;;
        default) ;;
        bf16) dtype=(--weights-dtype bf16) ;;
        *) echo "bench/run.sh: unknown variant $variant"; exit 1 ;;
      esac
      "$sdc" compile "$model" --width "$size" --height "$size" --steps "$steps" --sampler "$sampler" \
        --guidance 7.5 "${passes[@]}" "${dtype[@]}" --quiet -o "$exe"
      "$sdc" stats "$model" --component unet --width "$size" --height "$size" --batch 2 "${passes[@]}" --json \
        > "$exe.stats.json"
      stat -c %s "$exe.weights" > "$exe.weights_bytes"
      "$exe" --prompt "a photo of a cat" --seed 0 --bench "$runs" --quiet > "$exe.json"
      rm -f "$exe.weights"   # large; the JSON keeps the figures
    done
  done
done

python3 - "$out" "$presets" "$sizes" "$variants" <<'PY'
import json, sys, os
out, presets, sizes, variants = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(','), sys.argv[4].split(',')
fma = json.load(open(os.path.join(out, 'fma.json')))
hdr = ("| preset | size | build | text enc s | UNet step s (min) | UNet GFLOP/s | % of peak | VAE dec s | VAE GFLOP/s "
       "| weights MiB | arena MiB | peak RSS MiB | RSS - weights MiB | ready s | image checksum | step vs baseline |")
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for p in presets:
    for s in sizes:
        base = None
        for v in variants:
            f = os.path.join(out, f'{p}-{s}-{v}')
            d = json.load(open(f + '.json'))
            st = json.load(open(f + '.stats.json'))
            wb = int(open(f + '.weights_bytes').read())
            unet = d['unet_step_s']['mean']
            if v == 'baseline':
                base = unet
            peak = fma['bf16_gflops_all'] if v == 'bf16' and fma.get('bf16_gflops_all') else fma['gflops_all']
            speed = f"{base / unet:.2f}x" if base else "-"
            g = d['gflops']
            print(f"| {p} | {s}² | {v} | {d['text_encoder_s']:.3f} | {unet:.3f} ({d['unet_step_s']['min']:.3f}) | "
                  f"{g['unet']:.0f} | {100 * g['unet'] / peak:.0f}% | {d['vae_decoder_s']:.3f} | {g['vae_decoder']:.0f} | "
                  f"{wb / 2**20:.0f} | {st['planned_peak_bytes'] / 2**20:.0f} | {d['peak_rss_bytes'] / 2**20:.0f} | "
                  f"{(d['peak_rss_bytes'] - wb) / 2**20:.0f} | {d['ready_s']:.2f} | {d['image_checksum']} | {speed} |")
print()
print("UNet step profile (largest preset and size, per build): seconds per guided step and GFLOP/s per op kind")
p, s = presets[-1], sizes[-1]
for v in variants:
    d = json.load(open(os.path.join(out, f'{p}-{s}-{v}.json')))
    prof = d.get('unet_step_profile', [])[:6]
    print(f"- {p} {s}² {v}: " + ", ".join(f"{x['name']} {x['seconds']:.3f} s ({x['gflops']:.0f})" for x in prof))
PY

[ "$kernels" = 1 ] || exit 0
root=$here/..
blas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -std=c17 -O2 -fopenmp -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I"$root/runtime" -I"$blas_inc" \
  "$here/kernels_bench.c" "$here/blas_ref.c" "$root"/runtime/kernels*.c "$root"/runtime/gemm*.c "$root/runtime/err.c" \
  "$root/runtime/dtype.c" -o "$out/kernels_bench" -lopenblas -lm
echo
echo "kernels (GFLOP/s; blas = the same ops on OpenBLAS sgemm; ratio = blas 2T time / ours 2T time):"
# OpenBLAS picks its kernels from cpuid when OPENBLAS_CORETYPE is unset; Haswell forces its AVX2 ones
env -u OPENBLAS_CORETYPE "$out/kernels_bench" | tee "$out/kernels-auto.txt"
OPENBLAS_CORETYPE=Haswell "$out/kernels_bench" | tee "$out/kernels-haswell.txt"
# the bf16 kernels (--weights-dtype bf16: VDPBF16PS where the CPU has it); OpenBLAS has no twin
"$out/kernels_bench" --weights bf16 --no-blas | tee "$out/kernels-bf16.txt"
