#!/usr/bin/env python3
"""Sparse inference of one CSR model file, side by side: PyTorch dense, PyTorch CSR, scipy CSR,
ONNX Runtime (the same weights, zeros included, as a dense graph exported with
`torch.onnx.export`) and `ticket infer --bench --json`.

Every figure is measured on two input sets (--inputs): random values in [0, 1), which have no
zeros, and the Fashion-MNIST test images (pixels / 255, as ticket reads them; about half of
the pixels are zero, and so are about half of the ReLU outputs they produce). ticket's batch-1
path skips zero inputs, which random inputs hide; ticket's row `ticket sparse, no zero
skipping` is the same path forced to the row-ordered product, for comparison.

Without --model it first writes a random LeNet-300-100 ticket at the paper's per-layer
densities after 15 pruning rounds (fc1, fc2 at 0.8^15 = 3.5%, fc3 at 0.9^15 = 20.6%; about
9.5k nonzeros), with numpy and the reference `safetensors` package only: an independent writer
of the CSR format. Before timing anything it checks that PyTorch, scipy, ONNX Runtime and
`ticket infer --input/--output` compute the same logits from the file.

Batch 1 is reported two ways, because the anchors run under a Python interpreter and ticket
does not:

(a) Python-hosted: one call from this Python process per example, interpreter, argument
    conversion and dispatch included (what a Python user of each library pays). ticket has no
    Python binding yet, so no in-process call exists and its cell stays empty. The cheapest
    route from Python that does exist is one `ticket infer --input/--output` process per call
    (spawn, map and validate the model, one example, write and read back the logits): it is
    timed and shown on its own row, as what it is.
(b) Kernel-only: each library's own time per call without the interpreter, against ticket's
    time measured inside Rust (`ticket infer --bench`, a timer around each call):
    - PyTorch: torch.profiler, the self CPU time of every aten operator of one call, summed
      (the profiler's own bookkeeping per operator is included, so this is an upper bound);
    - ONNX Runtime: the session profiling JSON, the durations of the node kernels of one run
      summed (session and input/output handling excluded);
    - scipy: scipy.sparse._sparsetools.csr_matvec per layer called in a tight loop, minus the
      same loop calling csr_matvec on zero rows of the same arrays (the empty-call baseline:
      same argument checks and dispatch, no arithmetic); bias and ReLU (410 values for
      LeNet-300-100) are not included.
    A kernel-only median above the same path's Python-hosted one is marked `*` and gets no
    ratio: the measurement itself slowed that path down.

Batches 64 and 1024 are Python-hosted for the anchors (the call overhead is spread over the
batch) and in-Rust for ticket. Every figure is the median of --repeat runs with min-max.

    just bench-compare                      # or:
    cargo build --release
    .venv/bin/python benches/compare_infer.py [--model FILE] [--threads 2] [--repeat 3]
        [--inputs random,fashion-mnist] [--fashion-mnist DIR]
"""
import gzip
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import onnxruntime as ort
import scipy.sparse
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from scipy.sparse import _sparsetools

import bench_common as bc

BATCHES = (64, 1024)
# Python-hosted anchors, in table order, and the ticket paths `ticket infer --bench` times.
ANCHORS = ("pytorch dense", "pytorch csr", "scipy csr", "onnxruntime dense")
TICKET_PATHS = ("ticket sparse", "ticket dense")
# ticket's batch-1 latency with zero skipping off (`batch1_us_p50_csr_only` of --bench).
TICKET_CSR_ONLY = "ticket sparse, no zero skipping"
INPUT_SETS = ("random", "fashion-mnist")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
SUBPROCESS_ROW = "ticket, one process per call"
# Untimed calls before each batch-1 measurement, to warm caches and wake threads.
WARMUP_CALLS = 20


def write_random_lenet(path, seed=0):
    """A LeNet-300-100 CSR file (format version 2) with random masks at the paper's level-15
    densities."""
    rng = np.random.default_rng(seed)
    sizes = [784, 300, 100, 10]
    densities = [0.8**15, 0.8**15, 0.9**15]
    tensors, kept, layers = {}, 0, []
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
        layers += [{"op": "linear", "name": name, "in": cols, "out": rows}, {"op": "relu"}]
    dense = sum(a * b for a, b in zip(sizes, sizes[1:]))
    meta = {
        "format": "ticket-csr",
        "format_version": "2",
        "graph": json.dumps({"input": [sizes[0]], "layers": layers[:-1]}),
        "layers": "fc1,fc2,fc3",
        "value_dtype": "f32",
        "density": str(kept / dense),
        "dense_params": str(dense + sum(sizes[1:])),
        "kept_params": str(kept + sum(sizes[1:])),
        "dataset": "synthetic",
    }
    save_file(tensors, path, metadata=meta)


def check_mlp(path, meta):
    """Refuses a model that is not linear layers with a ReLU between each pair (the only
    graphs the four Python paths here compute)."""
    major = meta.get("format_version", "?").split(".")[0]
    if meta.get("format") != "ticket-csr" or major not in ("1", "2"):
        raise SystemExit(f"{path}: not a ticket-csr model of version 1 or 2 "
                         f"(format {meta.get('format')!r}, version {meta.get('format_version')!r})")
    if major == "1":
        return
    ops = [layer["op"] for layer in json.loads(meta["graph"])["layers"]]
    expected = " relu ".join(["linear"] * ops.count("linear")).split()
    if ops != expected:
        raise SystemExit(f"{path}: graph {'-'.join(ops)} is not an MLP (linear layers with a ReLU "
                         "between each pair); this comparison runs MLPs only")


def load_layers(path):
    """[(scipy csr, bias)] per layer, in the order of the `layers` metadata."""
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
        check_mlp(path, meta)
        t = load_file(path)
        layers = []
        for name in meta["layers"].split(","):
            rows, cols = (int(v) for v in t[f"{name}.weight.shape"])
            w = scipy.sparse.csr_matrix(
                (t[f"{name}.weight.values"].astype(np.float32), t[f"{name}.weight.indices"].astype(np.int32),
                 t[f"{name}.weight.indptr"].astype(np.int32)),
                shape=(rows, cols),
            )
            layers.append((w, t[f"{name}.bias"]))
    except (OSError, KeyError, ValueError, SafetensorError) as e:
        raise SystemExit(f"{path}: cannot read a CSR model: {e!r}") from None
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


def onnx_model(layers):
    """The same weights (pruned ones as zeros) as a PyTorch module exported with
    `torch.onnx.export`: Linear + ReLU per layer, a dynamic batch dimension."""
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.toarray()))
            lin.bias.copy_(torch.from_numpy(b))
        mods += [lin] + ([torch.nn.ReLU()] if i + 1 < len(layers) else [])
    module = torch.nn.Sequential(*mods).eval()
    out = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter: a fixed graph of Gemm + Relu nodes, no tracing of Python.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, layers[0][0].shape[1]),), out, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return out.getvalue()


def read_idx_images(path):
    """An IDX3 image file (gzipped or not) as float32 [n, rows * cols], pixels / 255."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 0x803 or len(data) != 16 + n * rows * cols:
        raise SystemExit(f"{path}: not an IDX3 image file (magic {magic:#x}, {len(data)} bytes)")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32) / 255.0


def input_pool(kind, features, fashion_dir, examples):
    """`examples` inputs of one input set, float32 [examples, features]."""
    if kind == "random":
        return np.random.default_rng(1).random((examples, features), dtype=np.float32)
    path = next((os.path.join(fashion_dir, f) for f in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
                 if os.path.exists(os.path.join(fashion_dir, f))), None)
    if path is None:
        raise SystemExit(f"{fashion_dir}: no Fashion-MNIST test images (t10k-images-idx3-ubyte[.gz]); "
                         "pass --fashion-mnist DIR or --inputs random")
    images = read_idx_images(path)
    if images.shape[1] != features:
        raise SystemExit(f"{path}: {images.shape[1]} pixels per image, but the model takes {features} inputs")
    return np.ascontiguousarray(images[:examples])


def onnx_session(model_bytes, threads, profile_prefix=None):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def onnx_forward(session):
    return lambda x: session.run(None, {"input": x})[0]


def latency_us(fn, examples, budget):
    """Median and 99th percentile microseconds of single-example calls."""
    for e in examples[:WARMUP_CALLS]:
        fn(e)
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        e = examples[i % len(examples)]
        t = time.perf_counter_ns()
        fn(e)
        times.append((time.perf_counter_ns() - t) / 1e3)
        i += 1
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def per_sample_us(fn, x, budget):
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget:
        t = time.perf_counter_ns()
        fn(x)
        times.append((time.perf_counter_ns() - t) / 1e3 / len(x))
    return float(np.median(times))


def torch_kernel_us(fn, examples, calls):
    """Median over calls of the summed self CPU time (us) of the aten operators of one call."""
    for e in examples[:WARMUP_CALLS]:
        fn(e)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for i in range(calls):
            with torch.profiler.record_function("bench_call"):
                fn(examples[i % len(examples)])
    events = prof.events()
    per_call, ops = [], {}
    for call in (e for e in events if e.name == "bench_call"):
        lo, hi = call.time_range.start, call.time_range.end
        inside = [e for e in events if e.name.startswith("aten::") and lo <= e.time_range.start <= hi]
        per_call.append(sum(e.self_cpu_time_total for e in inside))
        for e in inside:
            ops[e.name] = ops.get(e.name, 0.0) + e.self_cpu_time_total / calls
    return float(np.median(per_call)), ops


def onnx_kernel_us(model_bytes, threads, examples, calls, tmp):
    """Median over runs of the summed node kernel durations (us) in ORT's profiling JSON."""
    session = onnx_session(model_bytes, threads, os.path.join(tmp, "ort-profile"))
    run = onnx_forward(session)
    for i in range(WARMUP_CALLS + calls):
        run(examples[i % len(examples)])
    with open(session.end_profiling()) as f:
        events = json.load(f)
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][WARMUP_CALLS:]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
             and e["ts"] >= runs[0]["ts"]]
    per_run = [sum(n["dur"] for n in nodes if r["ts"] <= n["ts"] <= r["ts"] + r["dur"]) for r in runs]
    ops = {}
    for n in nodes:
        op = n["args"].get("op_name", n["name"])
        ops[op] = ops.get(op, 0.0) + n["dur"] / len(runs)
    return float(np.median(per_run)), ops


def scipy_kernel_us(layers, example, loops, rounds=7):
    """Sum over layers of csr_matvec's time per call, loop minus empty-call loop (median of
    `rounds`), on the activations `example` produces at each layer's input."""
    matvec = _sparsetools.csr_matvec
    per_layer, a = [], example
    for i, (w, b) in enumerate(layers):
        rows, cols = w.shape
        x = np.ascontiguousarray(a, dtype=np.float32)
        y, empty_y, empty_ptr = np.zeros(rows, np.float32), np.zeros(0, np.float32), w.indptr[:1]
        ptr, idx, val = w.indptr, w.indices, w.data
        diffs = []
        for _ in range(rounds):
            t = time.perf_counter_ns()
            for _ in range(loops):
                matvec(rows, cols, ptr, idx, val, x, y)
            full = time.perf_counter_ns() - t
            t = time.perf_counter_ns()
            for _ in range(loops):
                matvec(0, cols, empty_ptr, idx, val, x, empty_y)
            diffs.append((full - (time.perf_counter_ns() - t)) / loops / 1e3)
        per_layer.append(float(np.median(diffs)))
        a = w @ a + b
        if i + 1 < len(layers):
            a = np.maximum(a, 0)
    return sum(per_layer), {f"layer{i + 1}": us for i, us in enumerate(per_layer)}


def ticket_logits(ticket, model, x, tmp):
    src, dst = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    save_file({"input": x}, src)
    subprocess.run([ticket, "infer", model, "--input", src, "--output", dst], check=True, stdout=subprocess.DEVNULL)
    return load_file(dst)["logits"]


def ticket_subprocess_us(ticket, model, examples, calls, tmp):
    """Median microseconds of one `ticket infer --input/--output` process per example, the
    input written and the logits read back by this process."""
    times = []
    for i in range(calls):
        t = time.perf_counter_ns()
        ticket_logits(ticket, model, examples[i % len(examples)], tmp)
        times.append((time.perf_counter_ns() - t) / 1e3)
    return float(np.median(times))


def check_logits_agree(model, layers, ticket, onnx_run, x, tmp):
    """scipy, both PyTorch paths, ONNX Runtime and `ticket infer --input/--output` on the same
    inputs."""
    ref = scipy_forward(layers)[0](x)
    xt = torch.from_numpy(x)
    worst = 0.0
    for name, got in [
        ("ticket", ticket_logits(ticket, model, x, tmp)),
        ("torch dense", torch_dense_forward(layers)(xt).numpy()),
        ("torch csr", torch_csr_forward(layers)(xt).numpy()),
        ("onnxruntime", onnx_run(x)),
    ]:
        err = float(np.max(np.abs(got - ref)))
        if err > 1e-4 * (1 + float(np.max(np.abs(ref)))):
            raise SystemExit(f"{model}: {name} logits differ from scipy's by {err}")
        worst = max(worst, err)
    return worst


def measure_once(ctx, kind, a):
    """One repeat on input set `kind`: every anchor Python-hosted and kernel-only, ticket's
    --bench on the same inputs, and ticket as one process per call."""
    layers, ticket, model, tmp = ctx["layers"], ctx["ticket"], ctx["model"], ctx["tmp"]
    pool = ctx["pools"][kind]
    scipy_run, scipy_run1 = scipy_forward(layers)
    tdense, tcsr = torch_dense_forward(layers), torch_csr_forward(layers)
    ort_run = onnx_forward(onnx_session(ctx["onnx"], a.threads))
    rows = [pool[i: i + 1] for i in range(256)]
    hosted, kernel, kernel_ops = {}, {}, {}
    with torch.inference_mode():
        rows_t = [torch.from_numpy(r) for r in rows]
        for name, run1, examples, batched in [
            ("pytorch dense", tdense, rows_t, lambda x: tdense(torch.from_numpy(x))),
            ("pytorch csr", tcsr, rows_t, lambda x: tcsr(torch.from_numpy(x))),
            ("scipy csr", scipy_run1, [r[0] for r in rows], scipy_run),
            ("onnxruntime dense", ort_run, rows, ort_run),
        ]:
            p50, p99 = latency_us(run1, examples, a.budget)
            entry = {"batch1_us_p50": p50, "batch1_us_p99": p99}
            for b in BATCHES:
                entry[f"batch{b}_us_per_sample"] = per_sample_us(batched, pool[:b], a.budget)
            hosted[name] = entry
        for name, run1 in [("pytorch dense", tdense), ("pytorch csr", tcsr)]:
            kernel[name], kernel_ops[name] = torch_kernel_us(run1, rows_t, a.profile_calls)
    kernel["onnxruntime dense"], kernel_ops["onnxruntime dense"] = onnx_kernel_us(
        ctx["onnx"], a.threads, rows, a.profile_calls, tmp)
    kernel["scipy csr"], kernel_ops["scipy csr"] = scipy_kernel_us(layers, pool[0], a.scipy_loops)
    data = [] if kind == "random" else ["--bench-data", a.fashion_mnist]
    out = subprocess.run([ticket, "infer", model, "--bench", "--json", "--threads", str(a.threads)] + data,
                         check=True, capture_output=True, text=True)
    bench = json.loads(out.stdout)
    for path in TICKET_PATHS:
        kernel[path] = bench[path.split()[1]]["batch1_us_p50"]
    kernel[TICKET_CSR_ONLY] = bench["sparse"].get("batch1_us_p50_csr_only")
    subprocess_us = ticket_subprocess_us(ticket, model, rows, a.subprocess_calls, tmp)
    return {"python_hosted": hosted, "kernel_only_batch1_us": kernel, "kernel_only_breakdown_us": kernel_ops,
            "ticket_bench": bench, "ticket_one_process_per_call_us": subprocess_us}


def summarize(runs):
    """Median and min-max over repeats of every cell of the printed tables."""
    cell = lambda get: bc.spread([get(r) for r in runs])
    hosted = {name: {k: cell(lambda r, n=name, k=k: r["python_hosted"][n][k]) for k in runs[0]["python_hosted"][name]}
              for name in ANCHORS}
    for path in TICKET_PATHS:
        key = path.split()[1]
        hosted[path] = {k: cell(lambda r, key=key, k=k: r["ticket_bench"][key][k]) for k in runs[0]["ticket_bench"][key]
                        if k.startswith("batch")}
    kernel = {name: cell(lambda r, n=name: r["kernel_only_batch1_us"].get(n))
              for name in ANCHORS + TICKET_PATHS + (TICKET_CSR_ONLY,)}
    # A kernel-only time above the whole Python-hosted call cannot be the kernel's: the
    # measurement slowed the call down (profiler bookkeeping, or other work on the machine
    # between the two measurements). Such a cell is kept, marked, and left out of the ratios.
    distorted = [n for n in ANCHORS if kernel[n]["median"] is not None
                 and kernel[n]["median"] > hosted[n]["batch1_us_p50"]["median"]]
    return {
        "batch1_python_hosted_us_p50": {n: hosted[n]["batch1_us_p50"] for n in ANCHORS},
        "batch1_ticket_python_hosted_us": None,
        "batch1_ticket_python_hosted_note": "no in-process call from Python exists without a binding",
        "batch1_ticket_one_process_per_call_us": cell(lambda r: r["ticket_one_process_per_call_us"]),
        "batch1_kernel_only_us": kernel,
        "batch1_kernel_only_distorted": distorted,
        "batch1_kernel_only_ratio_vs_ticket_sparse": {
            n: None if n in distorted else bc.ratio(kernel[n]["median"], kernel["ticket sparse"]["median"])
            for n in ANCHORS + ("ticket dense", TICKET_CSR_ONLY)},
        "ticket_input_zero_fraction": runs[0]["ticket_bench"].get("inputs", {}).get("zero_fraction"),
        "batched_us_per_sample": {n: {f"batch{b}": hosted[n][f"batch{b}_us_per_sample"] for b in BATCHES}
                                  for n in ANCHORS + TICKET_PATHS},
        "batched_ratio_vs_ticket_sparse": {
            n: {f"batch{b}": bc.ratio(hosted[n][f"batch{b}_us_per_sample"]["median"],
                                      hosted["ticket sparse"][f"batch{b}_us_per_sample"]["median"]) for b in BATCHES}
            for n in ANCHORS + ("ticket dense",)},
    }


def print_tables(s, repeats, kind):
    zeros = s.get("ticket_input_zero_fraction")
    zeros = "" if zeros is None else f", {100 * zeros:.1f}% of the input values zero"
    print(f"\n=== inputs: {kind}{zeros} ===")
    w = 33
    print(f"\nbatch 1, microseconds per call, median of {repeats} repeats [min-max]")
    print("  (a) Python-hosted: called from this Python process, interpreter and dispatch included")
    print("  (b) kernel-only: the library's own time per call; ticket timed inside Rust (`infer --bench`)")
    print(f"{'':{w}}{'(a) Python-hosted':>30}{'(b) kernel-only':>30}{'(b) ratio':>11}")
    kernel, ratios = s["batch1_kernel_only_us"], s["batch1_kernel_only_ratio_vs_ticket_sparse"]
    for n in ANCHORS + TICKET_PATHS + (TICKET_CSR_ONLY,):
        hosted = bc.fmt_spread(s["batch1_python_hosted_us_p50"][n]) if n in ANCHORS else "- (compare_python.py)"
        mark = " *" if n in s["batch1_kernel_only_distorted"] else ""
        print(f"{n:{w}}{hosted:>30}{bc.fmt_spread(kernel[n]) + mark:>30}{bc.fmt_ratio(ratios.get(n)):>11}")
    print(f"{SUBPROCESS_ROW:{w}}{bc.fmt_spread(s['batch1_ticket_one_process_per_call_us'], 0):>30}")
    print("  ratio: the row's kernel-only median / ticket sparse's. ticket's Python-hosted calls (the `ticket`\n"
          "  package) are timed by benches/compare_python.py; the last row spawns the CLI per call (map and\n"
          "  validate the model, one example, write and read back the logits), not an in-process call.\n"
          "  Kernel-only: PyTorch = torch.profiler self CPU of the aten ops of a call (profiler bookkeeping\n"
          "  included); ONNX Runtime = profiling JSON node kernel durations of a run; scipy = csr_matvec per\n"
          "  layer in a tight loop minus the same loop on zero rows (bias and ReLU not included).")
    if s["batch1_kernel_only_distorted"]:
        print("  * above the same path's whole Python-hosted call: the measurement slowed the call down, so the\n"
              "    cell is not a kernel time and has no ratio")
    print(f"\nbatches, microseconds per example, median of {repeats} repeats [min-max]: anchors Python-hosted "
          "(call overhead spread over the batch), ticket in Rust")
    print(f"{'':{w}}" + "".join(f"{f'batch {b}':>30}{'ratio':>9}" for b in BATCHES))
    batched, bratio = s["batched_us_per_sample"], s["batched_ratio_vs_ticket_sparse"]
    for n in ANCHORS + TICKET_PATHS:
        print(f"{n:{w}}" + "".join(f"{bc.fmt_spread(batched[n][f'batch{b}']):>30}"
                                   f"{bc.fmt_ratio(bratio.get(n, {}).get(f'batch{b}')):>9}" for b in BATCHES))
    print("  ratio: the row's median / ticket sparse's")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="CSR model file (default: a random LeNet-300-100 ticket)")
    ap.add_argument("--threads", type=int, default=2, help="threads of PyTorch, ONNX Runtime and ticket (default 2)")
    ap.add_argument("--ticket", default=None, help="ticket binary (default: target/release/ticket)")
    ap.add_argument("--budget", type=float, default=0.6, help="seconds per timed measurement (default 0.6)")
    ap.add_argument("--profile-calls", type=int, default=300, help="batch-1 calls profiled per anchor (default 300)")
    ap.add_argument("--scipy-loops", type=int, default=2000, help="csr_matvec calls per timed loop (default 2000)")
    ap.add_argument("--subprocess-calls", type=int, default=20,
                    help="`ticket infer` processes timed per repeat (default 20)")
    ap.add_argument("--inputs", default=",".join(INPUT_SETS),
                    help="input sets, comma-separated: random, fashion-mnist (default: both)")
    ap.add_argument("--fashion-mnist", default=FASHION_MNIST_DIR, metavar="DIR",
                    help=f"directory of the Fashion-MNIST IDX files (default {FASHION_MNIST_DIR})")
    bc.add_repeat_argument(ap)
    a = ap.parse_args()
    kinds = [k for k in a.inputs.split(",") if k]
    if not kinds or any(k not in INPUT_SETS for k in kinds):
        raise SystemExit(f"--inputs {a.inputs!r}: expected a comma-separated list of {', '.join(INPUT_SETS)}")
    torch.set_num_threads(a.threads)
    a.ticket = bc.ticket_binary(a.ticket)
    results = bc.Results("compare_infer", a.threads, a.ticket)
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model or os.path.join(tmp, "lenet-3.6pct.safetensors")
        if not a.model:
            write_random_lenet(model)
        layers = load_layers(model)
        features = layers[0][0].shape[1]
        ctx = {"layers": layers, "model": model, "tmp": tmp, "ticket": a.ticket, "onnx": onnx_model(layers),
               "pools": {k: input_pool(k, features, a.fashion_mnist, max(BATCHES)) for k in kinds}}
        ort_run = onnx_forward(onnx_session(ctx["onnx"], a.threads))
        diff = max(check_logits_agree(model, layers, ctx["ticket"], ort_run, ctx["pools"][k][:257], tmp)
                   for k in kinds)
        nnz = sum(w.nnz for w, _ in layers)
        print(f"model {a.model or 'random LeNet-300-100 ticket'}: {nnz} nonzeros; logits of ticket, PyTorch dense, "
              f"PyTorch CSR and ONNX Runtime agree with scipy on every input set (max |diff| {diff:.2e})")
        bc.print_machine(results.header["machine"])
        print(f"threads: PyTorch {torch.get_num_threads()}, ONNX Runtime {a.threads}, ticket {a.threads}, scipy 1")
        runs = {k: bc.repeat(a.repeat, lambda r, k=k: measure_once(ctx, k, a), label=f"{k} inputs: ") for k in kinds}
    summaries = {k: summarize(runs[k]) for k in kinds}
    for k in kinds:
        print_tables(summaries[k], a.repeat, k)
    wb = runs[kinds[0]][0]["ticket_bench"]["weight_bytes"]
    print(f"\nweights in memory: ticket sparse {wb['sparse']} B (+ {wb.get('sparse_column_copies', 0)} B of "
          f"column-ordered copies for zero skipping, + {wb.get('sparse_sliced_copies', 0)} B of batch-1 copies "
          f"in slices of 16 rows), dense {wb['dense']} B ({wb['dense'] / wb['sparse']:.1f}x)")
    results.write({"model": a.model or "random LeNet-300-100 ticket (write_random_lenet, seed 0)", "nonzeros": nnz,
                   "max_logit_diff_vs_scipy": diff, "repeat": a.repeat, "inputs": kinds,
                   "summary": summaries, "repeats": runs})

if __name__ == "__main__":
    sys.exit(main())
