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
use ticket_core::recipe::TrainRecipe;
use ticket_core::{Dataset, Network, Par};

/// Below this fraction of weights kept, training uses the sparse engine. Measured on the
/// LeNet-300-100 IMP run on Fashion-MNIST (2 threads, per-level training time, dense engine vs
/// sparse engine): sparse is slower at 26% (6.8 s vs 5.7 s), even at 21% (5.2 vs 5.4) and
/// faster from 17% down (4.6 vs 5.3, then 3.6 vs 5.4 at 13.5% ... 1.3 vs 5.8 at 1.9%);
/// `cargo bench --bench train_step` shows the same crossover on random masks.
pub const SPARSE_BELOW: f64 = 0.2;

/// Examples per forward pass during evaluation.
pub const EVAL_BATCH: usize = 1000;

/// One way of training a network: gradients of a batch, then the optimizer update.
pub trait Engine: Send {
    /// Forward and backward on a batch (`x` row-major `[batch, inputs]`); the gradients are
    /// kept for [`Engine::update`].
    fn gradients(&mut self, x: &[f32], labels: &[u8], par: Par) -> LossStats;
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
        self.eval.evaluate(&self.net, data, par)
    }

    fn net(&mut self) -> &Network {
        &self.net
    }
}
