#!/usr/bin/env python3
"""Reads a CSR model written by `ticket export` into `scipy.sparse.csr_matrix` with the reference
reader (benches/ticket_reader.py, written from docs/FORMAT.md), cross-checks its tensors with
the Python `safetensors` package, runs it on random inputs and asserts (exit status 1 when a
check fails):

- with --dense (the source checkpoint): the CSR logits match the masked dense logits within the
  tolerance of the value dtype, and the argmax agrees on at least 99% of the inputs; for the
  lossy codecs (int8, kN) instead: the kept positions are the checkpoint's mask, every int8
  value is within half a step of its weight and every codebook value is the centroid nearest
  its weight;
- with --report (the JSON of `ticket export --json`): the report's byte counts are the file's
  (file size, header, every tensor of every layer) and its dense baseline is the size of the
  checkpoint's weights and biases saved by `safetensors.numpy.save`;
- with --ticket (the `ticket` binary): `ticket infer --input --output` gives the reader's logits.

Works for any graph (linear, conv2d, pools, flatten) and both format versions.

    python benches/read_csr_model.py model.safetensors --dense final.safetensors \
        --report report.json --ticket target/release/ticket
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ticket_reader  # noqa: E402

# Largest logit difference allowed, relative to max(1, largest |logit|) of the f64 reference:
# f32 values are the source weights, so only f32 rounding differs; f16 (11-bit
# significand) and bf16 (8-bit) round every weight once, by up to 2^-11 and 2^-8 relative.
TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 5e-2}
MIN_ARGMAX_AGREEMENT = 0.99


def check(ok, message):
    if not ok:
        sys.exit(f"FAILED: {message}")


def cross_check_with_safetensors(path, model):
    """The package's own reader gives the same arrays (BF16 has no numpy type: skipped)."""
    if model.meta["value_dtype"] == "bf16" or model.meta["format_version"] == "2.1":
        return
    with safe_open(path, framework="numpy") as f:
        check(f.metadata() == model.meta, "metadata differs from the safetensors package's")
        for w, matrix in zip(model.graph.weighted, model.weights):
            name = w["name"]
            check(np.array_equal(f.get_tensor(f"{name}.weight.indptr"), matrix.indptr),
                  f"{name}: indptr differs")
            check(np.array_equal(f.get_tensor(f"{name}.weight.indices"), matrix.indices),
                  f"{name}: indices differ")
            check(np.array_equal(f.get_tensor(f"{name}.weight.values").astype(np.float32),
                                 matrix.data), f"{name}: values differ")
            check(f.get_tensor(f"{name}.weight.shape").tolist() == w["dims"],
                  f"{name}: shape differs")


def tensor_bytes(path):
    """Header bytes and bytes per tensor, from the file's safetensors header."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items()}


def check_report(path, report, dense_path):
    total = report["total"]
    size = os.path.getsize(path)
    header, sizes = tensor_bytes(path)
    check(total["csr_file_bytes"] == size, f"report says {total['csr_file_bytes']} file bytes, "
          f"the file has {size}")
    check(total["header_bytes"] == header, f"report header {total['header_bytes']} != {header}")
    parts = {"values": ["weight.values"], "indices": ["weight.indices"],
             "tables": ["weight.scales", "weight.codebook"], "indptr": ["weight.indptr"],
             "shape": ["weight.shape"], "bias": ["bias"]}
    for layer in report["layers"]:
        for part, suffixes in parts.items():
            got = layer["csr_bytes"][part]
            want = sum(sizes.get(f"{layer['name']}.{s}", 0) for s in suffixes)
            check(got == want, f"report {layer['name']} {part} {got} != file {want}")
    check(total["csr_bytes"]["total"] + header == size, "report's layers + header != file size")
    print(f"report: CSR file {size} bytes (header {header}) - every tensor matches the file")
    if dense_path:
        dense = {k: v for k, v in load_file(dense_path).items() if not k.endswith("_mask")}
        dense_size = len(save(dense))
        check(total["dense_file_bytes"] == dense_size,
              f"report's dense baseline {total['dense_file_bytes']} != {dense_size}")
        print(f"report: dense f32 file {dense_size} bytes - matches safetensors.numpy.save")


DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "core", "data",
                      "digits.csv.gz")


def inputs_for(graph, n):
    """Up to n of the embedded digits (pixels / 16) for a 64-input model, else uniform [0, 1)."""
    if np.prod(graph.input) == 64:
        with gzip.open(DIGITS, "rt") as f:
            rows = [line.split(",")[:64] for line, _ in zip(f, range(n))]
        return (np.array(rows, dtype=np.float32) / 16).reshape([-1] + graph.input)
    return np.random.default_rng(0).random([n] + graph.input, dtype=np.float32)


def ticket_logits(ticket, path, x):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "y.safetensors")
        save_file({"input": x.reshape(len(x), -1)}, inp)
        run = subprocess.run([ticket, "infer", path, "--input", inp, "--output", out,
                              "--threads", "1"], capture_output=True, text=True)
        check(run.returncode == 0, f"ticket infer failed: {run.stderr.strip()}")
        return load_file(out)["logits"]


def layer_codec(value_dtype, w):
    """The value codec of layer `w` under `value_dtype` (one codec, or one per layer kind)."""
    if "=" not in value_dtype:
        return value_dtype
    kinds = dict(part.split("=", 1) for part in value_dtype.split(","))
    return kinds["conv" if len(w["dims"]) == 4 else "linear"]


def check_quantized(model, dense, value_dtype):
    """Lossy values: the same kept positions, each value what its codec promises (a float
    layer of a per-kind file: its rounding, as the tolerance of the whole-model check)."""
    for w, matrix, source in zip(model.graph.weighted, model.weights, dense.weights):
        name, coo = w["name"], matrix.tocoo()
        codec = layer_codec(value_dtype, w)
        mask = np.zeros(source.shape, dtype=bool)
        mask[coo.row, coo.col] = True
        check(not np.any(source[~mask]), f"{name}: a weight outside the stored entries is kept")
        kept = source[coo.row, coo.col].astype(np.float64)
        got = coo.data.astype(np.float64)
        if codec in TOLERANCE:
            scale = np.maximum(np.abs(kept), 1e-30)
            check(np.all(np.abs(got - kept) <= TOLERANCE[codec] * scale + 1e-12),
                  f"{name}: a {codec} value is further from its weight than {codec} rounds")
        elif codec == "int8":
            step = np.abs(source).max(axis=1, initial=0) / 127
            check(np.all(np.abs(got - kept) <= step[coo.row] * 0.5 * (1 + 1e-5) + 1e-12),
                  f"{name}: an int8 value is more than half a step from its weight")
        else:
            book = np.unique(coo.data).astype(np.float64)
            check(len(book) <= 1 << int(codec[1:]), f"{name}: more than 2^N distinct values")
            nearest = np.abs(kept[:, None] - book[None, :]).min(axis=1)
            check(np.allclose(np.abs(got - kept), nearest, rtol=0, atol=1e-7),
                  f"{name}: a value is not the centroid nearest its weight")
        print(f"{name}: {codec} values match their weights as specified ({len(got)} kept)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dense", help="the source dense checkpoint, to compare logits with")
    p.add_argument("--report", help="JSON of `ticket export --json`, to check its byte counts")
    p.add_argument("--ticket", help="the ticket binary, to compare `ticket infer` logits with")
    p.add_argument("--inputs", type=int, default=1797,
                   help="examples: the embedded digits for 64-input models, else random")
    args = p.parse_args()
    try:
        model = ticket_reader.load_csr(args.model)
    except ticket_reader.FormatError as e:
        sys.exit(f"FAILED: {e}")
    cross_check_with_safetensors(args.model, model)
    value_dtype = model.meta["value_dtype"]
    for w, matrix in zip(model.graph.weighted, model.weights):
        print(f"{w['name']}: {'x'.join(map(str, w['dims']))} as {matrix.shape[0]}x"
              f"{matrix.shape[1]}, {matrix.nnz} kept, indices "
              f"{'U16' if w['cols'] <= ticket_reader.MAX_U16_COLS else 'U32'} (checked), "
              f"values {value_dtype}")
    x = inputs_for(model.graph, args.inputs)
    sparse = model.logits(x)
    if args.dense and value_dtype not in TOLERANCE:
        check_quantized(model, ticket_reader.load_dense(args.dense), value_dtype)
    elif args.dense:
        reference = ticket_reader.load_dense(args.dense).logits(x, np.float64)
        scale = max(1.0, float(np.abs(reference).max()))
        diff = float(np.abs(sparse - reference).max())
        agree = float((sparse.argmax(1) == reference.argmax(1)).mean())
        tol = TOLERANCE[value_dtype] * scale
        print(f"sparse ({value_dtype}) vs masked dense: max abs logit difference {diff:.3g} "
              f"(tolerance {tol:.3g}), argmax agreement {agree:.1%} on {len(x)} inputs")
        check(diff <= tol, f"logits differ by {diff:.3g} > {tol:.3g}")
        check(agree >= MIN_ARGMAX_AGREEMENT, f"argmax agreement {agree:.1%} < 99%")
    if args.ticket:
        theirs = ticket_logits(args.ticket, args.model, x)
        reference = model.logits(x, np.float64)
        scale = max(1.0, float(np.abs(reference).max()))
        diff = float(np.abs(theirs - reference).max())
        print(f"ticket infer vs reader: max abs logit difference {diff:.3g} "
              f"(tolerance {TOLERANCE['f32'] * scale:.3g})")
        check(diff <= TOLERANCE["f32"] * scale, f"ticket infer logits differ by {diff:.3g}")
    if args.report:
        with open(args.report) as f:
            check_report(args.model, json.load(f), args.dense)
    print(f"{args.model}: OK")


if __name__ == "__main__":
    main()
