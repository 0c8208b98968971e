//! Forward and backward passes of a model graph on a batch, layer by layer through the ops of
//! [`crate::layers`], and the loss: the mean softmax cross-entropy of the logits.
//!
//! Layouts are row-major with one example per row (`[batch, values]`, each example C-order).
//! Backward runs from the logits down to the first weighted layer; no gradient is computed for
//! the input data. Pruned weights are zero in `W`, so they contribute nothing forward; their
//! gradients are masked by the optimizer.

use crate::layers::{self, Backward, Forward, LayerOp, Mode, ParamGrads, Regularisation};
use ticket_core::{Dataset, Network, Par};

pub(crate) use crate::layers::relu::relu_backward;

/// Activation values a workspace may hold for evaluation (64 Mi floats, 256 MiB): evaluation
/// batches of wide conv nets are cut down to fit.
const MAX_EVAL_VALUES: usize = 1 << 26;

/// Ops and buffers for one batch size, reused across steps so the hot loop never allocates.
pub struct Workspace {
    capacity: usize,
    ops: Vec<Box<dyn LayerOp>>,
    /// Per graph layer, the index of its parameters in `Network::layers` (weighted layers).
    params: Vec<Option<usize>>,
    /// Values per example of each layer's output.
    widths: Vec<usize>,
    /// Output of each layer.
    acts: Vec<Vec<f32>>,
    /// Gradient of the loss with respect to each layer's output (allocated by the first
    /// backward pass, so evaluation-only workspaces do not pay for it).
    grads: Vec<Vec<f32>>,
}

/// Gradients of every parameter, shaped like the [`Network`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    pub weight: Vec<Vec<f32>>,
    pub bias: Vec<Vec<f32>>,
}

impl Gradients {
    pub fn zeros(net: &Network) -> Self {
        Gradients {
            weight: net.layers.iter().map(|l| vec![0.0; l.weight.len()]).collect(),
            bias: net.layers.iter().map(|l| vec![0.0; l.bias.len()]).collect(),
        }
    }
}

/// Loss and accuracy counts over a batch or a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Sum (not mean) of per-example cross-entropy.
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
}

impl LossStats {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }

    pub(crate) fn add(&mut self, other: LossStats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
    }
}

impl Workspace {
    /// Buffers for batches of up to `capacity` examples, without dropout.
    pub fn new(net: &Network, capacity: usize) -> Self {
        Self::with_regularisation(net, capacity, None)
    }

    /// Buffers for training batches of up to `capacity` examples with the recipe's dropout.
    pub fn with_regularisation(
        net: &Network,
        capacity: usize,
        reg: Option<Regularisation>,
    ) -> Self {
        let graph = &net.graph;
        let mut params = vec![None; graph.layers().len()];
        for (k, w) in graph.weighted().iter().enumerate() {
            params[w.index] = Some(k);
        }
        let widths: Vec<usize> =
            (0..graph.layers().len()).map(|i| graph.output_shape(i).iter().product()).collect();
        Workspace {
            capacity,
            ops: layers::build(graph, capacity, reg),
            params,
            acts: widths.iter().map(|w| vec![0.0; w * capacity]).collect(),
            widths,
            grads: Vec::new(),
        }
    }

    /// A capacity for evaluation batches: `wanted`, or fewer where the activations of `net`
    /// would exceed [`MAX_EVAL_VALUES`].
    pub fn eval_capacity(net: &Network, wanted: usize) -> usize {
        let per_example: usize = (0..net.graph.layers().len())
            .map(|i| net.graph.output_shape(i).iter().product::<usize>())
            .sum();
        wanted.min(MAX_EVAL_VALUES / per_example.max(1)).max(1)
    }

    /// Runs the batch `x` (`[batch, inputs]`) forward and returns the logits `[batch, outputs]`.
    pub fn forward(&mut self, net: &Network, x: &[f32], batch: usize, par: Par) -> &[f32] {
        self.run_forward(net, x, batch, Mode::Eval, par);
        let last = self.acts.len() - 1;
        &self.acts[last][..batch * net.graph.outputs()]
    }

    fn run_forward(&mut self, net: &Network, x: &[f32], batch: usize, mode: Mode, par: Par) {
        assert!(batch <= self.capacity, "batch {batch} exceeds workspace {}", self.capacity);
        assert_eq!(x.len(), batch * net.graph.inputs(), "forward: input length");
        for i in 0..self.ops.len() {
            let (before, rest) = self.acts.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1][..batch * self.widths[i - 1]] };
            let output = &mut rest[0][..batch * self.widths[i]];
            let params = self.params[i].map(|k| &net.layers[k]);
            self.ops[i].forward(Forward { params, input, output, batch, mode, par });
        }
    }

    /// Forward, loss, and backward into `grads` (overwritten) for one batch.
    pub fn backward(
        &mut self,
        net: &Network,
        x: &[f32],
        labels: &[u8],
        grads: &mut Gradients,
        par: Par,
    ) -> LossStats {
        let batch = labels.len();
        self.run_forward(net, x, batch, Mode::Train, par);
        if self.grads.is_empty() {
            self.grads = self.widths.iter().map(|w| vec![0.0; w * self.capacity]).collect();
        }
        let last = self.ops.len() - 1;
        let classes = net.graph.outputs();
        let stats = softmax_cross_entropy(
            &self.acts[last][..batch * classes],
            labels,
            classes,
            Some(&mut self.grads[last][..batch * classes]),
        );
        let first_weighted = net.graph.weighted()[0].index;
        let mut weight_grads: Vec<_> = grads.weight.iter_mut().map(Some).collect();
        let mut bias_grads: Vec<_> = grads.bias.iter_mut().map(Some).collect();
        for i in (first_weighted..=last).rev() {
            let (lower, upper) = self.grads.split_at_mut(i);
            let d_input =
                (i > first_weighted).then(|| &mut lower[i - 1][..batch * self.widths[i - 1]]);
            let input = if i == 0 { x } else { &self.acts[i - 1][..batch * self.widths[i - 1]] };
            let grads = self.params[i].map(|k| ParamGrads {
                weight: weight_grads[k].take().expect("one weighted layer per index"),
                bias: bias_grads[k].take().expect("one weighted layer per index"),
            });
            self.ops[i].backward(Backward {
                params: self.params[i].map(|k| &net.layers[k]),
                input,
                output: &self.acts[i][..batch * self.widths[i]],
                d_output: &upper[0][..batch * self.widths[i]],
                d_input,
                grads,
                batch,
                par,
            });
        }
        stats
    }

    /// Loss and accuracy of `net` on all of `data`, in batches of the workspace capacity.
    pub fn evaluate(&mut self, net: &Network, data: &Dataset, par: Par) -> LossStats {
        let classes = net.graph.outputs();
        let mut total = LossStats::default();
        for start in (0..data.len()).step_by(self.capacity) {
            let n = self.capacity.min(data.len() - start);
            let x = &data.images[start * data.features..(start + n) * data.features];
            let logits = self.forward(net, x, n, par);
            total.add(softmax_cross_entropy(logits, &data.labels[start..start + n], classes, None));
        }
        total
    }
}

/// Softmax cross-entropy of each row of `logits` against its label; when `dlogits` is given it
/// receives the gradient of the *mean* loss, `(softmax - onehot) / batch`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    mut dlogits: Option<&mut [f32]>,
) -> LossStats {
    let batch = labels.len();
    let mut stats = LossStats { count: batch, ..Default::default() };
    for (b, (row, &label)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let label = label as usize;
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let log_sum = sum.ln();
        stats.loss_sum += log_sum - (row[label] - max) as f64;
        if ticket_core::network::argmax(row) == label {
            stats.correct += 1;
        }
        if let Some(d) = dlogits.as_deref_mut() {
            let d = &mut d[b * classes..(b + 1) * classes];
            for (k, (dk, &v)) in d.iter_mut().zip(row).enumerate() {
                let p = (((v - max) as f64) - log_sum).exp();
                *dk = ((p - (k == label) as u8 as f64) / batch as f64) as f32;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_net;
    use crate::layers::Regularisation;
    use crate::rng::SeededRng;
    use ticket_core::recipe::Init;
    use ticket_core::Graph;

    fn tiny() -> (Network, Vec<f32>, Vec<u8>) {
        let graph: Graph = "6-5-4-3".parse().unwrap();
        let mut rng = SeededRng::new(11, "init");
        let mut net = init_net(&graph, Init::GlorotNormal, &mut rng);
        for layer in &mut net.layers {
            for b in &mut layer.bias {
                *b = (rng.normal() * 0.1) as f32;
            }
            // Prune a few weights so the check covers masked layers too.
            for i in (0..layer.mask.len()).step_by(4) {
                layer.mask[i] = 0;
            }
            layer.apply_mask();
        }
        let batch = 7;
        let x: Vec<f32> = (0..batch * 6).map(|_| rng.uniform() as f32).collect();
        let labels: Vec<u8> = (0..batch).map(|_| rng.below(3) as u8).collect();
        (net, x, labels)
    }

    fn mean_loss(net: &Network, x: &[f32], labels: &[u8]) -> f64 {
        let mut ws = Workspace::new(net, labels.len());
        let logits = ws.forward(net, x, labels.len(), Par::Seq).to_vec();
        softmax_cross_entropy(&logits, labels, 3, None).mean_loss()
    }

    /// Analytic gradients against central finite differences of the loss, in f64 where it
    /// matters: the loss is summed in f64 and the step is large enough for f32 weights.
    #[test]
    fn gradients_match_finite_differences() {
        let (net, x, labels) = tiny();
        let mut ws = Workspace::new(&net, labels.len());
        let mut grads = Gradients::zeros(&net);
        ws.backward(&net, &x, &labels, &mut grads, Par::Seq);
        let h = 1e-2f32;
        let mut checked = 0;
        for l in 0..net.layers.len() {
            for i in 0..net.layers[l].weight.len() {
                if net.layers[l].mask[i] == 0 {
                    continue;
                }
                let mut plus = net.clone();
                plus.layers[l].weight[i] += h;
                let mut minus = net.clone();
                minus.layers[l].weight[i] -= h;
                let numeric = (mean_loss(&plus, &x, &labels) - mean_loss(&minus, &x, &labels))
                    / (2.0 * h as f64);
                let analytic = grads.weight[l][i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "layer {l} weight {i}: numeric {numeric} analytic {analytic}"
                );
                checked += 1;
            }
            for i in 0..net.layers[l].bias.len() {
                let mut plus = net.clone();
                plus.layers[l].bias[i] += h;
                let mut minus = net.clone();
                minus.layers[l].bias[i] -= h;
                let numeric = (mean_loss(&plus, &x, &labels) - mean_loss(&minus, &x, &labels))
                    / (2.0 * h as f64);
                let analytic = grads.bias[l][i] as f64;
                assert!((numeric - analytic).abs() < 2e-3 * (1.0 + numeric.abs()), "bias {l}/{i}");
            }
        }
        assert!(checked > 40, "{checked}");
    }

    /// A small net with every layer kind: conv with stride 2 and padding 1, a 1x1 conv, both
    /// pools, flatten, linear and relu; a quarter of every layer's weights pruned.
    fn every_kind(seed: u64) -> (Network, Vec<f32>, Vec<u8>) {
        let graph = Graph::from_json(
            r#"{"input": [1, 10, 10], "layers": [
                {"op": "conv2d", "name": "conv1", "in": 1, "out": 3, "kernel": [3, 3],
                 "stride": [2, 2], "padding": [1, 1]},
                {"op": "maxpool2d", "kernel": [2, 2], "stride": [1, 1]},
                {"op": "relu"},
                {"op": "conv2d", "name": "conv2", "in": 3, "out": 4, "kernel": [1, 1]},
                {"op": "relu"},
                {"op": "avgpool2d", "kernel": [2, 2]},
                {"op": "flatten"},
                {"op": "linear", "name": "fc1", "in": 16, "out": 6},
                {"op": "relu"},
                {"op": "linear", "name": "fc2", "in": 6, "out": 3}]}"#,
        )
        .unwrap();
        let mut rng = SeededRng::new(seed, "init");
        let mut net = init_net(&graph, Init::KaimingNormal, &mut rng);
        for layer in &mut net.layers {
            for b in &mut layer.bias {
                *b = (rng.normal() * 0.1) as f32;
            }
            for i in (1..layer.mask.len()).step_by(4) {
                layer.mask[i] = 0;
            }
            layer.apply_mask();
        }
        let batch = 5;
        let x: Vec<f32> = (0..batch * graph.inputs()).map(|_| rng.normal() as f32).collect();
        let labels: Vec<u8> = (0..batch).map(|_| rng.below(3) as u8).collect();
        (net, x, labels)
    }

    /// Every analytic gradient (weights and biases of both convs and both linears) against a
    /// central finite difference of the loss.
    fn check_gradients(net: &Network, x: &[f32], labels: &[u8], par: Par) -> usize {
        let mut ws = Workspace::new(net, labels.len());
        let mut grads = Gradients::zeros(net);
        ws.backward(net, x, labels, &mut grads, par);
        let h = 3e-3f32;
        let numeric = |net: &Network, bump: &dyn Fn(&mut Network, f32)| {
            let (mut plus, mut minus) = (net.clone(), net.clone());
            bump(&mut plus, h);
            bump(&mut minus, -h);
            (mean_loss(&plus, x, labels) - mean_loss(&minus, x, labels)) / (2.0 * h as f64)
        };
        let mut checked = 0;
        for l in 0..net.layers.len() {
            for i in 0..net.layers[l].weight.len() {
                if net.layers[l].mask[i] == 0 {
                    assert_eq!(net.layers[l].weight[i], 0.0);
                    continue;
                }
                let n = numeric(net, &|n, d| n.layers[l].weight[i] += d);
                let a = grads.weight[l][i] as f64;
                assert!((n - a).abs() < 2e-3 * (1.0 + n.abs()), "layer {l} weight {i}: {n} vs {a}");
                checked += 1;
            }
            for i in 0..net.layers[l].bias.len() {
                let n = numeric(net, &|n, d| n.layers[l].bias[i] += d);
                let a = grads.bias[l][i] as f64;
                assert!((n - a).abs() < 2e-3 * (1.0 + n.abs()), "layer {l} bias {i}: {n} vs {a}");
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn conv_net_gradients_match_finite_differences() {
        // Finite differences are meaningless where a step of h crosses a kink (a ReLU at 0, a
        // max-pool changing its winner); this seed's weights and inputs have none within h.
        let (net, x, labels) = every_kind(22);
        assert!(!net.graph.is_mlp());
        let checked = check_gradients(&net, &x, &labels, Par::Seq);
        assert!(checked > 100, "{checked}");
        // The same with the batch split over two threads.
        check_gradients(&net, &x, &labels, Par::Rayon(2));
        // The workspace's logits are the core's dense forward.
        let mut ws = Workspace::new(&net, labels.len());
        let a = ws.forward(&net, &x, labels.len(), Par::Seq).to_vec();
        let b = net.logits(&x, labels.len(), Par::Seq);
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5), "{a:?} vs {b:?}");
    }

    /// Dropout is for training only: evaluation gives the plain logits, training steps with
    /// the same seed repeat bit for bit and differ from steps without dropout.
    #[test]
    fn dropout_acts_in_training_only_and_repeats_for_a_seed() {
        let graph: Graph = "6-8-8-3".parse().unwrap();
        let net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(2, "init"));
        let x: Vec<f32> = (0..4 * 6).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
        let labels = [0u8, 1, 2, 1];
        let reg = Some(Regularisation { dropout: 0.5, seed: 9 });
        let step = |reg| {
            let mut ws = Workspace::with_regularisation(&net, 4, reg);
            let mut grads = Gradients::zeros(&net);
            let stats = ws.backward(&net, &x, &labels, &mut grads, Par::Seq);
            let eval = ws.forward(&net, &x, 4, Par::Seq).to_vec();
            (stats.loss_sum, grads, eval)
        };
        let (loss_a, grads_a, eval_a) = step(reg);
        let (loss_b, grads_b, _) = step(reg);
        let (loss_plain, grads_plain, eval_plain) = step(None);
        assert_eq!((loss_a, &grads_a), (loss_b, &grads_b));
        assert_ne!(grads_a, grads_plain);
        assert_ne!(loss_a, loss_plain);
        assert_eq!(eval_a, eval_plain);
        // The first layer's input (the data) is never dropped: its gradient only sees dropout
        // through the layers above, and fc1's weight gradient is not zeroed column-wise.
        assert!(grads_a.weight[0].iter().any(|&g| g != 0.0));
    }

    #[test]
    fn cross_entropy_matches_the_definition() {
        let logits = [1.0f32, 2.0, 3.0, -1.0, 0.0, 5.0];
        let stats = softmax_cross_entropy(&logits, &[2, 0], 3, None);
        let row = |r: &[f32], k: usize| {
            let s: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
            -((r[k] as f64).exp() / s).ln()
        };
        let want = row(&logits[..3], 2) + row(&logits[3..], 0);
        assert!((stats.loss_sum - want).abs() < 1e-9);
        assert_eq!(stats.correct, 1);
    }

    #[test]
    fn evaluate_in_chunks_equals_one_batch() {
        let (net, x, labels) = tiny();
        let data = Dataset { features: 6, images: x.clone(), labels: labels.clone() };
        let whole = Workspace::new(&net, 7).evaluate(&net, &data, Par::Seq);
        let chunked = Workspace::new(&net, 3).evaluate(&net, &data, Par::Seq);
        assert_eq!(whole.correct, chunked.correct);
        assert!((whole.loss_sum - chunked.loss_sum).abs() < 1e-6);
        assert_eq!(whole.correct, (net.accuracy(&data, Par::Seq) * 7.0).round() as usize);
    }
}
