"""What every comparison script under benches/ shares, so that their figures can be reproduced:
the repeat loop, median and spread of the repeats, a description of the machine and the
software versions, and the JSON file in benches/results/ that keeps all of it with the exact
command line.

    p = argparse.ArgumentParser(); add_repeat_argument(p); a = p.parse_args()
    results = Results("compare_x", threads=2)          # machine, versions, command line
    runs = repeat(a.repeat, lambda r: {"ticket": time_ticket(), "pytorch": time_pytorch()})
    t, p = (spread([r[k] for r in runs]) for k in ("ticket", "pytorch"))
    print(fmt_spread(t), fmt_spread(p), fmt_ratio(ratio(p["median"], t["median"])))
    results.write({"repeats": runs})                   # prints the path
"""
import datetime
import importlib
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "benches", "results")
DEFAULT_REPEAT = 3
# lscpu flags worth knowing when reading a timing: which vector units the kernels could use.
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile")


def add_repeat_argument(parser):
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="N",
                        help=f"run each side N times and report median and min-max (default {DEFAULT_REPEAT})")


def repeat(n, run_once, label=""):
    """[run_once(r) for r in range(n)], announcing each repeat on stderr (runs take minutes)."""
    if n < 1:
        raise SystemExit(f"--repeat must be at least 1, got {n}")
    out = []
    for r in range(n):
        print(f"{label}repeat {r + 1}/{n}", file=sys.stderr, flush=True)
        out.append(run_once(r))
    return out


def spread(values):
    """Median, min and max of the finite values among `values` (None and NaN are skipped)."""
    finite = [float(v) for v in values if v is not None and v == v]
    if not finite:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(finite), "min": min(finite), "max": max(finite), "n": len(finite)}


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def fmt_spread(s, digits=3):
    """`median [min-max]` of a spread(), or `-` when there was nothing to measure."""
    if s["median"] is None:
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])} [{f.format(s['min'])}-{f.format(s['max'])}]"


def fmt_ratio(r, digits=2):
    return "-" if r is None else f"{r:.{digits}f}x"


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds)."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def ticket_binary(path=None):
    """The release binary (built first when missing), as an absolute path."""
    path = path or os.path.join(ROOT, "target", "release", "ticket")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    return os.path.abspath(path)


def lscpu():
    """`lscpu` as a dict of its "Key: value" lines ({} where lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in text.splitlines()) if v)


def machine(threads):
    info = lscpu()
    flags = set(info.get("Flags", "").split())
    return {
        "cpu_model": info.get("Model name", platform.processor() or "unknown"),
        "cpus": os.cpu_count(),
        "threads_used": threads,
        "flags": {f: f in flags for f in FLAGS_OF_INTEREST},
        "hypervisor": info.get("Hypervisor vendor"),
        "os": platform.platform(),
    }


def git_commit():
    """HEAD of the ticket checkout, with `-dirty` when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions(modules=("torch", "onnxruntime", "onnx", "scipy", "numpy", "safetensors")):
    """Versions of the Python packages that are installed, of Python, and of the ticket checkout."""
    out = {"python": platform.python_version(), "ticket_commit": git_commit()}
    for name in modules:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = None
    return out


def command_line():
    return shlex.join([sys.executable, *sys.argv])


def print_machine(m):
    present = ", ".join(f for f, on in m["flags"].items() if on) or "none of " + ", ".join(FLAGS_OF_INTEREST)
    print(f"machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['threads_used']} threads used; {present}")


class Results:
    """One JSON file per run of a script: benches/results/<name>-<UTC date and time>.json."""

    def __init__(self, name, threads, ticket=None):
        self.name = name
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.header = {
            "script": name,
            "started_utc": self.started.isoformat(timespec="seconds"),
            "command": command_line(),
            "cwd": os.getcwd(),
            "machine": machine(threads),
            "versions": versions(),
        }
        if ticket:
            # The binary may have been built from another state than the checkout's HEAD.
            built = datetime.datetime.fromtimestamp(os.path.getmtime(ticket), datetime.timezone.utc)
            self.header["ticket_binary"] = {"path": os.path.abspath(ticket),
                                            "modified_utc": built.isoformat(timespec="seconds")}

    def write(self, payload, directory=RESULTS_DIR):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{self.name}-{self.started.strftime('%Y-%m-%dT%H%M%SZ')}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(_plain({**self.header, **payload}), f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(path + ".tmp", path)
        print(f"results: {os.path.relpath(path)}")
        return path


def _plain(value):
    """JSON-ready copy: numpy scalars and arrays as Python values, NaN and infinities as null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
