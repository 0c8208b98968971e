//! The row kernels in plain Rust: the fallback on CPUs without AVX2 + FMA, and a second
//! implementation the SIMD kernels are tested against.

use super::row_part;
use crate::csr::{ColIndex, CsrRef};
use std::ops::Range;

/// Rows `rows` of `act(bias + W x)` into `y` (`rows.len() * batch` entries).
pub(super) fn spmm_rows<I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    relu: bool,
) {
    let (indices, values) = (w.indices(), w.values());
    for (r, yr) in rows.zip(y.chunks_exact_mut(batch)) {
        yr.fill(bias.map_or(0.0, |b| b[r]));
        for k in w.row_range(r) {
            let (v, c) = (values[k], indices[k].to_usize());
            for (yb, xb) in yr.iter_mut().zip(&x[c * batch..(c + 1) * batch]) {
                *yb += v * xb;
            }
        }
        if relu {
            yr.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Columns `cols` of `W^T x`, added into `y` (`cols.len() * batch` entries).
pub(super) fn spmm_t_cols<I: ColIndex>(
    w: CsrRef<I>,
    cols: Range<usize>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
) {
    let (indices, values) = (w.indices(), w.values());
    for (r, xr) in x.chunks_exact(batch).enumerate() {
        for k in row_part(w, r, &cols) {
            let (v, c) = (values[k], indices[k].to_usize() - cols.start);
            for (yb, xb) in y[c * batch..(c + 1) * batch].iter_mut().zip(xr) {
                *yb += v * xb;
            }
        }
    }
}

/// `y += v * x` (equal lengths): the inner loop of the direct convolution.
pub(super) fn axpy(v: f32, x: &[f32], y: &mut [f32]) {
    for (yb, xb) in y.iter_mut().zip(x) {
        *yb += v * xb;
    }
}
