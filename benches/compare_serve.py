#!/usr/bin/env python3
"""`ticket serve` against KServe's Python ModelServer serving the same weights with ONNX
Runtime, side by side: the same Open Inference Protocol request (one example, JSON tensors,
as Triton's and KServe's clients send it), the same load generator (wrk), concurrency 1, 16
and 64, one server at a time on this machine.

Without --model it writes the random LeNet-300-100 ticket of compare_infer.py (the paper's
level-15 densities). The ONNX model is the CSR file's dense weights (Gemm + Relu), built by
compare_infer.py's exporter, and both servers' logits are checked against each other before
anything is timed. Also measured: `ticket infer --bench`'s in-process batch-1 p50, the figure
the served batch-1 latency is compared with, ticket with binary tensors, with two HTTP
threads (`--http-threads 2`: parsing in parallel, but no thread kept polling the sockets) and
without spinning (`--spin-us 0`, concurrency 1 only).

    cargo build --release
    sudo apt-get install wrk        # Debian's wrk
    .venv/bin/pip install kserve onnxruntime onnx scipy safetensors numpy
    .venv/bin/python benches/compare_serve.py [--duration 10] [--repeat 3] [--model lenet.safetensors]

With --repeat N every server is run N times (in reverse order every other time, so that a
drifting host disturbs all alike) and the summary takes each figure's median over the repeats.

Prints a table and writes benches/results/compare_serve-<UTC time>.json (every wrk figure,
the wrk commands, the machine and versions, via bench_common).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONCURRENCY = (1, 16, 64)
MODEL_NAME = "lenet"
# wrk runs the request from this Lua script, body (and binary header length) from the
# environment.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local n = os.getenv("HEADER_LENGTH")
if n and n ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = n
else
  wrk.headers["Content-Type"] = "application/json"
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, what, timeout=120):
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/ready"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready on port {port}")


def infer(port, body, header_length=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer", data=body)
    if header_length is None:
        req.add_header("Content-Type", "application/json")
    else:
        req.add_header("Content-Type", "application/octet-stream")
        req.add_header("Inference-Header-Content-Length", str(header_length))
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def json_request(x):
    return json.dumps({
        "id": "bench",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
    }).encode()


def binary_request(x):
    header = json.dumps({
        "id": "bench",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()
    return header + x.astype("<f4").tobytes(), len(header)


def parse_wrk(text):
    """Requests/s, latency percentiles (us) and error counts from `wrk --latency` output."""
    units = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}

    def us(value):
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        return float(m.group(1)) * units[m.group(2)]

    out = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M):
        out[f"p{p}_us"] = us(v)
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: (.*)", text)
    out["socket_errors"] = errors.group(1).strip() if errors else ""
    return out


def run_wrk(port, body_path, header_length, concurrency, duration, script):
    """POSTs `body_path` to the model's infer endpoint, or GETs /v2/health/ready when it is None."""
    cmd = ["wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{duration}s", "--latency"]
    if body_path is None:
        cmd.append(f"http://127.0.0.1:{port}/v2/health/ready")
    else:
        cmd += ["-s", str(script), f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"]
    env = dict(os.environ, BODY=str(body_path), HEADER_LENGTH="" if header_length is None else str(header_length))
    text = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result = parse_wrk(text)
    result["command"] = " ".join(cmd)
    return result


def kserve_child(onnx_path, port, threads):
    """Runs KServe's ModelServer with one model that calls ONNX Runtime (this process)."""
    import kserve
    import onnxruntime as ort
    from kserve import InferOutput, InferResponse

    class OnnxModel(kserve.Model):
        def __init__(self):
            super().__init__(MODEL_NAME)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
            self.ready = True

        async def predict(self, payload, headers=None, response_headers=None):
            x = payload.inputs[0].as_numpy()
            logits = self.session.run(None, {"input": x})[0]
            out = InferOutput(name="logits", shape=list(logits.shape), datatype="FP32")
            out.set_data_from_numpy(logits, binary_data=False)
            return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[out])

    kserve.ModelServer(http_port=port, grpc_port=free_port(), enable_grpc=False, workers=1,
                       enable_latency_logging=False).start([OnnxModel()])


def ticket_bench_p50(ticket, model, threads):
    out = subprocess.run([ticket, "infer", model, "--bench", "--json", "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def stop(proc):
    proc.terminate()
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a CSR MLP written by `ticket export` (default: a random LeNet-300-100 ticket)")
    ap.add_argument("--ticket", default=None, help="the ticket binary (default: target/release/ticket)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    ap.add_argument("--threads", type=int, default=2, help="kernel threads of both servers")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every server; the summary takes medians")
    ap.add_argument("--kserve-child", nargs=2, metavar=("ONNX", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.kserve_child:
        return kserve_child(args.kserve_child[0], int(args.kserve_child[1]), args.threads)
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")

    import bench_common
    import compare_infer as ci

    args.ticket = bench_common.ticket_binary(args.ticket)
    report = bench_common.Results("compare_serve", threads=args.threads, ticket=args.ticket)

    tmp = Path(tempfile.mkdtemp(prefix="compare_serve-"))
    model = args.model or str(tmp / "lenet.safetensors")
    if not args.model:
        ci.write_random_lenet(model)
    layers = ci.load_layers(model)
    onnx_path = tmp / "lenet.onnx"
    onnx_path.write_bytes(ci.onnx_model(layers))
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT)

    features = layers[0][0].shape[1]
    x = np.random.default_rng(0).random((1, features), dtype=np.float32)
    bodies = {"json": (tmp / "request.json", None)}
    bodies["json"][0].write_bytes(json_request(x))
    binary, n = binary_request(x)
    (tmp / "request.bin").write_bytes(binary)
    bodies["binary"] = (tmp / "request.bin", n)

    serve = [args.ticket, "serve", "--model", f"{MODEL_NAME}={model}", "--threads", str(args.threads)]
    # (command, tensor formats, concurrencies). `--spin-us 0` shows what the wake-ups cost at
    # concurrency 1; the health endpoint (no body, no model) is the loopback HTTP floor.
    # `--http-threads 2` parses on two threads but cannot keep one polling the sockets.
    servers = {
        "ticket serve": (serve, ("json", "binary", "health"), CONCURRENCY),
        "ticket serve --http-threads 2": (serve + ["--http-threads", "2"], ("json", "binary", "health"), CONCURRENCY),
        "ticket serve --spin-us 0": (serve + ["--spin-us", "0"], ("json", "binary", "health"), (1,)),
        "kserve + onnxruntime": (
            [sys.executable, __file__, "--threads", str(args.threads), "--kserve-child", str(onnx_path)],
            ("json",), CONCURRENCY),
    }
    results = []

    def run_server(name, cmd, formats, concurrencies, rep, reference):
        """Starts one server, checks its logits against `reference` (the first server's), runs
        wrk on it, stops it; returns the reference."""
        port = free_port()
        cmd = cmd + (["--port", str(port)] if name.startswith("ticket serve") else [str(port)])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, name)
            logits = np.array(infer(port, bodies["json"][0].read_bytes())["outputs"][0]["data"], dtype=np.float32)
            if reference is None:
                reference = logits
            np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-5, err_msg=f"{name} logits")
            for fmt in formats:
                path, header_length = bodies.get(fmt, (None, None))
                run_wrk(port, path, header_length, 16, 2, script)  # warm-up
                for c in concurrencies:
                    r = run_wrk(port, path, header_length, c, args.duration, script)
                    r.update(server=name, tensors=fmt, concurrency=c, repeat=rep)
                    results.append(r)
                    print(f"{name:29} {fmt:6} c={c:<3} {r['requests_per_s']:10.0f} req/s  "
                          f"p50 {r['p50_us']:8.0f} us  p99 {r['p99_us']:8.0f} us  non-2xx {r['non_2xx']}",
                          flush=True)
        finally:
            code = stop(proc)
            if name.startswith("ticket serve") and code != 0:
                raise SystemExit(f"ticket serve exited {code} on SIGTERM")
        return reference

    reference, in_process = None, []
    for rep in range(args.repeat):
        if args.repeat > 1:
            print(f"repeat {rep + 1}/{args.repeat}", flush=True)
        in_process.append(ticket_bench_p50(args.ticket, model, args.threads))
        order = list(servers.items())
        for name, (cmd, formats, concurrencies) in order if rep % 2 == 0 else order[::-1]:
            reference = run_server(name, cmd, formats, concurrencies, rep, reference)

    def row(server, fmt, c):
        """The median over the repeats of each figure of one (server, tensors, concurrency)."""
        runs = [r for r in results if (r["server"], r["tensors"], r["concurrency"]) == (server, fmt, c)]
        return {k: float(np.median([r[k] for r in runs])) for k in ("requests_per_s", "p50_us", "p99_us")}

    summary = {}
    for c in CONCURRENCY:
        t, k = row("ticket serve", "json", c), row("kserve + onnxruntime", "json", c)
        summary[f"c{c}"] = {
            "throughput_ratio": t["requests_per_s"] / k["requests_per_s"],
            "p99_us": {"ticket": t["p99_us"], "kserve": k["p99_us"]},
        }
    batch1 = float(np.median([b["sparse"]["batch1_us_p50"] for b in in_process]))
    summary["repeats"] = args.repeat
    summary["in_process_batch1_p50_us"] = batch1
    for fmt in ("json", "binary"):
        summary[f"c1_{fmt}_p50_minus_in_process_us"] = row("ticket serve", fmt, 1)["p50_us"] - batch1
        summary[f"c1_{fmt}_p50_us_without_spinning"] = row("ticket serve --spin-us 0", fmt, 1)["p50_us"]
        summary[f"c1_{fmt}_p50_us_two_http_threads"] = row("ticket serve --http-threads 2", fmt, 1)["p50_us"]
        summary[f"c64_{fmt}_requests_per_s"] = {
            "one_http_thread": row("ticket serve", fmt, 64)["requests_per_s"],
            "two_http_threads": row("ticket serve --http-threads 2", fmt, 64)["requests_per_s"],
        }
    summary["c1_health_p50_us"] = row("ticket serve", "health", 1)["p50_us"]
    # What an infer request adds to the server's own no-op round trip.
    for fmt in ("json", "binary"):
        summary[f"c1_{fmt}_p50_minus_health_us"] = row("ticket serve", fmt, 1)["p50_us"] - summary["c1_health_p50_us"]
    summary["c1_health_p50_us_two_http_threads"] = row("ticket serve --http-threads 2", "health", 1)["p50_us"]
    print(json.dumps(summary, indent=2))
    report.write({
        "model": args.model or "random LeNet-300-100 ticket (compare_infer.write_random_lenet)",
        "duration_s": args.duration,
        "ticket_infer_bench": in_process,
        "runs": results,
        "summary": summary,
    })


if __name__ == "__main__":
    main()
