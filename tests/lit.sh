#!/usr/bin/env bash
# lit.sh FILE SDC FILECHECK — runs the "# RUN:" lines of a golden-text test.
#
# In a RUN line, %s is the test file, %t a fresh temporary folder, "sdc" the
# built binary and "FileCheck" LLVM's FileCheck.  Each RUN line must succeed (pipefail); a
# line starting "# RUN-FAIL:" must exit non-zero (its stderr can be piped
# into FileCheck with 2>&1).
set -u
file=$1 sdc=$2 filecheck=$3
[ -x "$filecheck" ] || { echo "lit.sh: FileCheck not found (install llvm-14-tools)"; exit 1; }
n=0
tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
while IFS= read -r line; do
  case "$line" in
    "# RUN:"*) mode=pass; cmd=${line#"# RUN:"} ;;
    "# RUN-FAIL:"*) mode=fail; cmd=${line#"# RUN-FAIL:"} ;;
    *) continue ;;
  esac
  n=$((n + 1))
  cmd=${cmd//%s/$file}
  cmd=${cmd//%t/$tmpdir}
  cmd=$(printf '%s' "$cmd" | sed -E "s#(^ *|[|;(] *)sdc #\1$sdc #g; s#FileCheck#$filecheck#g")
  if [ $mode = pass ]; then
    bash -o pipefail -c "$cmd" || { echo "FAILED: $cmd"; exit 1; }
  else
    # the failing command is the part before the first pipe; its status decides
    first=${cmd%%|*}
    rest=${cmd#"$first"}
    out=$(bash -c "$first" 2>&1) && { echo "expected failure, got success: $first"; exit 1; }
    if [ -n "$rest" ]; then
      printf '%s\n' "$out" | bash -o pipefail -c "cat ${rest}" || { echo "FAILED: $cmd"; exit 1; }
    fi
  fi
done < "$file"
[ $n -gt 0 ] || { echo "lit.sh: no RUN lines in $file"; exit 1; }
echo "ok: $n RUN line(s)"
