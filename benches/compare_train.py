#!/usr/bin/env python3
"""LeNet-300-100 or LeNet-5 training speed and accuracy: ticket vs PyTorch, side by side.

Both train the same recipe (`--model lenet-300-100`: the paper's 784-300-100-10 MLP;
`--model lenet-5`: conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, fc 10; ReLU,
Glorot-normal init, zero biases, Adam 1.2e-3, batch 60) for the same number of iterations on the same Fashion-MNIST split (ticket's fixed
55k/5k train/validation split, reproduced here bit for bit, and the 10k test set), evaluate on
validation and test every 100 iterations, and report training examples/s (evaluation time
excluded on both sides) and final test accuracy.

    python3 -m venv .venv && .venv/bin/pip install torch numpy
    cargo build --release
    .venv/bin/python benches/compare_train.py --iterations 3000 --threads 2 [--repeat 3]
    .venv/bin/python benches/compare_train.py --model lenet-5 --iterations 1000 --threads 2

Each side is run --repeat times; medians, min-max and every repeat go to
benches/results/compare_train-<date>.json.
"""
import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
from torch import nn

import bench_common as bc

FASHION = "/usr/share/datasets/fashion-mnist"
SPLIT_SEED = 0x7469636B6574  # ticket_core::dataset::SPLIT_SEED
MASK64 = (1 << 64) - 1


def permutation(n, seed):
    """ticket_core::dataset::permutation: splitmix64-driven Fisher-Yates."""
    state = seed
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    return np.array(order)


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, validation):
    def pair(prefix):
        x = read_idx(f"{data_dir}/{prefix}-images-idx3-ubyte.gz")
        y = read_idx(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz")
        return x.reshape(len(x), -1).astype(np.float32) / 255.0, y.astype(np.int64)

    x, y = pair("train")
    order = permutation(len(x), SPLIT_SEED ^ 1)
    val, train = order[:validation], order[validation:]
    xt, yt = pair("t10k")
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return (t(x[train]), t(y[train])), (t(x[val]), t(y[val])), (t(xt), t(yt))


def evaluate(model, x, y):
    with torch.no_grad():
        correct = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                      for i in range(0, len(x), 1000))
        return correct / len(x)


def lenet():
    """784-300-100-10, ReLU, Glorot-normal weights, zero biases."""
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def lenet5():
    """models/lenet-5.toml in torch.nn: inputs are reshaped to [batch, 1, 28, 28]."""
    model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)),
                          nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return model


MODELS = {"lenet-300-100": ("LeNet-300-100", lenet), "lenet-5": ("LeNet-5", lenet5)}


def train_pytorch(model_name, data, iterations, eval_every, seed):
    (x, y), (xv, yv), (xt, yt) = data
    torch.manual_seed(seed)
    model = MODELS[model_name][1]()
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(x), generator=gen), 0
    train_seconds = 0.0
    for it in range(1, iterations + 1):
        if pos + 60 > len(order):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + 60]
        pos += 60
        start = time.perf_counter()
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        train_seconds += time.perf_counter() - start
        if it % eval_every == 0 or it == iterations:
            evaluate(model, xv, yv)
            test_acc = evaluate(model, xt, yt)
    return {"examples_per_second": iterations * 60 / train_seconds, "test_accuracy": test_acc}


def train_ticket(binary, model_name, data_dir, iterations, threads, seed):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "train", "--model", model_name, "--data", data_dir,
               "--iterations", str(iterations), "--threads", str(threads), "--seed", str(seed),
               "--out", out, "--json"]
        summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"examples_per_second": summary["train_examples_per_second"],
            "test_accuracy": summary["final"]["test_accuracy"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="lenet-300-100")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=FASHION)
    p.add_argument("--ticket", default="target/release/ticket")
    bc.add_repeat_argument(p)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = bc.Results("compare_train", a.threads, a.ticket)
    data = load(a.data, 5000)
    runs = bc.repeat(a.repeat, lambda r: {
        "ticket": train_ticket(a.ticket, a.model, a.data, a.iterations, a.threads, a.seed),
        "pytorch": train_pytorch(a.model, data, a.iterations, 100, a.seed)})
    summary = {side: {k: bc.spread([r[side][k] for r in runs]) for k in runs[0][side]} for side in ("ticket", "pytorch")}
    speed = lambda side: summary[side]["examples_per_second"]["median"]
    accuracy = lambda side: summary[side]["test_accuracy"]["median"]
    summary["ratio_examples_per_second"] = bc.ratio(speed("ticket"), speed("pytorch"))
    print(f"{MODELS[a.model][0]}, Fashion-MNIST, batch 60, Adam, {a.iterations} iterations, "
          f"{a.threads} threads (torch {torch.__version__}); median of {a.repeat} repeats [min-max]")
    print(f"{'':10} {'train examples/s':>28} {'test accuracy %':>24}")
    for side in ("ticket", "pytorch"):
        acc = {k: None if v is None else 100 * v for k, v in summary[side]["test_accuracy"].items()}
        print(f"{side:10} {bc.fmt_spread(summary[side]['examples_per_second'], 0):>28} {bc.fmt_spread(acc, 2):>24}")
    print(f"ratio ticket/pytorch: {bc.fmt_ratio(summary['ratio_examples_per_second'])} "
          f"examples/s, accuracy difference {100 * (accuracy('ticket') - accuracy('pytorch')):+.2f} pp")
    results.write({"model": a.model, "iterations": a.iterations, "seed": a.seed, "data": a.data, "repeat": a.repeat,
                   "summary": summary, "repeats": runs})


if __name__ == "__main__":
    main()
