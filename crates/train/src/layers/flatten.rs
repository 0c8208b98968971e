//! Flatten: `[C, H, W]` to `[C*H*W]` per example. The values are already in C order, so both
//! passes are copies.

use super::{Backward, Forward, LayerOp};

pub struct Flatten;

impl LayerOp for Flatten {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { input, output, .. } = pass;
        output.copy_from_slice(input);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        if let Some(d_input) = pass.d_input {
            d_input.copy_from_slice(pass.d_output);
        }
    }
}
