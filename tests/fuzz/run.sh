#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang-14 in
# build-fuzz/ and runs each for SECONDS seconds, one after the other.
#
# usage: tests/fuzz/run.sh SECONDS [TARGET...]     (from anywhere; default: all targets)
#
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>/,
# read only) and keeps what it learns in build-fuzz/corpus/<target>/, so a
# second run goes on from there.  A crash, a leak, a sanitizer report, a
# timeout (25 s for one input) or running out of memory (2 GiB) stops that
# target and fails the script; the input is saved as
# build-fuzz/crashes/<target>-crash-<sha1>.  To turn it into a regression
# test: fix the bug, then
#     cp build-fuzz/crashes/<target>-crash-<sha1> tests/fuzz/corpus/<target>/crash-<what-it-was>
# ctest's fuzz_replay.<target> feeds every file there to the same code in
# every build (tests/fuzz/replay_main.c).
set -u
secs=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang-14}
command -v "$CC" > /dev/null || { echo "fuzz: $CC not found (.ci/setup installs clang-14)"; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi
mkdir -p build-fuzz/crashes
log=build-fuzz/build.log
cmake -S . -B build-fuzz -DSDC_FUZZ=ON -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo > $log 2>&1 ||
  { cat $log; exit 1; }
cmake --build build-fuzz -j"${JOBS:-2}" --target "${targets[@]/#/fuzz_}" >> $log 2>&1 || { tail -30 $log; exit 1; }
failed=()
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  echo "fuzz: $t for ${secs}s"
  # leaks are errors (LeakSanitizer at the end of each run), like everywhere else
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  "build-fuzz/tests/fuzz_$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/crashes/$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
    > "build-fuzz/$t.log" 2>&1
  rc=$?
  grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "build-fuzz/$t.log" | tail -2 | sed "s/^/fuzz: $t: /"
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc); the end of build-fuzz/$t.log:"
    grep -v '^#[0-9]' "build-fuzz/$t.log" | tail -40
    ls build-fuzz/crashes/"$t"-* 2> /dev/null | sed 's/^/fuzz: input: /'
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s), ${secs}s each, no crash"
