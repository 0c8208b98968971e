//! The linear layer `Y = X W^T + b` (weight `[out, in]`) with optional dropout on its input.
//! Backward: `dW = dY^T X`, `db = sum_batch dY`, `dX = dY W`, three products through the core
//! `sgemm`.

use super::dropout::Dropout;
use super::{Backward, Forward, LayerOp, Mode};
use ticket_core::linear::linear_forward;
use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::LayerShape;

pub struct Linear {
    shape: LayerShape,
    dropout: Option<Dropout>,
}

impl Linear {
    pub fn new(shape: LayerShape, dropout: Option<Dropout>) -> Self {
        Linear { shape, dropout }
    }
}

impl LayerOp for Linear {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { params, input, output, batch, mode, par } = pass;
        let p = params.expect("a linear layer has parameters");
        let input = match (&mut self.dropout, mode) {
            (Some(d), Mode::Train) => d.apply(input),
            _ => input,
        };
        linear_forward(self.shape, &p.weight, &p.bias, input, output, batch, par);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        let p = pass.params.expect("a linear layer has parameters");
        let batch = pass.batch;
        let input = match &self.dropout {
            Some(d) => d.dropped(batch * cols),
            None => pass.input,
        };
        if let Some(grads) = pass.grads {
            sgemm(
                MatMut::row_major(grads.weight, rows, cols),
                MatRef::row_major(pass.d_output, batch, rows).t(),
                MatRef::row_major(input, batch, cols),
                0.0,
                pass.par,
            );
            column_sums(pass.d_output, rows, grads.bias);
        }
        if let Some(d_input) = pass.d_input {
            sgemm(
                MatMut::row_major(d_input, batch, cols),
                MatRef::row_major(pass.d_output, batch, rows),
                MatRef::row_major(&p.weight, rows, cols),
                0.0,
                pass.par,
            );
            if let Some(d) = &self.dropout {
                d.backward(d_input);
            }
        }
    }
}

/// `out[j] = sum_b m[b, j]` for a row-major `[batch, cols]` matrix.
pub(crate) fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}
