//! What every fuzz target checks besides "no panic, no out-of-bounds access": a file that is
//! refused is refused with one line that starts with the file's path, as the CLI prints it.

use std::fmt::Display;
use std::path::Path;

/// The path every target names its input by.
pub const PATH: &str = "fuzz-input";

/// The path as the loaders take it.
pub fn path() -> &'static Path {
    Path::new(PATH)
}

/// Panics unless `err` is one line that starts with `PATH: `.
pub fn check_error(err: impl Display) {
    let text = err.to_string();
    assert!(text.starts_with(&format!("{PATH}: ")), "error does not name the file: {text}");
    assert!(!text.contains('\n'), "error spans several lines: {text}");
}

/// `n` deterministic inputs in [0, 1), like scaled pixels.
pub fn inputs(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f32 / 16_777_216.0)
        .collect()
}

/// Panics unless every layer's parameters fit the graph and its mask is 0/1 with pruned
/// weights at exactly zero (what every loader and importer promises).
pub fn check_network(net: &ticket_core::Network) {
    assert_eq!(net.layers.len(), net.graph.num_weighted());
    for (layer, shape) in net.layers.iter().zip(net.graph.layer_shapes()) {
        assert_eq!(layer.shape, shape);
        assert_eq!(layer.weight.len(), shape.len());
        assert_eq!(layer.mask.len(), shape.len());
        assert_eq!(layer.bias.len(), shape.rows);
        assert!(layer.mask.iter().all(|&m| m <= 1));
        assert!(layer.weight.iter().zip(&layer.mask).all(|(&w, &m)| m == 1 || w == 0.0));
    }
}
