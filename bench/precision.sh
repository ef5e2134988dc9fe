#!/usr/bin/env bash
# bench/precision.sh — what --weights-dtype costs in accuracy: compiles one
# model three times (conv/linear weights stored as f32, f16, bf16), runs each
# with the same seed and prompt, and prints the relative error of the final
# latents against the f32 build (||l - l_f32|| / ||l_f32||, and the largest
# element error over the largest f32 magnitude), the weights file size and
# the UNet step time.
#
#   bench/precision.sh [--build DIR] [--model DIR|tiny|sd15] [--size N] [--steps N] [--out DIR]
#
# The default model is the tiny fixture pipeline ($SDC_FIXTURES/tiny-sd) at 64x64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build model="" size="" steps=4 out=$here/out/precision sampler=euler_a
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench/precision.sh: unknown option $1"; exit 1 ;;
  esac
done
sdc=$build/sdc
[ -x "$sdc" ] || { echo "bench/precision.sh: $sdc not found (build sdc first)"; exit 1; }
mkdir -p "$out"
if [ -z "$model" ]; then
  [ -n "${SDC_FIXTURES:-}" ] || { echo "bench/precision.sh: give --model or set SDC_FIXTURES"; exit 1; }
  model=$SDC_FIXTURES/tiny-sd
  size=${size:-64}
elif [ "$model" = tiny ] || [ "$model" = sd15 ]; then
  preset=$model
  model=$out/$preset
  [ -d "$model" ] || "$sdc" random-model "$preset" -o "$model" --seed 0 --dtype f16 --quiet
fi
size=${size:-512}
name=$(basename "$model")

for dt in f32 f16 bf16; do
  exe=$out/$name-$size-$dt
  "$sdc" compile "$model" --width "$size" --height "$size" --steps "$steps" --sampler "$sampler" \
    --weights-dtype "$dt" --quiet -o "$exe"
  "$exe" --prompt "a photo of a cat" --seed 0 --quiet --out "$exe.png" --save-latents "$exe.latents.safetensors"
  "$exe" --prompt "a photo of a cat" --seed 0 --bench 1 --quiet > "$exe.json"
  stat -c %s "$exe.weights" > "$exe.size"
  rm -f "$exe.weights"
done

python3 - "$out" "$name" "$size" <<'PY'
import json, math, struct, sys
out, name, size = sys.argv[1:4]
def latents(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    t = [v for k, v in head.items() if k != '__metadata__'][0]
    a, b = t['data_offsets']
    assert t['dtype'] == 'F32'
    return struct.unpack('<%df' % ((b - a) // 4), data[a:b])
base = latents(f'{out}/{name}-{size}-f32.latents.safetensors')
norm = math.sqrt(sum(x * x for x in base))
peak = max(abs(x) for x in base)
print(f"| model | weights | weights file MiB | UNet step s | latents rel. L2 error vs f32 | max abs error / max abs |")
print("|---|---|---|---|---|---|")
for dt in ('f32', 'f16', 'bf16'):
    p = f'{out}/{name}-{size}-{dt}'
    l = latents(p + '.latents.safetensors')
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(l, base))) / norm
    mx = max(abs(x - y) for x, y in zip(l, base)) / peak
    d = json.load(open(p + '.json'))
    mib = int(open(p + '.size').read()) / 2**20
    print(f"| {name} {size}² | {dt} | {mib:.0f} | {d['unet_step_s']['mean']:.3f} | {err:.2e} | {mx:.2e} |")
PY
