//! ReLU: `max(x, 0)`; the gradient passes where the output is positive.

use super::{Backward, Forward, LayerOp};

pub struct Relu;

impl LayerOp for Relu {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { input, output, .. } = pass;
        for (o, &x) in output.iter_mut().zip(input) {
            *o = x.max(0.0);
        }
    }

    fn backward(&mut self, pass: Backward<'_>) {
        if let Some(d_input) = pass.d_input {
            for ((d, &g), &a) in d_input.iter_mut().zip(pass.d_output).zip(pass.output) {
                *d = passed(g, a);
            }
        }
    }
}

/// `grad *= (activation > 0)`: ReLU passes gradient only where it was active.
pub(crate) fn relu_backward(grad: &mut [f32], activation: &[f32]) {
    for (g, &a) in grad.iter_mut().zip(activation) {
        *g = passed(*g, a);
    }
}

/// The gradient `g` where the activation `a` was positive, else 0. A select, not a branch:
/// about half the activations are zero, in no pattern a branch predictor can learn, and a
/// conditional store kept the loop from vectorising (a fifth of a sparse training step).
#[inline(always)]
fn passed(g: f32, a: f32) -> f32 {
    if a <= 0.0 {
        0.0
    } else {
        g
    }
}
