//! Regression tests of `ticket train` and `ticket find` on the real Fashion-MNIST files of
//! the Debian package `dataset-fashion-mnist` with the paper's LeNet-300-100 recipe: an
//! accuracy floor after a short training run, and the weights-remaining arithmetic of IMP on
//! the real layer sizes. Skipped (with a notice) when the files are absent, unless
//! `TICKET_REQUIRE_FASHION_MNIST=1` turns absence into a failure.

mod common;
use common::*;

/// Runs `ticket COMMAND` with the paper's recipe on Fashion-MNIST, two threads, and `extra`
/// flags; returns its stdout.
fn lenet_on_fashion_mnist(command: &str, extra: &[&str]) -> String {
    let mut args =
        vec![command, "--model", "lenet-300-100", "--dataset", "fashion-mnist", "--threads", "2"];
    args.extend_from_slice(extra);
    ticket_ok(&args)
}

/// Test accuracy that 500 iterations of LeNet-300-100 must reach. Measured (2 threads):
/// 83.98% at seed 0 (the seed used here); 81.18%, 83.07%, 82.68% at seeds 1, 2, 3.
const ACCURACY_FLOOR_500: f64 = 0.80;

#[test]
fn lenet_300_100_learns_fashion_mnist_in_500_iterations() {
    if !fashion_mnist_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let json = lenet_on_fashion_mnist(
        "train",
        &["--iterations", "500", "--seed", "0", "--out", out.to_str().unwrap(), "--json"],
    );
    let printed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(printed, read_json(&out.join("summary.json")));
    let history = history(&out);
    // Evaluated every 100 iterations, from the untrained network (about chance) on.
    let iterations: Vec<u64> = history.iter().map(|r| r["iteration"].as_u64().unwrap()).collect();
    assert_eq!(iterations, [0, 100, 200, 300, 400, 500]);
    assert!(history[0]["test_accuracy"].as_f64().unwrap() < 0.3, "{:?}", history[0]);
    let accuracy = printed["final"]["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= ACCURACY_FLOOR_500, "test accuracy {accuracy}");
    assert_eq!(printed["final"], *history.last().unwrap());
    let trained = load_checkpoint(&out.join("final.safetensors"));
    assert_eq!((trained.meta.iteration, trained.meta.dataset.as_str()), (500, "fashion-mnist"));
}

#[test]
fn imp_levels_keep_the_papers_weights_per_layer() {
    if !fashion_mnist_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exp");
    lenet_on_fashion_mnist(
        "find",
        &["--iterations", "100", "--levels", "3", "--out", exp.to_str().unwrap(), "--no-export"],
    );
    // 784-300-100-10: fc1 and fc2 lose 20% of their remaining weights per level, fc3 10%.
    let sizes = [784 * 300, 300 * 100, 100 * 10];
    let rates = [0.2, 0.2, 0.1];
    let report: serde_json::Value =
        serde_json::from_str(&ticket_ok(&["report", exp.to_str().unwrap(), "--json"])).unwrap();
    let rows = report["levels"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let mut counts = sizes.to_vec();
    for n in 0..=3i32 {
        let level = level_dir(&exp, n as usize);
        let kept = kept_per_layer(&load_net(&level.join("final.safetensors")));
        assert_eq!(kept, counts, "level {n}");
        assert_eq!(
            read_json(&level.join("summary.json"))["kept_per_layer"],
            serde_json::json!(kept)
        );
        // Rounding at each level moves a layer by at most half a weight per level from
        // size * (1 - rate)^n.
        for ((&k, &size), rate) in kept.iter().zip(&sizes).zip(rates) {
            let closed = size as f64 * (1.0f64 - rate).powi(n);
            assert!(
                (k as f64 - closed).abs() <= 0.5 * n as f64 + 1e-9,
                "level {n}: {k} vs {closed}"
            );
        }
        // (265,200 * 0.8^n + 1,000 * 0.9^n) / 266,200 of the weights remain.
        let paper = (265_200.0 * 0.8f64.powi(n) + 1_000.0 * 0.9f64.powi(n)) / 266_200.0;
        let remaining = rows[n as usize]["weights_remaining"].as_f64().unwrap();
        assert!((remaining - paper).abs() < 2.0 / 266_200.0, "level {n}: {remaining} vs {paper}");
        for (count, rate) in counts.iter_mut().zip(rates) {
            *count = keep_after_rate(*count, rate);
        }
    }
}
