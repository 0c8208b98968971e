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
    /// [`BAND_BYTES`], smaller in tests to exercise many bands.
    pub(super) band_bytes: usize,
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
    /// The dense copy of `w`; `offsets[col]` is column `col`'s padded-input offset.
    pub(crate) fn new<I: ColIndex>(w: CsrRef<I>, offsets: Vec<u32>) -> Self {
        assert_eq!(offsets.len(), w.cols(), "dense conv2d: one offset per weight column");
        let cols = w.cols();
        let mut weight = vec![0.0; w.rows() * cols];
        for (o, row) in weight.chunks_exact_mut(cols.max(1)).enumerate().take(w.rows()) {
            let range = w.indptr()[o] as usize..w.indptr()[o + 1] as usize;
            for (&c, &v) in w.indices()[range.clone()].iter().zip(&w.values()[range]) {
                row[c.to_usize()] = v;
            }
        }
        DenseConv { weight, offsets, band_bytes: BAND_BYTES }
    }

    /// Bytes of the dense weight and the offsets.
    pub(crate) fn bytes(&self) -> usize {
        4 * (self.weight.len() + self.offsets.len())
    }

    /// Output rows of one band: as many as keep its im2col block within `band_bytes`.
    fn band_rows(&self, g: Geometry, lanes: usize) -> usize {
        let row_bytes = 4 * self.offsets.len() * g.out_width * lanes;
        (self.band_bytes / row_bytes.max(1)).clamp(1, g.out_rows.max(1))
    }

    /// Floats of scratch [`DenseConv::run`] needs on `threads` threads: per thread one band's
    /// im2col block and product.
    pub(crate) fn scratch_len(&self, g: Geometry, lanes: usize, threads: usize) -> usize {
        let outputs = self.weight.len() / self.offsets.len().max(1);
        let band = self.band_rows(g, lanes) * g.out_width * lanes;
        threads * band * (self.offsets.len() + outputs)
    }

    /// `y [O][OH][OW][lanes] = bias + W * im2col(xp)`, then ReLU when `relu`, band by band
    /// of output rows: each band's im2col block (within [`BAND_BYTES`], so it is written
    /// and read in the second-level cache instead of going through memory: AlexNet's conv1
    /// has a 4.4 MB im2col matrix) and its product into `scratch`, then bias and ReLU on the
    /// way into `y`. The threads of `par` take contiguous runs of bands (rows), each with
    /// its own part of `scratch` (at least [`DenseConv::scratch_len`] floats).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        xp: &[f32],
        scratch: &mut [f32],
        y: &mut [f32],
        bias: &[f32],
        (g, lanes): (Geometry, usize),
        relu: bool,
        par: Par,
    ) {
        let (row, in_row) = (g.out_width * lanes, g.in_width * lanes);
        let (k, outputs, pixels) = (self.offsets.len(), bias.len(), g.out_rows * row);
        assert_eq!(y.len(), outputs * pixels, "dense conv2d: y length");
        let band_rows = self.band_rows(g, lanes);
        let bands = g.out_rows.div_ceil(band_rows);
        let threads = par.threads().clamp(1, bands.max(1));
        let per_thread = self.scratch_len(g, lanes, 1);
        let scratch = &mut scratch[..threads * per_thread];
        let out = SharedY(y.as_mut_ptr());
        let work = |(t, scratch): (usize, &mut [f32])| {
            let (cols, product) = scratch.split_at_mut(band_rows * row * k);
            for band in bands * t / threads..bands * (t + 1) / threads {
                let rows = band * band_rows..((band + 1) * band_rows).min(g.out_rows);
                let width = rows.len() * row;
                let cols = &mut cols[..k * width];
                for (dst, &offset) in cols.chunks_exact_mut(width).zip(&self.offsets) {
                    let from = offset as usize * lanes + rows.start * in_row;
                    for (r, to) in dst.chunks_exact_mut(row).enumerate() {
                        to.copy_from_slice(&xp[from + r * in_row..][..row]);
                    }
                }
                let product = &mut product[..outputs * width];
                let lhs = MatRef::row_major(&self.weight, outputs, k);
                let rhs = MatRef::row_major(cols, k, width);
                sgemm(MatMut::row_major(product, outputs, width), lhs, rhs, 0.0, Par::Seq);
                for (o, (sums, &b)) in product.chunks_exact(width).zip(bias).enumerate() {
                    // SAFETY: band `rows` of channel o lies inside y (asserted length), and
                    // the bands of different threads are disjoint.
                    let y = unsafe {
                        std::slice::from_raw_parts_mut(out.at(o * pixels + rows.start * row), width)
                    };
                    for (y, &s) in y.iter_mut().zip(sums) {
                        *y = if relu { (s + b).max(0.0) } else { s + b };
                    }
                }
            }
        };
        if threads > 1 {
            scratch.par_chunks_exact_mut(per_thread).enumerate().for_each(work);
        } else {
            work((0, scratch));
        }
    }
}

/// Bytes of one band's im2col block: half the 512 KiB second-level cache of current x86
/// cores, the rest left to the packed weights and the product.
const BAND_BYTES: usize = 256 << 10;

/// The output of one [`DenseConv::run`], written by its threads in disjoint bands.
#[derive(Clone, Copy)]
struct SharedY(*mut f32);

impl SharedY {
    /// The output from float `i` on (a method, so that closures capture the whole wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

// SAFETY: only the threads of one call use it, each writing its own bands of the output that
// call borrows mutably.
unsafe impl Send for SharedY {}
unsafe impl Sync for SharedY {}
