//! The parameters of a multilayer perceptron with a pruning mask per weight matrix.
//!
//! Weights are stored PyTorch-style, `[out, in]` row-major, so a layer computes
//! `y = W x + b`. A mask entry of 1 keeps the weight, 0 prunes it; pruned weights are kept at
//! exactly 0.0 by everything that modifies an `Network`.

use crate::sgemm::{sgemm, MatMut, MatRef};
use crate::{Dataset, Graph, LayerShape, Par};

/// Examples evaluated per matrix product; bounds the activation memory of evaluation.
const EVAL_CHUNK: usize = 1024;

/// One linear layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub shape: LayerShape,
    /// `[rows, cols]` row-major.
    pub weight: Vec<f32>,
    /// `[rows]`.
    pub bias: Vec<f32>,
    /// `[rows, cols]`, 1 = kept, 0 = pruned.
    pub mask: Vec<u8>,
}

impl LayerParams {
    /// A layer of zeros with every weight kept.
    pub fn zeros(shape: LayerShape) -> Self {
        LayerParams {
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
pub struct Network {
    pub graph: Graph,
    pub layers: Vec<LayerParams>,
}

impl Network {
    /// Zero weights, full masks.
    pub fn zeros(graph: &Graph) -> Self {
        Network {
            graph: graph.clone(),
            layers: graph.layer_shapes().into_iter().map(LayerParams::zeros).collect(),
        }
    }

    /// Weights kept by the masks (biases not counted).
    pub fn kept_weights(&self) -> usize {
        self.layers.iter().map(LayerParams::kept).sum()
    }

    /// Fraction of weights kept, the x axis of every lottery-ticket plot.
    pub fn density(&self) -> f64 {
        self.kept_weights() as f64 / self.graph.dense_weights() as f64
    }

    pub fn apply_masks(&mut self) {
        self.layers.iter_mut().for_each(LayerParams::apply_mask);
    }

    /// Logits `[batch, outputs]` for inputs `[batch, inputs]` (row-major): `W x + b` per layer,
    /// ReLU between layers. Masks are not re-applied: pruned weights are already zero.
    pub fn logits(&self, inputs: &[f32], batch: usize, par: Par) -> Vec<f32> {
        assert_eq!(inputs.len(), batch * self.graph.inputs(), "logits: input length");
        let mut x = inputs.to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            let (rows, cols) = (layer.shape.rows, layer.shape.cols);
            let mut y: Vec<f32> = layer.bias.iter().copied().cycle().take(batch * rows).collect();
            sgemm(
                MatMut::row_major(&mut y, batch, rows),
                MatRef::row_major(&x, batch, cols),
                MatRef::row_major(&layer.weight, rows, cols).t(),
                1.0,
                par,
            );
            if i + 1 < self.layers.len() {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            x = y;
        }
        x
    }

    /// Fraction of `data` whose largest logit is the label.
    pub fn accuracy(&self, data: &Dataset, par: Par) -> f64 {
        let mut correct = 0usize;
        for start in (0..data.len()).step_by(EVAL_CHUNK) {
            let n = EVAL_CHUNK.min(data.len() - start);
            let x = &data.images[start * data.features..(start + n) * data.features];
            let logits = self.logits(x, n, par);
            correct += logits
                .chunks_exact(self.graph.outputs())
                .zip(&data.labels[start..start + n])
                .filter(|(row, &label)| argmax(row) == label as usize)
                .count();
        }
        correct as f64 / data.len().max(1) as f64
    }

    /// The masks of all layers (cheap to compare between pruning levels).
    pub fn masks(&self) -> Vec<&[u8]> {
        self.layers.iter().map(|l| l.mask.as_slice()).collect()
    }
}

/// Index of the largest value (the first one on ties); NaN never wins.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer-by-layer scalar evaluation, independent of sgemm.
    fn naive_logits(net: &Network, x: &[f32]) -> Vec<f32> {
        let mut a = x.to_vec();
        for (i, l) in net.layers.iter().enumerate() {
            a = (0..l.shape.rows)
                .map(|r| {
                    let dot: f32 =
                        (0..l.shape.cols).map(|c| l.weight[r * l.shape.cols + c] * a[c]).sum();
                    let y = dot + l.bias[r];
                    if i + 1 < net.layers.len() {
                        y.max(0.0)
                    } else {
                        y
                    }
                })
                .collect();
        }
        a
    }

    #[test]
    fn logits_match_a_scalar_reference() {
        let graph: Graph = "7-5-4-3".parse().unwrap();
        let mut net = Network::zeros(&graph);
        for (l, layer) in net.layers.iter_mut().enumerate() {
            for (i, w) in layer.weight.iter_mut().enumerate() {
                *w = ((i * 7 + l * 3) % 11) as f32 / 5.0 - 1.0;
            }
            for (i, b) in layer.bias.iter_mut().enumerate() {
                *b = i as f32 * 0.1 - 0.2;
            }
        }
        let batch = 6;
        let x: Vec<f32> = (0..batch * 7).map(|i| (i % 5) as f32 / 4.0).collect();
        let got = net.logits(&x, batch, Par::Seq);
        for b in 0..batch {
            let want = naive_logits(&net, &x[b * 7..(b + 1) * 7]);
            for (g, w) in got[b * 3..(b + 1) * 3].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
        let data = Dataset {
            features: 7,
            images: x.clone(),
            labels: (0..batch)
                .map(|b| argmax(&naive_logits(&net, &x[b * 7..(b + 1) * 7])) as u8)
                .collect(),
        };
        assert_eq!(net.accuracy(&data, Par::Seq), 1.0);
    }

    #[test]
    fn argmax_prefers_first_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
    }
}
