//! `ticket find` and `ticket report` end to end: the report's JSON interface and plots, and
//! refusals. (Killed runs that resume: tests/crash_safety.rs.)

mod common;
use common::*;

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

#[test]
fn report_json_interface_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_recipe(tmp.path());
    let whole = tmp.path().join("whole");
    let out = ticket(&find_args(&model, whole.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));

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
    let model = small_recipe(tmp.path());
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
