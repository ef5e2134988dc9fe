#!/usr/bin/env bash
# The main job on the embedded default model: make the tiny random model,
# compile it into a standalone text-to-image executable, run it.
# Usage: examples/demo.sh [BUILD_DIR]   (default: build)
set -euo pipefail
build=${1:-build}
sdc="$build/sdc"
[ -x "$sdc" ] || { echo "demo: $sdc not found: build sdc first (cmake -S . -B $build && cmake --build $build)"; exit 1; }
model="$build/demo/tiny-sd"
[ -d "$model" ] || "$sdc" random-model tiny -o "$model" --seed 0
"$sdc" compile "$model" --width 64 --height 64 --steps 10 --sampler euler_a --guidance 7.5 -o "$build/demo/tiny-t2i"
"$build/demo/tiny-t2i" --prompt "a photo of a cat" --seed 0 --out "$build/demo/cat.png"
echo "demo: wrote $build/demo/cat.png (random weights: the image is noise, but the whole pipeline ran)"
