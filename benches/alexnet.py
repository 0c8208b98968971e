#!/usr/bin/env python3
"""AlexNet at full scale, in one run: torchvision's `alexnet()` (random initialisation; no
ImageNet here, so no accuracy) exported by `torch.onnx.export` as a new user would, pruned on
export to Han et al.'s per-layer fractions (conv1 84%, conv2 38%, conv3 35%, conv4 37%, conv5
37%, fc6 9%, fc7 9%, fc8 25%) and written four ways: f32 and f16 with absolute indices, f16
with relative indices, and Deep Compression's codecs (`--dtype conv=k8,linear=k5`); the last
two store gaps of the width per layer kind that gives the fewest bytes (`--index-bits auto`;
the table names the widths chosen, e.g. conv=gap3,linear=gap4). Reports, as a table for the
README and as JSON in benches/results/alexnet-<UTC time>.json:

- parameters kept against the dense model, file bytes of each file against the dense f32
  file, bits per kept weight split into values / indices / the rest;
- peak RSS and wall time of each `ticket export` (import + prune + export of the 244 MB model);
- batch-1 and batch-16 latency of `ticket infer --bench` on each file against ONNX Runtime
  on the dense model (same threads), the peak RSS of each process (separate processes, VmHWM),
  and ticket's open + validate time.

    /work/venv/bin/python benches/alexnet.py --threads 2      # or: just bench-alexnet

Needs torch, torchvision, onnx, onnxscript, onnxruntime, numpy, and /usr/bin/time (GNU time)
for the export's peak RSS.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402

HAN_KEEP = "conv1=0.84,conv2=0.38,conv3=0.35,conv4=0.37,conv5=0.37,fc6=0.09,fc7=0.09,fc8=0.25"
CODECS = {
    "f32": ["--dtype", "f32"],
    "f16": ["--dtype", "f16"],
    "f16+gaps": ["--dtype", "f16", "--index-bits", "auto"],
    "conv=k8,linear=k5+gaps": ["--dtype", "conv=k8,linear=k5", "--index-bits", "auto"],
}
HWM = "\nprint(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))"
# argv: threads, model, repetitions. Prints JSON latencies (ms), then VmHWM.
ORT_RUN = """
import sys, json, time, numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[1])
t = time.perf_counter()
s = ort.InferenceSession(sys.argv[2], opts, providers=["CPUExecutionProvider"])
load_ms = 1e3 * (time.perf_counter() - t)
i = s.get_inputs()[0]
x = np.random.default_rng(0).random([16, 3, 224, 224], dtype=np.float32)
out = {"load_ms": load_ms}
for b in (1, 16):
    s.run(None, {i.name: x[:b]})
    times = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter(); s.run(None, {i.name: x[:b]}); times.append(time.perf_counter() - t)
    out[f"batch{b}_ms"] = 1e3 * sorted(times)[len(times) // 2]
print(json.dumps(out))
""" + HWM


def export_alexnet(directory):
    """torchvision's AlexNet as PyTorch's default exporter writes it (dynamo, weights in a
    .onnx.data file), with a fixed batch of 1 (the batch dimension made dynamic for ORT)."""
    import torch
    import torchvision

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    path = os.path.join(directory, "alexnet.onnx")
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["logits"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    return path


def timed_rss(cmd):
    """(stdout, wall seconds, peak RSS bytes) of `cmd` under GNU time."""
    start = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}: {run.stderr.strip()}")
    return run.stdout, wall, int(run.stderr.strip().splitlines()[-1]) * 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ort-reps", type=int, default=20, help="ONNX Runtime calls per batch size")
    p.add_argument("--ticket", help="the ticket binary (default: target/release/ticket)")
    a = p.parse_args()
    ticket = bench_common.ticket_binary(a.ticket)
    results = bench_common.Results("alexnet", threads=a.threads, ticket=ticket)
    bench_common.print_machine(results.header["machine"])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_alexnet(tmp)
        dense_bytes = os.path.getsize(onnx_path + ".data")
        files = {}
        for name, flags in CODECS.items():
            out = os.path.join(tmp, f"alexnet-{name.replace(',', '-').replace('=', '').replace('+', '-')}.safetensors")
            cmd = [ticket, "export", onnx_path, "--keep-layers", HAN_KEEP, *flags, "--out", out, "--json"]
            stdout, wall, rss = timed_rss(cmd)
            report = json.loads(stdout)
            bench_out, _, infer_rss = timed_rss(
                [ticket, "infer", out, "--bench", "--json", "--threads", str(a.threads)])
            bench = json.loads(bench_out)
            files[name] = {"export": {"wall_s": wall, "peak_rss_bytes": rss}, "report": report["total"],
                           "index_codec": report["index_codec"],
                           "layers": report["layers"], "bench": bench, "infer_process_peak_rss_bytes": infer_rss}
        ort_out, _, ort_rss = timed_rss([sys.executable, "-c", ORT_RUN, str(a.threads), onnx_path, str(a.ort_reps)])
        ort = json.loads(ort_out.splitlines()[0])
        ort["peak_rss_bytes"] = ort_rss

    total = files["f32"]["report"]
    print(f"AlexNet (torchvision, random weights), Han et al.'s per-layer fractions; dense f32 weights "
          f"{dense_bytes / 1e6:.1f} MB; {a.threads} threads")
    print(f"parameters kept: {total['kept_params']} of {total['dense_params']} "
          f"({total['dense_params'] / total['kept_params']:.1f}x fewer)")
    head = (f"{'file':<24}{'index codec':<22}{'bytes':>12}{'vs dense':>10}{'bits/w':>8}{'values':>8}{'indices':>8}{'other':>7}"
            f"{'b1 ms':>8}{'bN ms/ex':>10}{'N':>4}{'peak RSS MB':>13}{'open ms':>9}{'export s':>10}{'export MB':>11}")
    print(head)
    for name, f in files.items():
        t, b = f["report"], f["bench"]
        bits = t["bits"]
        batches = b["bench"]["batches"] if "bench" in b else b.get("batches", [])
        bench = b.get("bench", b)
        big = max(batches) if batches else None
        sparse = bench["sparse"]
        memory = b.get("memory", bench.get("memory", {}))["sparse"]
        index = f["index_codec"].replace("absolute", "u16/u32")
        print(f"{name:<24}{index:<22}{t['csr_file_bytes']:>12}{t['file_ratio']:>9.1f}x{t['bits_per_kept_weight']:>8.1f}"
              f"{bits['values']:>8.1f}{bits['indices']:>8.1f}{bits['other']:>7.1f}"
              f"{sparse['batch1_us_p50'] / 1e3:>8.2f}{sparse.get(f'batch{big}_us_per_sample', float('nan')) / 1e3:>10.2f}"
              f"{big or '-':>4}{memory['peak_rss_bytes_after_runs'] / 1e6:>13.1f}{memory['load_ms']:>9.1f}"
              f"{f['export']['wall_s']:>10.1f}{f['export']['peak_rss_bytes'] / 1e6:>11.1f}")
    print(f"{'ONNX Runtime dense':<46}{dense_bytes:>12}{1.0:>9.1f}x{'':>31}{ort['batch1_ms']:>8.2f}"
          f"{ort['batch16_ms'] / 16:>10.2f}{16:>4}{ort['peak_rss_bytes'] / 1e6:>13.1f}{ort['load_ms']:>9.1f}")
    print("peak RSS: ticket's process after its sparse runs (VmHWM, before --bench builds the dense "
          "network it compares with); ONNX Runtime's whole process")
    results.write({"dense_f32_bytes": dense_bytes, "keep_layers": HAN_KEEP, "files": files, "onnxruntime": ort})


if __name__ == "__main__":
    main()
