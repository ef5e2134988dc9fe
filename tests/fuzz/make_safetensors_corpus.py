#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors.c: tiny valid and invalid files.

Usage: python3 tests/fuzz/make_safetensors_corpus.py tests/fuzz/corpus/safetensors
"""
import struct, json, sys, os
out = sys.argv[1]
def f(name, header, data, pad=True):
    h = header.encode() if isinstance(header, str) else header
    if pad: h += b' ' * ((8 - len(h) % 8) % 8)
    open(os.path.join(out, name), 'wb').write(struct.pack('<Q', len(h)) + h + data)
def hdr(d): return json.dumps(d, separators=(',', ':'))
# valid: every computable dtype, metadata, scalar, empty tensor
data = struct.pack('<2f', 1.5, -2.0) + struct.pack('<2H', 0x3C00, 0xC000) + struct.pack('<2H', 0x3F80, 0x4040) \
     + struct.pack('<i', -7) + struct.pack('<q', 1 << 40)
f('valid_all_dtypes', hdr({"__metadata__": {"format": "pt"},
    "w": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
    "h": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]},
    "b": {"dtype": "BF16", "shape": [2], "data_offsets": [12, 16]},
    "i": {"dtype": "I32", "shape": [], "data_offsets": [16, 20]},
    "l": {"dtype": "I64", "shape": [1], "data_offsets": [20, 28]},
    "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [28, 28]}}), data)
# valid: unpadded header, odd data offsets, a dtype sdc does not compute in
f('valid_unaligned_other', hdr({"u": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
    "h": {"dtype": "F16", "shape": [2], "data_offsets": [3, 7]}}), b'\x01\x02\x03\x00\x3c\x00\xc0', pad=False)
# valid: empty
f('valid_empty', '{}', b'')
# invalid: overlap
f('bad_overlap', hdr({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}), bytes(12))
# invalid: duplicate names (json.dumps cannot write them)
f('bad_duplicate', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8))
# invalid: size mismatch and a header length beyond the file
f('bad_size', hdr({"conv.weight": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 100]}}), bytes(100))
open(os.path.join(out, 'bad_header_length'), 'wb').write(struct.pack('<Q', 1000) + b'{}')
