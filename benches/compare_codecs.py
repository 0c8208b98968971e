"""Inference speed of one ticket stored with every codec, side by side with its f32 CSR file:
`ticket export` writes each codec, `ticket infer --bench --json` times it (batch 1 p50 latency,
batch 64 and 1024 time per example), and the table gives each codec's time as a ratio to the
f32 CSR file's (below 1 is faster). The compressed files are run straight from their packed
bytes, so this is what the codebook, int8 and gap decoders cost or save.

    python benches/compare_codecs.py runs/paper-fmnist --level 16
    python benches/compare_codecs.py runs/lenet5-fmnist --level 16 --codecs f32 k4+g6 k6+g5 int8
    python benches/compare_codecs.py model.safetensors      # a dense checkpoint or a CSR file

A codec is `DTYPE` (f32, f16, bf16, int8, k2..k8; absolute U16/U32 indices) or `DTYPE+gN`
(N-bit gap indices, `--index-bits N`). Results: benches/results/compare_codecs-<date>.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (Results, add_repeat_argument, fmt_ratio, fmt_spread, print_machine, ratio,
                          repeat, spread, ticket_binary)

DEFAULT_CODECS = ["f32", "f16", "bf16", "int8", "k2", "k4", "k6", "k8",
                  "f32+g5", "int8+g5", "k4+g6", "k5+g5", "k6+g5", "k8+g5"]
FIGURES = [("batch1_us_p50", "batch 1 us"), ("batch64_us_per_sample", "b64 us/ex"),
           ("batch1024_us_per_sample", "b1024 us/ex")]


def export_args(codec):
    """`ticket export` options of a codec name."""
    dtype, _, gaps = codec.partition("+g")
    args = ["--dtype", dtype]
    if gaps:
        args += ["--index-bits", gaps]
    return args


def export(ticket, source, level, codec, directory):
    path = os.path.join(directory, codec.replace("+", "-") + ".safetensors")
    level_args = ["--level", str(level)] if level is not None else []
    subprocess.run([ticket, "export", source, *level_args, *export_args(codec), "-o", path, "--force"],
                   check=True, capture_output=True, text=True)
    return path


def bench(ticket, path, threads):
    out = subprocess.run([ticket, "infer", path, "--bench", "--json", "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    sparse = json.loads(out)["sparse"]
    return {key: sparse[key] for key, _ in FIGURES}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="an IMP run directory, a dense checkpoint or a CSR file")
    p.add_argument("--level", type=int, help="the run's level to export (as `ticket export --level`)")
    p.add_argument("--codecs", nargs="+", default=DEFAULT_CODECS, metavar="CODEC",
                   help=f"codecs to time; f32 always comes first (default: {' '.join(DEFAULT_CODECS)})")
    p.add_argument("--threads", type=int, default=1, help="threads of `ticket infer` (default 1)")
    p.add_argument("--ticket", help="the ticket binary (default target/release/ticket, built if missing)")
    add_repeat_argument(p)
    a = p.parse_args()
    ticket = ticket_binary(a.ticket)
    codecs = ["f32"] + [c for c in a.codecs if c != "f32"]
    results = Results("compare_codecs", threads=a.threads, ticket=ticket)
    print_machine(results.header["machine"])
    with tempfile.TemporaryDirectory() as directory:
        files = {c: export(ticket, a.source, a.level, c, directory) for c in codecs}
        sizes = {c: os.path.getsize(f) for c, f in files.items()}
        runs = repeat(a.repeat, lambda r: {c: bench(ticket, files[c], a.threads) for c in codecs})
    summary = {}
    for c in codecs:
        figures = {key: spread([run[c][key] for run in runs]) for key, _ in FIGURES}
        base = {key: spread([run["f32"][key] for run in runs])["median"] for key, _ in FIGURES}
        summary[c] = {"file_bytes": sizes[c], **figures,
                      "ratio_to_f32_csr": {key: ratio(figures[key]["median"], base[key]) for key, _ in FIGURES}}
    header = f"{'codec':<10} {'bytes':>8}" + "".join(f" {label:>26} {'/f32':>6}" for _, label in FIGURES)
    print(header)
    for c, s in summary.items():
        cells = "".join(f" {fmt_spread(s[key]):>26} {fmt_ratio(s['ratio_to_f32_csr'][key]):>6}" for key, _ in FIGURES)
        print(f"{c:<10} {s['file_bytes']:>8}{cells}")
    results.write({"source": a.source, "level": a.level, "threads": a.threads, "codecs": codecs,
                   "repeat": a.repeat, "repeats": runs, "summary": summary})


if __name__ == "__main__":
    main()
