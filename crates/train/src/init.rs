//! Weight initialisation: Glorot (Xavier) normal, as the paper, or Kaiming (He) normal (fans of
//! conv weights counted over the kernel, as PyTorch), with
//! zero biases and full masks, drawn from the run's `init` stream.

use crate::rng::SeededRng;
use ticket_core::recipe::Init;
use ticket_core::{Graph, Network};

/// A fresh network for `graph` from `rng`.
pub fn init_net(graph: &Graph, init: Init, rng: &mut SeededRng) -> Network {
    let mut net = Network::zeros(graph);
    for (layer, weighted) in net.layers.iter_mut().zip(graph.weighted()) {
        let (fan_in, fan_out) = fans(&weighted.dims);
        let std = init_std(init, fan_in, fan_out);
        for w in &mut layer.weight {
            *w = (rng.normal() * std) as f32;
        }
    }
    net
}

/// Fan-in and fan-out of a weight of shape `[out, in, ...]`, as PyTorch counts them: `in` and
/// `out` times the receptive field (`kh * kw` for conv2d, 1 for linear).
pub fn fans(dims: &[usize]) -> (usize, usize) {
    let receptive: usize = dims[2..].iter().product();
    (dims[1] * receptive, dims[0] * receptive)
}

/// Standard deviation of the initial weights of a layer (PyTorch's `xavier_normal_` and
/// `kaiming_normal_` with the ReLU gain).
pub fn init_std(init: Init, fan_in: usize, fan_out: usize) -> f64 {
    match init {
        Init::GlorotNormal => (2.0 / (fan_in + fan_out) as f64).sqrt(),
        Init::KaimingNormal => (2.0 / fan_in as f64).sqrt(),
    }
}

/// Replaces the weights of `net` with a fresh draw, keeping its masks (pruned weights stay 0).
/// This is the "random reinitialisation" control of the paper.
pub fn reinit_keep_masks(net: &mut Network, init: Init, rng: &mut SeededRng) {
    let fresh = init_net(&net.graph, init, rng);
    for (layer, new) in net.layers.iter_mut().zip(fresh.layers) {
        layer.weight = new.weight;
        layer.bias = new.bias;
        layer.apply_mask();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_std_matches_the_formula_empirically() {
        let graph: Graph = "784-300-100-10".parse().unwrap();
        let net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(3, "init"));
        let w = &net.layers[0].weight;
        let var = w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64;
        let want = 2.0 / (784.0 + 300.0);
        assert!((var / want - 1.0).abs() < 0.01, "{var} vs {want}");
        assert!(net.layers.iter().all(|l| l.bias.iter().all(|&b| b == 0.0)));
        let kaiming = init_net(&graph, Init::KaimingNormal, &mut SeededRng::new(3, "init"));
        let w = &kaiming.layers[1].weight;
        let var = w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64;
        assert!((var / (2.0 / 300.0) - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn same_seed_same_weights() {
        let graph: Graph = "20-10-3".parse().unwrap();
        let a = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(5, "init"));
        let b = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(5, "init"));
        let c = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(6, "init"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
