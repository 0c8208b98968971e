//! `ticket find` and `ticket report` end to end: a killed run resumes to the same result, the
//! report's JSON interface, and refusals.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small recipe so the experiment takes a few seconds.
fn recipe(dir: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits-mlp.toml"),
    )
    .unwrap()
    .replace("iterations = 1500", "iterations = 300")
    .replace("eval_every = 50", "eval_every = 100");
    let path = dir.join("small.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn find_args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    find_args_with(model, out, "4", "3")
}

fn find_args_with<'a>(
    model: &'a str,
    out: &'a str,
    levels: &'a str,
    seed: &'a str,
) -> Vec<&'a str> {
    vec![
        "find",
        "--model",
        model,
        "--out",
        out,
        "--levels",
        levels,
        "--reinit-control",
        "--no-export",
        "--threads",
        "2",
        "--seed",
        seed,
    ]
}

/// Everything of a summary but the timings.
fn summaries(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = vec![];
    for level in 0..=4 {
        for sub in ["", "reinit"] {
            let path = dir.join(format!("level_{level:02}")).join(sub).join("summary.json");
            if level == 0 && sub == "reinit" {
                continue;
            }
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("train_seconds");
            o.remove("eval_seconds");
            o.remove("examples_per_second");
            out.push(v);
        }
    }
    out
}

#[test]
fn killed_find_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let model = recipe(tmp.path());
    let whole = tmp.path().join("whole");
    let out = ticket(&find_args(&model, whole.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));

    let killed = tmp.path().join("killed");
    let killed_s = killed.to_str().unwrap();
    // Kill with SIGKILL at a few points: while level 1 trains, then while level 3 trains.
    for marker in ["level_01/init.safetensors", "level_03/init.safetensors"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticket"))
            .args(find_args(&model, killed_s))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !killed.join(marker).exists() {
            assert!(Instant::now() < deadline, "{marker} never appeared");
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = ticket(&find_args(&model, killed_s));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summaries(&killed), summaries(&whole));
    // Same weights, bit for bit (the files' header order may differ: metadata is a map).
    let last = "level_04/final.safetensors";
    let load = |dir: &Path| ticket_core::checkpoint::load(&dir.join(last)).unwrap();
    assert!(load(&killed) == load(&whole), "final weights differ after resuming");

    // The report's JSON interface.
    let report = ticket(&["report", whole.to_str().unwrap(), "--json"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let json: serde_json::Value = serde_json::from_str(&stdout(&report)).unwrap();
    let levels = json["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 5);
    for (n, level) in levels.iter().enumerate() {
        assert_eq!(level["level"], n);
        for key in
            ["weights_remaining", "test_accuracy", "final_test_accuracy", "early_stop_iteration"]
        {
            assert!(level[key].is_number(), "{key} missing in {level}");
        }
        assert_eq!(level["reinit_test_accuracy"].is_number(), n > 0);
    }
    // Paper arithmetic on the 64-300-100-10 digits network.
    let w = levels[4]["weights_remaining"].as_f64().unwrap();
    let want = (49_200.0 * 0.8f64.powi(4) + 1_000.0 * 0.9f64.powi(4)) / 50_200.0;
    assert!((w - want).abs() < 1e-3, "{w} vs {want}");
    for plot in ["accuracy_vs_weights", "accuracy_curves", "early_stop"] {
        for ext in ["svg", "png"] {
            assert!(whole.join("plots").join(format!("{plot}.{ext}")).exists(), "{plot}.{ext}");
        }
    }
}

#[test]
fn resuming_with_another_recipe_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = recipe(tmp.path());
    let out_dir = tmp.path().join("exp");
    let out_s = out_dir.to_str().unwrap();
    let args = find_args_with(&model, out_s, "1", "3");
    let first = ticket(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_clean_failure(&ticket(&find_args_with(&model, out_s, "1", "4")), "seed was 3, now 4");
    let mut more = args.clone();
    more.extend(["--iterations", "100"]);
    assert_clean_failure(&ticket(&more), "recipe.train.iterations was 300, now 100");
}

#[test]
fn report_of_a_missing_experiment_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    assert_clean_failure(&ticket(&["report", tmp.path().to_str().unwrap()]), "experiment.json");
}
