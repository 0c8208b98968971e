#!/usr/bin/env python3
"""Reads a dense checkpoint written by `ticket` with the reference reader
(benches/ticket_reader.py, written from docs/FORMAT.md) and with the Python `safetensors`
package, and asserts (exit status 1 when a check fails) that both see the same tensors, that
every weighted layer of the graph has its weight, bias and mask in the documented dtype and
shape, that masks hold only 0 and 1 and pruned weights are 0.0, and that the forward pass gives
finite logits of the right shape. Any graph, both format versions.

    python benches/read_dense_checkpoint.py runs/interop/final.safetensors
"""
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ticket_reader  # noqa: E402


def check(ok, message):
    if not ok:
        sys.exit(f"FAILED: {message}")


def main(path):
    try:
        model = ticket_reader.load_dense(path)
    except ticket_reader.FormatError as e:
        sys.exit(f"FAILED: {e}")
    tensors = load_file(path)
    names = {w["name"] for w in model.graph.weighted}
    expected = {f"{n}.{t}" for n in names for t in ("weight", "bias", "weight_mask")}
    has_masks = any(k.endswith(".weight_mask") for k in tensors)
    if not has_masks:
        expected = {k for k in expected if not k.endswith("_mask")}
    check(expected <= set(tensors), f"missing tensors {sorted(expected - set(tensors))}")
    kept = total = 0
    for w, matrix, bias in zip(model.graph.weighted, model.weights, model.biases):
        name = w["name"]
        weight, b = tensors[f"{name}.weight"], tensors[f"{name}.bias"]
        mask = tensors.get(f"{name}.weight_mask", np.ones(weight.shape, np.uint8))
        check(weight.dtype == np.float32 and list(weight.shape) == w["dims"],
              f"{name}.weight is {weight.dtype} {weight.shape}, expected F32 {w['dims']}")
        check(b.dtype == np.float32 and b.shape == (w["rows"],), f"{name}.bias is {b.shape}")
        check(mask.dtype == np.uint8 and mask.shape == weight.shape, f"{name} mask shape")
        check(set(np.unique(mask).tolist()) <= {0, 1}, f"{name}: mask values other than 0, 1")
        check(np.all(weight[mask == 0] == 0.0), f"{name}: a pruned weight is not zero")
        check(np.array_equal(matrix, (weight * mask).reshape(w["rows"], w["cols"])),
              f"{name}: the reference reader's weights differ from the safetensors package's")
        check(np.array_equal(bias, b), f"{name}: biases differ")
        kept += int(mask.sum())
        total += mask.size
        print(f"{name}: weight {'x'.join(map(str, w['dims']))}, bias {b.shape[0]}, "
              f"kept {int(mask.sum())}/{mask.size}")
    x = np.random.default_rng(0).random([4] + model.graph.input, dtype=np.float32)
    logits = model.logits(x)
    classes = model.graph.shapes[-1][0]
    check(logits.shape == (4, classes) and np.all(np.isfinite(logits)), "logits")
    meta = model.meta
    print(f"{path}: {meta['format']} v{meta['format_version']}, input {model.graph.input}, "
          f"{classes} classes, iteration {meta['iteration']}, dataset {meta['dataset']}, "
          f"seed {meta['seed']}, {kept}/{total} weights kept ({100 * kept / total:.1f}%) - OK")


if __name__ == "__main__":
    main(sys.argv[1])
