//! The dense path of [`super::conv2d_blocked::BlockedConv2d`] for barely pruned layers:
//! im2col over the stride-phased padded input, then one dense matrix product
//! ([`ticket_core::sgemm`], the `gemm` crate's packed, cache-blocked kernels).
//!
//! The sparse kernel does one broadcast and one load per multiply-add vector; a packed GEMM
//! reuses each loaded value across a register tile and reaches a larger share of the FMA
//! peak, which pays once few enough weights are pruned that multiplying the zeros costs
//! less than the sparse kernel's lower efficiency (AlexNet's conv1 at 84%).
//!
//! The im2col matrix has one row per weight column `(c, i, j)` and one column per output
//! pixel (and example): row `(c, i, j)` is the padded input read at that weight's tap offset
//! (the blocked kernel's offsets, stride phases included), so each output row of it is one
//! contiguous copy of `OW * batch` floats. The product `W [O][K] x cols [K][P]` then lands
//! directly in the `[O][OH][OW][batch]` output layout.

use crate::csr::{ColIndex, CsrRef};
use rayon::prelude::*;
use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::Par;

/// A conv layer's weights, dense, with the padded-input offset of each of their columns.
#[derive(Clone, Debug)]
pub(crate) struct DenseConv {
    /// `[out][in * kh * kw]`, zeros included.
    weight: Vec<f32>,
    /// Per weight column, the offset (in pixels of the padded, stride-phased input) of the
    /// input pixel it multiplies for output pixel (0, 0).
    offsets: Vec<u32>,
}

/// The layout [`DenseConv::run`] reads and writes: output rows and widths, in pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Output rows and columns.
    pub(crate) out_rows: usize,
    pub(crate) out_width: usize,
    /// Width of a padded (phase) input row.
    pub(crate) in_width: usize,
}

impl DenseConv {
    /// The dense copy of `w`; `offset(col)` is column `col`'s padded-input offset.
    pub(crate) fn new<I: ColIndex>(w: CsrRef<I>, offset: impl Fn(usize) -> u32) -> Self {
        let cols = w.cols();
        let mut weight = vec![0.0; w.rows() * cols];
        for (o, row) in weight.chunks_exact_mut(cols.max(1)).enumerate().take(w.rows()) {
            let range = w.indptr()[o] as usize..w.indptr()[o + 1] as usize;
            for (&c, &v) in w.indices()[range.clone()].iter().zip(&w.values()[range]) {
                row[c.to_usize()] = v;
            }
        }
        DenseConv { weight, offsets: (0..cols).map(offset).collect() }
    }

    /// Bytes of the dense weight and the offsets.
    pub(crate) fn bytes(&self) -> usize {
        4 * (self.weight.len() + self.offsets.len())
    }

    /// Floats of the im2col matrix for `lanes` interleaved examples.
    pub(crate) fn cols_len(&self, g: Geometry, lanes: usize) -> usize {
        self.offsets.len() * g.out_rows * g.out_width * lanes
    }

    /// `y [O][OH][OW][lanes] = bias + W * im2col(xp)`, then ReLU when `relu`, with `cols`
    /// (at least [`DenseConv::cols_len`] floats) as the im2col matrix. The im2col rows and
    /// the product split over `par`'s threads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        xp: &[f32],
        cols: &mut [f32],
        y: &mut [f32],
        bias: &[f32],
        (g, lanes): (Geometry, usize),
        relu: bool,
        par: Par,
    ) {
        let (row, in_row) = (g.out_width * lanes, g.in_width * lanes);
        let pixels = g.out_rows * row;
        let k = self.offsets.len();
        let cols = &mut cols[..k * pixels];
        let fill = |(dst, &offset): (&mut [f32], &u32)| {
            let from = offset as usize * lanes;
            for (oh, to) in dst.chunks_exact_mut(row).enumerate() {
                to.copy_from_slice(&xp[from + oh * in_row..][..row]);
            }
        };
        if par.threads() > 1 {
            cols.par_chunks_exact_mut(pixels).zip(&self.offsets).for_each(fill);
        } else {
            cols.chunks_exact_mut(pixels).zip(&self.offsets).for_each(fill);
        }
        let outputs = bias.len();
        let lhs = MatRef::row_major(&self.weight, outputs, k);
        let rhs = MatRef::row_major(cols, k, pixels);
        sgemm(MatMut::row_major(y, outputs, pixels), lhs, rhs, 0.0, par);
        for (yo, &b) in y.chunks_exact_mut(pixels).zip(bias) {
            for v in yo {
                let s = *v + b;
                *v = if relu { s.max(0.0) } else { s };
            }
        }
    }
}
