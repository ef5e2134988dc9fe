#!/usr/bin/env bash
# The bad-input suite: every case of tests/bad_input/cases.tsv (a bad config,
# weights file, IR text, tokenizer file, PNG or flag) must fail cleanly: exit
# status 1, one line on stderr containing the expected text (which names the
# file and the field or flag), nothing on stdout, no output file and no
# temporary file left.  A crash, a sanitizer report or a second line fails
# the case.  The inputs are made here from a tiny random model by mutation
# (tests/bad_input/mutate.py), so nothing large is committed.
#
# usage: bad_input.sh SDC_BINARY SOURCE_DIR BINARY_DIR [CASE_NAME_REGEX]
set -u
SDC=$(realpath "$1")
src=$(realpath "$2")
only=${4:-}
table=$src/tests/bad_input/cases.tsv
command -v python3 > /dev/null || { echo "python3 is needed to make the bad inputs: skipped"; exit 77; }
W=$(mktemp -d)
trap 'chmod -R u+w "$W" 2> /dev/null; rm -rf "$W"' EXIT
BASE=$W/base
EXE=$BASE/t2i
mkdir -p "$BASE"
mut() { python3 "$src/tests/bad_input/mutate.py" "$@"; }
compile_m() { "$SDC" compile m -o out/t2i --width 64 --height 64 --steps 2 --quiet "$@"; }

# the good inputs every case starts from
"$SDC" random-model tiny -o "$BASE/m" --quiet || { echo "FAIL: sdc random-model tiny"; exit 1; }
"$SDC" compile "$BASE/m" -o "$EXE" --width 64 --height 64 --steps 2 --quiet || { echo "FAIL: sdc compile"; exit 1; }
mut png "$BASE/in64.png" 64 64
printf 'graph @g {\n  %%x = input : f32[2]\n  %%y = silu(%%x) : f32[2]\n  return %%y\n}\n' > "$BASE/good.ir"
printf 'graph @g {\n  %%x = const dense(1, 2) : f32[2]\n  %%y = silu(%%x) : f32[2]\n  return %%y\n}\n' > "$BASE/const.ir"
"$EXE" --prompt ok --out "$W/ok.png" --quiet || { echo "FAIL: the good executable does not run"; exit 1; }
base_files=$(cd "$BASE" && find . | sort)

n=0 failed=0
declare -A seen
while IFS=$'\t' read -r name prep cmd expect extra; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  if [[ -z "$expect" || -n "${extra:-}" ]]; then
    echo "FAIL: $name: a case needs exactly four tab-separated columns"; failed=$((failed + 1)); continue
  fi
  [[ -n "${seen[$name]:-}" ]] && { echo "FAIL: $name: the name is used twice"; failed=$((failed + 1)); }
  seen[$name]=1
  [[ -n "$only" && ! "$name" =~ $only ]] && continue
  n=$((n + 1))
  C=$W/cases/$name
  mkdir -p "$C/out"
  cp -r "$BASE/m" "$C/m"
  why=""
  if [[ "$prep" != "-" ]] && ! (cd "$C" && eval "$prep") > "$C/prep.log" 2>&1; then
    why="preparation failed: $(head -3 "$C/prep.log")"
  else
    (cd "$C" && eval "$cmd") > "$C/stdout" 2> "$C/stderr"
    rc=$?
    lines=$(wc -l < "$C/stderr")
    if [[ $rc -ne 1 ]]; then why="exit status $rc, not 1"
    elif [[ $lines -ne 1 || $(wc -c < "$C/stderr") -ne $(head -1 "$C/stderr" | wc -c) ]]; then
      why="stderr is $lines lines, not one"
    elif ! grep -qF -- "$expect" "$C/stderr"; then why="the message does not contain: $expect"
    elif [[ -s "$C/stdout" ]]; then why="printed on stdout: $(head -c 200 "$C/stdout")"
    elif [[ -n "$(ls -A "$C/out")" ]]; then why="left in out/: $(ls -A "$C/out" | tr '\n' ' ')"
    fi
  fi
  left=$(find "$C" "$BASE" -name '*.tmp*' | head -3)
  [[ -z "$why" && -n "$left" ]] && why="left a temporary file: $left"
  [[ -z "$why" && "$(cd "$BASE" && find . | sort)" != "$base_files" ]] && why="changed the shared files in $BASE"
  if [[ -n "$why" ]]; then
    failed=$((failed + 1))
    echo "FAIL: $name: $why"
    echo "      command: $cmd"
    sed 's/^/      stderr: /' "$C/stderr" 2> /dev/null | head -5
  fi
  rm -rf "$C"
done < "$table"

[[ $n -ge 1 ]] || { echo "no case ran"; exit 1; }
echo "bad input: $((n - failed)) of $n cases passed"
[[ $failed -eq 0 ]]
