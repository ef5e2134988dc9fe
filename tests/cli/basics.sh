#!/usr/bin/env bash
# The CLI's plumbing: sdc version, --help on every command, sdc opt --timing
# and --print-ir-after=all, sdc import --emit-ir (its IR parses back), and
# the fp16 variant file names of a diffusers folder.
set -u
sdc=$1
. "$(dirname "$0")/../cli_lib.sh"

check "sdc version prints a version" '"$sdc" version | grep -qE "^sdc [0-9]+\.[0-9]+\.[0-9]+"'
cmds=$("$sdc" --help | awk '/^commands:/ {on = 1; next} on && NF {print $1}')
[ -n "$cmds" ] || { echo "FAIL: sdc --help lists no commands"; exit 1; }
for c in $cmds; do
  check "sdc $c --help: exit 0 and a usage line" '"$sdc" $c --help > "$tmp/h" 2>&1 && grep -q "^usage: sdc $c" "$tmp/h"'
done
check "an unknown command is one line and exit 1" \
  '"$sdc" frobnicate 2> "$tmp/e"; [ $? = 1 ] && [ $(wc -l < "$tmp/e") = 1 ] && grep -q frobnicate "$tmp/e"'

cat > "$tmp/g.ir" <<'IR'
graph @g {
  %x = input : f32[1,4]
  %r = reshape(%x) {shape=[1,4]} : f32[1,4]
  %a = silu(%r) : f32[1,4]
  %b = silu(%r) : f32[1,4]
  %c = add(%a, %b) : f32[1,4]
  %d = silu(%x) : f32[1,4]
  return %c
}
IR
"$sdc" opt "$tmp/g.ir" --passes=canonicalize,cse,dce --timing > "$tmp/o.ir" 2> "$tmp/t"
check "--timing names every pass with its time" \
  '[ $(grep -cE "^pass (canonicalize|cse|dce) +[0-9.]+ ms" "$tmp/t") = 3 ] && grep -qE "^pass \(total\)" "$tmp/t"'
check "--timing shows what each pass changed" \
  'grep -qE "^pass cse .*merged=2" "$tmp/t" && grep -qE "^pass dce .*removed=1" "$tmp/t"'
check "and the passes did it" '! grep -q "%b = " "$tmp/o.ir" && ! grep -q "%d = " "$tmp/o.ir" && ! grep -q reshape "$tmp/o.ir"'
"$sdc" opt "$tmp/g.ir" --passes=canonicalize,cse,dce --print-ir-after=all > /dev/null 2> "$tmp/p"
check "--print-ir-after=all prints the graph after each pass" '[ $(grep -c "^graph @g" "$tmp/p") = 3 ]'

"$sdc" random-model tiny -o "$tmp/m" --seed 2 --quiet || { echo "FAIL: random-model"; exit 1; }
check "sdc import --emit-ir prints IR that sdc opt parses back" \
  '"$sdc" import "$tmp/m" --component vae-decoder --width 64 --height 64 --emit-ir > "$tmp/v.ir" &&
   "$sdc" opt "$tmp/v.ir" --passes= > /dev/null'
# the fp16 variant: diffusion_pytorch_model.fp16.safetensors next to (or instead of) the plain file
u=$tmp/m/unet
mv "$u/diffusion_pytorch_model.safetensors" "$u/diffusion_pytorch_model.fp16.safetensors"
check "a folder with only the fp16 variant imports" '"$sdc" stats "$tmp/m" --component unet --width 64 --height 64 > /dev/null'
head -c 100 "$u/diffusion_pytorch_model.fp16.safetensors" > "$u/diffusion_pytorch_model.safetensors"
check "the plain file is preferred (here truncated: its error names it)" \
  '! "$sdc" stats "$tmp/m" --component unet --width 64 --height 64 2> "$tmp/e" > /dev/null &&
   grep -q "unet/diffusion_pytorch_model.safetensors" "$tmp/e"'
check "--variant fp16 takes the variant" \
  '"$sdc" stats "$tmp/m" --component unet --width 64 --height 64 --variant fp16 > /dev/null'
exit $fail
