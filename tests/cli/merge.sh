#!/usr/bin/env bash
# sdc merge from the command line: what a merge writes (a folder with A's
# configs, tokenizer and scheduler; or one file), that inputs are never
# touched or overwritten, and that every misuse — incompatible models,
# unknown LoRA keys, contradictory flags — exits with status 1 and one line
# that says what is wrong, leaving nothing behind.  The numbers are checked
# in tests/unit/test_merge.c and test_lora.c.
# usage: merge.sh SDC_BINARY SOURCE_DIR BINARY_DIR
set -u
sdc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$sdc" random-model tiny -o "$tmp/A" --seed 1 --quiet || { echo "cannot make a model"; exit 1; }
"$sdc" random-model tiny -o "$tmp/B" --seed 2 --quiet || exit 1
sum_a=$(cat "$tmp"/A/*/* | cksum)

# the help names every mode
"$sdc" merge --help > "$tmp/help" || bad "merge --help failed"
for w in --with --minus --alpha --mbw --base-alpha --lora --rank --dtype; do
  grep -q -- "$w" "$tmp/help" || bad "merge --help does not mention $w"
done
"$sdc" compile --print-pipeline | grep -q 'fold-lora' || bad "the default pipeline does not show fold-lora"
"$sdc" passes 2>&1 | grep -q 'fold-lora' || bad "sdc passes does not list fold-lora"

# a folder: every file of A, merged weights, progress on stderr
"$sdc" merge "$tmp/A" --with "$tmp/B" --alpha 0.25 -o "$tmp/M" 2> "$tmp/err" || bad "weighted sum failed: $(cat "$tmp/err")"
grep -q 'wrote' "$tmp/err" || bad "no summary on stderr: $(cat "$tmp/err")"
(cd "$tmp/A" && find . -type f | sort) > "$tmp/files_a"
(cd "$tmp/M" && find . -type f | sort) > "$tmp/files_m"
cmp -s "$tmp/files_a" "$tmp/files_m" || bad "the merged folder has other files: $(diff "$tmp/files_a" "$tmp/files_m")"
cmp -s "$tmp/A/unet/config.json" "$tmp/M/unet/config.json" || bad "unet/config.json not copied from A"
cmp -s "$tmp/A/unet/diffusion_pytorch_model.safetensors" "$tmp/M/unet/diffusion_pytorch_model.safetensors" &&
  bad "the merged UNet is A's"
"$sdc" stats "$tmp/M" > /dev/null 2>&1 || bad "the merged folder does not import"
ls "$tmp" | grep -q '\.tmp\.' && bad "a temporary output was left behind"

# a single file next to its config overrides, importable
"$sdc" merge "$tmp/A" --with "$tmp/B" --alpha 0.25 -o "$tmp/m.safetensors" --quiet 2> "$tmp/err" ||
  bad "single-file output failed: $(cat "$tmp/err")"
[ -s "$tmp/m.config.json" ] || bad "no m.config.json next to the single file"
"$sdc" stats "$tmp/m.safetensors" > /dev/null 2> "$tmp/err" || bad "the single file does not import: $(cat "$tmp/err")"

# --force replaces an output, never anything else
"$sdc" merge "$tmp/A" --with "$tmp/B" --alpha 0.5 -o "$tmp/M" --force --quiet || bad "--force did not replace"
mkdir -p "$tmp/notmodel" && touch "$tmp/notmodel/keep"

check_bad() {
  local what=$1 needle=$2; shift 2
  "$sdc" merge "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  [ $rc -eq 1 ] || bad "$what: exit status $rc, not 1 ($(cat "$tmp/err"))"
  [ "$(wc -l < "$tmp/err")" -eq 1 ] || bad "$what: not one line: $(cat "$tmp/err")"
  grep -q '^sdc: ' "$tmp/err" || bad "$what: message does not start with 'sdc: ': $(cat "$tmp/err")"
  grep -q -- "$needle" "$tmp/err" || bad "$what: message does not say '$needle': $(cat "$tmp/err")"
  [ -e "$tmp/x" ] && bad "$what: wrote the output"
  ls "$tmp" | grep -q '\.tmp\.' && bad "$what: left a temporary output"
  return 0
}

# incompatible models: shapes (a wider MLP) and names (one layer fewer) differ
mkdir -p "$tmp/cfg_wide" "$tmp/cfg_short"
for c in unet vae text_encoder; do
  mkdir -p "$tmp/cfg_wide/$c" "$tmp/cfg_short/$c"
  cp "$tmp/A/$c/config.json" "$tmp/cfg_wide/$c/" && cp "$tmp/A/$c/config.json" "$tmp/cfg_short/$c/"
done
sed -i 's/"intermediate_size": 37/"intermediate_size": 41/' "$tmp/cfg_wide/text_encoder/config.json"
sed -i 's/"num_hidden_layers": 5/"num_hidden_layers": 4/' "$tmp/cfg_short/text_encoder/config.json"
"$sdc" random-model "$tmp/cfg_wide" -o "$tmp/W" --quiet || bad "cannot make the wide model"
"$sdc" random-model "$tmp/cfg_short" -o "$tmp/S" --quiet || bad "cannot make the short model"
check_bad "shapes differ" "shapes differ" "$tmp/A" --with "$tmp/W" --alpha 0.5 -o "$tmp/x"
grep -q 'text_encoder/text_model.encoder.layers.0.mlp.fc1.weight \[37, 32\] vs \[41, 32\]' "$tmp/err" ||
  bad "the shape message does not show the tensor and both shapes: $(cat "$tmp/err")"
check_bad "names differ" "tensors only in A" "$tmp/A" --with "$tmp/S" --alpha 0.5 -o "$tmp/x"
grep -q 'layers.4' "$tmp/err" || bad "the names message does not list a missing tensor: $(cat "$tmp/err")"
check_bad "C differs" "(C)" "$tmp/A" --with "$tmp/B" --minus "$tmp/W" --alpha 0.5 -o "$tmp/x"

# LoRA keys that fit nothing
python3 - "$tmp" <<'PY' || bad "cannot write the test LoRA"
import json, struct, sys
def write(path, tensors):
    header, data = {}, b""
    for name, shape in tensors:
        n = 1
        for d in shape: n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
        data += b"\0" * (4 * n)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
t = sys.argv[1]
write(t + "/unknown.safetensors", [("lora_unet_down_blocks_9_resnets_0_conv1.lora_down.weight", [4, 32, 3, 3]),
                                   ("lora_unet_down_blocks_9_resnets_0_conv1.lora_up.weight", [32, 4, 1, 1])])
write(t + "/good.safetensors", [("lora_unet_conv_in.lora_down.weight", [2, 4, 3, 3]),
                                ("lora_unet_conv_in.lora_up.weight", [32, 2, 1, 1])])
PY
check_bad "unknown LoRA key" "lora_unet_down_blocks_9_resnets_0_conv1" "$tmp/A" --lora "$tmp/unknown.safetensors" -o "$tmp/x"
"$sdc" merge "$tmp/A" --lora "$tmp/good.safetensors:0.5" -o "$tmp/L" --quiet 2> "$tmp/err" || bad "a LoCon on conv_in failed: $(cat "$tmp/err")"

# contradictory or missing flags
check_bad "nothing to merge" "nothing to merge" "$tmp/A" -o "$tmp/x"
check_bad "no output" "-o" "$tmp/A" --with "$tmp/B" --alpha 0.5
check_bad "--minus without --with" "--with" "$tmp/A" --minus "$tmp/B" --lora "$tmp/good.safetensors" -o "$tmp/x"
check_bad "--with without --alpha" "--alpha" "$tmp/A" --with "$tmp/B" -o "$tmp/x"
check_bad "--alpha without --with" "--alpha needs --with" "$tmp/A" --lora "$tmp/good.safetensors" --alpha 0.5 -o "$tmp/x"
check_bad "--rank with a model" "--rank" "$tmp/A" --lora "$tmp/good.safetensors" --rank 2 -o "$tmp/x"
check_bad "LoRA merge to a folder" ".safetensors" --lora "$tmp/good.safetensors" --lora "$tmp/good.safetensors" -o "$tmp/x"
check_bad "bad --dtype" "f64" "$tmp/A" --with "$tmp/B" --alpha 0.5 --dtype f64 -o "$tmp/x"
check_bad "missing model" "no such model" "$tmp/nothere" --with "$tmp/B" --alpha 0.5 -o "$tmp/x"
check_bad "mixed forms" "same form" "$tmp/A" --with "$tmp/m.safetensors" --alpha 0.5 -o "$tmp/x"
check_bad "existing output" "exists" "$tmp/A" --with "$tmp/B" --alpha 0.5 -o "$tmp/M"
check_bad "output inside an input" "input" "$tmp/A" --with "$tmp/B" --alpha 0.5 -o "$tmp/A/x" --force
check_bad "--force on a non-model" "not a model" "$tmp/A" --with "$tmp/B" --alpha 0.5 -o "$tmp/notmodel" --force
[ -e "$tmp/notmodel/keep" ] || bad "--force removed a folder that is not a model"

# compile --lora: the same checks on keys
"$sdc" compile "$tmp/A" --lora "$tmp/unknown.safetensors" --width 32 --height 32 --steps 1 -o "$tmp/x" --quiet 2> "$tmp/err"
[ $? -eq 1 ] && grep -q 'lora_unet_down_blocks_9_resnets_0_conv1' "$tmp/err" || bad "compile --lora: unknown key not refused: $(cat "$tmp/err")"

[ "$(cat "$tmp"/A/*/* | cksum)" = "$sum_a" ] || bad "an input changed"
[ $fail -eq 0 ] && echo "merge: all checks passed"
exit $fail
