#!/usr/bin/env python3
"""What the Python binding adds to a forward pass: `ticket.Model.predict` at batch 1 timed from
Python against `ticket infer --bench`'s in-process batch-1 p50 on the same CSR file, one run
side by side, plus Model.benchmark() (the same Rust measurement, called through the binding).

    python benches/compare_python.py MODEL [--threads 1] [--repeat 3] [--calls 20000]

Needs the package installed (`pip install ./python`) in the running interpreter. Results:
benches/results/compare_python-<date>.json.
"""
import argparse
import json
import statistics
import subprocess
import time

import numpy as np

import bench_common as bc
import ticket


def python_batch1_us(model, x, calls):
    """p50 of single predict calls (perf_counter_ns around each), after a warm-up."""
    for _ in range(min(calls, 2000)):
        model.predict(x)
    times = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t = clock()
        model.predict(x)
        times.append(clock() - t)
    return statistics.median(times) / 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a CSR safetensors file written by `ticket export`")
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--ticket", help="the ticket binary (default: target/release/ticket)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads of both sides (default 1: the binding's cost alone, no thread wake-ups)")
    bc.add_repeat_argument(p)
    a = p.parse_args()
    binary = bc.ticket_binary(a.ticket)
    results = bc.Results("compare_python", threads=a.threads, ticket=binary)
    model = ticket.load(a.model, threads=a.threads)
    x = np.random.default_rng(0).random((1, *model.input_shape), dtype=np.float32)

    def once(r):
        cli = json.loads(subprocess.run([binary, "infer", a.model, "--bench", "--json", "--threads", str(a.threads)],
                                        check=True, capture_output=True, text=True).stdout)
        return {
            "cli_batch1_us_p50": cli["sparse"]["batch1_us_p50"],
            "binding_benchmark_batch1_us_p50": model.benchmark(threads=a.threads)["sparse"]["batch1_us_p50"],
            "python_predict_batch1_us_p50": python_batch1_us(model, x, a.calls),
        }

    runs = bc.repeat(a.repeat, once, "python binding")
    keys = list(runs[0])
    s = {k: bc.spread([r[k] for r in runs]) for k in keys}
    for k in keys:
        print(f"  {k:<34} {bc.fmt_spread(s[k])} us")
    added = s["python_predict_batch1_us_p50"]["median"] - s["cli_batch1_us_p50"]["median"]
    print(f"  predict from Python adds {added:.2f} us per call at batch 1 (medians)")
    results.write({"model": a.model, "calls": a.calls, "repeats": runs, "spread": s,
                   "added_us_median": added})


if __name__ == "__main__":
    main()
