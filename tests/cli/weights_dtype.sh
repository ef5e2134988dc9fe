#!/usr/bin/env bash
# sdc compile --weights-dtype end to end on a random tiny model: f16 and bf16
# weights files are smaller than f32 and their final latents stay close to
# the f32 build's (bf16 also rounds the activations where the CPU has
# AVX512-BF16); a bad value is one clear error.  The figures for real sizes are in
# docs/PERF.md (bench/precision.sh).
set -u
sdc=$1
. "$(dirname "$0")/../cli_lib.sh"

"$sdc" random-model tiny -o "$tmp/m" --seed 1 --quiet || { echo "FAIL: random-model"; exit 1; }
for dt in f32 f16 bf16; do
  check "compile and run with --weights-dtype $dt" \
    '"$sdc" compile "$tmp/m" --width 64 --height 64 --steps 2 --weights-dtype $dt --quiet -o "$tmp/$dt" &&
     "$tmp/$dt" --prompt "a cat" --seed 3 --quiet --out "$tmp/$dt.png" --save-latents "$tmp/$dt.st"'
done
check "16-bit weights files are smaller" \
  '[ $(stat -c %s "$tmp/f16.weights") -lt $(stat -c %s "$tmp/f32.weights") ] &&
   [ $(stat -c %s "$tmp/bf16.weights") -lt $(stat -c %s "$tmp/f32.weights") ]'
# relative L2 error of the latents against the f32 build: f16 rounds weights to 11 bits, bf16 to 8
check "f16 and bf16 latents stay close to f32's" 'python3 - "$tmp" <<'"'"'PY'"'"'
import json, math, struct, sys
def lat(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); d = f.read()
    t = [v for k, v in h.items() if k != "__metadata__"][0]; a, b = t["data_offsets"]
    return struct.unpack("<%df" % ((b - a) // 4), d[a:b])
base = lat(sys.argv[1] + "/f32.st")
norm = math.sqrt(sum(x * x for x in base))
for dt, tol in (("f16", 5e-3), ("bf16", 5e-2)):
    l = lat(sys.argv[1] + "/" + dt + ".st")
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(l, base))) / norm
    print(f"  {dt}: latents rel. error {err:.2e} (bound {tol})")
    assert 0 < err < tol, dt
PY'
check "a bad --weights-dtype is one clear error" \
  '! "$sdc" compile "$tmp/m" --weights-dtype f8 -o "$tmp/x" 2> "$tmp/err" && [ $(wc -l < "$tmp/err") = 1 ] && grep -q -- "--weights-dtype" "$tmp/err" && [ ! -e "$tmp/x" ]'
exit $fail
