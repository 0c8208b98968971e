//! The parameters of a multilayer perceptron with a pruning mask per weight matrix.
//!
//! Weights are stored PyTorch-style, `[out, in]` row-major, so a layer computes
//! `y = W x + b`. A mask entry of 1 keeps the weight, 0 prunes it; pruned weights are kept at
//! exactly 0.0 by everything that modifies an `Mlp`.

use crate::{Arch, LayerShape};

/// One linear layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub shape: LayerShape,
    /// `[rows, cols]` row-major.
    pub weight: Vec<f32>,
    /// `[rows]`.
    pub bias: Vec<f32>,
    /// `[rows, cols]`, 1 = kept, 0 = pruned.
    pub mask: Vec<u8>,
}

impl Linear {
    /// A layer of zeros with every weight kept.
    pub fn zeros(shape: LayerShape) -> Self {
        Linear {
            shape,
            weight: vec![0.0; shape.len()],
            bias: vec![0.0; shape.rows],
            mask: vec![1; shape.len()],
        }
    }

    pub fn kept(&self) -> usize {
        self.mask.iter().filter(|&&m| m != 0).count()
    }

    /// Sets pruned weights to exactly zero.
    pub fn apply_mask(&mut self) {
        for (w, &m) in self.weight.iter_mut().zip(&self.mask) {
            if m == 0 {
                *w = 0.0;
            }
        }
    }
}

/// All layers of an MLP, input to output.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub arch: Arch,
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// Zero weights, full masks.
    pub fn zeros(arch: &Arch) -> Self {
        Mlp {
            arch: arch.clone(),
            layers: arch.layer_shapes().into_iter().map(Linear::zeros).collect(),
        }
    }

    /// Weights kept by the masks (biases not counted).
    pub fn kept_weights(&self) -> usize {
        self.layers.iter().map(Linear::kept).sum()
    }

    /// Fraction of weights kept, the x axis of every lottery-ticket plot.
    pub fn density(&self) -> f64 {
        self.kept_weights() as f64 / self.arch.dense_weights() as f64
    }

    pub fn apply_masks(&mut self) {
        self.layers.iter_mut().for_each(Linear::apply_mask);
    }

    /// The masks of all layers (cheap to compare between pruning levels).
    pub fn masks(&self) -> Vec<&[u8]> {
        self.layers.iter().map(|l| l.mask.as_slice()).collect()
    }
}
