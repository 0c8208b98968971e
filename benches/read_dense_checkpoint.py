#!/usr/bin/env python3
"""Reads a dense checkpoint written by `ticket` with the reference Python `safetensors`
package and checks it against the format in docs/FORMAT.md.

    python3 -m venv .venv && .venv/bin/pip install safetensors numpy
    .venv/bin/python benches/read_dense_checkpoint.py runs/interop/final.safetensors
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def main(path):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "ticket-dense", meta
    assert meta["format_version"].split(".")[0] == "1", meta
    sizes = [int(s) for s in meta["arch"].split("-")]
    tensors = load_file(path)
    kept = total = 0
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        w, b, m = (tensors[f"fc{i}.{n}"] for n in ("weight", "bias", "weight_mask"))
        assert w.dtype == np.float32 and w.shape == (fan_out, fan_in), (w.dtype, w.shape)
        assert b.dtype == np.float32 and b.shape == (fan_out,), (b.dtype, b.shape)
        assert m.dtype == np.uint8 and m.shape == w.shape, (m.dtype, m.shape)
        assert set(np.unique(m)) <= {0, 1}
        assert np.all(w[m == 0] == 0.0), "a pruned weight is not zero"
        kept += int(m.sum())
        total += m.size
        print(f"fc{i}: weight {w.shape} {w.dtype}, bias {b.shape}, kept {int(m.sum())}/{m.size}")
    print(f"{path}: arch {meta['arch']}, iteration {meta['iteration']}, dataset {meta['dataset']}, "
          f"seed {meta['seed']}, {kept}/{total} weights kept ({100 * kept / total:.1f}%) - OK")


if __name__ == "__main__":
    main(sys.argv[1])
