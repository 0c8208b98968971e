//! The layers of the trainer, one module per kind: each computes its forward pass on a batch
//! (keeping what its backward needs), and its backward pass (the input gradient and, for the
//! weighted kinds, the weight and bias gradients). [`build`] is the one place that matches on
//! the op, so a new kind is a new module plus one arm there.
//!
//! Activations are row-major `[batch, values]`, each example C-order as the graph's shape of
//! it (`[C, H, W]` for images), exactly a PyTorch NCHW tensor.

pub mod conv2d;
pub mod dropout;
pub mod flatten;
pub mod linear;
pub mod pool;
pub mod relu;

use crate::rng::SeededRng;
use ticket_core::{Graph, Layer, LayerParams, Par};

/// Whether a forward pass is part of a training step (dropout active) or an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// The gradients of one weighted layer's parameters, overwritten by its backward pass.
pub struct ParamGrads<'a> {
    pub weight: &'a mut [f32],
    pub bias: &'a mut [f32],
}

/// What a forward pass reads and writes for one layer and batch.
pub struct Forward<'a> {
    /// The layer's parameters (weighted layers only).
    pub params: Option<&'a LayerParams>,
    /// `[batch, in]`.
    pub input: &'a [f32],
    /// Receives `[batch, out]`.
    pub output: &'a mut [f32],
    pub batch: usize,
    pub mode: Mode,
    pub par: Par,
}

/// What a backward pass reads and writes for one layer and batch.
pub struct Backward<'a> {
    /// The layer's parameters (weighted layers only).
    pub params: Option<&'a LayerParams>,
    /// The input of the forward pass, `[batch, in]`.
    pub input: &'a [f32],
    /// The output of the forward pass, `[batch, out]`.
    pub output: &'a [f32],
    /// Gradient of the loss with respect to the output, `[batch, out]`.
    pub d_output: &'a [f32],
    /// Receives the gradient with respect to the input; `None` when nothing below needs it.
    pub d_input: Option<&'a mut [f32]>,
    /// Receives the parameter gradients (weighted layers only).
    pub grads: Option<ParamGrads<'a>>,
    pub batch: usize,
    pub par: Par,
}

/// One layer of a graph, sized for batches up to the capacity it was built for.
pub trait LayerOp: Send {
    /// `output` (`[batch, out]`) from `input` (`[batch, in]`).
    fn forward(&mut self, pass: Forward<'_>);
    /// The gradients of one batch, after [`LayerOp::forward`] on it in [`Mode::Train`].
    fn backward(&mut self, pass: Backward<'_>);
}

/// How the trainer regularises a run.
#[derive(Clone, Copy, Debug)]
pub struct Regularisation {
    /// Dropout probability of the linear layers' inputs after the first weighted layer.
    pub dropout: f32,
    /// The run seed: dropout draws from its stream `dropout`.
    pub seed: u64,
}

/// One op per layer of `graph`, for batches up to `capacity`.
pub fn build(graph: &Graph, capacity: usize, reg: Option<Regularisation>) -> Vec<Box<dyn LayerOp>> {
    let first_weighted = graph.weighted()[0].index;
    let mut rng =
        reg.filter(|r| r.dropout > 0.0).map(|r| (r.dropout, SeededRng::new(r.seed, "dropout")));
    graph
        .layers()
        .iter()
        .enumerate()
        .map(|(i, layer)| -> Box<dyn LayerOp> {
            let input = graph.input_shape_of(i);
            match layer {
                Layer::Linear { .. } => {
                    let shape =
                        graph.weighted().iter().find(|w| w.index == i).expect("weighted").shape;
                    let dropout = match &mut rng {
                        Some((p, rng)) if i > first_weighted => {
                            Some(dropout::Dropout::new(*p, rng.next_u64(), capacity * shape.cols))
                        }
                        _ => None,
                    };
                    Box::new(linear::Linear::new(shape, dropout))
                }
                Layer::Conv2d { .. } => Box::new(conv2d::Conv2d::new(layer, input)),
                Layer::Maxpool2d { .. } => Box::new(pool::MaxPool::new(layer, input, capacity)),
                Layer::Avgpool2d { .. } => Box::new(pool::AvgPool::new(layer, input)),
                Layer::Relu => Box::new(relu::Relu),
                Layer::Flatten => Box::new(flatten::Flatten),
            }
        })
        .collect()
}
