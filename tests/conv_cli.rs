//! Convolutional recipes end to end: IMP on digits-conv (per-layer rates, controls, resume,
//! the other pruning options), `ticket train` of a conv net, and LeNet-5 on Fashion-MNIST
//! when it is installed.

mod common;
use common::*;
use std::path::Path;

/// models/digits-conv.toml with 200 iterations per run, written to `dir`.
fn small_conv_recipe(dir: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits-conv.toml"),
    )
    .unwrap()
    .replace("iterations = 1500", "iterations = 200")
    .replace("eval_every = 50", "eval_every = 100");
    assert!(text.contains("iterations = 200"), "the recipe changed; update this test");
    let path = dir.join("conv.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn find(model: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["find", "--model", model, "--out", out.to_str().unwrap(), "--threads", "2"];
    args.extend_from_slice(extra);
    ticket(&args)
}

/// The summary of a level's ticket run.
fn level_summary(dir: &Path, level: usize) -> serde_json::Value {
    let path = dir.join(format!("level_{level:02}")).join("summary.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

#[test]
fn imp_on_a_conv_net_follows_the_recipe_rates_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_conv_recipe(tmp.path());
    let whole = tmp.path().join("whole");
    let out =
        find(&model, &whole, &["--levels", "3", "--reinit-control", "--random-prune-control"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("summary (digits-conv on digits)"), "{text}");
    assert!(whole.join("ticket.safetensors").exists());

    // conv1 8x1x3x3, conv2 16x8x3x3, fc1 64x64, fc2 10x64 lose 10%, 10%, 20%, 10% per level.
    let dense = [72.0, 1152.0, 4096.0, 640.0];
    let rates = [0.1, 0.1, 0.2, 0.1];
    for level in 0..=3 {
        let s = level_summary(&whole, level);
        let kept: Vec<f64> =
            s["kept_per_layer"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for l in 0..4 {
            let want = dense[l] * (1.0f64 - rates[l]).powi(level as i32);
            assert!(
                (kept[l] - want).abs() <= 1.0 + level as f64,
                "level {level} layer {l}: {kept:?}"
            );
        }
        assert!(s["test_accuracy"].as_f64().unwrap() > 0.5, "level {level} did not learn: {s}");
    }

    // The report sees the controls of every pruned level.
    let report = ticket(&["report", whole.to_str().unwrap(), "--json"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let json: serde_json::Value = serde_json::from_str(&stdout(&report)).unwrap();
    for level in &json["levels"].as_array().unwrap()[1..] {
        assert!(level["reinit_test_accuracy"].is_number(), "{level}");
        assert!(level["random_prune_test_accuracy"].is_number(), "{level}");
    }

    // Two levels, then the same command with three: the same experiment as in one go.
    let resumed = tmp.path().join("resumed");
    let controls = ["--reinit-control", "--random-prune-control", "--no-export"];
    let first = find(&model, &resumed, &[&["--levels", "2"][..], &controls].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    let second = find(&model, &resumed, &[&["--levels", "3"][..], &controls].concat());
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stderr(&second).contains("[done earlier]"), "{}", stderr(&second));
    assert_eq!(summaries(&resumed), summaries(&whole));
}

#[test]
fn conv_imp_takes_the_other_pruning_options() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_conv_recipe(tmp.path());
    let global = tmp.path().join("global");
    let out = find(
        &model,
        &global,
        &["--levels", "2", "--pruning", "global", "--rewind", "100", "--early-stop", "--no-export"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let w = level_summary(&global, 2)["weights_remaining"].as_f64().unwrap();
    assert!((w - 0.64).abs() < 0.01, "two global levels at 20%: {w}");

    let one_shot = tmp.path().join("one-shot");
    let out = find(&model, &one_shot, &["--one-shot", "0.3", "--early-bird", "--no-export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = level_summary(&one_shot, 1)["weights_remaining"].as_f64().unwrap();
    assert!((w - 0.3).abs() < 0.01, "one shot to 30%: {w}");
}

#[test]
fn train_says_why_a_conv_net_trains_dense_below_the_sparse_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_conv_recipe(tmp.path());
    let dir = tmp.path().join("train");
    let args = ["train", "--model", &model, "--out", dir.to_str().unwrap(), "--threads", "2"];
    let out = ticket(&[&args[..], &["--sparse-below", "1.01"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("note: the sparse engine covers MLPs only"), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sparse"], false);
    assert!(summary["dense_reason"].as_str().unwrap().contains("MLPs only"), "{summary}");
    assert!(summary["final"]["test_accuracy"].as_f64().unwrap() > 0.5, "{summary}");
}

#[test]
fn lenet5_finds_a_ticket_on_fashion_mnist() {
    if !fashion_mnist_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("lenet5");
    let out = find(
        "lenet-5",
        &out_dir,
        &["--dataset", "fashion-mnist", "--iterations", "30", "--levels", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("summary (lenet-5 on fashion-mnist)"), "{}", stdout(&out));
    let s = level_summary(&out_dir, 1);
    let kept: Vec<u64> =
        s["kept_per_layer"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(kept, [450, 22_500, 320_000, 4_500]);
    // 30 Adam steps already beat chance (10%) by far.
    assert!(s["final_test_accuracy"].as_f64().unwrap() > 0.4, "{s}");
}
