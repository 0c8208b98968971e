//! Magnitude pruning (from `ticket_core::prune`, re-exported) and the masks of the controls.
//!
//! - Layer-wise and global magnitude pruning: [`ticket_core::prune`].
//! - One-shot: the layer sizes that `n` layer-wise levels would reach, for a real-valued `n`
//!   chosen so the whole network keeps a target fraction, in a single pruning step.
//! - Random pruning (control): a uniformly random mask with the same per-layer counts.
//!
//! Biases are never pruned. Ties in magnitude are broken by position, so pruning is
//! deterministic.

use crate::rng::SeededRng;
use crate::{Error, Result};
pub use ticket_core::prune::*;
use ticket_core::Network;

/// Per-layer kept counts after `levels` layer-wise levels, applying [`keep_after`] level by
/// level from the full layer sizes: the count the paper's arithmetic predicts.
pub fn layerwise_counts(sizes: &[usize], rates: &[f32], levels: usize) -> Vec<usize> {
    sizes
        .iter()
        .zip(rates)
        .map(|(&n, &r)| (0..levels).fold(n, |kept, _| keep_after(kept, r as f64)))
        .collect()
}

/// Per-layer kept counts for one-shot pruning to `density` (fraction of weights kept): each
/// layer keeps `(1 - rate)^n` of its weights, with `n` solved so the total matches.
pub fn one_shot_counts(sizes: &[usize], rates: &[f32], density: f64) -> Result<Vec<usize>> {
    if !(density > 0.0 && density <= 1.0) {
        return Err(Error::Mismatch(format!(
            "one-shot density {density} must be a fraction in (0, 1]"
        )));
    }
    let total: usize = sizes.iter().sum();
    let kept_at = |n: f64| -> f64 {
        sizes.iter().zip(rates).map(|(&s, &r)| s as f64 * (1.0 - r as f64).powf(n)).sum()
    };
    let target = density * total as f64;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while kept_at(hi) > target && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if kept_at(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(sizes
        .iter()
        .zip(rates)
        .map(|(&s, &r)| ((s as f64 * (1.0 - r as f64).powf(hi)).round() as usize).clamp(1, s))
        .collect())
}

/// A uniformly random mask with the same number of kept weights per layer as `net`'s masks:
/// the random-pruning control.
pub fn random_masks_like(net: &Network, rng: &mut SeededRng) -> Vec<Vec<u8>> {
    net.layers
        .iter()
        .map(|layer| {
            let mut positions: Vec<usize> = (0..layer.mask.len()).collect();
            rng.shuffle(&mut positions);
            let mut mask = vec![0u8; layer.mask.len()];
            for &i in &positions[..layer.kept()] {
                mask[i] = 1;
            }
            mask
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_net;
    use ticket_core::recipe::Init;
    use ticket_core::recipe::PruneMethod;
    use ticket_core::Graph;

    /// The paper's weights remaining after n rounds of 20% (hidden) / 10% (output) pruning of
    /// LeNet-300-100, (265,200 * 0.8^n + 1,000 * 0.9^n) / 266,200, to one decimal.
    const PAPER_PERCENT: [f64; 19] = [
        100.0, 80.0, 64.1, 51.3, 41.1, 32.9, 26.3, 21.1, 16.9, 13.5, 10.8, 8.7, 7.0, 5.6, 4.5, 3.6,
        2.9, 2.3, 1.9,
    ];

    #[test]
    fn layerwise_counts_follow_the_paper_arithmetic() {
        let sizes = [784 * 300, 300 * 100, 100 * 10];
        let rates = [0.2, 0.2, 0.1];
        for (n, &percent) in PAPER_PERCENT.iter().enumerate() {
            let kept: usize = layerwise_counts(&sizes, &rates, n).iter().sum();
            let formula =
                (265_200.0 * 0.8f64.powi(n as i32) + 1_000.0 * 0.9f64.powi(n as i32)) / 266_200.0;
            // Rounding per level moves each layer by less than one weight per level.
            assert!((kept as f64 - formula * 266_200.0).abs() <= (3 * n) as f64, "level {n}");
            assert!((100.0 * kept as f64 / 266_200.0 - percent).abs() < 0.05 + 1e-9, "level {n}");
        }
    }

    #[test]
    fn pruning_real_weights_reaches_the_predicted_counts_and_smallest_go_first() {
        let graph: Graph = "784-300-100-10".parse().unwrap();
        let mut net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(0, "init"));
        let sizes: Vec<usize> = graph.layer_shapes().iter().map(|s| s.len()).collect();
        let rates = [0.2, 0.2, 0.1];
        for level in 1..=5 {
            let before = net.clone();
            prune_layerwise(&mut net, &rates);
            let counts: Vec<usize> = net.layers.iter().map(|l| l.kept()).collect();
            assert_eq!(counts, layerwise_counts(&sizes, &rates, level));
            for (b, a) in before.layers.iter().zip(&net.layers) {
                let largest_pruned = (0..a.mask.len())
                    .filter(|&i| b.mask[i] == 1 && a.mask[i] == 0)
                    .map(|i| b.weight[i].abs())
                    .fold(0.0f32, f32::max);
                let smallest_kept = (0..a.mask.len())
                    .filter(|&i| a.mask[i] == 1)
                    .map(|i| b.weight[i].abs())
                    .fold(f32::INFINITY, f32::min);
                assert!(largest_pruned <= smallest_kept);
                assert!(a.weight.iter().zip(&a.mask).all(|(&w, &m)| m == 1 || w == 0.0));
            }
        }
    }

    #[test]
    fn global_pruning_uses_one_threshold() {
        let graph: Graph = "50-20-5".parse().unwrap();
        let mut net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let before = net.clone();
        prune_global(&mut net, 0.3);
        let total = graph.dense_weights();
        assert_eq!(net.kept_weights(), keep_after(total, 0.3));
        let mut pruned_max = 0.0f32;
        let mut kept_min = f32::INFINITY;
        for (b, a) in before.layers.iter().zip(&net.layers) {
            for i in 0..a.mask.len() {
                if a.mask[i] == 1 {
                    kept_min = kept_min.min(b.weight[i].abs());
                } else {
                    pruned_max = pruned_max.max(b.weight[i].abs());
                }
            }
        }
        assert!(pruned_max <= kept_min);
    }

    #[test]
    fn one_shot_hits_the_target_density() {
        let sizes = [784 * 300, 300 * 100, 100 * 10];
        let counts = one_shot_counts(&sizes, &[0.2, 0.2, 0.1], 0.036).unwrap();
        let kept: usize = counts.iter().sum();
        assert!((kept as f64 / 266_200.0 - 0.036).abs() < 1e-4, "{counts:?}");
        // The output layer keeps a larger share, as the layer-wise rates imply.
        assert!(counts[2] as f64 / 1000.0 > counts[0] as f64 / (784.0 * 300.0));
        assert!(one_shot_counts(&sizes, &[0.2, 0.2, 0.1], 0.0).is_err());
        assert!(one_shot_counts(&sizes, &[0.2, 0.2, 0.1], 1.5).is_err());
    }

    #[test]
    fn pruning_to_a_fraction_keeps_the_largest_per_layer_or_overall() {
        let graph: Graph = "40-20-5".parse().unwrap();
        let dense = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(3, "init"));
        let mut net = dense.clone();
        prune_to_fraction(&mut net, 0.25, PruneMethod::Layerwise).unwrap();
        assert_eq!(net.layers.iter().map(|l| l.kept()).collect::<Vec<_>>(), [200, 25]);
        for (d, p) in dense.layers.iter().zip(&net.layers) {
            // Exactly the `kept` largest magnitudes of the layer survive, biases untouched.
            let mut magnitudes: Vec<f32> = d.weight.iter().map(|w| w.abs()).collect();
            magnitudes.sort_by(|a, b| b.total_cmp(a));
            let threshold = magnitudes[p.kept() - 1];
            for i in 0..d.weight.len() {
                assert_eq!(p.mask[i] == 1, d.weight[i].abs() >= threshold, "index {i}");
            }
            assert_eq!(p.bias, d.bias);
        }
        let mut global = dense.clone();
        prune_to_fraction(&mut global, 0.1, PruneMethod::Global).unwrap();
        assert_eq!(global.kept_weights(), 90);
        let mut all: Vec<f32> =
            dense.layers.iter().flat_map(|l| l.weight.iter().map(|w| w.abs())).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        for (d, p) in dense.layers.iter().zip(&global.layers) {
            for i in 0..d.weight.len() {
                assert_eq!(p.mask[i] == 1, d.weight[i].abs() >= all[89]);
            }
        }
        // Already pruned weights stay pruned; keep 1.0 changes nothing else.
        let mut again = net.clone();
        prune_to_fraction(&mut again, 1.0, PruneMethod::Global).unwrap();
        assert_eq!(again, net);
        assert!(prune_to_fraction(&mut again, 0.0, PruneMethod::Layerwise).is_err());
    }

    #[test]
    fn random_masks_keep_per_layer_counts() {
        let graph: Graph = "30-20-5".parse().unwrap();
        let mut net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(2, "init"));
        prune_layerwise(&mut net, &[0.5, 0.1]);
        let masks = random_masks_like(&net, &mut SeededRng::new(2, "random-prune"));
        for (layer, mask) in net.layers.iter().zip(&masks) {
            assert_eq!(mask.iter().filter(|&&m| m == 1).count(), layer.kept());
            assert_ne!(mask, &layer.mask);
        }
    }
}
