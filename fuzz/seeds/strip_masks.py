"""Copies a safetensors file without its `*_mask` tensors (stdlib only): a dense checkpoint as
PyTorch would save it, which the loader reads as "every weight kept".

usage: strip_masks.py IN OUT
"""
import json
import struct
import sys

src, dst = sys.argv[1], sys.argv[2]
buf = open(src, "rb").read()
(n,) = struct.unpack("<Q", buf[:8])
header = json.loads(buf[8 : 8 + n])
data = buf[8 + n :]
out_header, out_data = {"__metadata__": header.pop("__metadata__", {})}, b""
for name, info in sorted(header.items()):
    if name.endswith("_mask"):
        continue
    begin, end = info["data_offsets"]
    info["data_offsets"] = [len(out_data), len(out_data) + end - begin]
    out_data += data[begin:end]
    out_header[name] = info
text = json.dumps(out_header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + out_data)
