#!/usr/bin/env python3
"""Makes the bad inputs of tests/bad_input/cases.tsv by mutating good files.

Usage: mutate.py OP FILE ARGS...   (paths relative to the current directory)

Every write goes to a new file that replaces FILE (os.replace), so FILE may
be a hard link into the pristine model the runner copied with `cp -al`:
the original is never changed.

  json FILE PATH VALUE        set a field; PATH is keys and [i] indices
                              ("down_block_types[1]"), VALUE is JSON text
  json-del FILE PATH          remove a field
  text FILE STRING            write STRING (Python escapes: \\n, \\x00, ...)
  st-truncate FILE N          keep the first N bytes (N < 0: drop -N bytes)
  st-hdrlen FILE N            set the 8-byte header length to N
  st-header FILE STRING       replace the JSON header by STRING
  st-set FILE T FIELD VALUE   set FIELD (dtype, shape, data_offsets) of
                              tensor T ("#k": the k-th in header order) to
                              the JSON VALUE
  st-del FILE T               remove tensor T's entry from the header
  st-overlap FILE             give a tensor the data_offsets of another of
                              the same byte size
  st-dup FILE                 rename a tensor to the name of another of the
                              same byte size (JSON text, so both entries stay)
  st-swap-shape FILE          reverse the shape of the first tensor with two
                              unequal dims (same byte count, wrong shape)
  png FILE W H [cut N]        an 8-bit RGB PNG, W x H; cut: keep N bytes
  png-header FILE W H         a PNG signature, an IHDR claiming W x H, no pixels
"""
import json
import os
import re
import struct
import sys
import zlib


def write(path, data):
    tmp = path + ".mutate-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def split_path(p):
    """'a.b[2]' -> ['a', 'b', 2]"""
    out = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", p):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def json_edit(path, key_path, value=None, delete=False):
    doc = json.loads(read(path))
    keys = split_path(key_path)
    node = doc
    for k in keys[:-1]:
        node = node[k]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = json.loads(value)
    write(path, json.dumps(doc, indent=2).encode())


def st_split(path):
    data = read(path)
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def st_join(path, header_text, body):
    h = header_text.encode() if isinstance(header_text, str) else header_text
    h += b" " * ((8 - len(h) % 8) % 8)
    write(path, struct.pack("<Q", len(h)) + h + body)


def tensor_names(header):
    return [k for k in header if k != "__metadata__"]


def pick(header, t):
    names = tensor_names(header)
    return names[int(t[1:])] if t.startswith("#") else t


def nbytes(e):
    return e["data_offsets"][1] - e["data_offsets"][0]


def same_size_pair(header):
    names = tensor_names(header)
    seen = {}
    for n in names:
        size = nbytes(header[n])
        if size > 0 and size in seen:
            return seen[size], n
        seen.setdefault(size, n)
    sys.exit("mutate.py: no two tensors of the same size")


def png_bytes(w, h):
    def chunk(kind, payload):
        c = kind + payload
        return struct.pack(">I", len(payload)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((x * 7 + y * 3) & 0xFF for x in range(w * 3)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main(argv):
    op, path, args = argv[0], argv[1], argv[2:]
    if op == "json":
        json_edit(path, args[0], args[1])
    elif op == "json-del":
        json_edit(path, args[0], delete=True)
    elif op == "text":
        write(path, args[0].encode("latin-1").decode("unicode_escape").encode("latin-1"))
    elif op == "st-truncate":
        data, n = read(path), int(args[0])
        write(path, data[:n] if n >= 0 else data[:n])
    elif op == "st-hdrlen":
        data = read(path)
        write(path, struct.pack("<Q", int(args[0])) + data[8:])
    elif op == "st-header":
        _, body = st_split(path)
        st_join(path, args[0], body)
    elif op == "st-set":
        header, body = st_split(path)
        header[pick(header, args[0])][args[1]] = json.loads(args[2])
        st_join(path, json.dumps(header), body)
    elif op == "st-del":
        header, body = st_split(path)
        del header[pick(header, args[0])]
        st_join(path, json.dumps(header), body)
    elif op == "st-overlap":
        header, body = st_split(path)
        a, b = same_size_pair(header)
        header[b]["data_offsets"] = list(header[a]["data_offsets"])
        st_join(path, json.dumps(header), body)
    elif op == "st-dup":
        header, body = st_split(path)
        a, b = same_size_pair(header)
        text = json.dumps(header)
        text = text.replace(json.dumps(b) + ":", json.dumps(a) + ":", 1)
        st_join(path, text, body)
    elif op == "st-swap-shape":
        header, body = st_split(path)
        for n in tensor_names(header):
            s = header[n]["shape"]
            if len(s) >= 2 and s[0] != s[-1]:
                header[n]["shape"] = s[::-1]
                break
        st_join(path, json.dumps(header), body)
    elif op == "png":
        data = png_bytes(int(args[0]), int(args[1]))
        if len(args) > 2 and args[2] == "cut":
            data = data[: int(args[3])]
        write(path, data)
    elif op == "png-header":
        ihdr = b"IHDR" + struct.pack(">IIBBBBB", int(args[0]), int(args[1]), 8, 2, 0, 0, 0)
        idat, iend = b"IDAT", b"IEND"  # empty: the reader stops at the header
        write(path, b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
              + struct.pack(">I", 0) + idat + struct.pack(">I", zlib.crc32(idat))
              + struct.pack(">I", 0) + iend + struct.pack(">I", zlib.crc32(iend)))
    else:
        sys.exit("mutate.py: unknown op " + op)


if __name__ == "__main__":
    main(sys.argv[1:])
