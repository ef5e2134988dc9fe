#!/usr/bin/env bash
# Every .ir file in the repo prints and parses back to the same text:
# print(parse(print(g))) == print(g).  Files of error tests (RUN-FAIL) are
# meant not to parse and are skipped.
set -u
sdc=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 fail=0
while IFS= read -r f; do
  grep -q '^# RUN-FAIL:' "$f" && continue
  n=$((n + 1))
  if ! "$sdc" opt "$f" --passes= > "$tmp/a.ir" 2> "$tmp/err"; then
    echo "FAIL: $f does not parse: $(cat "$tmp/err")"; fail=1; continue
  fi
  "$sdc" opt "$tmp/a.ir" --passes= > "$tmp/b.ir" || { echo "FAIL: printed $f does not parse"; fail=1; continue; }
  cmp -s "$tmp/a.ir" "$tmp/b.ir" || { echo "FAIL: $f does not round-trip"; diff "$tmp/a.ir" "$tmp/b.ir" | head; fail=1; }
done < <(find "$src" -name '*.ir' -not -path '*/build*' -not -path '*/.git/*')
[ $n -gt 0 ] || { echo "no .ir files found under $src"; exit 1; }
echo "$n files checked"
exit $fail
