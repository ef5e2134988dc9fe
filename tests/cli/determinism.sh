#!/usr/bin/env bash
# Determinism without the fixtures: an executable compiled from a tiny random
# model gives byte-identical PNGs and latents for the same seed and prompt,
# run after run and whatever the thread count (1, 2, 3), for text-to-image
# with a batch of two and for img2img; another seed gives another image (so
# the comparison can fail); and compiling twice writes the same weights file.
# (tests/unit/test_pipeline_golden.c checks the same on the fixture model,
# against diffusers.)
# usage: determinism.sh SDC_BINARY SOURCE_DIR BINARY_DIR
set -u
sdc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
same() { cmp -s "$1" "$2" || bad "$3: $1 and $2 differ"; }

"$sdc" random-model tiny -o "$tmp/m" --quiet || { echo "FAIL: random-model"; exit 1; }
# euler_a draws fresh noise at every step: the RNG stream is part of what must repeat
"$sdc" compile "$tmp/m" -o "$tmp/t2i" --width 64 --height 64 --steps 4 --sampler euler_a --batch 2 --quiet ||
  { echo "FAIL: compile"; exit 1; }
"$sdc" compile "$tmp/m" -o "$tmp/again" --width 64 --height 64 --steps 4 --sampler euler_a --batch 2 --quiet ||
  { echo "FAIL: second compile"; exit 1; }
same "$tmp/t2i.weights" "$tmp/again.weights" "compiling twice"

run() { # NAME THREADS [flags...]
  local name=$1 threads=$2
  shift 2
  "$tmp/t2i" --prompt "a red cube on a table" --seed 1234 --threads "$threads" --quiet \
    --out "$tmp/$name.png" --save-latents "$tmp/$name.safetensors" "$@" || bad "run $name failed"
}
run a1 1
run a2 2
run a3 3
run b2 2
for r in a2 a3 b2; do
  same "$tmp/a1.png" "$tmp/$r.png" "image 0 ($r)"
  same "$tmp/a1-1.png" "$tmp/$r-1.png" "image 1 ($r)"
  same "$tmp/a1.safetensors" "$tmp/$r.safetensors" "latents ($r)"
done
cmp -s "$tmp/a1.png" "$tmp/a1-1.png" && bad "the two images of a batch are the same"

"$tmp/t2i" --prompt "a red cube on a table" --seed 1235 --quiet --out "$tmp/other.png" || bad "seed 1235 failed"
cmp -s "$tmp/a1.png" "$tmp/other.png" && bad "seeds 1234 and 1235 gave the same image"

# img2img from the first image
run i1 1 --init-image "$tmp/a1.png" --strength 0.6
run i2 2 --init-image "$tmp/a1.png" --strength 0.6
same "$tmp/i1.png" "$tmp/i2.png" "img2img image"
same "$tmp/i1.safetensors" "$tmp/i2.safetensors" "img2img latents"

[ $fail -eq 0 ] && echo "determinism: all checks passed"
exit $fail
