//! `ticket find` pruning options end to end on the embedded digits: layer-wise and global
//! magnitude pruning, one-shot pruning and rewinding, each checked against the checkpoints the
//! run wrote and a naive recomputation of what the option promises.

mod common;
use common::*;
use ticket_core::Network;

#[test]
fn layerwise_levels_prune_the_rounded_rate_of_the_remaining_smallest_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--levels", "3", "--pruning", "layerwise"]);
    let sizes = [64 * 300, 300 * 100, 100 * 10];
    let mut expected_counts = sizes.to_vec();
    for level in 1..=3 {
        let trained = load_net(&level_dir(&exp, level - 1).join("final.safetensors"));
        let start = load_net(&level_dir(&exp, level).join("init.safetensors"));
        let end = load_net(&level_dir(&exp, level).join("final.safetensors"));
        // Each layer keeps kept - round(rate * kept), level after level.
        for (count, rate) in expected_counts.iter_mut().zip(DIGITS_RATES) {
            *count -= (rate * *count as f64).round() as usize;
        }
        assert_eq!(kept_per_layer(&start), expected_counts, "level {level}");
        // Within a weight per level of the closed form size * (1 - rate)^level.
        for ((&kept, &size), rate) in expected_counts.iter().zip(&sizes).zip(DIGITS_RATES) {
            let closed = size as f64 * (1.0 - rate).powi(level as i32);
            assert!((kept as f64 - closed).abs() <= level as f64, "{kept} vs {closed}");
        }
        // The pruned weights are the smallest trained weights of the level before.
        assert_eq!(masks(&start), layerwise_masks(&trained, &DIGITS_RATES), "level {level}");
        assert_eq!(masks(&end), masks(&start), "training keeps the mask of level {level}");
        assert_pruned_are_zero(&end, &format!("level {level}"));
        let summary = read_json(&level_dir(&exp, level).join("summary.json"));
        assert_eq!(summary["kept_per_layer"], serde_json::json!(expected_counts));
        let total: usize = expected_counts.iter().sum();
        let remaining = summary["weights_remaining"].as_f64().unwrap();
        assert!((remaining - total as f64 / 50_200.0).abs() < 1e-12, "{remaining}");
    }
}

/// Asserts that `pruned`'s masks remove `rate` of `trained`'s kept weights (rounded) with one
/// magnitude threshold over all layers at once; returns the per-layer kept counts.
fn assert_one_threshold(trained: &Network, pruned: &Network, rate: f64, what: &str) -> Vec<usize> {
    let mut magnitudes: Vec<f32> = trained
        .layers
        .iter()
        .flat_map(|l| l.weight.iter().zip(&l.mask).filter(|(_, &m)| m == 1))
        .map(|(w, _)| w.abs())
        .collect();
    magnitudes.sort_by(f32::total_cmp);
    // The threshold: the largest magnitude among the round(rate * kept) smallest.
    let remove = (rate * magnitudes.len() as f64).round() as usize;
    let threshold = magnitudes[remove - 1];
    let counts = kept_per_layer(pruned);
    for (n, (before, after)) in trained.layers.iter().zip(&pruned.layers).enumerate() {
        let kept_where = |keep: &dyn Fn(f32) -> bool| {
            (0..before.weight.len())
                .filter(|&i| before.mask[i] == 1 && keep(before.weight[i].abs()))
                .count()
        };
        let (above, at_least) = (kept_where(&|m| m > threshold), kept_where(&|m| m >= threshold));
        assert!(above <= counts[n] && counts[n] <= at_least, "{what} layer {n}: {counts:?}");
        for i in 0..before.weight.len() {
            let m = before.weight[i].abs();
            if after.mask[i] == 1 {
                assert!(before.mask[i] == 1 && m >= threshold, "{what} layer {n} keeps {m}");
            } else if before.mask[i] == 1 {
                assert!(m <= threshold, "{what} layer {n} prunes {m} above {threshold}");
            }
        }
    }
    assert_eq!(counts.iter().sum::<usize>(), magnitudes.len() - remove, "{what}");
    // One threshold, not one rate per layer: the layers lose different fractions.
    let per_layer: Vec<usize> = layerwise_masks(trained, &[rate; 3])
        .iter()
        .map(|m| m.iter().filter(|&&k| k == 1).count())
        .collect();
    assert_ne!(counts, per_layer, "{what}");
    counts
}

#[test]
fn global_pruning_follows_one_magnitude_threshold_across_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--levels", "2", "--pruning", "global"]);
    for level in 1..=2 {
        let trained = load_net(&level_dir(&exp, level - 1).join("final.safetensors"));
        let pruned = load_net(&level_dir(&exp, level).join("init.safetensors"));
        // global_rate = 0.2 in models/digits-mlp.toml.
        let counts = assert_one_threshold(&trained, &pruned, 0.2, &format!("level {level}"));
        let summary = read_json(&level_dir(&exp, level).join("summary.json"));
        assert_eq!(summary["kept_per_layer"], serde_json::json!(counts));
    }
}

#[test]
fn global_one_shot_prunes_to_the_density_with_one_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--pruning", "global", "--one-shot", "0.1"]);
    assert!(!level_dir(&exp, 2).exists(), "one-shot runs a single pruned level");
    let trained = load_net(&level_dir(&exp, 0).join("final.safetensors"));
    let pruned = load_net(&level_dir(&exp, 1).join("init.safetensors"));
    let counts = assert_one_threshold(&trained, &pruned, 0.9, "one-shot");
    assert_eq!(counts.iter().sum::<usize>(), 5_020);
}

#[test]
fn one_shot_prunes_once_to_the_requested_density() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--one-shot", "0.1", "--levels", "4"]);
    assert!(level_dir(&exp, 1).join("summary.json").exists());
    assert!(!level_dir(&exp, 2).exists(), "one-shot runs a single pruned level");
    assert_eq!(read_json(&exp.join("experiment.json"))["spec"]["one_shot"], 0.1);

    let dense = load_net(&level_dir(&exp, 0).join("final.safetensors"));
    let pruned = load_net(&level_dir(&exp, 1).join("init.safetensors"));
    let counts = kept_per_layer(&pruned);
    let sizes = [64 * 300, 300 * 100, 100 * 10];
    // Each layer rounds its own count, so the total is off by at most half a weight per layer.
    let total: usize = counts.iter().sum();
    assert!((total as f64 - 0.1 * 50_200.0).abs() <= 1.5, "{counts:?}");
    // Every layer keeps (1 - rate)^n of its weights for one common n, as n layer-wise levels
    // would (up to the rounding of each count).
    let exponents: Vec<f64> = counts
        .iter()
        .zip(&sizes)
        .zip(DIGITS_RATES)
        .map(|((&k, &s), r)| (k as f64 / s as f64).ln() / (1.0 - r).ln())
        .collect();
    for e in &exponents {
        assert!((e - exponents[0]).abs() < 0.05, "{exponents:?} for {counts:?}");
    }
    // The kept weights are the largest of the trained dense network, layer by layer.
    for (n, (before, after)) in dense.layers.iter().zip(&pruned.layers).enumerate() {
        assert_eq!(after.mask, largest_magnitudes(&before.weight, &before.mask, counts[n]));
    }
    let summary = read_json(&level_dir(&exp, 1).join("summary.json"));
    assert_eq!(summary["kept_per_layer"], serde_json::json!(counts));
}

#[test]
fn rewinding_starts_level_one_from_the_weights_of_iteration_k() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--levels", "1", "--rewind", "100"]);
    let rewind = load_checkpoint(&level_dir(&exp, 0).join("iter_000100.safetensors"));
    assert_eq!(rewind.meta.iteration, 100);
    // They are the weights of iteration 100: a 100-iteration run with the same seed ends there.
    let short = train_small(tmp.path(), "short", &["--iterations", "100"]);
    let reference = load_net(&short.join("final.safetensors"));
    for (a, b) in rewind.net.layers.iter().zip(&reference.layers) {
        assert_eq!((&a.weight, &a.bias), (&b.weight, &b.bias));
    }

    let trained = load_net(&level_dir(&exp, 0).join("final.safetensors"));
    let start = load_net(&level_dir(&exp, 1).join("init.safetensors"));
    assert_eq!(masks(&start), layerwise_masks(&trained, &DIGITS_RATES));
    for (n, (r, s)) in rewind.net.layers.iter().zip(&start.layers).enumerate() {
        assert_eq!(r.bias, s.bias, "layer {n}");
        for i in 0..r.weight.len() {
            let want = if s.mask[i] == 1 { r.weight[i] } else { 0.0 };
            assert_eq!(s.weight[i].to_bits(), want.to_bits(), "layer {n} weight {i}");
        }
    }
    // Not the initial weights: rewinding to iteration 100 is not resetting to iteration 0.
    let init = load_net(&level_dir(&exp, 0).join("init.safetensors"));
    assert_ne!(init.layers[0].weight, rewind.net.layers[0].weight);
}

#[test]
fn rewinding_to_the_last_iteration_starts_from_the_trained_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = find_small(tmp.path(), "exp", &["--levels", "1", "--rewind", "300"]);
    let trained = load_net(&level_dir(&exp, 0).join("final.safetensors"));
    let rewind = load_net(&level_dir(&exp, 0).join("iter_000300.safetensors"));
    assert_eq!(rewind, trained);
    let start = load_net(&level_dir(&exp, 1).join("init.safetensors"));
    let mut expected = trained.clone();
    for (layer, mask) in expected.layers.iter_mut().zip(layerwise_masks(&trained, &DIGITS_RATES)) {
        for (w, &m) in layer.weight.iter_mut().zip(&mask) {
            if m == 0 {
                *w = 0.0;
            }
        }
        layer.mask = mask;
    }
    assert_eq!(start, expected);
}
