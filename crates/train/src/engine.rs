//! How a training step is computed. Two engines give the same numbers (within float
//! rounding) by different routes:
//!
//! - [`DenseEngine`]: dense matrix products through the core `sgemm`, masks applied to the
//!   gradients and the optimizer; the cost does not depend on how much was pruned.
//! - [`SparseEngine`](crate::sparse::SparseEngine): the CSR kernels of ticket-infer for the
//!   forward pass and the input gradients, weight gradients only at kept positions, optimizer
//!   state only for kept weights; the cost shrinks with the ticket.
//!
//! [`engine_for`] picks the sparse engine below a density threshold chosen by measurement
//! (`benches/train_step.rs`). The sparse engine covers MLPs without dropout (its layers are
//! linear with ReLU between them); any other model trains dense at every density, and
//! [`dense_reason`] says why, so the choice is never silent.

use crate::layers::Regularisation;
use crate::network::{Gradients, LossStats, Workspace};
use crate::optim::Optimizer;
use crate::sparse::SparseEngine;
use crate::tiled_eval::{CsrCopy, TiledEval, SPARSE_EVAL_BELOW};
use ticket_core::recipe::TrainRecipe;
use ticket_core::{Dataset, Network, Par};

/// Below this fraction of weights kept, training uses the sparse engine. Measured on the
/// LeNet-300-100 IMP run on Fashion-MNIST (2 threads, 3,000 iterations a level, training
/// seconds, sparse engine vs dense), Intel Xeon, since the sparse batch is padded to whole
/// vectors: 2.06 vs 1.36 at 64 %, 1.54 vs 1.32 at 41 %, 1.20 vs 1.33 at 33 %, 1.05 vs 1.31 at
/// 26 %, 0.86 vs 1.30 at 21 %. Before the padding sparse lost down to 21 % (AMD EPYC Zen 4 as
/// well); the margin below the 37 % crossover is kept for CPUs not measured since.
pub const SPARSE_BELOW: f64 = 0.3;

/// Examples per forward pass during evaluation.
pub const EVAL_BATCH: usize = 1000;

/// One way of training a network: gradients of a batch, then the optimizer update.
pub trait Engine: Send {
    /// Forward and backward on a batch (`x` row-major `[batch, inputs]`); the gradients are
    /// kept for [`Engine::update`].
    fn gradients(&mut self, x: &[f32], labels: &[u8], par: Par) -> LossStats;
    /// [`Engine::gradients`] of the examples `examples` of `data`, copied into `batch`
    /// first; an engine with its own input layout reads them straight into that instead.
    fn gradients_of(
        &mut self,
        data: &Dataset,
        examples: &[usize],
        batch: &mut Dataset,
        par: Par,
    ) -> LossStats {
        batch.features = data.features;
        batch.images.resize(examples.len() * data.features, 0.0);
        batch.labels.resize(examples.len(), 0);
        data.copy_batch(examples, &mut batch.images, &mut batch.labels, par);
        self.gradients(&batch.images, &batch.labels, par)
    }
    /// Applies the optimizer to the last gradients.
    fn update(&mut self, par: Par);
    /// Loss and accuracy on all of `data`.
    fn evaluate(&mut self, data: &Dataset, par: Par) -> LossStats;
    /// The current weights as a dense, masked network.
    fn net(&mut self) -> &Network;
}

/// Why `net` trains dense although it is below `sparse_below` density, if it is: the sparse
/// engine covers only MLPs trained without dropout.
pub fn dense_reason(
    net: &Network,
    recipe: &TrainRecipe,
    sparse_below: f64,
) -> Option<&'static str> {
    if net.density() >= sparse_below {
        None
    } else if !net.graph.is_mlp() {
        Some("the sparse engine covers MLPs only; this graph trains with the dense engine")
    } else if recipe.dropout > 0.0 {
        Some("the sparse engine has no dropout; this run trains with the dense engine")
    } else {
        None
    }
}

/// The engine for `net`: sparse when fewer than `sparse_below` of its weights are kept and
/// the sparse engine covers the model ([`dense_reason`]); `seed` keys the dropout stream.
pub fn engine_for(
    net: Network,
    recipe: &TrainRecipe,
    batch: usize,
    sparse_below: f64,
    seed: u64,
) -> Box<dyn Engine> {
    if net.density() < sparse_below && dense_reason(&net, recipe, sparse_below).is_none() {
        Box::new(SparseEngine::new(&net, recipe, batch))
    } else {
        Box::new(DenseEngine::with_seed(net, recipe, batch, seed))
    }
}

/// Dense products, masked gradients and optimizer.
pub struct DenseEngine {
    net: Network,
    train: Workspace,
    eval: Workspace,
    /// An MLP below [`SPARSE_EVAL_BELOW`] evaluates through the CSR kernels instead.
    sparse_eval: Option<(CsrCopy, TiledEval)>,
    grads: Gradients,
    optimizer: Optimizer,
}

impl DenseEngine {
    /// Dense training of `net` (any recipe dropout drawn from seed 0's stream).
    pub fn new(net: Network, recipe: &TrainRecipe, batch: usize) -> Self {
        Self::with_seed(net, recipe, batch, 0)
    }

    /// Dense training of `net`; `seed` keys the stream of the recipe's dropout.
    pub fn with_seed(mut net: Network, recipe: &TrainRecipe, batch: usize, seed: u64) -> Self {
        net.apply_masks();
        let reg = Regularisation { dropout: recipe.dropout, seed };
        DenseEngine {
            train: Workspace::with_regularisation(&net, batch, Some(reg)),
            eval: Workspace::new(&net, Workspace::eval_capacity(&net, EVAL_BATCH)),
            sparse_eval: (net.graph.is_mlp() && net.density() < SPARSE_EVAL_BELOW)
                .then(|| (CsrCopy::new(&net), TiledEval::default())),
            grads: Gradients::zeros(&net),
            optimizer: Optimizer::for_net(recipe, &net),
            net,
        }
    }
}

impl Engine for DenseEngine {
    fn gradients(&mut self, x: &[f32], labels: &[u8], par: Par) -> LossStats {
        self.train.backward(&self.net, x, labels, &mut self.grads, par)
    }

    fn update(&mut self, par: Par) {
        self.optimizer.step_net(&mut self.net, &self.grads, par);
    }

    fn evaluate(&mut self, data: &Dataset, par: Par) -> LossStats {
        match &mut self.sparse_eval {
            Some((copy, tiled)) => tiled.evaluate(&copy.refresh(&self.net), data, par),
            None => self.eval.evaluate(&self.net, data, par),
        }
    }

    fn net(&mut self) -> &Network {
        &self.net
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_net;
    use crate::rng::SeededRng;
    use crate::trainer::{train, Silent, TrainOptions};
    use ticket_core::recipe::Init;
    use ticket_core::{DataSource, Recipe};

    fn conv_recipe(iterations: usize, dropout: f32) -> Recipe {
        let mut r = Recipe::resolve("digits-conv").unwrap();
        r.train.iterations = iterations;
        r.train.eval_every = 50;
        r.train.dropout = dropout;
        r
    }

    /// Conv weights under a mask: after every one of many Adam steps the pruned weights are
    /// exactly zero and so is their optimizer state; the kept ones move.
    #[test]
    fn conv_masks_hold_over_many_steps() {
        let recipe = conv_recipe(1, 0.0);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let mut net =
            init_net(&recipe.graph().unwrap(), Init::GlorotNormal, &mut SeededRng::new(3, "init"));
        let mut rng = SeededRng::new(5, "mask");
        for layer in &mut net.layers {
            layer.mask.iter_mut().for_each(|m| *m = (rng.uniform() < 0.5) as u8);
        }
        let start = net.clone();
        let mut engine = DenseEngine::new(net, &recipe.train, 32);
        let features = splits.train.features;
        for step in 0..150 {
            let first = (step * 32) % (splits.train.len() - 32);
            let x = &splits.train.images[first * features..(first + 32) * features];
            let labels = &splits.train.labels[first..first + 32];
            engine.gradients(x, labels, Par::Rayon(2));
            for (grad, layer) in engine.grads.weight.iter().zip(&engine.net.layers) {
                assert!(grad.iter().zip(&layer.mask).any(|(&g, &m)| m == 0 && g != 0.0));
            }
            engine.update(Par::Rayon(2));
            assert!(engine.optimizer.pruned_state_is_zero(), "step {step}");
            for layer in &engine.net.layers {
                assert!(layer.weight.iter().zip(&layer.mask).all(|(&w, &m)| m == 1 || w == 0.0));
            }
        }
        for (before, after) in start.layers.iter().zip(&engine.net.layers) {
            let moved = before.weight.iter().zip(&after.weight).filter(|(a, b)| a != b).count();
            assert!(moved >= before.kept() * 9 / 10, "{moved} of {}", before.kept());
        }
    }

    /// The same seed and thread count give bit-identical conv runs, dropout included; another
    /// seed gives another run.
    #[test]
    fn conv_runs_with_dropout_repeat_bit_for_bit() {
        let recipe = conv_recipe(60, 0.3);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let graph = recipe.graph().unwrap();
        let run = |seed, par| {
            let net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(4, "init"));
            let opts = TrainOptions::new(seed, par);
            train(net, &splits, &recipe.train, &opts, &mut Silent).unwrap()
        };
        for par in [Par::Seq, Par::Rayon(2)] {
            let (a, b) = (run(1, par), run(1, par));
            assert_eq!(a.net, b.net);
            assert_eq!(a.history, b.history);
        }
        assert_ne!(run(1, Par::Seq).net, run(2, Par::Seq).net);
    }

    /// An MLP below [`SPARSE_EVAL_BELOW`] evaluates through its CSR copy, refreshed after each
    /// update: the same hits and loss (up to float rounding) as the dense forward pass of the
    /// network as trained so far; above it the dense pass runs.
    #[test]
    fn dense_engine_evaluates_a_pruned_mlp_through_csr() {
        let recipe = Recipe::resolve("digits-mlp").unwrap();
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let graph = recipe.graph().unwrap();
        for density in [0.3, 0.9] {
            let mut net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(3, "init"));
            let mut rng = SeededRng::new(5, "mask");
            for layer in &mut net.layers {
                layer.mask.iter_mut().for_each(|m| *m = (rng.uniform() < density) as u8);
            }
            let mut engine = DenseEngine::new(net, &recipe.train, 32);
            assert_eq!(engine.sparse_eval.is_some(), density < SPARSE_EVAL_BELOW);
            let features = splits.train.features;
            for step in 0..40 {
                let first = (step * 32) % (splits.train.len() - 32);
                let x = &splits.train.images[first * features..(first + 32) * features];
                engine.gradients(x, &splits.train.labels[first..first + 32], Par::Seq);
                engine.update(Par::Seq);
                if step % 20 != 19 {
                    continue;
                }
                let want = engine.eval.evaluate(&engine.net, &splits.test, Par::Seq);
                for par in [Par::Seq, Par::Rayon(2)] {
                    let got = engine.evaluate(&splits.test, par);
                    assert_eq!((got.correct, got.count), (want.correct, want.count));
                    let diff = (got.loss_sum - want.loss_sum).abs();
                    assert!(diff <= 1e-5 * want.loss_sum, "{density} {step}: {diff}");
                }
            }
        }
    }
}
