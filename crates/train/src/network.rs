//! Forward and backward passes of the MLP on a batch, through the core `sgemm`.
//!
//! Layouts are row-major with one example per row: activations `[batch, width]`, weights
//! `[out, in]`. A layer computes `Y = X W^T + b`, ReLU on every layer but the last, and the loss
//! is the mean softmax cross-entropy. Backward computes, per layer, `dW = dZ^T X`,
//! `db = sum_batch dZ` and, except for the first layer, `dX = dZ W`. Pruned weights are zero in
//! `W`, so they contribute nothing forward; their gradients are masked by the optimizer.

use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::{Dataset, Network, Par};

/// Buffers for one batch size, reused across steps so the hot loop never allocates.
pub struct Workspace {
    capacity: usize,
    /// Output of each layer (after ReLU for hidden layers, logits for the last).
    acts: Vec<Vec<f32>>,
    /// Gradient of the loss with respect to each layer's pre-activation.
    deltas: Vec<Vec<f32>>,
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

    fn add(&mut self, other: LossStats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
    }
}

impl Workspace {
    /// Buffers for batches of up to `capacity` examples.
    pub fn new(net: &Network, capacity: usize) -> Self {
        let widths = net.layers.iter().map(|l| l.shape.rows);
        Workspace {
            capacity,
            acts: widths.clone().map(|w| vec![0.0; w * capacity]).collect(),
            deltas: widths.map(|w| vec![0.0; w * capacity]).collect(),
        }
    }

    /// Runs the batch `x` (`[batch, inputs]`) forward and returns the logits `[batch, outputs]`.
    pub fn forward(&mut self, net: &Network, x: &[f32], batch: usize, par: Par) -> &[f32] {
        assert!(batch <= self.capacity, "batch {batch} exceeds workspace {}", self.capacity);
        assert_eq!(x.len(), batch * net.graph.inputs(), "forward: input length");
        let last = net.layers.len() - 1;
        for (l, layer) in net.layers.iter().enumerate() {
            let (rows, cols) = (layer.shape.rows, layer.shape.cols);
            let (before, rest) = self.acts.split_at_mut(l);
            let input = if l == 0 { x } else { &before[l - 1][..batch * cols] };
            let out = &mut rest[0][..batch * rows];
            for row in out.chunks_exact_mut(rows) {
                row.copy_from_slice(&layer.bias);
            }
            sgemm(
                MatMut::row_major(out, batch, rows),
                MatRef::row_major(input, batch, cols),
                MatRef::row_major(&layer.weight, rows, cols).t(),
                1.0,
                par,
            );
            if l < last {
                relu(out);
            }
        }
        &self.acts[last][..batch * net.graph.outputs()]
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
        self.forward(net, x, batch, par);
        let last = net.layers.len() - 1;
        let classes = net.graph.outputs();
        let stats = softmax_cross_entropy(
            &self.acts[last][..batch * classes],
            labels,
            classes,
            Some(&mut self.deltas[last][..batch * classes]),
        );
        for l in (0..net.layers.len()).rev() {
            let layer = &net.layers[l];
            let (rows, cols) = (layer.shape.rows, layer.shape.cols);
            let (lower, upper) = self.deltas.split_at_mut(l);
            let delta = &upper[0][..batch * rows];
            let input = if l == 0 { x } else { &self.acts[l - 1][..batch * cols] };
            sgemm(
                MatMut::row_major(&mut grads.weight[l], rows, cols),
                MatRef::row_major(delta, batch, rows).t(),
                MatRef::row_major(input, batch, cols),
                0.0,
                par,
            );
            column_sums(delta, rows, &mut grads.bias[l]);
            if l > 0 {
                let below = &mut lower[l - 1][..batch * cols];
                sgemm(
                    MatMut::row_major(below, batch, cols),
                    MatRef::row_major(delta, batch, rows),
                    MatRef::row_major(&layer.weight, rows, cols),
                    0.0,
                    par,
                );
                relu_backward(below, &self.acts[l - 1][..batch * cols]);
            }
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

fn relu(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0);
    }
}

/// `grad *= (activation > 0)`: ReLU passes gradient only where it was active.
pub(crate) fn relu_backward(grad: &mut [f32], activation: &[f32]) {
    for (g, &a) in grad.iter_mut().zip(activation) {
        if a <= 0.0 {
            *g = 0.0;
        }
    }
}

/// `out[j] = sum_b m[b, j]` for a row-major `[batch, cols]` matrix.
fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_net;
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
