#!/usr/bin/env bash
# bench/run.sh — reproducible benchmarks of compiled executables.
#
# For each preset and size it compiles two executables from the same random
# model (fixed seed, fixed prompt): the default pass pipeline and a baseline
# without fusion or specialisation passes, runs each with --bench, and prints
# per component (text encoder, UNet step, VAE decode) the time, achieved
# GFLOP/s, fraction of this machine's FMA peak (measured by bench/fma_probe.c
# in the same run), peak RSS and the output checksum, with the speedup of the
# default pipeline over the baseline measured side by side.  Then it times
# the runtime's kernels on SD 1.5 shapes next to OpenBLAS
# (bench/kernels_bench.c), once with OPENBLAS_CORETYPE unset (OpenBLAS
# picks from cpuid) and once with Haswell (its AVX2 kernels), for that
# process only.
#
#   bench/run.sh [--build DIR] [--presets tiny,sd15] [--sizes 256,512] [--steps N] [--runs N] [--out DIR]
#                [--no-kernels]
#
# Results (JSON per executable and the tables) go to bench/out/ by default.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build presets=tiny,sd15 sizes=256,512 steps=4 runs=1 out=$here/out sampler=euler_a kernels=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sampler) sampler=$2; shift 2 ;;
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
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "FMA peak (this run): $(cat "$out/fma.json")"

for preset in ${presets//,/ }; do
  model=$out/models/$preset
  [ -d "$model" ] || "$sdc" random-model "$preset" -o "$model" --seed 0 --dtype f16 --quiet
  for size in ${sizes//,/ }; do
    for variant in baseline default; do
      exe=$out/$preset-$size-$variant
      passes=()
      [ $variant = baseline ] && passes=(--passes=$baseline_passes)
      "$sdc" compile "$model" --width "$size" --height "$size" --steps "$steps" --sampler "$sampler" \
        --guidance 7.5 "${passes[@]}" --quiet -o "$exe"
      "$sdc" stats "$model" --component unet --width "$size" --height "$size" --batch 2 "${passes[@]}" --json \
        > "$exe.stats.json"
      "$exe" --prompt "a photo of a cat" --seed 0 --bench "$runs" --quiet > "$exe.json"
      rm -f "$exe.weights"   # large; the JSON keeps the figures
    done
  done
done

python3 - "$out" "$presets" "$sizes" <<'PY'
import json, sys, os
out, presets, sizes = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
fma = json.load(open(os.path.join(out, 'fma.json')))
peak = fma['gflops_all']
rows = []
hdr = "| preset | size | passes | text enc s | UNet step s | UNet GFLOP/s | % of peak | VAE dec s | VAE GFLOP/s | arena MiB (plan) | peak RSS MiB | image checksum | speedup |"
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for p in presets:
    for s in sizes:
        base = None
        for v in ('baseline', 'default'):
            f = os.path.join(out, f'{p}-{s}-{v}')
            d = json.load(open(f + '.json'))
            st = json.load(open(f + '.stats.json'))
            unet = d['unet_step_s']['mean']
            if v == 'baseline':
                base = unet
            speed = f"{base / unet:.2f}x" if v == 'default' else "1.00x"
            g = d['gflops']
            print(f"| {p} | {s}² | {v} | {d['text_encoder_s']:.3f} | {unet:.3f} | {g['unet']:.0f} | "
                  f"{100 * g['unet'] / peak:.0f}% | {d['vae_decoder_s']:.3f} | {g['vae_decoder']:.0f} | "
                  f"{st['planned_peak_bytes'] / 2**20:.0f} | {d['peak_rss_bytes'] / 2**20:.0f} | "
                  f"{d['image_checksum']} | {speed} |")
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
