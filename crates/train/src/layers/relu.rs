//! ReLU: `max(x, 0)`; the gradient passes where the output is positive.

use super::{Backward, Forward, LayerOp};
use ticket_core::linear::relu_in_place;

pub struct Relu;

impl LayerOp for Relu {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { input, output, .. } = pass;
        output.copy_from_slice(input);
        relu_in_place(output);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        if let Some(d_input) = pass.d_input {
            d_input.copy_from_slice(pass.d_output);
            relu_backward(d_input, pass.output);
        }
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
