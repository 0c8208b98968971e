#!/usr/bin/env python3
"""Memory footprint of one model in separate processes: `ticket infer --bench` on the CSR file
(any codec) against the same network dense in PyTorch and in ONNX Runtime. Each measurement
is a fresh process that loads the model and runs batches of 1, 64 and 1024 examples; its peak
resident set is the kernel's high-water mark of that process's own address space (`VmHWM` of
/proc/PID/status, read by the process itself at its end: ticket's figure is its sparse path
before any dense copy exists, `memory.sparse.peak_rss_bytes_after_runs`), so interpreter,
libraries, weights and activations all count. (`ru_maxrss` from wait4 would not do: Linux
carries it over exec, so every child would report this Python parent's peak.) The bare
interpreter with each library imported is measured too, as the floor the library costs.

    /work/venv/bin/python benches/compare_footprint.py lenet-k4.safetensors \
        --also lenet-f32.safetensors --threads 2 --repeat 3

Prints a table of median peak RSS (MB) and wall time per process, and writes
benches/results/compare_footprint-<UTC time>.json.
"""
import argparse
import json
import subprocess
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
import ticket_reader  # noqa: E402

BENCHES = os.path.dirname(os.path.abspath(__file__))

# The child processes. argv: threads, then their files.
HWM = "\nprint(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))"
TORCH_FLOOR = "import torch, numpy" + HWM
ORT_FLOOR = "import onnxruntime, numpy" + HWM
TORCH_RUN = """
import sys, json, torch, numpy as np
sys.path.insert(0, sys.argv[4])
from compare_reader_torch import torch_model
from safetensors.torch import load_file
torch.set_num_threads(int(sys.argv[1]))
graph = json.load(open(sys.argv[3]))
model, names = torch_model(graph)
state = load_file(sys.argv[2])
with torch.no_grad():
    for module, name in zip(model, names):
        if name is not None:
            module.weight.copy_(state[name + ".weight"]); module.bias.copy_(state[name + ".bias"])
    x = torch.rand([1024] + graph["input"])
    for b in (1, 64, 1024):
        model(x[:b])
""" + HWM
ORT_RUN = """
import sys, numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[1])
s = ort.InferenceSession(sys.argv[2], opts, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).random([1024] + [int(d) for d in i.shape[1:]], dtype=np.float32)
for b in (1, 64, 1024):
    s.run(None, {i.name: x[:b]})
""" + HWM


def peak_rss(cmd):
    """(peak RSS in bytes, wall seconds) of one child process, from what it prints: a `VmHWM:
    N kB` line (Python children) or ticket's --bench JSON. Fails on a non-zero exit."""
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd[:3])}: {run.stderr.strip()}")
    if cmd[1:2] == ["infer"]:
        return json.loads(run.stdout)["memory"]["sparse"]["peak_rss_bytes_after_runs"], wall
    line = [l for l in run.stdout.splitlines() if l.startswith("VmHWM")][-1]
    return int(line.split()[1]) * 1024, wall


def dense_files(model, tmp):
    """The decoded network as a dense f32 state dict, its graph as JSON, and an ONNX export."""
    import torch
    from compare_reader_torch import torch_model
    state = {}
    for w, matrix, bias in zip(model.graph.weighted, model.weights, model.biases):
        state[w["name"] + ".weight"] = np.asarray(matrix.todense(), dtype=np.float32).reshape(w["dims"])
        state[w["name"] + ".bias"] = np.asarray(bias, dtype=np.float32)
    weights = os.path.join(tmp, "dense.safetensors")
    save_file(state, weights)
    graph = {"input": model.graph.input, "layers": model.graph.layers}
    graph_path = os.path.join(tmp, "graph.json")
    with open(graph_path, "w") as f:
        json.dump(graph, f)
    net, names = torch_model(graph)
    with torch.no_grad():
        for module, name in zip(net, names):
            if name is not None:
                module.weight.copy_(torch.from_numpy(state[name + ".weight"]))
                module.bias.copy_(torch.from_numpy(state[name + ".bias"]))
    onnx_path = os.path.join(tmp, "model.onnx")
    warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
    torch.onnx.export(net, torch.rand([1] + model.graph.input), onnx_path, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return weights, graph_path, onnx_path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a CSR model written by `ticket export` (any codec)")
    p.add_argument("--also", nargs="*", default=[], help="more CSR files of the same network")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ticket", help="the ticket binary (default: target/release/ticket)")
    bench_common.add_repeat_argument(p)
    a = p.parse_args()
    ticket = bench_common.ticket_binary(a.ticket)
    results = bench_common.Results("compare_footprint", a.threads, ticket)
    model = ticket_reader.load_csr(a.model)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        weights, graph, onnx_path = dense_files(model, tmp)
        cases = {}
        for path in [a.model, *a.also]:
            name = f"ticket {os.path.basename(path)} ({ticket_reader.load_csr(path).meta['value_dtype']})"
            cases[name] = [ticket, "infer", path, "--bench", "--json", "--threads", str(a.threads)]
        cases["PyTorch dense"] = [py, "-c", TORCH_RUN, str(a.threads), weights, graph, BENCHES]
        cases["ONNX Runtime dense"] = [py, "-c", ORT_RUN, str(a.threads), onnx_path]
        cases["python + torch imported"] = [py, "-c", TORCH_FLOOR]
        cases["python + onnxruntime imported"] = [py, "-c", ORT_FLOOR]
        runs = bench_common.repeat(a.repeat, lambda r: {k: peak_rss(c) for k, c in cases.items()})
    print(f"{'process':<52}{'peak RSS MB':>14}{'wall s':>10}")
    summary = {}
    for name in cases:
        rss = bench_common.spread([r[name][0] / 1e6 for r in runs])
        wall = bench_common.spread([r[name][1] for r in runs])
        summary[name] = {"peak_rss_mb": rss, "wall_s": wall}
        print(f"{name:<52}{rss['median']:>14.1f}{wall['median']:>10.2f}")
    files = {path: os.path.getsize(path) for path in [a.model, *a.also]}
    results.write({"model": a.model, "file_bytes": files, "threads": a.threads,
                   "summary": summary, "repeats": runs})


if __name__ == "__main__":
    main()
