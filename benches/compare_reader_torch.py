#!/usr/bin/env python3
"""Checks the reference reader (benches/ticket_reader.py) against PyTorch: for each model file,
a `torch.nn.Sequential` is built from the file's graph (Linear, Conv2d, ReLU, MaxPool2d,
AvgPool2d, Flatten) and loaded with the file's tensors through `safetensors.torch` (CSR weights
densified by `torch.sparse_csr_tensor`), and its logits on the same inputs must match the
reader's (largest difference <= 1e-5 x max(1, largest |logit|)); exit status 1 otherwise.

Besides the files given, it writes a dense checkpoint of a graph that uses every op and option
(stride, padding, rectangular kernels, pools with stride != kernel, avgpool) following
docs/FORMAT.md with random weights and masks, and, given --ticket, exports it with
`ticket export` to check the CSR form too.

    /work/venv/bin/python benches/compare_reader_torch.py model.safetensors ... --ticket target/release/ticket
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ticket_reader  # noqa: E402

TOLERANCE = 1e-5

EVERY_OP = {"input": [3, 11, 9], "layers": [
    {"op": "conv2d", "name": "c1", "in": 3, "out": 6, "kernel": [3, 2], "stride": [2, 1],
     "padding": [1, 2]},
    {"op": "relu"},
    {"op": "maxpool2d", "kernel": [2, 3], "stride": [1, 2]},
    {"op": "conv2d", "name": "c2", "in": 6, "out": 5, "kernel": [2, 2]},
    {"op": "avgpool2d", "kernel": [2, 2], "stride": None},
    {"op": "flatten"},
    {"op": "linear", "name": "fc", "in": 5 * 2 * 2, "out": 4},
    {"op": "relu"},
    {"op": "linear", "name": "out", "in": 4, "out": 3}]}


def graph_of(meta):
    if meta["format_version"].split(".")[0] == "1":
        sizes = [int(s) for s in meta["arch"].split("-")]
        layers = []
        for k, (i, o) in enumerate(zip(sizes, sizes[1:]), start=1):
            layers += [{"op": "relu"}] if k > 1 else []
            layers.append({"op": "linear", "name": f"fc{k}", "in": i, "out": o})
        return {"input": sizes[:1], "layers": layers}
    return json.loads(meta["graph"])


def torch_model(graph):
    """The graph as torch modules, and the names of the weighted ones."""
    modules, names = [], []
    for layer in graph["layers"]:
        op = layer["op"]
        if op == "linear":
            modules.append(torch.nn.Linear(layer["in"], layer["out"]))
        elif op == "conv2d":
            modules.append(torch.nn.Conv2d(layer["in"], layer["out"], tuple(layer["kernel"]),
                                           stride=tuple(layer.get("stride") or (1, 1)),
                                           padding=tuple(layer.get("padding") or (0, 0))))
        elif op == "relu":
            modules.append(torch.nn.ReLU())
        elif op in ("maxpool2d", "avgpool2d"):
            pool = torch.nn.MaxPool2d if op == "maxpool2d" else torch.nn.AvgPool2d
            modules.append(pool(tuple(layer["kernel"]), tuple(layer.get("stride") or
                                                             layer["kernel"])))
        elif op == "flatten":
            modules.append(torch.nn.Flatten(1))
        names.append(layer.get("name"))
    return torch.nn.Sequential(*modules), names


def load_into(path, seq, names):
    tensors = load_file(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    csr = meta["format"] == "ticket-csr"
    with torch.no_grad():
        for module, name in zip(seq, names):
            if name is None:
                continue
            if csr:
                dims = tensors[f"{name}.weight.shape"].tolist()
                rows = dims[0]
                cols = int(np.prod(dims[1:]))
                weight = torch.sparse_csr_tensor(
                    tensors[f"{name}.weight.indptr"].long(),
                    tensors[f"{name}.weight.indices"].long(),
                    tensors[f"{name}.weight.values"].float(), (rows, cols)).to_dense()
                weight = weight.reshape(dims)
            else:
                weight = tensors[f"{name}.weight"]
                weight = weight * tensors.get(f"{name}.weight_mask", torch.ones(1)).float()
            module.weight.copy_(weight.reshape(module.weight.shape))
            module.bias.copy_(tensors[f"{name}.bias"])
    return meta


def compare(path, inputs=64):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        graph = graph_of(json.loads(f.read(n))["__metadata__"])
    seq, names = torch_model(graph)
    load_into(path, seq, names)
    model = ticket_reader.load(path)
    x = np.random.default_rng(1).random([inputs] + graph["input"], dtype=np.float32)
    ours = model.logits(x)
    with torch.no_grad():
        theirs = seq(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(theirs).max()))
    diff = float(np.abs(ours - theirs).max())
    ok = ours.shape == theirs.shape and diff <= TOLERANCE * scale
    print(f"{os.path.basename(path)}: reader vs PyTorch max abs logit difference {diff:.3g} "
          f"(tolerance {TOLERANCE * scale:.3g}) - {'OK' if ok else 'FAILED'}")
    return ok


def write_every_op(path, seed=3):
    """A dense checkpoint of EVERY_OP written from docs/FORMAT.md with random masked weights."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in EVERY_OP["layers"]:
        if layer["op"] not in ("linear", "conv2d"):
            continue
        dims = [layer["out"], layer["in"]] + layer.get("kernel", [])
        mask = (rng.random(dims) < 0.6).astype(np.uint8)
        tensors[f"{layer['name']}.weight"] = (rng.standard_normal(dims).astype(np.float32) * mask)
        tensors[f"{layer['name']}.weight_mask"] = mask
        tensors[f"{layer['name']}.bias"] = rng.standard_normal(dims[0]).astype(np.float32)
    save_file(tensors, path, metadata={
        "format": "ticket-dense", "format_version": "2", "graph": json.dumps(EVERY_OP),
        "iteration": "0", "dataset": "random", "seed": str(seed)})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*")
    p.add_argument("--ticket", help="the ticket binary, to export the every-op checkpoint")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Sparse")
    ok = all([compare(path) for path in args.models])
    with tempfile.TemporaryDirectory() as tmp:
        dense = os.path.join(tmp, "every-op.safetensors")
        write_every_op(dense)
        ok &= compare(dense)
        if args.ticket:
            for dtype in ("f32", "f16", "bf16"):
                out = os.path.join(tmp, f"every-op-{dtype}.csr.safetensors")
                run = subprocess.run([args.ticket, "export", dense, "--out", out, "--dtype",
                                      dtype], capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"ticket export failed: {run.stderr.strip()}")
                    ok = False
                    continue
                ok &= compare(out)
    if not ok:
        sys.exit("FAILED: the reader and PyTorch disagree")


if __name__ == "__main__":
    main()
