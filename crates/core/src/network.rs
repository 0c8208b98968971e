//! The parameters of a model graph: weights, biases and a pruning mask per weighted layer, and
//! the dense forward pass of the whole graph (the reference every other path is compared to).
//!
//! Weights are stored PyTorch-style row-major, `[out, in]` or `[out, in, kh, kw]`, so a linear
//! layer computes `y = W x + b`. A mask entry of 1 keeps the weight, 0 prunes it; pruned weights are kept at
//! exactly 0.0 by everything that modifies an `Network`.

use crate::conv::{conv2d_forward, Conv2dGeometry, ConvScratch};
use crate::linear::{linear_forward, relu_in_place};
use crate::pool::{avgpool2d_forward, maxpool2d_forward, PoolGeometry};
use crate::{Dataset, Graph, Layer, LayerShape, Par};

/// Examples evaluated per matrix product; bounds the activation memory of evaluation.
const EVAL_CHUNK: usize = 1024;

/// One weighted layer (linear or conv2d), its weight seen as the `[rows, cols]` matrix.
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

/// A graph and the parameters of its weighted layers, input to output.
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

    /// Logits `[batch, outputs]` for inputs `[batch, inputs]` (row-major, each example C-order
    /// as its input shape): every layer of the graph in turn, ReLU only where the graph has
    /// one. Masks are not re-applied: pruned weights are already zero.
    pub fn logits(&self, inputs: &[f32], batch: usize, par: Par) -> Vec<f32> {
        assert_eq!(inputs.len(), batch * self.graph.inputs(), "logits: input length");
        let mut x = inputs.to_vec();
        let mut params = self.layers.iter();
        for (i, layer) in self.graph.layers().iter().enumerate() {
            let input_shape = self.graph.input_shape_of(i);
            if let Layer::Relu | Layer::Flatten = layer {
                if *layer == Layer::Relu {
                    relu_in_place(&mut x);
                }
                continue;
            }
            let mut y = vec![0.0f32; batch * self.graph.output_shape(i).iter().product::<usize>()];
            match layer {
                Layer::Linear { .. } => {
                    let p = params.next().expect("one LayerParams per weighted layer");
                    linear_forward(p.shape, &p.weight, &p.bias, &x, &mut y, batch, par);
                }
                Layer::Conv2d { .. } => {
                    let p = params.next().expect("one LayerParams per weighted layer");
                    let g = Conv2dGeometry::new(layer, input_shape).expect("the graph is checked");
                    let mut scratch = ConvScratch::default();
                    conv2d_forward(&g, (&p.weight, &p.bias), &x, &mut y, batch, par, &mut scratch);
                }
                Layer::Maxpool2d { .. } => {
                    let g = PoolGeometry::new(layer, input_shape).expect("the graph is checked");
                    maxpool2d_forward(&g, &x, &mut y, None, batch, par);
                }
                Layer::Avgpool2d { .. } => {
                    let g = PoolGeometry::new(layer, input_shape).expect("the graph is checked");
                    avgpool2d_forward(&g, &x, &mut y, batch);
                }
                Layer::Relu | Layer::Flatten => unreachable!("handled above"),
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

    /// A net with every layer kind (conv with stride 2 and padding 1, a 1x1 conv, both pools,
    /// flatten, linear, relu) against per-layer direct loops, one example at a time.
    pub(crate) fn every_kind_graph() -> Graph {
        let conv = |name: &str, inputs, outputs, k, stride, pad| Layer::Conv2d {
            name: name.into(),
            inputs,
            outputs,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad, pad],
        };
        Graph::new(
            vec![2, 9, 9],
            vec![
                conv("conv1", 2, 3, 3, 2, 1),
                Layer::Relu,
                conv("conv2", 3, 4, 1, 1, 0),
                Layer::Maxpool2d { kernel: [2, 2], stride: Some([1, 1]) },
                Layer::Relu,
                Layer::Avgpool2d { kernel: [2, 2], stride: None },
                Layer::Flatten,
                Layer::Linear { name: "fc1".into(), inputs: 16, outputs: 5 },
                Layer::Relu,
                Layer::Linear { name: "fc2".into(), inputs: 5, outputs: 3 },
            ],
        )
        .unwrap()
    }

    #[test]
    fn logits_of_every_layer_kind_match_direct_loops() {
        use crate::conv::tests::naive_conv2d;
        use crate::pool::tests::naive_pool;
        let graph = every_kind_graph();
        let mut net = Network::zeros(&graph);
        for (l, layer) in net.layers.iter_mut().enumerate() {
            for (i, w) in layer.weight.iter_mut().enumerate() {
                *w = ((i * 7 + l * 3) % 11) as f32 / 8.0 - 0.6;
            }
            for (i, b) in layer.bias.iter_mut().enumerate() {
                *b = i as f32 * 0.1 - 0.15;
            }
        }
        let batch = 4;
        let x: Vec<f32> =
            (0..batch * graph.inputs()).map(|i| ((i * 13) % 9) as f32 / 4.0 - 1.0).collect();
        for par in [Par::Seq, Par::Rayon(2)] {
            let got = net.logits(&x, batch, par);
            for b in 0..batch {
                let mut a = x[b * graph.inputs()..(b + 1) * graph.inputs()].to_vec();
                let mut params = net.layers.iter();
                for (i, layer) in graph.layers().iter().enumerate() {
                    let shape = graph.input_shape_of(i);
                    a = match layer {
                        Layer::Conv2d { .. } => {
                            let p = params.next().unwrap();
                            let g = Conv2dGeometry::new(layer, shape).unwrap();
                            naive_conv2d(&g, &p.weight, &p.bias, &a)
                        }
                        Layer::Linear { .. } => {
                            let p = params.next().unwrap();
                            naive_linear(p, &a)
                        }
                        Layer::Maxpool2d { .. } | Layer::Avgpool2d { .. } => {
                            let g = PoolGeometry::new(layer, shape).unwrap();
                            naive_pool(&g, &a, matches!(layer, Layer::Maxpool2d { .. }))
                        }
                        Layer::Relu => a.iter().map(|v| v.max(0.0)).collect(),
                        Layer::Flatten => a,
                    };
                }
                for (g, w) in got[b * 3..(b + 1) * 3].iter().zip(&a) {
                    assert!((g - w).abs() < 1e-4, "{g} vs {w}");
                }
            }
        }
    }

    fn naive_linear(l: &LayerParams, a: &[f32]) -> Vec<f32> {
        (0..l.shape.rows)
            .map(|r| {
                (0..l.shape.cols).map(|c| l.weight[r * l.shape.cols + c] * a[c]).sum::<f32>()
                    + l.bias[r]
            })
            .collect()
    }

    #[test]
    fn argmax_prefers_first_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
    }
}
