//! Sparse-aware training: a pruned network trained through its CSR form.
//!
//! Activations are laid out `[features][batch]`, as the ticket-infer kernels want. Per layer:
//! forward `Y = act(W X + b)` with `spmm`; backward `dX = W^T dZ` with `spmm_transposed`, and
//! the weight gradient only where `W` keeps a weight, `dW[r, c] = <dZ[r, :], X[c, :]>` (a
//! sampled dense-dense product, SDDMM). The optimizer keeps state for kept weights only. Its
//! numbers equal those of the dense masked path up to float rounding, at a cost that shrinks
//! with the ticket.
//!
//! Evaluation goes through [`TiledEval`].

use crate::engine::{Engine, EVAL_BATCH};
use crate::network::{relu_backward, softmax_cross_entropy, LossStats};
use crate::optim::Optimizer;
use crate::tiled_eval::{kept_csr, EvalLayer, TiledEval};
use rayon::prelude::*;
use ticket_core::recipe::TrainRecipe;
use ticket_core::{Dataset, Network, Par};
use ticket_infer::aligned::AlignedVec;
use ticket_infer::kernels::{sddmm, spmm, spmm_transposed};
use ticket_infer::transpose::{gather_transpose, transpose, transpose_into_stride};
use ticket_infer::{Activation, CsrPattern};

/// Weight-gradient entries per parallel task.
const SDDMM_TASK: usize = 2048;

/// Multiply-adds of one forward pass (kept weights x examples) below which the engine works on
/// the calling thread: its products then take microseconds, about what waking the second
/// thread costs. Measured on LeNet-300-100 IMP levels at batch 60, 2 threads against 1: one
/// thread trains 1.36x faster at 2.9% of the weights (0.46 M) and 1.1x at 7% (1.1 M), the two
/// are even at 10.8% (1.7 M), two threads win 1.39x at 16.9% (2.7 M).
pub(crate) const PAR_MIN_WORK: usize = 1 << 20;

/// One pruned layer: pattern, kept weights, bias and their gradients, and its activations.
struct Layer {
    pattern: CsrPattern<u32>,
    /// The row of each kept weight (for the SDDMM).
    rows_of: Vec<u32>,
    values: Vec<f32>,
    bias: Vec<f32>,
    grad_values: Vec<f32>,
    grad_bias: Vec<f32>,
    /// Output `[rows][padded batch]` (after ReLU for hidden layers, logits for the last).
    act: AlignedVec,
    /// Gradient of the loss with respect to the pre-activation, `[rows][padded batch]`.
    delta: AlignedVec,
}

/// The batch the kernels run: from 16 examples on, a whole number of 16-float vectors, so
/// that every `[features][batch]` row starts a cache line of an aligned buffer. The padding
/// examples carry a zero loss gradient, so they add exact zeros to every weight gradient.
/// LeNet-300-100's batch of 60 had three rows in four straddling two lines: a training step
/// at 10 % of the weights took 305 us on one thread, 187 us padded to 64 (2 %: 81 -> 65 us),
/// and the sparse levels of the IMP run trained in 4.9 s instead of 7.1 (Intel Xeon).
fn padded(batch: usize) -> usize {
    if batch >= 16 {
        batch.next_multiple_of(16)
    } else {
        batch
    }
}

/// A network trained in CSR form; see the module documentation.
pub struct SparseEngine {
    layers: Vec<Layer>,
    /// The input batch, transposed to `[inputs][padded batch]`.
    x_t: AlignedVec,
    /// Logits and their gradient, row-major `[batch][classes]`, for the loss.
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    optimizer: Optimizer,
    /// Dense copy handed out by [`Engine::net`], refreshed on demand.
    dense: Network,
    /// Examples in the last training batch (its padding lanes of `x_t` are zero).
    batch: usize,
    /// Evaluation through the CSR kernels, its data sets laid out once.
    eval: TiledEval,
}

impl SparseEngine {
    /// `net`'s kept weights (by its masks) in CSR form, for batches of up to `batch` examples.
    pub fn new(net: &Network, recipe: &TrainRecipe, batch: usize) -> Self {
        let capacity = padded(batch.max(EVAL_BATCH));
        let layers: Vec<Layer> = net
            .layers
            .iter()
            .map(|l| {
                let rows = l.shape.rows;
                let (pattern, values) = kept_csr(l);
                Layer {
                    rows_of: rows_of_entries(&pattern),
                    grad_values: vec![0.0; values.len()],
                    grad_bias: vec![0.0; rows],
                    act: AlignedVec::zeros(rows * capacity),
                    delta: AlignedVec::zeros(rows * capacity),
                    pattern,
                    values,
                    bias: l.bias.clone(),
                }
            })
            .collect();
        let tensors = layers.iter().flat_map(|l| [(l.values.len(), None), (l.bias.len(), None)]);
        let classes = net.graph.outputs();
        SparseEngine {
            optimizer: Optimizer::new(recipe, tensors.collect()),
            x_t: AlignedVec::zeros(net.graph.inputs() * capacity),
            logits: vec![0.0; classes * capacity],
            dlogits: vec![0.0; classes * capacity],
            dense: net.clone(),
            layers,
            batch: 0,
            eval: TiledEval::default(),
        }
    }

    /// `par`, or one thread when a pass over `batch` examples is too small to share.
    fn par_for(&self, batch: usize, par: Par) -> Par {
        let nnz: usize = self.layers.iter().map(|l| l.values.len()).sum();
        if nnz.saturating_mul(batch) < PAR_MIN_WORK {
            Par::Seq
        } else {
            par
        }
    }

    /// Forward pass of `batch` examples already in `x_t`; returns nothing, leaves `act`s.
    fn forward(&mut self, batch: usize, par: Par) {
        let last = self.layers.len() - 1;
        for l in 0..self.layers.len() {
            let (before, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let cols = layer.pattern.cols();
            let input =
                if l == 0 { &self.x_t[..cols * batch] } else { &before[l - 1].act[..cols * batch] };
            let rows = layer.pattern.rows();
            let act = if l < last { Activation::Relu } else { Activation::Identity };
            spmm(
                layer.pattern.with_values(&layer.values),
                Some(&layer.bias),
                input,
                &mut layer.act[..rows * batch],
                batch,
                act,
                par,
            );
        }
    }

    /// Loss of the last forward pass, and (when `grad`) the gradient of the mean loss into the
    /// last layer's `delta`.
    fn loss(&mut self, labels: &[u8], grad: bool) -> LossStats {
        let batch = labels.len();
        let lanes = padded(batch);
        let last = self.layers.last_mut().expect("at least one layer");
        let classes = last.pattern.rows();
        transpose(
            &last.act[..classes * lanes],
            classes,
            lanes,
            &mut self.logits[..classes * lanes],
        );
        let dlogits = grad.then(|| &mut self.dlogits[..classes * batch]);
        let stats =
            softmax_cross_entropy(&self.logits[..classes * batch], labels, classes, dlogits);
        if grad {
            self.dlogits[classes * batch..classes * lanes].fill(0.0);
            transpose(
                &self.dlogits[..classes * lanes],
                lanes,
                classes,
                &mut last.delta[..classes * lanes],
            );
        }
        stats
    }

    /// The padded batch for `batch` examples, with the padding lanes of the input zeroed
    /// when the batch size changed (a smaller batch leaves the last one's examples there).
    fn prepare_input(&mut self, batch: usize) -> usize {
        let lanes = padded(batch);
        if batch != self.batch {
            let inputs = self.layers[0].pattern.cols();
            self.x_t[..inputs * lanes].fill(0.0);
        }
        lanes
    }

    /// Forward, loss and backward of the batch of `labels` already in `x_t`.
    fn gradients_of_input(&mut self, labels: &[u8], par: Par) -> LossStats {
        let batch = labels.len();
        let lanes = padded(batch);
        let par = self.par_for(batch, par);
        self.forward(lanes, par);
        let stats = self.loss(labels, true);
        for l in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let (rows, cols) = (layer.pattern.rows(), layer.pattern.cols());
            let delta = &layer.delta[..rows * lanes];
            let input =
                if l == 0 { &self.x_t[..cols * lanes] } else { &before[l - 1].act[..cols * lanes] };
            sddmm(&layer.pattern, &layer.rows_of, delta, input, lanes, &mut layer.grad_values, par);
            for (g, row) in layer.grad_bias.iter_mut().zip(delta.chunks_exact(lanes)) {
                *g = row.iter().sum();
            }
            if l > 0 {
                let below = &mut before[l - 1];
                let grad_in = &mut below.delta[..cols * lanes];
                grad_in.fill(0.0);
                spmm_transposed(
                    layer.pattern.with_values(&layer.values),
                    delta,
                    grad_in,
                    lanes,
                    par,
                );
                relu_backward(grad_in, &below.act[..cols * lanes]);
            }
        }
        self.batch = batch;
        stats
    }
}

impl Engine for SparseEngine {
    fn gradients(&mut self, x: &[f32], labels: &[u8], par: Par) -> LossStats {
        let batch = labels.len();
        let inputs = self.layers[0].pattern.cols();
        let lanes = self.prepare_input(batch);
        transpose_into_stride(x, batch, inputs, &mut self.x_t[..inputs * lanes], lanes);
        self.gradients_of_input(labels, par)
    }

    /// Reads the batch from `data` straight into `[inputs][padded batch]`, on `par`'s
    /// threads: the copy into `[batch][inputs]` and its transpose took 25 + 14-28 us a step,
    /// as much as the whole of the rest at 2 % of the weights (Intel Xeon).
    fn gradients_of(
        &mut self,
        data: &Dataset,
        examples: &[usize],
        batch: &mut Dataset,
        par: Par,
    ) -> LossStats {
        let inputs = self.layers[0].pattern.cols();
        let lanes = self.prepare_input(examples.len());
        let rows: Vec<&[f32]> = examples.iter().map(|&e| data.image(e)).collect();
        let work = data.batch_par(examples.len(), par);
        gather_transpose(&rows, inputs, &mut self.x_t[..inputs * lanes], lanes, work);
        batch.labels.clear();
        batch.labels.extend(examples.iter().map(|&e| data.labels[e]));
        self.gradients_of_input(&batch.labels, par)
    }

    fn update(&mut self, par: Par) {
        let par = self.par_for(self.batch, par);
        let params = self
            .layers
            .iter_mut()
            .flat_map(|l| {
                [(&mut l.values[..], &l.grad_values[..]), (&mut l.bias[..], &l.grad_bias[..])]
            })
            .collect();
        self.optimizer.step(params, par);
    }

    fn evaluate(&mut self, data: &Dataset, par: Par) -> LossStats {
        let layers: Vec<EvalLayer> = self
            .layers
            .iter()
            .map(|l| EvalLayer { weights: l.pattern.with_values(&l.values), bias: &l.bias })
            .collect();
        self.eval.evaluate(&layers, data, par)
    }

    fn net(&mut self) -> &Network {
        for (dense, layer) in self.dense.layers.iter_mut().zip(&self.layers) {
            dense.weight.fill(0.0);
            layer.pattern.with_values(&layer.values).scatter_into(&mut dense.weight, None);
            dense.bias.copy_from_slice(&layer.bias);
        }
        &self.dense
    }
}

/// `grad[k] = <delta[r, :], input[c_k, :]>` for every kept entry `k = (r, c_k)` of `pattern`:
/// the weight gradient at kept positions only. `delta` is `[rows][batch]`, `input`
/// `[cols][batch]`, `rows_of` is [`rows_of_entries`] of `pattern`.
pub fn sddmm(
    pattern: &CsrPattern<u32>,
    rows_of: &[u32],
    delta: &[f32],
    input: &[f32],
    batch: usize,
    grad: &mut [f32],
    par: Par,
) {
    assert_eq!(grad.len(), pattern.nnz(), "sddmm: one gradient per kept weight");
    assert_eq!(delta.len(), pattern.rows() * batch, "sddmm: delta length");
    assert_eq!(input.len(), pattern.cols() * batch, "sddmm: input length");
    let indices = pattern.indices();
    if par.threads() > 1 && grad.len() * batch > 4 * SDDMM_TASK * 16 {
        grad.par_chunks_mut(SDDMM_TASK).enumerate().for_each(|(i, out)| {
            sddmm_range(rows_of, indices, delta, input, batch, i * SDDMM_TASK, out)
        });
    } else {
        sddmm_range(rows_of, indices, delta, input, batch, 0, grad);
    }
}

/// The row of every entry of `pattern`, so any range of entries can be processed alone.
pub fn rows_of_entries(pattern: &CsrPattern<u32>) -> Vec<u32> {
    let mut rows = Vec::with_capacity(pattern.nnz());
    for (r, w) in pattern.indptr().windows(2).enumerate() {
        rows.extend(std::iter::repeat_n(r as u32, (w[1] - w[0]) as usize));
    }
    rows
}

/// Entries `first..first + out.len()` of the SDDMM; any contiguous range can be computed on
/// its own, and every entry is summed in the same order whatever the range
/// ([`ticket_infer::kernels::sddmm`]), so results do not depend on the split.
fn sddmm_range(
    rows_of: &[u32],
    indices: &[u32],
    delta: &[f32],
    input: &[f32],
    batch: usize,
    first: usize,
    out: &mut [f32],
) {
    let range = first..first + out.len();
    sddmm::dots(&rows_of[range.clone()], &indices[range], delta, input, batch, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DenseEngine;
    use crate::init::init_net;
    use crate::rng::SeededRng;
    use ticket_core::recipe::{Init, Optimizer as Kind};
    use ticket_core::{DataSource, Graph, Recipe};

    fn masked(graph: &Graph, density: f64, seed: u64) -> Network {
        let mut net = init_net(graph, Init::GlorotNormal, &mut SeededRng::new(seed, "init"));
        let mut rng = SeededRng::new(seed, "mask");
        for layer in &mut net.layers {
            for (i, m) in layer.mask.iter_mut().enumerate() {
                *m = (rng.uniform() < density) as u8;
                if i % 97 == 0 {
                    *m = 0; // some empty stretches
                }
            }
            layer.apply_mask();
        }
        net
    }

    /// The tiled evaluation against the batched forward pass over the whole set (what the
    /// engine trains with): the same hits, the same loss up to the order of its f64 sum, on
    /// one thread or two, on first use of a set and from its kept layout, on sizes whose
    /// last tile would hold one example.
    #[test]
    fn tiled_evaluation_equals_the_batched_forward_pass() {
        let graph: Graph = "64-30-20-10".parse().unwrap();
        let recipe = Recipe::resolve("digits-mlp").unwrap();
        let splits = DataSource::Digits.load(100).unwrap();
        for (density, n) in [(0.3, 65), (1.0, 97), (0.05, splits.test.len())] {
            let net = masked(&graph, density, 7);
            let mut engine = SparseEngine::new(&net, &recipe.train, 60);
            let data = splits.test.select(&(0..n).collect::<Vec<_>>());
            let batched = {
                let mut whole = SparseEngine::new(&net, &recipe.train, n);
                let lanes = padded(n);
                transpose_into_stride(&data.images, n, 64, &mut whole.x_t[..64 * lanes], lanes);
                whole.forward(lanes, Par::Seq);
                whole.loss(&data.labels, false)
            };
            for par in [Par::Seq, Par::Rayon(2), Par::Seq] {
                let got = engine.evaluate(&data, par);
                assert_eq!((got.correct, got.count), (batched.correct, batched.count), "{par:?}");
                assert!((got.loss_sum - batched.loss_sum).abs() <= 1e-12 * batched.loss_sum.abs());
            }
            assert_eq!(engine.eval.layouts(), 1, "the set is laid out once");
            let other = engine.evaluate(&splits.validation, Par::Seq);
            assert_eq!(other.count, splits.validation.len());
            assert_eq!(engine.eval.layouts(), 2);
        }
    }

    #[test]
    fn sddmm_matches_the_dense_product_at_kept_positions() {
        let net = masked(&"37-23-5".parse().unwrap(), 0.3, 1);
        let engine = SparseEngine::new(&net, &Recipe::resolve("digits-mlp").unwrap().train, 8);
        let layer = &engine.layers[0];
        let (rows, cols, batch) = (23, 37, 13);
        let delta: Vec<f32> =
            (0..rows * batch).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5).collect();
        let input: Vec<f32> = (0..cols * batch).map(|i| ((i * 5) % 13) as f32 / 13.0).collect();
        for par in [Par::Seq, Par::Rayon(2)] {
            let mut grad = vec![f32::NAN; layer.pattern.nnz()];
            sddmm(&layer.pattern, &layer.rows_of, &delta, &input, batch, &mut grad, par);
            let mut k = 0;
            for r in 0..rows {
                for c in 0..cols {
                    if net.layers[0].mask[r * cols + c] == 0 {
                        continue;
                    }
                    let want: f64 = (0..batch)
                        .map(|b| delta[r * batch + b] as f64 * input[c * batch + b] as f64)
                        .sum();
                    assert!((grad[k] as f64 - want).abs() < 1e-5, "({r}, {c})");
                    k += 1;
                }
            }
        }
    }

    /// A batch read straight from its data set gives the gradients of the same batch copied
    /// out first, bit for bit, also after a smaller batch.
    #[test]
    fn batch_read_from_the_data_set_equals_the_copied_batch() {
        let recipe = Recipe::resolve("digits-mlp").unwrap();
        let splits = DataSource::Digits.load(100).unwrap();
        let net = masked(&recipe.graph().unwrap(), 0.3, 5);
        let mut copied = SparseEngine::new(&net, &recipe.train, 60);
        let mut read = SparseEngine::new(&net, &recipe.train, 60);
        let mut scratch = Dataset::default();
        for (step, size) in [60, 37, 60].into_iter().enumerate() {
            let examples: Vec<usize> =
                (0..size).map(|i| (i * 13 + step * 7) % splits.train.len()).collect();
            let batch = splits.train.select(&examples);
            let par = if step == 1 { Par::Rayon(2) } else { Par::Seq };
            let a = copied.gradients(&batch.images, &batch.labels, par);
            let b = read.gradients_of(&splits.train, &examples, &mut scratch, par);
            assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits(), "step {step}");
            for (x, y) in copied.layers.iter().zip(&read.layers) {
                assert_eq!(x.grad_values, y.grad_values, "step {step}");
                assert_eq!(x.grad_bias, y.grad_bias, "step {step}");
            }
            copied.update(par);
            read.update(par);
        }
    }

    /// The sparse and the dense masked engines train the same network to the same weights,
    /// step after step, at several densities (levels of a ticket), with Adam and with SGD.
    /// Adam divides each gradient by its own running scale, so it would hide a gradient that
    /// is off by a constant factor in one layer; SGD (with momentum and weight decay) moves
    /// every weight in proportion to its gradient and shows it.
    #[test]
    fn sparse_training_equals_dense_masked_training() {
        let recipe = Recipe::resolve("digits-mlp").unwrap();
        assert_eq!(recipe.train.optimizer, Kind::Adam);
        train_sparse_and_dense_alike(&recipe);
    }

    #[test]
    fn sparse_training_equals_dense_masked_training_with_sgd() {
        let mut recipe = Recipe::resolve("digits-mlp").unwrap();
        recipe.train.optimizer = Kind::Sgd;
        recipe.train.learning_rate = 0.05;
        recipe.train.momentum = 0.9;
        recipe.train.weight_decay = 1e-3;
        train_sparse_and_dense_alike(&recipe);
    }

    fn train_sparse_and_dense_alike(recipe: &Recipe) {
        let splits = DataSource::Digits.load(100).unwrap();
        let graph = recipe.graph().unwrap();
        let kind = recipe.train.optimizer;
        for (density, seed) in [(0.8, 1), (0.2, 2), (0.05, 3), (0.01, 4)] {
            let net = masked(&graph, density, seed);
            let mut dense = DenseEngine::new(net.clone(), &recipe.train, 60);
            let mut sparse = SparseEngine::new(&net, &recipe.train, 60);
            for step in 0..25 {
                // Two smaller batches: their padding lanes of a larger batch's input are reset.
                let size = match step {
                    20 => 37,
                    21 => 9,
                    _ => 60,
                };
                let idx: Vec<usize> =
                    (0..size).map(|i| (step * 60 + i) % splits.train.len()).collect();
                let batch = splits.train.select(&idx);
                let par = if step % 2 == 0 { Par::Seq } else { Par::Rayon(2) };
                let a = dense.gradients(&batch.images, &batch.labels, par);
                let b = sparse.gradients(&batch.images, &batch.labels, par);
                assert!((a.loss_sum - b.loss_sum).abs() < 1e-4 * a.loss_sum.abs().max(1.0));
                dense.update(par);
                sparse.update(par);
            }
            let (d, s) = (dense.net().clone(), sparse.net().clone());
            let mut moved = 0.0f32;
            for (l, ((ld, ls), l0)) in d.layers.iter().zip(&s.layers).zip(&net.layers).enumerate() {
                assert_eq!(ld.mask, ls.mask);
                for (i, (&wd, &ws)) in ld.weight.iter().zip(&ls.weight).enumerate() {
                    assert!(
                        (wd - ws).abs() < 2e-4,
                        "{kind:?}, density {density}: layer {l} weight {i}: {wd} vs {ws}"
                    );
                    if ld.mask[i] == 0 {
                        assert_eq!(ws, 0.0);
                    }
                    moved = moved.max((wd - l0.weight[i]).abs());
                }
                for ((&bd, &bs), &b0) in ld.bias.iter().zip(&ls.bias).zip(&l0.bias) {
                    assert!((bd - bs).abs() < 2e-4, "{kind:?}, density {density}: layer {l} bias");
                    moved = moved.max((bd - b0).abs());
                }
            }
            // The comparison means something only if training moved the parameters well beyond
            // its tolerance (at 1% density Adam moves little but the biases: the few kept
            // weights see almost no gradient).
            assert!(moved > 2e-3, "{kind:?}, density {density}: parameters moved only {moved}");
            let (ed, es) = (
                dense.evaluate(&splits.test, Par::Seq),
                sparse.evaluate(&splits.test, Par::Rayon(2)),
            );
            assert!((ed.mean_loss() - es.mean_loss()).abs() < 1e-3, "{ed:?} vs {es:?}");
        }
    }
}
