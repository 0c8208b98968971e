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
use crate::{Error, LayerParams, Network, Result};

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
        prune_layer_to_count(layer, target);
    }
}

/// Prunes the kept weights of smallest magnitude of `layer` until `target` are left;
/// position breaks ties. A radix select on the magnitudes' bits (which order like the
/// magnitudes: `|w|` is never negative) finds them without sorting or copying the layer:
/// one histogram of the top 16 bits, then a sort of the one bucket that holds the cut.
/// AlexNet's fc6 (38M weights) thus needs no 150 MB index array.
fn prune_layer_to_count(layer: &mut LayerParams, target: usize) {
    let kept = layer.kept();
    if target >= kept {
        return;
    }
    let remove = kept - target;
    let key = |w: f32| w.abs().to_bits();
    let mut histogram = vec![0usize; 1 << 16];
    for (w, _) in layer.weight.iter().zip(&layer.mask).filter(|(_, &m)| m != 0) {
        histogram[(key(*w) >> 16) as usize] += 1;
    }
    let (mut below, mut cut) = (0, 0);
    while below + histogram[cut] < remove {
        below += histogram[cut];
        cut += 1;
    }
    let mut bucket: Vec<(u32, usize)> = Vec::with_capacity(histogram[cut]);
    for (i, (w, m)) in layer.weight.iter().zip(layer.mask.iter_mut()).enumerate() {
        if *m == 0 {
            continue;
        }
        let k = key(*w);
        match ((k >> 16) as usize).cmp(&cut) {
            std::cmp::Ordering::Less => *m = 0,
            std::cmp::Ordering::Equal => bucket.push((k, i)),
            std::cmp::Ordering::Greater => {}
        }
    }
    bucket.sort_unstable();
    for &(_, i) in &bucket[..remove - below] {
        layer.mask[i] = 0;
    }
    layer.apply_mask();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `target` weights a full sort by (magnitude, position) keeps: the naive reference.
    fn kept_by_sorting(weight: &[f32], mask: &[u8], target: usize) -> Vec<u8> {
        let mut kept: Vec<usize> = (0..weight.len()).filter(|&i| mask[i] != 0).collect();
        kept.sort_by(|&a, &b| weight[a].abs().total_cmp(&weight[b].abs()).then(a.cmp(&b)));
        let mut out = mask.to_vec();
        for &i in &kept[..kept.len().saturating_sub(target)] {
            out[i] = 0;
        }
        out
    }

    #[test]
    fn radix_select_prunes_what_a_full_sort_prunes_ties_and_signs_included() {
        // Few distinct magnitudes (many ties, both signs), some already pruned, values
        // spread over exponents and one bucket holding most of them.
        let n = 5000;
        let weight: Vec<f32> = (0..n)
            .map(|i| {
                let m = [0.0, 1e-30, 0.5, 0.5000001, 2.0, 3.0e5][(i * 7919) % 6];
                if i % 3 == 0 {
                    -m
                } else {
                    m
                }
            })
            .collect();
        let mask: Vec<u8> = (0..n).map(|i| u8::from(i % 11 != 0)).collect();
        for target in [0, 1, 17, 1000, 2500, 4544, 4545, 5000] {
            let mut layer = LayerParams {
                shape: crate::LayerShape { rows: 50, cols: 100 },
                weight: weight.clone(),
                bias: vec![0.0; 50],
                mask: mask.clone(),
            };
            let expected = kept_by_sorting(&weight, &mask, target);
            prune_layer_to_count(&mut layer, target);
            assert_eq!(layer.mask, expected, "target {target}");
            assert_eq!(layer.kept(), target.min(mask.iter().filter(|&&m| m != 0).count()));
        }
    }

    #[test]
    fn fractions_count_as_pytorch_rounds_the_amount_pruned() {
        // torch: round(amount * n) pruned, half to even: 2.5 -> 2 pruned of 5, 3.5 -> 4 of 7.
        assert_eq!(kept_of_fraction(5, 0.5), 3);
        assert_eq!(kept_of_fraction(7, 0.5), 3);
        assert_eq!(kept_of_fraction(100, 0.84), 84);
        assert_eq!(kept_of_fraction(10, 1.0), 10);
    }
}
