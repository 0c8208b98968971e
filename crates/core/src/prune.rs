//! Magnitude pruning of a network's masks, the one operation IMP, one-shot pruning and
//! pruning on export share.
//!
//! - Layer-wise (the paper): each layer loses `rate` of its *remaining* weights, the ones of
//!   smallest magnitude, so after `n` levels a layer keeps about `(1 - rate)^n` of its weights.
//! - Global (open_lth): one magnitude threshold across all layers removes `rate` of all
//!   remaining weights.
//!
//! Biases are never pruned. Ties in magnitude are broken by position, so pruning is
//! deterministic.

use crate::recipe::PruneMethod;
use crate::{Error, Network, Result};

/// Number of weights a layer keeps when it prunes `rate` of `kept` (rounded to nearest).
pub fn keep_after(kept: usize, rate: f64) -> usize {
    kept - (rate * kept as f64).round() as usize
}

/// Prunes each layer `l` by `rates[l]` of its remaining weights, by magnitude of `net`'s
/// current (trained) weights.
pub fn prune_layerwise(net: &mut Network, rates: &[f32]) {
    assert_eq!(rates.len(), net.layers.len(), "one rate per layer");
    let targets: Vec<usize> =
        net.layers.iter().zip(rates).map(|(l, &r)| keep_after(l.kept(), r as f64)).collect();
    prune_to_counts(net, &targets);
}

/// Keeps the `targets[l]` largest-magnitude kept weights of each layer `l`.
pub fn prune_to_counts(net: &mut Network, targets: &[usize]) {
    for (layer, &target) in net.layers.iter_mut().zip(targets) {
        let mut kept: Vec<usize> = (0..layer.mask.len()).filter(|&i| layer.mask[i] != 0).collect();
        if target >= kept.len() {
            continue;
        }
        // Smallest magnitude first; position breaks ties. Selecting the pruned ones is
        // enough (no full sort: AlexNet's fc6 has 38M weights).
        let remove = kept.len() - target;
        if target > 0 {
            kept.select_nth_unstable_by(remove, |&a, &b| {
                layer.weight[a].abs().total_cmp(&layer.weight[b].abs()).then(a.cmp(&b))
            });
        }
        for &i in &kept[..remove] {
            layer.mask[i] = 0;
        }
        layer.apply_mask();
    }
}

/// Prunes `rate` of all remaining weights with one magnitude threshold across layers.
pub fn prune_global(net: &mut Network, rate: f32) {
    let target = keep_after(net.kept_weights(), rate as f64);
    prune_global_to_count(net, target);
}

/// Keeps the `target` largest-magnitude kept weights of the whole network (one threshold).
pub fn prune_global_to_count(net: &mut Network, target: usize) {
    let mut kept: Vec<(usize, usize)> = net
        .layers
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| {
            (0..layer.mask.len()).filter(move |&i| layer.mask[i] != 0).map(move |i| (l, i))
        })
        .collect();
    let remove = kept.len().saturating_sub(target);
    let magnitude = |&(l, i): &(usize, usize)| net.layers[l].weight[i].abs();
    kept.sort_by(|a, b| magnitude(a).total_cmp(&magnitude(b)).then(a.cmp(b)));
    let removed: Vec<(usize, usize)> = kept[..remove].to_vec();
    for (l, i) in removed {
        net.layers[l].mask[i] = 0;
    }
    net.apply_masks();
}

/// One-shot magnitude pruning of a trained network to `keep`, the fraction of its weights
/// kept (of all of them, pruned or not): each layer keeps `keep` of its own weights
/// (layer-wise; at least one) or one threshold keeps `keep` of all (global). Weights already
/// pruned stay pruned; biases are never pruned. What `ticket export --keep` does to an
/// imported model.
pub fn prune_to_fraction(net: &mut Network, keep: f64, method: PruneMethod) -> Result<()> {
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(Error::usage(format!("keep {keep} must be a fraction in (0, 1]")));
    }
    let of = |n: usize| ((keep * n as f64).round() as usize).max(1);
    match method {
        PruneMethod::Layerwise => {
            let targets: Vec<usize> = net.layers.iter().map(|l| of(l.mask.len())).collect();
            prune_to_counts(net, &targets);
        }
        PruneMethod::Global => prune_global_to_count(net, of(net.graph.dense_weights())),
    }
    Ok(())
}

/// Weights a layer of `n` keeps when one-shot pruning keeps the fraction `keep`: `n` minus
/// `(1 - keep) n` rounded half to even, which is how PyTorch's
/// `prune.l1_unstructured(amount=1 - keep)` counts, so the two prune the same weights.
pub fn kept_of_fraction(n: usize, keep: f64) -> usize {
    n - ((1.0 - keep) * n as f64).round_ties_even() as usize
}

/// One-shot magnitude pruning of each layer to its own fraction `keeps[l]` of its weights
/// (Han et al.'s per-layer rates; `None` leaves a layer as it is). Weights already pruned
/// stay pruned; biases are never pruned.
pub fn prune_layers_to_fractions(net: &mut Network, keeps: &[Option<f64>]) -> Result<()> {
    assert_eq!(keeps.len(), net.layers.len(), "one fraction (or none) per layer");
    if let Some(keep) = keeps.iter().flatten().find(|&&k| !(k > 0.0 && k <= 1.0)) {
        return Err(Error::usage(format!("keep {keep} must be a fraction in (0, 1]")));
    }
    let targets: Vec<usize> = net
        .layers
        .iter()
        .zip(keeps)
        .map(|(l, keep)| keep.map_or(l.mask.len(), |k| kept_of_fraction(l.mask.len(), k)))
        .collect();
    prune_to_counts(net, &targets);
    Ok(())
}
