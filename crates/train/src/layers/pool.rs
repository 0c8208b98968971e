//! Max and average pooling (no padding, floor mode, stride defaulting to the kernel). Max
//! pooling routes each output's gradient to the input that won its window (the first maximum,
//! as PyTorch), average pooling spreads it evenly over the window; overlapping windows add up.

use super::{Backward, Forward, LayerOp};
use ticket_core::pool::{avgpool2d_forward, maxpool2d_forward, PoolGeometry};
use ticket_core::Layer;

pub struct MaxPool {
    g: PoolGeometry,
    /// Per output of the last batch, the index of its winning input within the example.
    argmax: Vec<u32>,
}

impl MaxPool {
    pub fn new(layer: &Layer, input: &[usize], capacity: usize) -> Self {
        let g = PoolGeometry::new(layer, input).expect("the graph checked the pool shapes");
        MaxPool { g, argmax: vec![0; capacity * g.output_len()] }
    }
}

impl LayerOp for MaxPool {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { input, output, batch, par, .. } = pass;
        maxpool2d_forward(&self.g, input, output, Some(&mut self.argmax), batch, par);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        let Some(d_input) = pass.d_input else { return };
        let (in_len, out_len) = (self.g.input_len(), self.g.output_len());
        d_input.fill(0.0);
        for ((dx, dy), arg) in d_input
            .chunks_exact_mut(in_len)
            .zip(pass.d_output.chunks_exact(out_len))
            .zip(self.argmax.chunks_exact(out_len))
        {
            for (&d, &a) in dy.iter().zip(arg) {
                dx[a as usize] += d;
            }
        }
    }
}

pub struct AvgPool {
    g: PoolGeometry,
}

impl AvgPool {
    pub fn new(layer: &Layer, input: &[usize]) -> Self {
        AvgPool { g: PoolGeometry::new(layer, input).expect("the graph checked the pool shapes") }
    }
}

impl LayerOp for AvgPool {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { input, output, batch, .. } = pass;
        avgpool2d_forward(&self.g, input, output, batch);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        let Some(d_input) = pass.d_input else { return };
        let g = self.g;
        let (in_len, out_len) = (g.input_len(), g.output_len());
        let ([kh, kw], w) = (g.kernel, g.in_size[1]);
        let scale = 1.0 / (kh * kw) as f32;
        d_input.fill(0.0);
        for (dx, dy) in d_input.chunks_exact_mut(in_len).zip(pass.d_output.chunks_exact(out_len)) {
            g.for_each_window(|o, corner| {
                let share = dy[o] * scale;
                for i in 0..kh {
                    dx[corner + i * w..][..kw].iter_mut().for_each(|v| *v += share);
                }
            });
        }
    }
}
