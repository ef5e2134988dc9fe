#!/usr/bin/env bash
# The README's first command ends in examples/demo.sh: it must run on a
# fresh build and write its 64x64 PNG.
set -u
sdc=$1 src=$2 bin=$3
rm -rf "$bin/demo"
out=$("$src/examples/demo.sh" "$bin" 2>&1) || { echo "FAIL: examples/demo.sh: $out" | tail -5; exit 1; }
png=$bin/demo/cat.png
python3 - "$png" <<'PY' || { echo "FAIL: $png is not a 64x64 RGB PNG"; exit 1; }
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n' and d[12:16] == b'IHDR', 'not a PNG'
w, h, depth, color = struct.unpack('>IIBB', d[16:26])
assert (w, h, depth, color) == (64, 64, 8, 2), (w, h, depth, color)
PY
echo "ok: examples/demo.sh wrote a 64x64 PNG"
