#!/usr/bin/env bash
# sdc random-model from the command line: a tiny model folder is written,
# imports (sdc stats binds every tensor), is reproducible from its seed, is
# never written over without --force, and bad arguments give exit status 1
# with one line on stderr and no folder.
# usage: random_model.sh SDC_BINARY SOURCE_DIR BINARY_DIR
set -u
sdc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# a folder, quietly
"$sdc" random-model tiny -o "$tmp/m" --quiet > "$tmp/out" 2> "$tmp/err" || bad "tiny -o DIR failed: $(cat "$tmp/err")"
[ -s "$tmp/err" ] && bad "--quiet still printed: $(cat "$tmp/err")"
for f in model_index.json scheduler/scheduler_config.json unet/config.json unet/diffusion_pytorch_model.safetensors \
         vae/config.json vae/diffusion_pytorch_model.safetensors text_encoder/config.json \
         text_encoder/model.safetensors tokenizer/vocab.json tokenizer/merges.txt \
         tokenizer/tokenizer_config.json tokenizer/special_tokens_map.json; do
  [ -s "$tmp/m/$f" ] || bad "missing $f"
done
ls "$tmp" | grep -q '\.tmp\.' && bad "a temporary folder was left behind"
"$sdc" stats "$tmp/m" > "$tmp/stats" 2>&1 || bad "sdc stats on the random model: $(cat "$tmp/stats")"
grep -q '1427012 parameters' "$tmp/stats" || bad "unexpected unet size: $(cat "$tmp/stats")"
sum_m=$(cat "$tmp"/m/*/*.safetensors | cksum)

# a second run into the same folder is refused, and touches nothing
if "$sdc" random-model tiny -o "$tmp/m" --seed 3 > "$tmp/out" 2> "$tmp/err"; then
  bad "writing into a non-empty folder succeeded"
else
  [ $? -eq 1 ] || bad "refusal exit status is not 1"
  [ "$(wc -l < "$tmp/err")" -eq 1 ] || bad "refusal is not one line: $(cat "$tmp/err")"
  grep -q 'not empty' "$tmp/err" || bad "refusal does not say why: $(cat "$tmp/err")"
fi
[ "$(cat "$tmp"/m/*/*.safetensors | cksum)" = "$sum_m" ] || bad "the refused run changed the folder"

# progress on stderr when not quiet; --force replaces a model folder; same seed, same bytes
"$sdc" random-model tiny -o "$tmp/m" --force 2> "$tmp/err" || bad "--force failed: $(cat "$tmp/err")"
grep -q 'unet.*MB' "$tmp/err" || bad "no progress on stderr: $(cat "$tmp/err")"
[ "$(cat "$tmp"/m/*/*.safetensors | cksum)" = "$sum_m" ] || bad "same seed gave different weights"
"$sdc" random-model tiny -o "$tmp/s1" --seed 1 --quiet || bad "--seed 1 failed"
[ "$(cat "$tmp"/s1/*/*.safetensors | cksum)" != "$sum_m" ] || bad "another seed gave the same weights"

# f16 weights are half the size
"$sdc" random-model tiny -o "$tmp/h" --dtype f16 --quiet || bad "--dtype f16 failed"
s32=$(stat -c %s "$tmp/m/unet/diffusion_pytorch_model.safetensors")
s16=$(stat -c %s "$tmp/h/unet/diffusion_pytorch_model.safetensors")
[ $((s16 * 2)) -lt $((s32 + 100000)) ] && [ $((s16 * 2)) -gt $((s32 - 100000)) ] || bad "f16 file $s16 bytes, f32 $s32"

# a folder of configs gives the same model as the preset
"$sdc" random-model "$tmp/m" -o "$tmp/from-dir" --quiet || bad "config folder as source failed"
cmp -s "$tmp/m/unet/diffusion_pytorch_model.safetensors" "$tmp/from-dir/unet/diffusion_pytorch_model.safetensors" ||
  bad "config folder gave other unet weights"

# bad arguments: status 1, one line, nothing written
check_bad() {
  local what=$1; shift
  "$sdc" random-model "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  [ $rc -eq 1 ] || bad "$what: exit status $rc, not 1"
  [ "$(wc -l < "$tmp/err")" -eq 1 ] || bad "$what: not one line: $(cat "$tmp/err")"
  grep -q '^sdc: ' "$tmp/err" || bad "$what: message does not start with 'sdc: ': $(cat "$tmp/err")"
  [ -s "$tmp/out" ] && bad "$what: printed on stdout"
  [ -e "$tmp/x" ] && bad "$what: created the output folder"
  return 0
}
check_bad "--dtype f64" tiny -o "$tmp/x" --dtype f64
grep -q 'f64' "$tmp/err" || bad "--dtype message does not name the value"
check_bad "--seed abc" tiny -o "$tmp/x" --seed abc
grep -q -- '--seed' "$tmp/err" || bad "--seed message does not name the flag"
check_bad "unknown preset" sd99 -o "$tmp/x"
grep -q 'tiny, sd15, sd21' "$tmp/err" || bad "unknown preset message does not list the presets"
check_bad "missing -o" tiny
check_bad "unknown option" tiny -o "$tmp/x" --colour
check_bad "two sources" tiny sd15 -o "$tmp/x"

[ $fail -eq 0 ] && echo "random-model: all checks passed"
exit $fail
