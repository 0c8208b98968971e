#!/usr/bin/env python3
"""Sparse inference of one CSR model file, side by side in one run: PyTorch dense, PyTorch CSR,
scipy CSR and `ticket infer --bench --json`, with the ratios.

Without --model it first writes a random LeNet-300-100 ticket at the paper's per-layer
densities after 15 pruning rounds (fc1, fc2 at 0.8^15 = 3.5%, fc3 at 0.9^15 = 20.6%; about
9.5k nonzeros), with numpy and the reference `safetensors` package only: an independent writer
of the CSR format. Before timing anything it checks that PyTorch, scipy and `ticket infer
--input/--output` compute the same logits from the file.

    just bench-compare                      # or:
    cargo build --release
    .venv/bin/python benches/compare_infer.py [--model FILE] [--threads 2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import scipy.sparse
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = (64, 1024)


def write_random_lenet(path, seed=0):
    """A LeNet-300-100 CSR file with random masks at the paper's level-15 densities."""
    rng = np.random.default_rng(seed)
    sizes = [784, 300, 100, 10]
    densities = [0.8**15, 0.8**15, 0.9**15]
    tensors, kept = {}, 0
    for i, (cols, rows, d) in enumerate(zip(sizes, sizes[1:], densities), start=1):
        mask = rng.random((rows, cols)) < d
        w = rng.standard_normal((rows, cols)).astype(np.float32) * np.float32(np.sqrt(2 / (rows + cols)))
        csr = scipy.sparse.csr_matrix(np.where(mask, w, 0).astype(np.float32))
        csr.sort_indices()
        name = f"fc{i}"
        tensors[f"{name}.weight.indptr"] = csr.indptr.astype(np.uint32)
        tensors[f"{name}.weight.indices"] = csr.indices.astype(np.uint16)
        tensors[f"{name}.weight.values"] = csr.data.astype(np.float32)
        tensors[f"{name}.weight.shape"] = np.array([rows, cols], dtype=np.int64)
        tensors[f"{name}.bias"] = (rng.standard_normal(rows) * 0.05).astype(np.float32)
        kept += csr.nnz
    dense = sum(a * b for a, b in zip(sizes, sizes[1:]))
    meta = {
        "format": "ticket-csr",
        "format_version": "1",
        "arch": "-".join(map(str, sizes)),
        "activation": "relu",
        "layers": "fc1,fc2,fc3",
        "value_dtype": "f32",
        "density": str(kept / dense),
        "dense_params": str(dense + sum(sizes[1:])),
        "kept_params": str(kept + sum(sizes[1:])),
        "dataset": "synthetic",
    }
    save_file(tensors, path, metadata=meta)


def load_layers(path):
    """[(scipy csr, bias)] per layer, in the order of the `layers` metadata."""
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "ticket-csr" and meta["format_version"].split(".")[0] == "1", meta
    t = load_file(path)
    layers = []
    for name in meta["layers"].split(","):
        rows, cols = (int(v) for v in t[f"{name}.weight.shape"])
        values = t[f"{name}.weight.values"].astype(np.float32)
        w = scipy.sparse.csr_matrix(
            (values, t[f"{name}.weight.indices"].astype(np.int32), t[f"{name}.weight.indptr"].astype(np.int64)),
            shape=(rows, cols),
        )
        layers.append((w, t[f"{name}.bias"]))
    return layers


def scipy_forward(layers):
    def run(x):  # x [batch, features]
        a = np.ascontiguousarray(x.T)
        for i, (w, b) in enumerate(layers):
            a = w @ a + b[:, None]
            if i + 1 < len(layers):
                np.maximum(a, 0, out=a)
        return a.T

    def run1(x):  # one example, 1-D: scipy's matrix-vector product
        a = x
        for i, (w, b) in enumerate(layers):
            a = w @ a + b
            if i + 1 < len(layers):
                np.maximum(a, 0, out=a)
        return a

    return run, run1


def torch_dense_forward(layers):
    ws = [(torch.from_numpy(w.toarray()), torch.from_numpy(b)) for w, b in layers]

    def run(x):
        a = x
        for i, (w, b) in enumerate(ws):
            a = torch.nn.functional.linear(a, w, b)
            if i + 1 < len(ws):
                a = torch.relu(a)
        return a

    return run


def torch_csr_forward(layers):
    # PyTorch warns that sparse CSR is in beta; the logits are checked against scipy instead.
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    ws = [
        (
            torch.sparse_csr_tensor(
                torch.from_numpy(w.indptr.astype(np.int64)),
                torch.from_numpy(w.indices.astype(np.int64)),
                torch.from_numpy(w.data),
                size=w.shape,
            ),
            torch.from_numpy(b)[:, None],
        )
        for w, b in layers
    ]

    def run(x):  # [batch, features] -> [features, batch] -> logits [batch, classes]
        a = x.t()
        for i, (w, b) in enumerate(ws):
            a = (w @ a) + b
            if i + 1 < len(ws):
                a = torch.relu(a)
        return a.t()

    return run


def latency_us(fn, examples, budget=0.6):
    """Median and 99th percentile microseconds of single-example calls."""
    for e in examples[:20]:
        fn(e)
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        e = examples[i % len(examples)]
        t = time.perf_counter_ns()
        fn(e)
        times.append((time.perf_counter_ns() - t) / 1e3)
        i += 1
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def per_sample_us(fn, x, budget=0.6):
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget:
        t = time.perf_counter_ns()
        fn(x)
        times.append((time.perf_counter_ns() - t) / 1e3 / len(x))
    return float(np.median(times))


def ticket_binary():
    path = os.path.join(ROOT, "target", "release", "ticket")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    return path


def check_logits_agree(model, layers, ticket, x):
    """scipy, both PyTorch paths and `ticket infer --input/--output` on the same inputs."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"input": x}, src)
        subprocess.run([ticket, "infer", model, "--input", src, "--output", dst], check=True, stdout=subprocess.DEVNULL)
        ours = load_file(dst)["logits"]
    ref = scipy_forward(layers)[0](x)
    xt = torch.from_numpy(x)
    for name, got in [
        ("ticket", ours),
        ("torch dense", torch_dense_forward(layers)(xt).numpy()),
        ("torch csr", torch_csr_forward(layers)(xt).numpy()),
    ]:
        err = float(np.max(np.abs(got - ref)))
        assert err <= 1e-4 * (1 + float(np.max(np.abs(ref)))), f"{name} differs from scipy by {err}"
    return float(np.max(np.abs(ours - ref)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="CSR model file (default: a random LeNet-300-100 ticket)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    model = args.model or os.path.join(tmp.name, "lenet-3.6pct.safetensors")
    if not args.model:
        write_random_lenet(model)
    layers = load_layers(model)
    nnz = sum(w.nnz for w, _ in layers)
    features = layers[0][0].shape[1]
    rng = np.random.default_rng(1)
    pool = rng.random((max(BATCHES), features), dtype=np.float32)
    ticket = ticket_binary()
    diff = check_logits_agree(model, layers, ticket, pool[:257])
    print(f"model {model}: {nnz} nonzeros; logits of ticket, PyTorch dense, PyTorch CSR agree with scipy (max |diff| {diff:.2e})")
    print(f"threads: PyTorch {torch.get_num_threads()}, scipy 1, ticket {args.threads}")

    scipy_run, scipy_run1 = scipy_forward(layers)
    tdense, tcsr = torch_dense_forward(layers), torch_csr_forward(layers)
    results = {}
    with torch.inference_mode():
        examples_t = [torch.from_numpy(pool[i : i + 1]) for i in range(256)]
        for name, run, examples, batched in [
            ("pytorch dense", tdense, examples_t, lambda x: tdense(torch.from_numpy(x))),
            ("pytorch csr", tcsr, examples_t, lambda x: tcsr(torch.from_numpy(x))),
            ("scipy csr", scipy_run1, [pool[i] for i in range(256)], scipy_run),
        ]:
            p50, p99 = latency_us(run, examples)
            entry = {"batch1_us_p50": p50, "batch1_us_p99": p99}
            for b in BATCHES:
                entry[f"batch{b}_us_per_sample"] = per_sample_us(batched, pool[:b])
            results[name] = entry
    out = subprocess.run(
        [ticket, "infer", model, "--bench", "--json", "--threads", str(args.threads)],
        check=True, capture_output=True, text=True,
    )
    ours = json.loads(out.stdout)
    results["ticket sparse"] = ours["sparse"]
    results["ticket dense"] = ours["dense"]

    keys = ["batch1_us_p50", "batch1_us_p99"] + [f"batch{b}_us_per_sample" for b in BATCHES]
    heads = ["batch 1 p50", "batch 1 p99"] + [f"batch {b} /ex" for b in BATCHES]
    print(f"\nmicroseconds per example (median)\n{'':16}" + "".join(f"{h:>16}" for h in heads))
    for name, entry in results.items():
        print(f"{name:16}" + "".join(f"{entry[k]:>16.3f}" for k in keys))
    print(f"\nticket sparse is faster by\n{'':16}" + "".join(f"{h:>16}" for h in heads))
    for name, entry in results.items():
        if name != "ticket sparse":
            print(f"{name:16}" + "".join(f"{entry[k] / ours['sparse'][k]:>15.1f}x" for k in keys))
    wb = ours["weight_bytes"]
    print(f"\nweights in memory: ticket sparse {wb['sparse']} B, dense {wb['dense']} B ({wb['dense'] / wb['sparse']:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
