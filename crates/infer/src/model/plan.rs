//! How a graph runs: the one place that matches on the layer kind. [`Plan::new`] turns the
//! graph's layers into steps once, when a model is built - a ReLU that directly follows a
//! linear or conv2d layer is fused into that layer's kernel, a flatten disappears (the
//! `[C][H][W][batch]` layout already is the `[features][batch]` one) - and [`Plan::run`]
//! executes them over two ping-pong buffers. A new layer kind is a new [`Step`], its arm in
//! the two matches below, and its kernel module under [`crate::kernels`].

use super::SparseLayer;
use crate::kernels::pool::{self, Pool};
use crate::kernels::{Activation, Image, Window};
use ticket_core::{Graph, Layer};

/// One kernel call of the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// SpMM of weighted layer `layer` (an index into the model's layers).
    Linear {
        layer: usize,
        act: Activation,
    },
    /// Direct sparse convolution of weighted layer `layer`.
    Conv2d {
        layer: usize,
        input: Image,
        window: Window,
        act: Activation,
    },
    Pool2d {
        pool: Pool,
        input: Image,
        window: Window,
    },
    /// A ReLU that could not be fused, in place.
    Relu,
}

/// The steps of a graph and what they cost.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Each step with the number of values it writes per example.
    steps: Vec<(Step, usize)>,
    /// Multiply-adds per example, roughly: what decides whether a batch is worth threads.
    work: usize,
}

impl Plan {
    /// The steps of `graph`, whose weighted layers are `layers` in order.
    pub(crate) fn new(graph: &Graph, layers: &[SparseLayer]) -> Plan {
        let mut steps: Vec<(Step, usize)> = Vec::new();
        let mut weighted = 0;
        let mut work = 0usize;
        for (i, layer) in graph.layers().iter().enumerate() {
            let image = || Image::from_dims(graph.input_shape_of(i)).expect("graph checked: image");
            let outputs: usize = graph.output_shape(i).iter().product();
            let step = match *layer {
                Layer::Linear { .. } => {
                    work = work.saturating_add(layers[weighted].nnz());
                    weighted += 1;
                    Step::Linear { layer: weighted - 1, act: Activation::Identity }
                }
                Layer::Conv2d { kernel, stride, padding, .. } => {
                    let positions: usize = graph.output_shape(i)[1..].iter().product();
                    work = work.saturating_add(layers[weighted].nnz().saturating_mul(positions));
                    weighted += 1;
                    let window = Window { kernel, stride, padding };
                    Step::Conv2d {
                        layer: weighted - 1,
                        input: image(),
                        window,
                        act: Activation::Identity,
                    }
                }
                Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                    let pool = if matches!(layer, Layer::Maxpool2d { .. }) {
                        Pool::Max
                    } else {
                        Pool::Avg
                    };
                    work = work.saturating_add(outputs * kernel[0] * kernel[1]);
                    let window =
                        Window { kernel, stride: stride.unwrap_or(kernel), padding: [0, 0] };
                    Step::Pool2d { pool, input: image(), window }
                }
                Layer::Relu => match steps.last_mut() {
                    Some((Step::Linear { act, .. } | Step::Conv2d { act, .. }, _)) => {
                        *act = Activation::Relu;
                        continue;
                    }
                    Some((Step::Relu, _)) => continue,
                    _ => Step::Relu,
                },
                Layer::Flatten => continue,
            };
            steps.push((step, outputs));
        }
        Plan { steps, work }
    }

    pub(crate) fn work_per_example(&self) -> usize {
        self.work
    }

    /// The forward pass of `t` examples from `input` (`[features][t]`); returns the logits,
    /// `[classes][t]`, in one of `buffers`. Buffers only grow, so that repeated calls neither
    /// allocate nor clear them.
    pub(crate) fn run<'a>(
        &self,
        layers: &[SparseLayer],
        input: &'a [f32],
        t: usize,
        buffers: &'a mut [Vec<f32>; 2],
    ) -> &'a [f32] {
        let [a, b] = buffers;
        // Where the current activations are: None = `input`, Some(false) = a, Some(true) = b.
        let mut at: Option<bool> = None;
        let mut len = input.len();
        for (step, outputs) in &self.steps {
            if let Step::Relu = step {
                if at.is_none() {
                    grow(a, len);
                    a[..len].copy_from_slice(input);
                    at = Some(false);
                }
                let current = if at == Some(true) { &mut b[..len] } else { &mut a[..len] };
                Activation::Relu.apply(current);
                continue;
            }
            let (src, dst): (&[f32], &mut Vec<f32>) = match at {
                None => (input, &mut *a),
                Some(false) => (&a[..len], &mut *b),
                Some(true) => (&b[..len], &mut *a),
            };
            let n = outputs * t;
            grow(dst, n);
            let dst = &mut dst[..n];
            match *step {
                Step::Linear { layer, act } => layers[layer].linear(src, dst, t, act),
                Step::Conv2d { layer, input, window, act } => {
                    layers[layer].conv2d(input, window, src, dst, t, act)
                }
                Step::Pool2d { pool, input, window } => {
                    pool::pool2d(pool, input, window, src, dst, t)
                }
                Step::Relu => unreachable!("handled in place above"),
            }
            at = Some(at == Some(false));
            len = n;
        }
        match at {
            None => input,
            Some(false) => &a[..len],
            Some(true) => &b[..len],
        }
    }
}

/// Makes `buffer` hold at least `n` values (new ones are zero; old ones stay as they are).
fn grow(buffer: &mut Vec<f32>, n: usize) {
    if buffer.len() < n {
        buffer.resize(n, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SparseModel;
    use ticket_core::Network;

    fn steps(graph: &Graph) -> Vec<Step> {
        let model = SparseModel::from_net(&Network::zeros(graph));
        model.plan.steps.iter().map(|(s, _)| s.clone()).collect()
    }

    #[test]
    fn relus_fuse_into_the_layer_before_and_flatten_vanishes() {
        let relu = Activation::Relu;
        let mlp = steps(&"8-4-3-2".parse().unwrap());
        assert_eq!(
            mlp,
            [
                Step::Linear { layer: 0, act: relu },
                Step::Linear { layer: 1, act: relu },
                Step::Linear { layer: 2, act: Activation::Identity },
            ]
        );
        let graph = Graph::from_json(
            r#"{"input":[1,4,4],"layers":[{"op":"relu"},
            {"op":"conv2d","name":"c","in":1,"out":2,"kernel":[3,3],"padding":[1,1]},
            {"op":"relu"},{"op":"relu"},{"op":"avgpool2d","kernel":[2,2]},{"op":"relu"},
            {"op":"flatten"},{"op":"linear","name":"fc","in":8,"out":2}]}"#,
        )
        .unwrap();
        let input = Image { channels: 1, height: 4, width: 4 };
        let pooled = Image { channels: 2, height: 4, width: 4 };
        assert_eq!(
            steps(&graph),
            [
                Step::Relu,
                Step::Conv2d {
                    layer: 0,
                    input,
                    window: Window { kernel: [3, 3], stride: [1, 1], padding: [1, 1] },
                    act: relu,
                },
                Step::Pool2d {
                    pool: Pool::Avg,
                    input: pooled,
                    window: Window { kernel: [2, 2], stride: [2, 2], padding: [0, 0] },
                },
                Step::Relu,
                Step::Linear { layer: 1, act: Activation::Identity },
            ]
        );
    }
}
