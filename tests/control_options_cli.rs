//! The controls of `ticket find` (`--reinit-control`, `--random-prune-control`,
//! `--control-levels`) and the curves of `ticket report --curves`, end to end on the embedded
//! digits, checked against the checkpoints, summaries and plots the runs wrote.

mod common;
use common::*;

#[test]
fn controls_train_only_at_the_chosen_levels_with_the_tickets_sparsity() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(
        tmp.path(),
        "exp",
        &["--levels", "3", "--reinit-control", "--random-prune-control", "--control-levels", "2"],
    );
    for level in [1, 3] {
        for sub in ["reinit", "random_prune"] {
            assert!(!level_dir(&exp, level).join(sub).exists(), "level {level} has {sub}/");
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&ticket_ok(&["report", exp.to_str().unwrap(), "--json"])).unwrap();
    for row in report["levels"].as_array().unwrap() {
        let at_two = row["level"] == 2;
        assert_eq!(row["reinit_test_accuracy"].is_number(), at_two, "{row}");
        assert_eq!(row["random_prune_test_accuracy"].is_number(), at_two, "{row}");
    }

    let level = level_dir(&exp, 2);
    let ticket = load_net(&level.join("init.safetensors"));
    let original = load_net(&level_dir(&exp, 0).join("init.safetensors"));
    let ticket_summary = read_json(&level.join("summary.json"));

    // Random re-initialisation: the ticket's mask, fresh weights.
    let reinit_dir = level.join("reinit");
    let reinit = load_net(&reinit_dir.join("init.safetensors"));
    assert_eq!(masks(&reinit), masks(&ticket));
    assert_pruned_are_zero(&reinit, "reinit control");
    for (n, (r, t)) in reinit.layers.iter().zip(&ticket.layers).enumerate() {
        let kept = (0..r.weight.len()).filter(|&i| r.mask[i] == 1);
        let same = kept.filter(|&i| r.weight[i] == t.weight[i]).count();
        assert!(same * 100 < t.weight.len(), "layer {n}: {same} kept weights as the ticket's");
    }
    let summary = read_json(&reinit_dir.join("summary.json"));
    assert_eq!(summary["kind"], "reinit");
    assert_eq!(summary["level"], 2);
    assert_eq!(summary["kept_per_layer"], ticket_summary["kept_per_layer"]);
    assert_eq!(masks(&load_net(&reinit_dir.join("final.safetensors"))), masks(&ticket));

    // Random pruning: another mask with the same count per layer, the original initial weights.
    let random_dir = level.join("random_prune");
    let random = load_net(&random_dir.join("init.safetensors"));
    assert_eq!(kept_per_layer(&random), kept_per_layer(&ticket));
    assert_pruned_are_zero(&random, "random-prune control");
    for (n, ((r, t), o)) in
        random.layers.iter().zip(&ticket.layers).zip(&original.layers).enumerate()
    {
        assert_ne!(r.mask, t.mask, "layer {n}");
        for i in 0..r.weight.len() {
            if r.mask[i] == 1 {
                assert_eq!(r.weight[i].to_bits(), o.weight[i].to_bits(), "layer {n} weight {i}");
            }
        }
        assert_eq!(r.bias, o.bias, "layer {n}");
    }
    // A uniformly random mask overlaps the ticket's in about the layer's density of its kept
    // positions (64% for the hidden layers at level 2, 81% for the output layer).
    for (n, (r, t)) in random.layers.iter().zip(&ticket.layers).enumerate() {
        let kept = r.mask.iter().filter(|&&m| m == 1).count();
        let both = r.mask.iter().zip(&t.mask).filter(|(&a, &b)| a == 1 && b == 1).count();
        let density = kept as f64 / r.mask.len() as f64;
        let overlap = both as f64 / kept as f64;
        assert!((overlap - density).abs() < 0.05, "layer {n}: overlap {overlap}, {density}");
    }
    let summary = read_json(&random_dir.join("summary.json"));
    assert_eq!(summary["kind"], "random-prune");
    assert_eq!(summary["kept_per_layer"], ticket_summary["kept_per_layer"]);
    assert_eq!(masks(&load_net(&random_dir.join("final.safetensors"))), masks(&random));
}

/// The `data-label` of every series in an SVG chart, with the number of points of its line.
fn series_of(svg: &str) -> Vec<(String, usize)> {
    let mut out = vec![];
    for part in svg.split(r#"<g class="series" data-label=""#).skip(1) {
        let label = part.split('"').next().unwrap().to_string();
        let points = part
            .split(r#"<polyline points=""#)
            .nth(1)
            .map_or(0, |p| p.split('"').next().unwrap().split_whitespace().count());
        out.push((label, points));
    }
    out
}

#[test]
fn report_curves_plot_exactly_the_requested_levels() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--levels", "3"]);
    let svg_path = exp.join("plots").join("accuracy_curves.svg");
    for (list, levels) in [("1,3", vec![1, 3]), ("0", vec![0])] {
        ticket_ok(&["report", exp.to_str().unwrap(), "--curves", list]);
        let expected: Vec<(String, usize)> = levels
            .iter()
            .map(|&level| {
                let run = level_dir(&exp, level);
                let remaining =
                    read_json(&run.join("summary.json"))["weights_remaining"].as_f64().unwrap();
                // One point per evaluation after iteration 0.
                let points = history(&run).len() - 1;
                (format!("{:.1}%", 100.0 * remaining), points)
            })
            .collect();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert_eq!(series_of(&svg), expected, "--curves {list}");
        assert!(exp.join("plots").join("accuracy_curves.png").exists());
    }
}
