#!/usr/bin/env python3
"""The whole IMP protocol, ticket vs PyTorch, timed end to end in one run.

LeNet-300-100 on Fashion-MNIST with the paper's recipe (Glorot-normal init, Adam 1.2e-3, batch
60, layer-wise pruning of 20% of the hidden layers' and 10% of the output layer's remaining
weights per level, survivors reset to their initial values), the same iterations per level and
the same evaluation schedule (validation + test every 100 iterations) on both sides. PyTorch
masks gradients before each Adam step and weights after it, so pruned weights and their Adam
moments stay zero, as in ticket.

    .venv/bin/python benches/compare_imp.py --levels 18 --iterations 3000 [--reinit-control]
"""
import argparse
import json
import subprocess
import tempfile
import time

import torch
from torch import nn

from compare_train import FASHION, lenet, load

RATES = [0.2, 0.2, 0.1]


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def train_level(model, masks, data, iterations, gen):
    (x, y), (xv, yv), (xt, yt) = data
    layers = linears(model)
    with torch.no_grad():
        for layer, mask in zip(layers, masks):
            layer.weight.mul_(mask)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss_fn = nn.CrossEntropyLoss()
    order, pos = torch.randperm(len(x), generator=gen), 0
    best = (float("inf"), 0, 0.0)
    for it in range(1, iterations + 1):
        if pos + 60 > len(order):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + 60]
        pos += 60
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        for layer, mask in zip(layers, masks):
            layer.weight.grad.mul_(mask)
        opt.step()
        with torch.no_grad():
            for layer, mask in zip(layers, masks):
                layer.weight.mul_(mask)
        if it % 100 == 0 or it == iterations:
            with torch.no_grad():
                val_loss = loss_fn(model(xv), yv).item()
                test_acc = (model(xt).argmax(1) == yt).float().mean().item()
            if val_loss < best[0]:
                best = (val_loss, it, test_acc)
    return {"early_stop_iteration": best[1], "test_accuracy": best[2], "final_test_accuracy": test_acc}


def prune(model, masks):
    new = []
    for layer, mask, rate in zip(linears(model), masks, RATES):
        w = layer.weight.detach().abs()
        kept = int(mask.sum().item())
        remove = int(round(rate * kept))
        scores = torch.where(mask.bool(), w, torch.full_like(w, float("inf")))
        threshold_idx = torch.argsort(scores.flatten(), stable=True)[:remove]
        m = mask.clone().flatten()
        m[threshold_idx] = 0
        new.append(m.view_as(mask))
    return new


def pytorch_imp(data, levels, iterations, seed, reinit):
    torch.manual_seed(seed)
    init = lenet()
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    masks = [torch.ones_like(l.weight) for l in linears(init)]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for level in range(levels + 1):
        model = lenet()
        model.load_state_dict(init_state)
        kept = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
        row = {"level": level, "weights_remaining": kept, **train_level(model, masks, data, iterations, gen)}
        if reinit and level > 0:
            row["reinit_test_accuracy"] = train_level(lenet(), masks, data, iterations, gen)["test_accuracy"]
        rows.append(row)
        masks = prune(model, masks)
    return rows


def ticket_imp(binary, data_dir, levels, iterations, threads, seed, reinit):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "find", "--model", "lenet-300-100", "--data", data_dir, "--out", out,
               "--levels", str(levels), "--iterations", str(iterations), "--threads", str(threads),
               "--seed", str(seed), "--no-export"] + (["--reinit-control"] if reinit else [])
        subprocess.run(cmd, check=True, capture_output=True)
        report = subprocess.run([binary, "report", out, "--json"], check=True, capture_output=True)
        return json.loads(report.stdout)["levels"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, default=18)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reinit-control", action="store_true")
    p.add_argument("--data", default=FASHION)
    p.add_argument("--ticket", default="target/release/ticket")
    p.add_argument("--skip-pytorch", action="store_true", help="time ticket only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    start = time.perf_counter()
    ours = ticket_imp(a.ticket, a.data, a.levels, a.iterations, a.threads, a.seed, a.reinit_control)
    ours_s = time.perf_counter() - start
    theirs, theirs_s = None, float("nan")
    if not a.skip_pytorch:
        start = time.perf_counter()  # data loading counts on both sides
        data = load(a.data, 5000)
        theirs = pytorch_imp(data, a.levels, a.iterations, a.seed, a.reinit_control)
        theirs_s = time.perf_counter() - start

    print(f"IMP, LeNet-300-100, Fashion-MNIST, {a.levels} levels x {a.iterations} iterations, "
          f"{a.threads} threads{', with random-reinit control' if a.reinit_control else ''}")
    print(f"{'level':>5} {'weights%':>9} | {'ticket test%@es':>15} {'final%':>7} {'reinit%':>8} |"
          f" {'pytorch test%@es':>16} {'final%':>7} {'reinit%':>8}")
    pct = lambda r, k: f"{100 * r[k]:.2f}" if r and k in r else "-"
    for i, r in enumerate(ours):
        t = theirs[i] if theirs else None
        print(f"{r['level']:>5} {100 * r['weights_remaining']:>9.2f} | {pct(r, 'test_accuracy'):>15}"
              f" {pct(r, 'final_test_accuracy'):>7} {pct(r, 'reinit_test_accuracy'):>8} |"
              f" {pct(t, 'test_accuracy'):>16} {pct(t, 'final_test_accuracy'):>7}"
              f" {pct(t, 'reinit_test_accuracy'):>8}")
    print(f"wall time: ticket {ours_s:.1f} s, pytorch {theirs_s:.1f} s, "
          f"ratio {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
