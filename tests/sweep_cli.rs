//! Replicates, their report, and sweeps end to end: `ticket find --replicate K`, `ticket report`
//! over a directory of replicates (statistics checked against the replicates' own summaries),
//! and `ticket sweep` listing, running (`--local`), scripting (`--slurm`, the script run here
//! without Slurm) and reading back (`--status`) a grid. The same sweep on a real Slurm
//! cluster: tests/slurm.rs.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ticket find` of the small digits recipe into `dir`, one thread, 100 iterations per level,
/// with `extra` flags (2 levels unless they say otherwise).
fn small_find(model: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["find", "--model", model, "--out", dir.to_str().unwrap()];
    args.extend(["--threads", "1", "--no-export", "--iterations", "100", "--eval-every", "50"]);
    if !extra.contains(&"--levels") {
        args.extend(["--levels", "2"]);
    }
    args.extend_from_slice(extra);
    ticket(&args)
}

/// Replicate `k` of the small digits recipe with seed 5 into `dir` (see [`small_find`]);
/// returns the replicate's directory.
fn find_replicate(model: &str, dir: &Path, k: usize, extra: &[&str]) -> PathBuf {
    let k = k.to_string();
    let out = small_find(model, dir, &[&["--replicate", &k, "--seed", "5"], extra].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join(format!("replicate_{k}"))
}

#[test]
fn a_replicate_is_the_experiment_with_a_seed_derived_from_the_seed_and_k() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_recipe(tmp.path());
    let dir = tmp.path().join("exp");
    let one = find_replicate(&model, &dir, 1, &[]);
    let two = find_replicate(&model, &dir, 2, &[]);
    // SplitMix64 seeds, computed independently in Python:
    // sm = SplitMix64's output of x + 0x9E3779B97F4A7C15; seed_k = sm(5 ^ sm(k)).
    assert_eq!(read_json(&one.join("experiment.json"))["spec"]["seed"], 12773366489153039575u64);
    assert_eq!(read_json(&two.join("experiment.json"))["spec"]["seed"], 10754009927501035530u64);
    assert_ne!(summaries(&one), summaries(&two), "two replicates trained alike");

    // The same replicate again resumes it (nothing trains), and a plain run with the derived
    // seed is the same experiment.
    let again = small_find(&model, &dir, &["--replicate", "1", "--seed", "5"]);
    assert!(stderr(&again).matches("[done earlier]").count() == 3, "{}", stderr(&again));
    let plain = tmp.path().join("plain");
    let out = small_find(&model, &plain, &["--seed", "12773366489153039575"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summaries(&plain), summaries(&one));
}

/// Mean, min and max of `values`, computed plainly.
fn naive(values: &[f64]) -> (f64, f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    (mean, min, max)
}

#[test]
fn the_report_of_replicates_gives_n_mean_min_and_max_per_level_and_error_bars() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_recipe(tmp.path());
    let dir = tmp.path().join("exp");
    let control = ["--reinit-control"];
    let reps: Vec<PathBuf> = (1..=3)
        .map(|k| {
            find_replicate(&model, &dir, k, if k == 3 { &["--levels", "1"] } else { &control })
        })
        .collect();
    let out = ticket(&["report", dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let seeds: Vec<&Value> = report["replicates"].as_array().unwrap().iter().collect();
    assert_eq!(seeds.len(), 3);
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 3);
    for (level, row) in levels.iter().enumerate() {
        assert_eq!(row["level"], level);
        for (kind, sub) in [("ticket", ""), ("reinit", "reinit/")] {
            let runs: Vec<Value> = reps
                .iter()
                .map(|r| r.join(format!("level_{level:02}/{sub}summary.json")))
                .filter(|p| p.exists())
                .map(|p| read_json(&p))
                .collect();
            if runs.is_empty() {
                assert!(row.get(kind).is_none(), "level {level} {kind}: {row}");
                continue;
            }
            let stats = &row[kind];
            assert_eq!(stats["n"], runs.len(), "level {level} {kind}");
            for key in [
                "test_accuracy",
                "final_test_accuracy",
                "validation_accuracy",
                "early_stop_iteration",
                "weights_remaining",
            ] {
                let values: Vec<f64> = runs.iter().map(|r| r[key].as_f64().unwrap()).collect();
                let (mean, min, max) = naive(&values);
                let s = &stats[key];
                assert_eq!(s["n"], values.len());
                assert!((s["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{key}: {s}");
                assert_eq!((s["min"].as_f64().unwrap(), s["max"].as_f64().unwrap()), (min, max));
            }
        }
    }
    // Level 2 only in replicates 1 and 2; the reinit control only there too, from level 1.
    assert_eq!(levels[2]["ticket"]["n"], 2);
    assert_eq!(levels[1]["reinit"]["n"], 2);

    // The figure: a marker and an error bar per level of each series.
    let svg = std::fs::read_to_string(dir.join("plots/accuracy_vs_weights.svg")).unwrap();
    assert_eq!(svg.matches("class=\"error-bar\"").count(), 3 + 2, "{svg}");
    assert!(dir.join("plots/early_stop.png").exists());
    // Accuracy during training: per plotted level, a bar at each evaluation (50 and 100).
    let svg = std::fs::read_to_string(dir.join("plots/accuracy_curves.svg")).unwrap();
    let curves = svg.matches("class=\"series\"").count();
    assert!(curves >= 1, "{svg}");
    assert_eq!(svg.matches("class=\"error-bar\"").count(), 2 * curves, "{svg}");
    let text = ticket_ok(&["report", dir.to_str().unwrap()]);
    assert!(text.contains("3 replicates of"), "{text}");

    // Replicates of different experiments do not mix; an empty directory is neither.
    let _other = find_replicate(&model, &dir, 4, &["--pruning", "global"]);
    let out = ticket(&["report", dir.to_str().unwrap()]);
    assert_clean_failure(&out, "replicate_4: is not the same experiment as replicate_1");
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let out = ticket(&["report", tmp.path().join("empty").to_str().unwrap()]);
    assert_clean_failure(&out, "neither an experiment");
}

/// Replicate `k` of the sweep's `global` variant, run with `ticket find` by hand under `tmp`;
/// returns its directory.
fn global_by_hand(tmp: &Path, k: usize) -> PathBuf {
    let out = tmp.join("by-hand");
    let k = k.to_string();
    let mut args = vec!["find", "--model", "digits-mlp", "--seed", "0", "--replicate", &k];
    args.extend(["--out", out.to_str().unwrap(), "--iterations", "100", "--eval-every", "50"]);
    args.extend(["--levels", "2", "--pruning", "global", "--no-export", "--threads", "1"]);
    let run = ticket(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    out.join(format!("replicate_{k}"))
}

/// Two grid points, one of them on data that is not there: its jobs fail when they run.
const SPEC: &str = r#"
out = "grid"
models = ["digits-mlp"]
datasets = ["digits", "no-such-idx"]
replicates = 2
[find]
iterations = 100
eval_every = 50
levels = 2
[variants.global]
pruning = "global"
[slurm]
time = "00:05:00"
"#;

fn sweep(spec: &Path, args: &[&str]) -> std::process::Output {
    ticket(&[&["sweep", spec.to_str().unwrap()], args].concat())
}

fn status(spec: &Path) -> Value {
    serde_json::from_str(&stdout(&sweep(spec, &["--status", "--json"]))).unwrap()
}

#[test]
fn a_local_sweep_runs_every_job_reports_failures_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("sweep.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let listing = stdout(&sweep(&spec, &[]));
    assert!(listing.starts_with("4 jobs"), "{listing}");
    let before = status(&spec);
    assert_eq!(before["counts"], serde_json::json!({ "not started": 4 }));

    let out = sweep(&spec, &["--local", "2", "--threads", "1"]);
    assert_clean_failure(&out, "2 of 4 jobs failed");
    let text = stdout(&out);
    for job in [2, 3] {
        assert!(text.contains(&format!("failed: job {job} ")), "{text}");
    }
    assert!(text.contains("no-such-idx"), "{text}");
    let after = status(&spec);
    assert_eq!(after["counts"], serde_json::json!({ "done": 2, "failed": 2 }), "{after:#}");
    assert!(after["jobs"][2]["error"].as_str().unwrap().contains("no-such-idx"));

    // Each job equals `ticket find` run by hand with the arguments the listing gives.
    let grid = tmp.path().join("grid");
    let job1 = grid.join("digits-mlp-digits-global-s0/replicate_2");
    let by_hand = global_by_hand(tmp.path(), 2);
    assert_eq!(summaries(&by_hand), summaries(&job1));

    // A second run skips the complete jobs and retries the failed ones.
    let again = sweep(&spec, &["--local", "2", "--threads", "1"]);
    assert!(stderr(&again).contains("4 jobs (2 complete already)"), "{}", stderr(&again));
    let report = ticket_ok(&["report", grid.join("digits-mlp-digits-global-s0").to_str().unwrap()]);
    assert!(report.contains("2 replicates of digits-mlp"), "{report}");
}

#[test]
fn jobs_that_find_would_refuse_are_refused_before_they_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("sweep.toml");
    let text = SPEC.replace("[slurm]", "[variants.overlong-rewind]\nrewind = 1000\n[slurm]");
    std::fs::write(&spec, text).unwrap();
    for mode in [&["--local", "1"][..], &["--slurm"]] {
        let out = sweep(&spec, mode);
        assert_clean_failure(&out, "job 2 (digits-mlp-digits-overlong-rewind-s0/replicate_1)");
        assert_clean_failure(&out, "rewind_iteration = 1000 is past the end of training");
    }
    assert!(!tmp.path().join("grid").exists(), "a refused sweep wrote its directory");
}

#[test]
fn the_slurm_script_runs_each_task_as_its_job() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("sweep.toml");
    std::fs::write(&spec, SPEC.replace("replicates = 2", "replicates = 1")).unwrap();
    let out = sweep(&spec, &["--slurm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = tmp.path().join("grid/slurm/sweep.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0-1\n"), "{text}");
    assert!(text.contains("#SBATCH --time=00:05:00\n"));
    assert!(stdout(&out).contains(&format!("sbatch {}", script.display())));

    // The script run the way an array task runs it, without Slurm.
    let run = |task: &str| {
        Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", task).output().unwrap()
    };
    let out = run("0");
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tmp.path().join("grid/digits-mlp-digits-global-s0");
    let st = status(&spec);
    assert_eq!(st["jobs"][0]["state"], "done", "{st:#}");
    assert_eq!(st["jobs"][1]["state"], "not started", "{st:#}");
    let by_hand = global_by_hand(tmp.path(), 1);
    assert_eq!(summaries(&by_hand), summaries(&dir.join("replicate_1")));
    let out = run("7");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("error: no job 7 in this sweep (0-1)"), "{}", stderr(&out));

    // Submitting needs sbatch: without it on PATH, a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args(["sweep", spec.to_str().unwrap(), "--slurm", "--submit"])
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    assert_clean_failure(&out, "cannot run `sbatch`");
}

#[test]
fn the_example_sweep_of_the_readme_is_its_grid() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/lenet-fmnist.toml");
    let listing: Value = serde_json::from_str(&stdout(&sweep(&spec, &["--json"]))).unwrap();
    let jobs = listing["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2 * 5, "{listing:#}");
    let rewinds =
        jobs.iter().filter(|j| j["args"].as_array().unwrap().contains(&"--rewind".into()));
    assert_eq!(rewinds.count(), 5);
}
