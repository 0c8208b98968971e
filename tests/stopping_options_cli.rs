//! `ticket find --early-stop` and `--early-bird` end to end on the embedded digits: runs end
//! before their iteration budget exactly where the rule says, and record why, checked against
//! the metrics and checkpoints the runs wrote.

mod common;
use common::*;
use std::path::Path;

/// Iteration budget of the runs here: far more than the digits need, so the rules end them.
const BUDGET: usize = 3000;

/// The iteration at which a patience of `patience` evaluations stops the recorded validation
/// losses: the first evaluation `patience` evaluations after the best so far (strictly lower).
fn plateau_iteration(history: &[serde_json::Value], patience: usize) -> Option<usize> {
    let mut best = f64::INFINITY;
    let mut since_best = 0;
    for record in history.iter().skip(1) {
        let loss = record["validation_loss"].as_f64().unwrap();
        if loss < best {
            best = loss;
            since_best = 0;
        } else {
            since_best += 1;
        }
        if since_best >= patience {
            return Some(record["iteration"].as_u64().unwrap() as usize);
        }
    }
    None
}

/// Asserts that the run in `run` ended early at `iteration` for `reason`, consistently in its
/// summary, metrics (JSON and CSV) and final checkpoint.
fn assert_stopped_early(run: &Path, iteration: usize, reason: &str) {
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["stopped_early"], reason, "{}", run.display());
    assert_eq!(summary["iterations"], iteration, "{}", run.display());
    assert!(iteration < BUDGET);
    let history = history(run);
    assert_eq!(history.last().unwrap()["iteration"], iteration);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let csv_iterations: Vec<String> =
        csv.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    let json_iterations: Vec<String> = history.iter().map(|r| r["iteration"].to_string()).collect();
    assert_eq!(csv_iterations, json_iterations);
    assert_eq!(load_checkpoint(&run.join("final.safetensors")).meta.iteration, iteration);
}

#[test]
fn early_stop_ends_each_run_at_a_validation_plateau() {
    let tmp = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    // `--early-stop` alone means a patience of 5 evaluations.
    for (flags, patience, levels) in
        [(vec!["--early-stop", "2"], 2, 1), (vec!["--early-stop"], 5, 0)]
    {
        let name = format!("patience{patience}");
        let levels_flag = levels.to_string();
        let mut args = vec!["--iterations", &budget, "--levels", &levels_flag];
        args.extend(flags);
        let exp = find_small(tmp.path(), &name, &args);
        assert_eq!(read_json(&exp.join("experiment.json"))["spec"]["rules"]["patience"], patience);
        for level in 0..=levels {
            let run = level_dir(&exp, level);
            let history = history(&run);
            let stop = plateau_iteration(&history, patience)
                .unwrap_or_else(|| panic!("level {level}: no plateau in {history:?}"));
            assert_stopped_early(&run, stop, "plateau");
            // The recorded early-stop iteration is the minimum of the recorded validation loss,
            // `patience` evaluations before the end.
            let best = history
                .iter()
                .min_by(|a, b| {
                    let loss = |r: &&serde_json::Value| r["validation_loss"].as_f64().unwrap();
                    loss(a).total_cmp(&loss(b))
                })
                .unwrap();
            let summary = read_json(&run.join("summary.json"));
            assert_eq!(summary["early_stop_iteration"], best["iteration"]);
            assert_eq!(summary["test_accuracy"], best["test_accuracy"]);
            assert_eq!(summary["validation_accuracy"], best["validation_accuracy"]);
            let best_iteration = best["iteration"].as_u64().unwrap() as usize;
            assert_eq!(stop, best_iteration + patience * SMALL_EVAL_EVERY, "level {level}");
        }
    }
}

/// Fraction of all weights whose mask entry differs between `a` and `b`.
fn mask_change(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    let changed: usize =
        a.iter().zip(b).map(|(x, y)| x.iter().zip(y).filter(|(p, q)| p != q).count()).sum();
    let total: usize = a.iter().map(Vec::len).sum();
    changed as f64 / total as f64
}

#[test]
fn early_bird_ends_a_level_when_its_pruning_mask_stops_changing() {
    let tmp = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let exp =
        find_small(tmp.path(), "exp", &["--iterations", &budget, "--levels", "1", "--early-bird"]);
    assert_eq!(read_json(&exp.join("experiment.json"))["spec"]["rules"]["early_bird"], 0.01);
    let dense = level_dir(&exp, 0);
    let stop = read_json(&dense.join("summary.json"))["iterations"].as_u64().unwrap() as usize;
    assert_stopped_early(&dense, stop, "early-bird");

    // Replay the dense run with a checkpoint at every evaluation (same seed and threads, so
    // the same weights) and draw the pruning mask from each one independently.
    let evals: Vec<String> =
        (1..stop / SMALL_EVAL_EVERY).map(|k| (k * SMALL_EVAL_EVERY).to_string()).collect();
    let replay = train_small(
        tmp.path(),
        "replay",
        &["--iterations", &stop.to_string(), "--save-at", &evals.join(",")],
    );
    let final_weights = load_net(&dense.join("final.safetensors"));
    assert_eq!(load_net(&replay.join("final.safetensors")), final_weights);
    let mut drawn =
        vec![layerwise_masks(&load_net(&replay.join("init.safetensors")), &DIGITS_RATES)];
    for k in &evals {
        let net =
            load_net(&replay.join(format!("iter_{:06}.safetensors", k.parse::<usize>().unwrap())));
        drawn.push(layerwise_masks(&net, &DIGITS_RATES));
    }
    drawn.push(layerwise_masks(&final_weights, &DIGITS_RATES));
    // The run ends at the first evaluation that completes 3 calm ones in a row (less than 1%
    // of the weights change mask since the evaluation before).
    let mut calm = 0;
    let mut first_end = None;
    for (k, pair) in drawn.windows(2).enumerate() {
        calm = if mask_change(&pair[0], &pair[1]) < 0.01 { calm + 1 } else { 0 };
        if calm >= 3 && first_end.is_none() {
            first_end = Some((k + 1) * SMALL_EVAL_EVERY);
        }
    }
    assert_eq!(first_end, Some(stop));

    // The next level's mask is the one pruning draws from the early-bird weights.
    let level1 = load_net(&level_dir(&exp, 1).join("init.safetensors"));
    assert_eq!(masks(&level1), *drawn.last().unwrap());
}

#[test]
fn stopping_rules_that_cannot_mean_anything_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_recipe(tmp.path());
    let out = tmp.path().join("exp");
    for (flag, value, cause) in [
        ("--early-stop", "0", "--early-stop 0: give the evaluations to wait"),
        ("--early-bird", "0", "--early-bird 0: give the fraction of weights"),
        ("--early-bird", "1.5", "--early-bird 1.5: give the fraction of weights"),
    ] {
        let args = ["find", "--model", &model, "--out", out.to_str().unwrap(), flag, value];
        assert_clean_failure(&ticket(&args), cause);
        assert!(!out.exists(), "{flag} {value} wrote {}", out.display());
    }
}
