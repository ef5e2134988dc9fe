# tests/cli_lib.sh — what the tests/cli/*.sh scripts share; source it after
# setting sdc.  Gives $tmp (a folder removed at exit), $fail and
#   check "what" 'shell condition'   -> "ok: what" or "FAIL: what" (fail=1)
# A script ends with `exit $fail`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
