#!/usr/bin/env python3
"""Reads a CSR model written by `ticket export` with the reference Python `safetensors` package
into `scipy.sparse.csr_matrix`, checks it against docs/FORMAT.md, runs the forward pass on a few
inputs and prints the logits. Given the source dense checkpoint (--dense), it also runs the
masked dense model and prints the largest difference between the two sets of logits; given the
export's JSON report (--report), it checks the report's file sizes against the files.

    /work/venv/bin/python benches/read_csr_model.py model.safetensors \
        --dense runs/lenet/level_12/final.safetensors --report report.json
"""
import argparse
import json
import os

import numpy as np
import scipy.sparse
from safetensors import safe_open
from safetensors.numpy import load_file, save

INDEX_DTYPES = {np.dtype("<u2"): "U16", np.dtype("<u4"): "U32"}


def values(f, path, name, value_dtype):
    """The nonzero values as float32. numpy has no bfloat16, so BF16 goes through PyTorch."""
    if value_dtype == "bf16":
        with safe_open(path, framework="pt") as pt:
            return pt.get_tensor(name).float().numpy()
    return f.get_tensor(name).astype(np.float32)


class Model:
    def __init__(self, path):
        with safe_open(path, framework="numpy") as f:
            self.meta = meta = f.metadata()
            assert meta["format"] == "ticket-csr", meta
            assert meta["format_version"].split(".")[0] == "1", meta
            self.layers = []
            for name in meta["layers"].split(","):
                indptr = f.get_tensor(f"{name}.weight.indptr")
                indices = f.get_tensor(f"{name}.weight.indices")
                vals = values(f, path, f"{name}.weight.values", meta["value_dtype"])
                rows, cols = f.get_tensor(f"{name}.weight.shape").tolist()
                bias = f.get_tensor(f"{name}.bias")
                assert indptr.dtype == np.uint32 and indptr.shape == (rows + 1,)
                want_index = "U16" if cols <= 65536 else "U32"
                assert INDEX_DTYPES[indices.dtype] == want_index, (name, indices.dtype)
                assert indptr[0] == 0 and indptr[-1] == len(indices) == len(vals)
                assert bias.dtype == np.float32 and bias.shape == (rows,)
                for r in range(rows):
                    row = indices[indptr[r]:indptr[r + 1]].astype(np.int64)
                    assert np.all(np.diff(row) > 0) and (len(row) == 0 or row[-1] < cols)
                matrix = scipy.sparse.csr_matrix(
                    (vals, indices, indptr), shape=(rows, cols))
                self.layers.append((name, matrix, bias))
                print(f"{name}: {rows}x{cols}, {matrix.nnz} kept, indices {indices.dtype}, "
                      f"values {meta['value_dtype']}")

    def logits(self, x):
        """x [batch, inputs] -> logits [batch, outputs]: W x + b per layer, ReLU between."""
        for i, (_, w, b) in enumerate(self.layers):
            x = np.asarray(w @ x.T).T + b
            if i + 1 < len(self.layers):
                x = np.maximum(x, 0)
        return x


def dense_logits(path, x):
    t = load_file(path)
    n = len([k for k in t if k.endswith(".bias")])
    for i in range(1, n + 1):
        w = t[f"fc{i}.weight"] * t.get(f"fc{i}.weight_mask", 1)
        x = x @ w.T + t[f"fc{i}.bias"]
        if i < n:
            x = np.maximum(x, 0)
    return x, {k: v for k, v in t.items() if not k.endswith("_mask")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dense", help="the source dense checkpoint, to compare logits with")
    p.add_argument("--report", help="JSON of `ticket export --json`, to check its file sizes")
    p.add_argument("--inputs", type=int, default=8)
    args = p.parse_args()
    model = Model(args.model)
    inputs = int(model.meta["arch"].split("-")[0])
    x = np.random.default_rng(0).random((args.inputs, inputs), dtype=np.float32)
    sparse = model.logits(x)
    np.set_printoptions(precision=4, suppress=True, linewidth=120)
    print(f"logits of {args.inputs} random inputs in [0, 1) (first 3):\n{sparse[:3]}")
    if args.dense:
        dense, weights = dense_logits(args.dense, x)
        diff = np.abs(sparse - dense).max()
        agree = (sparse.argmax(1) == dense.argmax(1)).mean()
        print(f"sparse ({model.meta['value_dtype']}) vs masked dense f32: max abs logit difference "
              f"{diff:.3g}, max |logit| {np.abs(dense).max():.3g}, argmax agreement {agree:.0%}")
    if args.report:
        with open(args.report) as f:
            report = json.load(f)["total"]
        size = os.path.getsize(args.model)
        assert report["csr_file_bytes"] == size, (report["csr_file_bytes"], size)
        print(f"report: CSR file {size} bytes - matches the file")
        if args.dense:
            dense_size = len(save(weights))
            assert report["dense_file_bytes"] == dense_size, (report["dense_file_bytes"], dense_size)
            print(f"report: dense f32 file {dense_size} bytes - matches safetensors.numpy.save")


if __name__ == "__main__":
    main()
