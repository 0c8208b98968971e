//! The dense linear layer, `y = W x + b` per example with `W` `[out, in]` (PyTorch
//! `nn.Linear`), as one [`sgemm`] over the batch.

use crate::sgemm::{sgemm, MatMut, MatRef};
use crate::{LayerShape, Par};

/// `output[b] = weight * input[b] + bias` for `input` `[batch, cols]` and `output`
/// `[batch, rows]`, row-major.
pub fn linear_forward(
    shape: LayerShape,
    weight: &[f32],
    bias: &[f32],
    input: &[f32],
    output: &mut [f32],
    batch: usize,
    par: Par,
) {
    let (rows, cols) = (shape.rows, shape.cols);
    let output = &mut output[..batch * rows];
    for row in output.chunks_exact_mut(rows) {
        row.copy_from_slice(bias);
    }
    sgemm(
        MatMut::row_major(output, batch, rows),
        MatRef::row_major(&input[..batch * cols], batch, cols),
        MatRef::row_major(weight, rows, cols).t(),
        1.0,
        par,
    );
}

/// `values = max(values, 0)`.
pub fn relu_in_place(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0);
    }
}
