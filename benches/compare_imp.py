#!/usr/bin/env python3
"""The whole IMP protocol, ticket vs PyTorch, timed end to end in one run.

LeNet-300-100 on Fashion-MNIST with the paper's recipe (Glorot-normal init, Adam 1.2e-3, batch
60, layer-wise pruning of 20% of the hidden layers' and 10% of the output layer's remaining
weights per level, survivors reset to their initial values), the same iterations per level and
the same evaluation schedule (validation + test every 100 iterations) on both sides. PyTorch
masks gradients before each Adam step and weights after it, so pruned weights and their Adam
moments stay zero, as in ticket.

Per level it records both sides' test accuracies and seconds (training and evaluation, as in
ticket's summary.json), and sums them over the levels ticket trains with dense kernels and
those it trains sparse (`sparse` in summary.json), so the ratio of each phase is stored beside
the whole protocol's wall time. Every figure is the median of --repeat runs with min-max; all
of it goes to benches/results/compare_imp-<date>.json.

    .venv/bin/python benches/compare_imp.py --levels 18 --iterations 3000 [--reinit-control] [--repeat 3]
"""
import argparse
import json
import os
import shlex
import subprocess
import tempfile
import time

import torch
from torch import nn

import bench_common as bc
from compare_train import FASHION, lenet, load

RATES = [0.2, 0.2, 0.1]


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def train_level(model, masks, data, iterations, gen):
    """One run under `masks`; training and evaluation timed apart, as ticket's summary.json."""
    (x, y), (xv, yv), (xt, yt) = data
    layers = linears(model)
    with torch.no_grad():
        for layer, mask in zip(layers, masks):
            layer.weight.mul_(mask)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss_fn = nn.CrossEntropyLoss()
    order, pos = torch.randperm(len(x), generator=gen), 0
    best = (float("inf"), 0, 0.0)
    train_seconds = eval_seconds = 0.0
    for it in range(1, iterations + 1):
        if pos + 60 > len(order):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + 60]
        pos += 60
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        for layer, mask in zip(layers, masks):
            layer.weight.grad.mul_(mask)
        opt.step()
        with torch.no_grad():
            for layer, mask in zip(layers, masks):
                layer.weight.mul_(mask)
        train_seconds += time.perf_counter() - start
        if it % 100 == 0 or it == iterations:
            start = time.perf_counter()
            with torch.no_grad():
                val_loss = loss_fn(model(xv), yv).item()
                test_acc = (model(xt).argmax(1) == yt).float().mean().item()
            eval_seconds += time.perf_counter() - start
            if val_loss < best[0]:
                best = (val_loss, it, test_acc)
    return {"early_stop_iteration": best[1], "test_accuracy": best[2], "final_test_accuracy": test_acc,
            "train_seconds": train_seconds, "eval_seconds": eval_seconds}


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
            control = train_level(lenet(), masks, data, iterations, gen)
            row["reinit_test_accuracy"] = control["test_accuracy"]
            row["reinit_seconds"] = control["train_seconds"] + control["eval_seconds"]
        rows.append(row)
        masks = prune(model, masks)
    return rows


def ticket_imp(binary, data_dir, levels, iterations, threads, seed, reinit, extra=()):
    """`ticket find` with the same protocol; one row per level from its summary.json files
    (accuracies, training and evaluation seconds, whether the sparse engine trained it)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "find", "--model", "lenet-300-100", "--data", data_dir, "--out", out,
               "--levels", str(levels), "--iterations", str(iterations), "--threads", str(threads),
               "--seed", str(seed), "--no-export", *extra] + (["--reinit-control"] if reinit else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} failed: {done.stderr.strip()}")
        rows = []
        for level in range(levels + 1):
            with open(os.path.join(out, f"level_{level:02}", "summary.json")) as f:
                s = json.load(f)
            row = {k: s[k] for k in ("level", "weights_remaining", "test_accuracy", "final_test_accuracy",
                                     "early_stop_iteration", "train_seconds", "eval_seconds", "sparse")}
            control = os.path.join(out, f"level_{level:02}", "reinit", "summary.json")
            if os.path.exists(control):
                with open(control) as f:
                    c = json.load(f)
                row["reinit_test_accuracy"] = c["test_accuracy"]
                row["reinit_seconds"] = c["train_seconds"] + c["eval_seconds"]
            rows.append(row)
        return rows


def level_seconds(row):
    return row["train_seconds"] + row["eval_seconds"]


def phase_totals(ours, theirs):
    """Seconds of both sides summed over the levels ticket trains dense and those it trains
    sparse: training alone, and training plus evaluation."""
    out = {}
    for phase, wanted in (("dense_levels", False), ("sparse_levels", True)):
        levels = [r["level"] for r in ours if r["sparse"] == wanted]
        pick = lambda rows, key: sum(key(rows[i]) for i in levels)
        out[phase] = {"levels": levels,
                      "ticket_train_seconds": pick(ours, lambda r: r["train_seconds"]),
                      "pytorch_train_seconds": pick(theirs, lambda r: r["train_seconds"]),
                      "ticket_seconds": pick(ours, level_seconds),
                      "pytorch_seconds": pick(theirs, level_seconds)}
    return out


def run_once(a):
    ours, ours_s = bc.timed(ticket_imp, a.ticket, a.data, a.levels, a.iterations, a.threads, a.seed,
                            a.reinit_control)
    out = {"ticket": {"wall_seconds": ours_s, "levels": ours}}
    if not a.skip_pytorch:
        # data loading counts on both sides
        theirs, theirs_s = bc.timed(lambda: pytorch_imp(load(a.data, 5000), a.levels, a.iterations, a.seed,
                                                        a.reinit_control))
        out["pytorch"] = {"wall_seconds": theirs_s, "levels": theirs}
        out["phases"] = phase_totals(ours, theirs)
    return out


def summarize(runs):
    """Medians and spreads over repeats: whole protocol, dense and sparse levels, each level."""
    cell = lambda get: bc.spread([get(r) for r in runs])
    both = "pytorch" in runs[0]
    out = {"wall_seconds": {side: cell(lambda r, s=side: r[s]["wall_seconds"]) for side in ("ticket", "pytorch")
                            if side in runs[0]}}
    if both:
        out["wall_ratio_pytorch_over_ticket"] = bc.ratio(out["wall_seconds"]["pytorch"]["median"],
                                                         out["wall_seconds"]["ticket"]["median"])
        for phase, first in runs[0]["phases"].items():
            p = {k: cell(lambda r, ph=phase, k=k: r["phases"][ph][k]) for k in first if k != "levels"}
            p["levels"] = first["levels"]
            p["train_ratio_pytorch_over_ticket"] = bc.ratio(p["pytorch_train_seconds"]["median"],
                                                            p["ticket_train_seconds"]["median"])
            p["ratio_pytorch_over_ticket"] = bc.ratio(p["pytorch_seconds"]["median"], p["ticket_seconds"]["median"])
            out[phase] = p
    per_level = []
    for i, row in enumerate(runs[0]["ticket"]["levels"]):
        entry = {"level": row["level"], "weights_remaining": row["weights_remaining"], "ticket_sparse": row["sparse"]}
        for side in ("ticket", "pytorch") if both else ("ticket",):
            entry[f"{side}_seconds"] = cell(lambda r, s=side: level_seconds(r[s]["levels"][i]))
            for key in ("test_accuracy", "final_test_accuracy", "reinit_test_accuracy"):
                entry[f"{side}_{key}"] = cell(lambda r, s=side, k=key: r[s]["levels"][i].get(k))
        if both:
            entry["ratio_pytorch_over_ticket"] = bc.ratio(entry["pytorch_seconds"]["median"],
                                                          entry["ticket_seconds"]["median"])
        per_level.append(entry)
    out["levels"] = per_level
    return out


def print_summary(a, s):
    print(f"IMP, LeNet-300-100, Fashion-MNIST, {a.levels} levels x {a.iterations} iterations, "
          f"{a.threads} threads{', with random-reinit control' if a.reinit_control else ''}; "
          f"median of {a.repeat} repeats [min-max]")
    pct = lambda c: "-" if c["median"] is None else f"{100 * c['median']:.2f}"
    sides = ("ticket", "pytorch") if "wall_ratio_pytorch_over_ticket" in s else ("ticket",)
    print(f"{'level':>5} {'weights%':>9} {'engine':>6} |" + "|".join(
        f" {side + ' test%@es':>17} {'final%':>7} {'reinit%':>8} {'seconds':>9} " for side in sides) + "| ratio")
    for e in s["levels"]:
        line = f"{e['level']:>5} {100 * e['weights_remaining']:>9.2f} {'sparse' if e['ticket_sparse'] else 'dense':>6} |"
        for side in sides:
            line += (f" {pct(e[f'{side}_test_accuracy']):>17} {pct(e[f'{side}_final_test_accuracy']):>7}"
                     f" {pct(e[f'{side}_reinit_test_accuracy']):>8} {e[f'{side}_seconds']['median']:>9.2f} |")
        print(line + f" {bc.fmt_ratio(e.get('ratio_pytorch_over_ticket'))}")
    print("  seconds: training + evaluation of the level's ticket run (controls not included); "
          "ratio: PyTorch / ticket")
    for side, c in s["wall_seconds"].items():
        print(f"wall time {side}: {bc.fmt_spread(c, 1)} s")
    if len(sides) == 2:
        print(f"whole protocol: PyTorch / ticket = {bc.fmt_ratio(s['wall_ratio_pytorch_over_ticket'])} (medians)")
        for phase in ("dense_levels", "sparse_levels"):
            p = s[phase]
            print(f"{phase.replace('_', ' ')} {p['levels']}: training PyTorch {bc.fmt_spread(p['pytorch_train_seconds'], 1)}"
                  f" s, ticket {bc.fmt_spread(p['ticket_train_seconds'], 1)} s, "
                  f"ratio {bc.fmt_ratio(p['train_ratio_pytorch_over_ticket'])}; with evaluation "
                  f"{bc.fmt_ratio(p['ratio_pytorch_over_ticket'])}")


def add_protocol_arguments(p):
    """The flags of an IMP run of `ticket find` (and of its PyTorch twin), and --repeat."""
    p.add_argument("--levels", type=int, default=18)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=FASHION)
    p.add_argument("--ticket", default=None, help="ticket binary (default: target/release/ticket)")
    bc.add_repeat_argument(p)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_arguments(p)
    p.add_argument("--reinit-control", action="store_true")
    p.add_argument("--skip-pytorch", action="store_true", help="time ticket only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.ticket = bc.ticket_binary(a.ticket)
    results = bc.Results("compare_imp", a.threads, a.ticket)
    runs = bc.repeat(a.repeat, lambda r: run_once(a))
    summary = summarize(runs)
    print_summary(a, summary)
    results.write({"protocol": {"model": "lenet-300-100", "data": a.data, "levels": a.levels,
                                "iterations": a.iterations, "seed": a.seed, "reinit_control": a.reinit_control},
                   "repeat": a.repeat, "summary": summary, "repeats": runs})


if __name__ == "__main__":
    main()
