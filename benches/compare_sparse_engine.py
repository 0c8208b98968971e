#!/usr/bin/env python3
"""The sparse training engine against the dense masked path: the same `ticket find` IMP run
twice, once with `--sparse-below 0` (every level trains dense under its mask) and once with the
default threshold (levels below it train through the sparse kernels), and the per-level
accuracy differences between the two.

Both runs share recipe, data, seed and threads, so every level starts from the same weights
and mask as long as the levels before it agreed; the difference of a level is the float
rounding of the sparse kernels (another summation order) carried through its training. Levels
above the threshold train dense in both runs and must agree exactly. Per level it prints and
stores the test accuracy at the early-stop iteration and at the end of both runs, their
difference in percentage points, and both runs' seconds; the largest difference over the
sparse-trained levels is checked against --tolerance-pp. With --repeat N each run is made N
times: the accuracies must not change between repeats (same seed and threads, same result),
the seconds give median and min-max. Everything goes to
benches/results/compare_sparse_engine-<date>.json.

    just bench-sparse-engine                # or:
    cargo build --release
    .venv/bin/python benches/compare_sparse_engine.py --levels 18 --iterations 3000 [--repeat 3]
"""
import argparse

import bench_common as bc
from compare_imp import add_protocol_arguments, level_seconds, ticket_imp

SIDES = {"dense masked (--sparse-below 0)": ["--sparse-below", "0"], "default": []}
ACCURACIES = ("test_accuracy", "final_test_accuracy")


def run_once(a):
    return {side: bc.timed(ticket_imp, a.ticket, a.data, a.levels, a.iterations, a.threads, a.seed, False, extra)
            for side, extra in SIDES.items()}


def summarize(runs, tolerance_pp):
    dense_side, default_side = SIDES
    accuracy = lambda run, side: [[row[k] for k in ACCURACIES] for row in run[side][0]]
    identical = all(accuracy(r, side) == accuracy(runs[0], side) for r in runs for side in SIDES)
    first_dense, first_default = (runs[0][side][0] for side in SIDES)
    levels = []
    for i, (d, s) in enumerate(zip(first_dense, first_default)):
        entry = {"level": d["level"], "weights_remaining": d["weights_remaining"], "default_trains_sparse": s["sparse"]}
        for k in ACCURACIES:
            entry[f"dense_masked_{k}"] = d[k]
            entry[f"default_{k}"] = s[k]
            # Accuracies are counts over the test set: round away the float noise of the
            # subtraction so that a difference of exactly the tolerance counts as within it.
            entry[f"{k}_difference_pp"] = round(100 * (s[k] - d[k]), 6)
        for side, name in ((dense_side, "dense_masked"), (default_side, "default")):
            entry[f"{name}_seconds"] = bc.spread([level_seconds(r[side][0][i]) for r in runs])
        entry["speedup_dense_over_default"] = bc.ratio(entry["dense_masked_seconds"]["median"],
                                                       entry["default_seconds"]["median"])
        levels.append(entry)
    sparse = [e for e in levels if e["default_trains_sparse"]]
    worst = {k: max((abs(e[f"{k}_difference_pp"]) for e in sparse), default=None) for k in ACCURACIES}
    return {
        "tolerance_pp": tolerance_pp,
        "sparse_levels": [e["level"] for e in sparse],
        "max_abs_difference_pp_on_sparse_levels": worst,
        "within_tolerance": all(w is None or w <= tolerance_pp for w in worst.values()),
        "dense_levels_identical": all(e[f"{k}_difference_pp"] == 0 for e in levels if not e["default_trains_sparse"]
                                      for k in ACCURACIES),
        "accuracies_identical_across_repeats": identical,
        "wall_seconds": {side: bc.spread([r[side][1] for r in runs]) for side in SIDES},
        "levels": levels,
    }


def print_summary(a, s):
    print(f"ticket find, LeNet-300-100, Fashion-MNIST, {a.levels} levels x {a.iterations} iterations, "
          f"{a.threads} threads, seed {a.seed}: dense masked path (--sparse-below 0) vs default")
    print(f"{'level':>5} {'weights%':>9} {'engine':>6} | {'test%@es dense':>14} {'default':>8} {'diff pp':>8} |"
          f" {'final% dense':>12} {'default':>8} {'diff pp':>8} | {'s dense':>8} {'s default':>9}")
    for e in s["levels"]:
        print(f"{e['level']:>5} {100 * e['weights_remaining']:>9.2f} {'sparse' if e['default_trains_sparse'] else 'dense':>6} |"
              f" {100 * e['dense_masked_test_accuracy']:>14.2f} {100 * e['default_test_accuracy']:>8.2f}"
              f" {e['test_accuracy_difference_pp']:>+8.2f} | {100 * e['dense_masked_final_test_accuracy']:>12.2f}"
              f" {100 * e['default_final_test_accuracy']:>8.2f} {e['final_test_accuracy_difference_pp']:>+8.2f} |"
              f" {e['dense_masked_seconds']['median']:>8.2f} {e['default_seconds']['median']:>9.2f}")
    print("  engine: how the default run trains the level; diff: default - dense masked; "
          f"s: training + evaluation seconds, median of {a.repeat}")
    worst = s["max_abs_difference_pp_on_sparse_levels"]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    print(f"largest |difference| on the sparse-trained levels {s['sparse_levels']}: test@es {fmt(worst['test_accuracy'])} pp,"
          f" final {fmt(worst['final_test_accuracy'])} pp; within {s['tolerance_pp']} pp: "
          f"{'yes' if s['within_tolerance'] else 'NO'}")
    print(f"dense-trained levels identical in both runs: {'yes' if s['dense_levels_identical'] else 'NO'}; "
          f"accuracies identical across repeats: {'yes' if s['accuracies_identical_across_repeats'] else 'NO'}")
    for side, c in s["wall_seconds"].items():
        print(f"wall time {side}: {bc.fmt_spread(c, 1)} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_arguments(p)
    p.add_argument("--tolerance-pp", type=float, default=0.5,
                   help="largest accepted accuracy difference on the sparse levels (default 0.5)")
    a = p.parse_args()
    a.ticket = bc.ticket_binary(a.ticket)
    results = bc.Results("compare_sparse_engine", a.threads, a.ticket)
    runs = bc.repeat(a.repeat, lambda r: run_once(a))
    summary = summarize(runs, a.tolerance_pp)
    print_summary(a, summary)
    results.write({"protocol": {"model": "lenet-300-100", "data": a.data, "levels": a.levels,
                                "iterations": a.iterations, "seed": a.seed}, "repeat": a.repeat,
                   "summary": summary,
                   "repeats": [{side: {"wall_seconds": r[side][1], "levels": r[side][0]} for side in SIDES}
                               for r in runs]})
    return 0 if summary["within_tolerance"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
