#!/usr/bin/env bash
# sdc compile / sdc run end to end on a random tiny model: an executable
# with its weights file, one with the weights embedded, the run cache, the
# pipeline printout, --print-ir-after, and the executable's --bench report.
set -u
sdc=$1
. "$(dirname "$0")/../cli_lib.sh"

"$sdc" random-model tiny -o "$tmp/m" --seed 1 --quiet || { echo "FAIL: random-model"; exit 1; }
check "compile writes EXE and EXE.weights" \
  '"$sdc" compile "$tmp/m" --width 32 --height 32 --steps 2 --quiet -o "$tmp/t2i" && [ -x "$tmp/t2i" ] && [ -s "$tmp/t2i.weights" ]'
check "the executable writes a PNG" '"$tmp/t2i" --prompt "a cat" --quiet --out "$tmp/a.png" && [ -s "$tmp/a.png" ]'
check "the PNG carries the parameters" 'grep -a -q "a cat" "$tmp/a.png"'
check "--weights PATH overrides the sidecar" \
  'mv "$tmp/t2i.weights" "$tmp/w" && "$tmp/t2i" --prompt "a cat" --quiet --weights "$tmp/w" --out "$tmp/b.png" && cmp -s "$tmp/a.png" "$tmp/b.png"'
check "a missing weights file is one clear error" \
  '! "$tmp/t2i" --prompt x --quiet --out "$tmp/c.png" 2> "$tmp/err" && [ $(wc -l < "$tmp/err") = 1 ] && grep -q weights "$tmp/err" && [ ! -e "$tmp/c.png" ]'
check "--embed-weights needs no sidecar" \
  '"$sdc" compile "$tmp/m" --width 32 --height 32 --steps 2 --embed-weights --quiet -o "$tmp/emb" && [ ! -e "$tmp/emb.weights" ] && "$tmp/emb" --prompt "a cat" --quiet --out "$tmp/e.png" && cmp -s "$tmp/a.png" "$tmp/e.png"'
check "--bench prints a JSON report" \
  '"$tmp/emb" --prompt "a cat" --bench 1 --quiet > "$tmp/bench.json" && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"unet_step_s\"][\"mean\"] > 0 and d[\"peak_rss_bytes\"] > 0 and d[\"image_checksum\"]" "$tmp/bench.json"'
check "--print-pipeline prints the default pipeline" '"$sdc" compile --print-pipeline | grep -q attention-fusion'
check "--print-ir-after prints the IR" \
  '"$sdc" compile "$tmp/m" --width 32 --height 32 --steps 2 --quiet --print-ir-after=attention-fusion -o "$tmp/p" | grep -q "^# IR after attention-fusion"'
export XDG_CACHE_HOME=$tmp/cache
check "sdc run compiles into the cache and runs" \
  '"$sdc" run "$tmp/m" --prompt "a cat" --width 32 --height 32 --steps 2 --quiet --out "$tmp/r1.png" && [ -s "$tmp/r1.png" ] && [ -n "$(ls "$tmp/cache/sdc")" ]'
check "sdc run reuses the cached executable" \
  '"$sdc" run "$tmp/m" --prompt "a cat" --width 32 --height 32 --steps 2 --out "$tmp/r2.png" 2>&1 | grep -q "cached" && cmp -s "$tmp/r1.png" "$tmp/r2.png"'
check "compile refuses an unknown sampler with one line" \
  '! "$sdc" compile "$tmp/m" --sampler foo -o "$tmp/x" 2> "$tmp/err" && [ $(wc -l < "$tmp/err") = 1 ] && grep -q -- "--sampler" "$tmp/err" && [ ! -e "$tmp/x" ]'
exit $fail
