#!/usr/bin/env python3
"""Sparse conv-net inference of one CSR model file, side by side in one run: ONNX Runtime (the
dense weights, zeros included, exported by `torch.onnx.export`), PyTorch dense, and
`ticket infer --bench --json`, after checking that all three (ticket through
`ticket infer --input/--output`) give the same logits on the same inputs.

Without --model it writes a random ticket first, with ticket's own tools
(`random_checkpoint`, then `ticket export`): `--net lenet-5` at Han et al.'s per-layer densities
(conv1 66%, conv2 12%, fc1 8%, fc2 19%), `--net conv-2` at the densities of 10 rounds of
Frankle & Carbin's IMP (conv and output layers 0.9^10 = 34.9%, hidden fc 0.8^10 = 10.7%; 11% of
all weights), `--net alexnet` (torchvision's AlexNet) at Han et al.'s (conv1 84%, conv2 38%,
conv3 35%, conv4 37%, conv5 37%, fc6 9%, fc7 9%, fc8 25%).

Every figure is each path's own median, measured in this one run (2 threads by default):
batch 1 is the p50 latency of single calls, the other batches (64 and 1024; AlexNet 16, or
--batches) the median microseconds per example. At batches other than 64 and 1024, ticket is
timed by the `batch_latency` example of ticket-infer (the sparse path of `--bench` at any batch
size, without its dense comparison), which this script builds. PyTorch and ONNX Runtime are called from this Python process (their call overhead is
in their batch-1 figures, as a Python deployer pays it); ticket times itself inside Rust. The
fraction of peak divides the kept multiply-adds per example by the time and by the machine's
peak FMA rate as ticket measures it in each repeat (chains of fused multiply-adds on one
thread and on all at once, before and after its timings: `peak` of `ticket infer --bench`).
The lowest "cores reached" of those measurements is printed: below the thread count, the
virtual CPUs shared a core while the repeat ran.

    just bench-conv                      # both nets, or:
    cargo build --release
    /work/venv/bin/python benches/compare_conv.py --net lenet-5 [--threads 2] [--repeat 3]
    /work/venv/bin/python benches/compare_conv.py --net alexnet        # batch 1 and 16
    /work/venv/bin/python benches/compare_conv.py --model some.csr.safetensors
"""
import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common as bc  # noqa: E402
import ticket_reader  # noqa: E402
from compare_infer import latency_us, onnx_session, per_sample_us, ticket_logits  # noqa: E402
from compare_reader_torch import graph_of, load_into, torch_model  # noqa: E402

# The batch sizes of `ticket infer --bench`, the default besides batch 1.
BENCH_BATCHES = (64, 1024)
# Per weighted layer, in graph order.
DENSITIES = {
    "lenet-5": "0.66,0.12,0.08,0.19",
    "conv-2": ",".join(str(round(d, 4)) for d in (0.9**10, 0.9**10, 0.8**10, 0.8**10, 0.9**10)),
    "alexnet": "0.84,0.38,0.35,0.37,0.37,0.09,0.09,0.25",
}
# Inputs of more values than this (ImageNet-size images: AlexNet's are 600 KB) get a batch of
# 16 instead of BENCH_BATCHES (1024 would take minutes on the dense paths) and 4 examples
# whose logits are checked instead of 97.
LARGE_INPUT = 100_000
LARGE_BATCHES = (16,)
PATHS = ("onnxruntime dense", "pytorch dense", "ticket sparse")
LOGIT_TOLERANCE = 1e-4
# Kept multiply-adds per example above which ticket's batch-1 pass splits its layers over the
# threads (the conv kernels' threshold, 2^19, met by every AlexNet layer).
BATCH1_SPLIT_WORK = 1 << 19


def write_random_ticket(net, directory, seed=1):
    """A random CSR ticket of recipe `net` at DENSITIES[net], written by ticket's tools."""
    dense = os.path.join(directory, f"{net}.safetensors")
    csr = os.path.join(directory, f"{net}.csr.safetensors")
    subprocess.run(["cargo", "run", "--release", "-q", "-p", "ticket-export", "--example", "random_checkpoint",
                    "--", net, dense, DENSITIES[net], str(seed)], cwd=bc.ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([bc.ticket_binary(), "export", dense, "--out", csr, "--force"], check=True,
                   stdout=subprocess.DEVNULL)
    return csr


def read_meta(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))["__metadata__"]


def multiply_adds(graph, model):
    """Kept multiply-adds per example, layer by layer: a conv weight once per output pixel."""
    out = {}
    for layer, shape in zip(graph.layers, graph.shapes):
        if layer["op"] in ("linear", "conv2d"):
            i = [w["name"] for w in graph.weighted].index(layer["name"])
            pixels = math.prod(shape[1:]) if layer["op"] == "conv2d" else 1
            out[layer["name"]] = {"kept": int(model.weights[i].nnz) * pixels,
                                  "dense": graph.weighted[i]["rows"] * graph.weighted[i]["cols"] * pixels}
    return out


def measured_peak(runs, threads):
    """(multiply-adds per microsecond on all threads, the same per core, a note) from the peak
    rates ticket measured in the repeats (the best of them), else the nominal peak."""
    peaks = [r["ticket_peak"] for r in runs if r.get("ticket_peak")]
    if not peaks:
        peak, note = peak_fma_per_us(threads)
        return peak, None if peak is None else peak / threads, note
    best = lambda key: max(max(p[key]) for p in peaks)
    cores = min(min(p["cores_reached"]) for p in peaks)
    return (best("all_threads_macs_per_us"), best("one_thread_macs_per_us"),
            f"measured by ticket ({peaks[0]['isa']}): {best('one_thread_macs_per_us') / 1e3:.1f} multiply-adds/ns "
            f"on 1 thread, {best('all_threads_macs_per_us') / 1e3:.1f} on {threads}; cores reached at least "
            f"{cores:.2f} of {threads} across the repeats")


def peak_fma_per_us(threads):
    """f32 multiply-adds per microsecond at peak on `threads` cores (2 FMA units x 8 lanes per
    core and cycle) from the clock, and where the clock came from."""
    info = bc.lscpu()
    mhz, source = info.get("CPU max MHz"), "lscpu CPU max MHz"
    if not mhz:
        try:
            with open("/proc/cpuinfo") as f:
                mhz = next(line.split(":")[1] for line in f if line.startswith("cpu MHz"))
            source = "/proc/cpuinfo cpu MHz (nominal)"
        except (OSError, StopIteration):
            return None, "unknown clock"
    return threads * 2 * 8 * float(mhz), f"{source} = {float(mhz):.0f}"


def onnx_bytes(seq, example):
    """The dense torch model as ONNX with a dynamic batch dimension."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                      opset_version=17)
        try:
            torch.onnx.export(seq, (example,), buf, dynamo=False, **kwargs)
        except TypeError:  # a torch without the `dynamo` switch
            torch.onnx.export(seq, (example,), buf, **kwargs)
    return buf.getvalue()


def check_logits_agree(model_path, seq, onnx_run, ticket, x, tmp):
    """ticket, PyTorch dense and ONNX Runtime against the reference reader (numpy/scipy)."""
    ref = ticket_reader.load(model_path).logits(x)
    with torch.no_grad():
        torch_logits = seq(torch.from_numpy(x)).numpy()
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    worst = {}
    for name, got in [("ticket", ticket_logits(ticket, model_path, flat, tmp)),
                      ("pytorch dense", torch_logits), ("onnxruntime dense", onnx_run(x))]:
        err = float(np.max(np.abs(got - ref)))
        if err > LOGIT_TOLERANCE * (1 + float(np.max(np.abs(ref)))):
            raise SystemExit(f"{model_path}: {name} logits differ from the reference reader's by {err}")
        worst[name] = err
    return worst


def ticket_bench(ticket, model, threads, batches):
    """`ticket infer --bench --json` at its batch sizes, else the `batch_latency` example at
    `batches` (no dense path)."""
    run = lambda cmd: json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    if tuple(batches) == BENCH_BATCHES:
        bench = run([ticket, "infer", model, "--bench", "--json", "--threads", str(threads)])
        # --bench caps its batch sizes for slow models (its `batches`): then time these here.
        if tuple(bench.get("batches", BENCH_BATCHES)) == BENCH_BATCHES:
            return bench
    return run([batch_latency_binary(), model, str(threads)] + [str(b) for b in batches])


def batch_latency_binary():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ticket-infer", "--example", "batch_latency"],
                   cwd=bc.ROOT, check=True)
    return os.path.join(bc.ROOT, "target", "release", "examples", "batch_latency")


def measure_once(ctx, a):
    """One repeat of every path at batch 1 and a.batches."""
    pool, seq, session = ctx["pool"], ctx["seq"], ctx["session"]
    examples = [pool[i:i + 1] for i in range(min(256, len(pool)))]
    run = {}

    def torch_fn(x):
        with torch.no_grad():
            return seq(torch.from_numpy(x))

    for name, fn in [("onnxruntime dense", lambda x: session.run(None, {"input": x})[0]),
                     ("pytorch dense", torch_fn)]:
        p50, p99 = latency_us(fn, examples, a.budget)
        entry = {"batch1_us_p50": p50, "batch1_us_p99": p99}
        for batch in a.batches:
            entry[f"batch{batch}_us_per_sample"] = per_sample_us(fn, pool[:batch], a.budget)
        run[name] = entry
    bench = ticket_bench(ctx["ticket"], ctx["model"], a.threads, a.batches)
    run["ticket sparse"] = {k: v for k, v in bench["sparse"].items() if k != "layers"}
    if "dense" in bench:
        run["ticket dense"] = bench["dense"]
    run["ticket_layers"] = bench["sparse"]["layers"]
    run["ticket_peak"] = bench.get("peak")
    return run


def keys(batches):
    return ("batch1_us_p50",) + tuple(f"batch{b}_us_per_sample" for b in batches)


def measured_paths(runs):
    return PATHS + (("ticket dense",) if "ticket dense" in runs[0] else ())


def summarize(runs, macs, peak, per_core, threads, batches):
    s = {}
    for path in measured_paths(runs):
        s[path] = {k: bc.spread([r[path][k] for r in runs]) for k in keys(batches)}
    kept = sum(m["kept"] for m in macs.values())
    for k in keys(batches):
        best = min(PATHS[:2], key=lambda p: s[p][k]["median"])
        t = s["ticket sparse"][k]["median"]
        s.setdefault("speedup_vs_faster_anchor", {})[k] = {"anchor": best,
                                                          "ratio": bc.ratio(s[best][k]["median"], t)}
        # Batch 1 runs on one core unless its layers are large enough to split (AlexNet's).
        one_core = k.startswith("batch1_") and kept < BATCH1_SPLIT_WORK
        rate = per_core if one_core else peak
        s.setdefault("ticket_fraction_of_peak", {})[k] = None if rate is None else kept / t / rate
    return s


def print_tables(s, macs, layers, peak_note, repeats, batches):
    label = {"batch1_us_p50": "batch 1 p50 us"} | {f"batch{b}_us_per_sample": f"batch {b} us/ex" for b in batches}
    ks = keys(batches)
    print(f"\nmedian [min-max] of {repeats} repeat(s)")
    print(f"{'path':<20}" + "".join(f" {label[k]:>31}" for k in ks))
    for path in [p for p in PATHS + ("ticket dense",) if p in s]:
        print(f"{path:<20}" + "".join(f" {bc.fmt_spread(s[path][k], 2):>31}" for k in ks))
    sp = s["speedup_vs_faster_anchor"]
    print(f"{'ticket vs faster':<20}" + "".join(
        f"{bc.fmt_ratio(sp[k]['ratio']) + ' (' + sp[k]['anchor'].split()[0] + ')':>32}" for k in ks))
    fr = s["ticket_fraction_of_peak"]
    print(f"{'ticket % of peak':<20}" + "".join(
        f"{'-' if fr[k] is None else format(100 * fr[k], '.1f') + '%':>32}" for k in ks))
    kept = sum(m["kept"] for m in macs.values())
    dense = sum(m["dense"] for m in macs.values())
    print(f"multiply-adds per example: kept {kept} of {dense} ({100 * kept / dense:.1f}%); "
          f"peak: {peak_note} (batch 1 on {'all threads' if kept >= BATCH1_SPLIT_WORK else '1 core'}, "
          f"batches on all threads)")
    print("\nticket sparse per step, us per example (first repeat; mean wall time of a step at batch 1, "
          "threads' time added up at larger batches), and at batch 1 of one core's peak (a layer split "
          "over two threads can pass 100%):")
    print(f"  {'step':<12}{'batch 1':>10}" + "".join(f"{'batch ' + str(b):>12}" for b in batches)
          + "  kept multiply-adds  batch 1 of 1 core")
    per_core = s.get("peak_fma_per_us_per_core")
    for step in layers:
        m = macs.get(step["step"].split("+")[0], {}).get("kept", "")  # `conv1+maxpool2d`: conv1
        share = "" if not m or per_core is None else f"{100 * m / step['batch1_us'] / per_core:.1f}%"
        print(f"  {step['step']:<12}{step['batch1_us']:>10.3f}"
              + "".join(f"{step[f'batch{b}_us_per_sample']:>12.3f}" for b in batches) + f"  {m:>18}  {share:>17}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="CSR model file of a conv net (default: a random ticket of --net)")
    ap.add_argument("--net", choices=sorted(DENSITIES), default="lenet-5",
                    help="recipe of the random ticket written without --model (default lenet-5)")
    ap.add_argument("--threads", type=int, default=2, help="threads of PyTorch, ONNX Runtime and ticket (default 2)")
    ap.add_argument("--ticket", default=None, help="ticket binary (default: target/release/ticket)")
    ap.add_argument("--budget", type=float, default=0.6, help="seconds per timed measurement (default 0.6)")
    ap.add_argument("--batches", type=lambda v: tuple(int(b) for b in v.split(",")), default=None,
                    help="batch sizes besides 1, comma-separated (default 64,1024; 16 for ImageNet-size inputs)")
    bc.add_repeat_argument(ap)
    a = ap.parse_args()
    a.ticket = bc.ticket_binary(a.ticket)
    results = bc.Results("compare_conv", a.threads, a.ticket)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model or write_random_ticket(a.net, tmp)
        spec = graph_of(read_meta(model))
        graph = ticket_reader.Graph(spec)
        large = math.prod(graph.input) > LARGE_INPUT
        a.batches = a.batches or (LARGE_BATCHES if large else BENCH_BATCHES)
        seq, names = torch_model(spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on its beta CSR tensors
            load_into(model, seq, names)
        seq.eval()
        rng = np.random.default_rng(1)
        pool = rng.random([max(a.batches)] + graph.input, dtype=np.float32)
        session = onnx_session(onnx_bytes(seq, torch.from_numpy(pool[:1])), a.threads)
        diffs = check_logits_agree(model, seq, lambda x: session.run(None, {"input": x})[0], a.ticket,
                                   pool[:4 if large else 97], tmp)
        macs = multiply_adds(graph, ticket_reader.load(model))
        print(f"model {a.model or 'random ' + a.net + ' ticket at ' + DENSITIES[a.net]}: logits of ticket, "
              f"PyTorch dense and ONNX Runtime agree with the reference reader (max |diff| "
              f"{max(diffs.values()):.2e})")
        bc.print_machine(results.header["machine"])
        ctx = {"pool": pool, "seq": seq, "session": session, "ticket": a.ticket, "model": model}
        runs = bc.repeat(a.repeat, lambda r: measure_once(ctx, a))
    peak, per_core, peak_note = measured_peak(runs, a.threads)
    summary = summarize(runs, macs, peak, per_core, a.threads, a.batches)
    summary["peak_fma_per_us_per_core"] = per_core
    print_tables(summary, macs, runs[0]["ticket_layers"], peak_note, a.repeat, a.batches)
    results.write({"model": a.model or f"random {a.net} ticket (random_checkpoint {DENSITIES[a.net]}, seed 1)",
                   "densities": None if a.model else DENSITIES[a.net], "multiply_adds": macs,
                   "max_logit_diff_vs_reader": diffs, "peak_fma_per_us": peak, "peak_note": peak_note,
                   "repeat": a.repeat, "summary": summary, "repeats": runs})


if __name__ == "__main__":
    sys.exit(main())
