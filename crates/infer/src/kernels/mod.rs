//! Sparse x dense products over plain slices: the hot loops of inference, written here because
//! sprs's products are serial and scalar, and public because the trainer reuses them for
//! sparse-aware training (forward, and the transposed product for input gradients).
//!
//! Activations are laid out `[features][batch]`: feature `k` of the whole batch is the
//! contiguous slice `x[k * batch..(k + 1) * batch]`, so every nonzero `W[r, k]` costs one
//! contiguous batch-wide multiply-add. Work is split into row chunks of equal nonzero count
//! across [`Par`] threads when it is large enough to pay for the threads; below that it runs on
//! the calling thread (batch-1 inference of a small model never touches rayon).
//! On x86-64 the row kernels use AVX-512 or AVX2 + FMA, whichever is the best the CPU has
//! (checked at run time, `Isa`); elsewhere a portable version computes the same sums.
//!
//! Images are laid out the same way, `[channels][height][width][batch]`: the C-order
//! flattening of an example is its feature order, so a flatten costs nothing and a linear
//! layer reads a convolution's output as it is. [`conv2d`] and [`pool`] hold the kernels of
//! those layer kinds; [`conv2d_blocked`] is the fast path of stride-1 convolutions, which
//! runs one example at a time (CHW) with a 2x2 max-pool optionally fused.
//!
//! ```
//! use ticket_infer::{kernels, Activation, CsrRef};
//! use ticket_core::Par;
//! // W = [[1, 0, 2], [0, -1, 0]], batch of 2: x[feature][example].
//! let w = CsrRef::new(2, 3, &[0, 2, 3], &[0u16, 2, 1], &[1.0, 2.0, -1.0]).unwrap();
//! let x = [1.0, 10.0, /* feature 1 */ 3.0, 30.0, /* feature 2 */ 5.0, 50.0];
//! let mut y = [0.0; 4];
//! kernels::spmm(w, Some(&[0.5, 0.0]), &x, &mut y, 2, Activation::Relu, Par::Seq);
//! assert_eq!(y, [11.5, 110.5, 0.0, 0.0]);
//! ```

pub mod coded_rows;
pub(crate) mod compressed;
pub mod conv2d;
pub mod conv2d_blocked;
mod conv2d_dense;
pub mod csc;
pub mod dense;
mod l1d;
pub mod peak;
pub mod pool;
mod portable;
pub mod sddmm;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod sliced;
#[cfg(target_arch = "x86_64")]
mod vector;

use crate::aligned::AlignedVec;
use crate::csr::{ColIndex, CsrRef};
use rayon::prelude::*;
use std::ops::Range;
use ticket_core::Par;

/// What follows the affine part of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(0, v)`; NaN becomes 0, as with `f32::max`.
    Relu,
}

impl Activation {
    /// Applies the activation to `values` in place.
    pub fn apply(self, values: &mut [f32]) {
        if self == Activation::Relu {
            values.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// The shape of one example's activations, `[channels, height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Image {
    /// `[C, H, W]` as an image; `None` for any other rank.
    pub fn from_dims(dims: &[usize]) -> Option<Image> {
        match *dims {
            [channels, height, width] => Some(Image { channels, height, width }),
            _ => None,
        }
    }

    /// Values per example.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values of one channel of one example.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// A sliding window over an image: kernel, stride and zero padding, `[rows, columns]` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Window {
    /// Output positions `o` along dimension `d` (0 = rows, 1 = columns) at which kernel tap
    /// `tap` falls inside an input of `input` positions rather than in the padding:
    /// `0 <= o * stride + tap - padding < input`, clipped to the `output` positions.
    pub(crate) fn inside(&self, d: usize, tap: usize, input: usize, output: usize) -> Range<usize> {
        let (stride, pad) = (self.stride[d], self.padding[d]);
        let lo = pad.saturating_sub(tap).div_ceil(stride);
        let hi =
            if input + pad > tap { ((input - 1 + pad - tap) / stride + 1).min(output) } else { 0 };
        lo..hi.max(lo)
    }
}

/// The tiles of a batch of `batch` examples laid out in tiles of `tile` (the last one may be
/// shorter): tile `i` holds examples `i * tile..` as its own `[features][len]` block, blocks
/// one after another, so one thread can run a layer over several tiles while each tile's
/// activations stay contiguous. A batch of at most `tile` examples is one plain block.
pub(crate) fn tiles(batch: usize, tile: usize) -> impl Iterator<Item = Range<usize>> {
    let tile = tile.max(1);
    (0..batch.div_ceil(tile)).map(move |i| i * tile..((i + 1) * tile).min(batch))
}

/// The input of a product over a batch laid out in [`tiles`].
pub(crate) enum TiledInput<'a> {
    /// Already laid out in tiles.
    Tiled(&'a [f32]),
    /// Row-major examples (`[batch][features]`): each tile is transposed into `scratch` when
    /// its turn comes, so it is read while still in the cache (a whole span transposed ahead
    /// would have gone out to memory and come back).
    RowMajor { x: &'a [f32], scratch: &'a mut AlignedVec },
}

impl TiledInput<'_> {
    /// Values in all tiles.
    pub(crate) fn len(&self) -> usize {
        match self {
            TiledInput::Tiled(x) | TiledInput::RowMajor { x, .. } => x.len(),
        }
    }

    /// The `[features][len]` block of the tile of `examples`.
    pub(crate) fn tile(&mut self, examples: Range<usize>, features: usize) -> &[f32] {
        let part = examples.start * features..examples.end * features;
        match self {
            TiledInput::Tiled(x) => &x[part],
            TiledInput::RowMajor { x, scratch } => {
                let n = part.len();
                scratch.grow(n);
                crate::transpose::transpose(&x[part], examples.len(), features, &mut scratch[..n]);
                &scratch[..n]
            }
        }
    }
}

/// Multiply-adds below which a product runs on the calling thread: waking rayon workers and
/// joining them costs a few microseconds, more than such a product takes on one core.
pub const PAR_MIN_WORK: usize = 1 << 15;

/// `y[r] = act(bias[r] + sum_k W[r, k] x[k])`: the batch-1 product. `x` has `cols` entries,
/// `y` has `rows`. Panics when the lengths do not fit `w`.
pub fn spmv<I: ColIndex>(
    w: CsrRef<I>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    act: Activation,
    par: Par,
) {
    spmm(w, bias, x, y, 1, act, par);
}

/// `y[r][b] = act(bias[r] + sum_k W[r, k] x[k][b])` for `x` `[cols][batch]` and `y`
/// `[rows][batch]` (overwritten). Panics when the lengths do not fit `w` and `batch`.
pub fn spmm<I: ColIndex>(
    w: CsrRef<I>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
    par: Par,
) {
    spmm_with(Isa::detect(), w, bias, x, y, batch, act, par, PAR_MIN_WORK);
}

/// `y[c][b] += sum_r W[r, c] x[r][b]` for `x` `[rows][batch]` and `y` `[cols][batch]`
/// (accumulated): the product with `W^T`, which backpropagates a gradient to a layer's input.
/// Panics when the lengths do not fit `w` and `batch`.
pub fn spmm_transposed<I: ColIndex>(
    w: CsrRef<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    par: Par,
) {
    spmm_transposed_with(Isa::detect(), w, x, y, batch, par, PAR_MIN_WORK);
}

/// The instruction set the row kernels run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512 F, BW and VL, and POPCNT (every AVX-512 CPU since Skylake-SP has them). Kernels
    /// without an AVX-512 variant run their AVX2 one, which these CPUs also have.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The best the CPU offers (std caches the CPUID answer). `TICKET_ISA=avx2` or
    /// `portable` caps it, to compare instruction sets on one machine.
    pub(crate) fn detect() -> Self {
        static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            let best = Isa::best();
            match std::env::var("TICKET_ISA").as_deref() {
                Ok("portable") => Isa::Portable,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if best == Isa::Avx512 => Isa::Avx2Fma,
                _ => best,
            }
        })
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("popcnt");
            if avx2 && avx512 {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    }

    /// The name reports give the instruction set.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }

    /// f32 lanes of one vector register.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
        }
    }

    /// Whether the batch-1 row kernel gathers the inputs of long rows: on Intel's AVX-512
    /// cores a 16-lane gather beats scalar loads there, on AMD's it loses at any row length
    /// (one thread, 4096 x 4096 at 5 %, 205 nonzeros a row: Intel Xeon 234 us gathered
    /// against 296 scalar; AMD EPYC Zen 5 344 against 234; 256 x 12544 at 10.7 %, 1,346 a
    /// row, on the EPYC: 155 against 93). The vendor is a stand-in for the microarchitecture,
    /// chosen because it is known before anything runs and stays the same from run to run.
    pub(crate) fn gathers_pay(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Isa::Avx512 {
            static INTEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            return *INTEL.get_or_init(|| {
                // SAFETY: CPUID leaf 0 exists on every x86-64 CPU (the intrinsic is safe
                // from Rust 1.94 on, unsafe before).
                #[allow(unused_unsafe)]
                let id = unsafe { std::arch::x86_64::__cpuid(0) };
                [id.ebx, id.edx, id.ecx].map(u32::to_le_bytes).concat() == b"GenuineIntel"
            });
        }
        false
    }

    /// The instruction set for a kernel that holds rows of `floats` values in registers:
    /// AVX-512 only when its 16-lane registers hold such a row in no more lanes than 8-lane
    /// AVX2 ones do. A half-empty register costs its whole width: LeNet-5's conv2 (8-float
    /// rows) took 12.3 us at batch 1 in AVX-512 registers and 7.4 us in AVX2 ones, while
    /// Conv-2's conv2 (28-float rows, 32 lanes either way) took 216-223 against 245-262 us.
    pub(crate) fn for_rows_of(self, floats: usize) -> Isa {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if floats.div_ceil(16) * 2 > floats.div_ceil(8) => Isa::Avx2Fma,
            isa => isa,
        }
    }

    /// Every instruction set this CPU can run, for tests that compare them.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            let best = Isa::best();
            if best != Isa::Portable {
                all.push(Isa::Avx2Fma);
            }
            if best == Isa::Avx512 {
                all.push(Isa::Avx512);
            }
        }
        all
    }
}

fn check_lengths(what: &str, x: usize, x_want: Option<usize>, y: usize, y_want: Option<usize>) {
    let (Some(xw), Some(yw)) = (x_want, y_want) else {
        panic!("{what}: matrix times batch overflows usize");
    };
    assert_eq!(x, xw, "{what}: x has {x} entries, expected {xw}");
    assert_eq!(y, yw, "{what}: y has {y} entries, expected {yw}");
}

/// Checks the lengths of a batch-1 product `y = act(bias + W x)` by a `rows x cols` copy
/// of a layer (`kernels::sliced`, `kernels::coded_rows`), `what` naming it in the panic.
pub(crate) fn check_spmv_lengths(
    what: &str,
    (rows, cols): (usize, usize),
    x: &[f32],
    y: &[f32],
    bias: Option<&[f32]>,
) {
    check_lengths(what, x.len(), Some(cols), y.len(), Some(rows));
    if let Some(b) = bias {
        assert_eq!(b.len(), rows, "{what}: bias has {} entries, expected {rows}", b.len());
    }
}

/// Rows `rows` of `act(bias + W x)` into `y` through `isa`'s CSR row kernel, the one every
/// f32 and decoded compressed layer runs. Panics when `x` or `y` does not fit `w`, `rows`
/// and `batch`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_rows<I: ColIndex>(
    isa: Isa,
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    relu: bool,
) {
    assert!(rows.end <= w.rows(), "spmm_rows: rows {rows:?} of {}", w.rows());
    assert!(
        Some(x.len()) == w.cols().checked_mul(batch)
            && Some(y.len()) == rows.len().checked_mul(batch),
        "spmm_rows: x has {} and y {} entries for {} rows x {} columns x batch {batch}",
        x.len(),
        y.len(),
        rows.len(),
        w.cols()
    );
    match isa {
        Isa::Portable => portable::spmm_rows(w, rows, bias, x, y, batch, relu),
        // SAFETY: the instruction set is present (Isa::detect); `w` is a validated CsrRef
        // (indptr within indices, every column index below cols); x has cols * batch
        // entries, y rows.len() * batch and rows lie within w (asserted above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { vector::spmm_rows::avx2(w, rows, bias, x, y, batch, relu) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { vector::spmm_rows::avx512(w, rows, bias, x, y, batch, relu) },
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_with<I: ColIndex>(
    isa: Isa,
    w: CsrRef<I>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
    par: Par,
    min_work: usize,
) {
    check_lengths(
        "spmm",
        x.len(),
        w.cols().checked_mul(batch),
        y.len(),
        w.rows().checked_mul(batch),
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), w.rows(), "spmm: bias has {} entries, expected {}", b.len(), w.rows());
    }
    if batch == 0 {
        return;
    }
    let relu = act == Activation::Relu;
    let run = |rows: Range<usize>, y: &mut [f32]| spmm_rows(isa, w, rows, bias, x, y, batch, relu);
    let work = (w.nnz() + w.rows()).saturating_mul(batch);
    let chunks = if work >= min_work { par.threads().min(w.rows()) } else { 1 };
    if chunks <= 1 {
        return run(0..w.rows(), y);
    }
    for_row_parts(w.indptr(), chunks, y, batch, run);
}

/// Runs `run(rows, y_part)` in parallel over the rows an `indptr` delimits, cut into `chunks`
/// parts of about equal nonzeros, each with its rows' `[rows][batch]` part of `y`.
pub(crate) fn for_row_parts(
    indptr: &[u32],
    chunks: usize,
    y: &mut [f32],
    batch: usize,
    run: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    let pieces = split_by_indptr(indptr, chunks);
    let mut parts = Vec::with_capacity(pieces.len());
    let mut rest = y;
    for rows in pieces {
        let (part, tail) = rest.split_at_mut(rows.len() * batch);
        parts.push((rows, part));
        rest = tail;
    }
    parts.into_par_iter().with_max_len(1).for_each(|(rows, part)| run(rows, part));
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_transposed_with<I: ColIndex>(
    isa: Isa,
    w: CsrRef<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    par: Par,
    min_work: usize,
) {
    check_lengths(
        "spmm_transposed",
        x.len(),
        w.rows().checked_mul(batch),
        y.len(),
        w.cols().checked_mul(batch),
    );
    if batch == 0 || w.cols() == 0 {
        return;
    }
    // A single example has no lanes to vectorise over: the scalar loop is the fastest.
    let isa = if batch == 1 { Isa::Portable } else { isa };
    let run = |cols: Range<usize>, y: &mut [f32]| match isa {
        Isa::Portable => portable::spmm_t_cols(w, cols, x, y, batch),
        // SAFETY: as in spmm_with: the instruction set present, validated CsrRef, x has
        // rows * batch entries, y has cols.len() * batch.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { vector::spmm_t_cols::avx2(w, cols, x, y, batch) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { vector::spmm_t_cols::avx512(w, cols, x, y, batch) },
    };
    let work = (w.nnz() + w.rows()).saturating_mul(batch);
    let chunks = if work >= min_work { par.threads().min(w.cols()) } else { 1 };
    if chunks <= 1 {
        return run(0..w.cols(), y);
    }
    // Each thread owns a range of output rows (columns of W) and scans every row of W for
    // the nonzeros that land in it, so no two threads write the same element.
    let per = w.cols().div_ceil(chunks);
    y.par_chunks_mut(per * batch).enumerate().with_max_len(1).for_each(|(i, part)| {
        let start = i * per;
        run(start..start + part.len() / batch, part)
    });
}

/// `chunks` consecutive ranges covering the rows an `indptr` (`rows + 1` offsets) delimits,
/// each with about the same number of nonzeros plus rows (a row costs a little even when
/// empty).
fn split_by_indptr(indptr: &[u32], chunks: usize) -> Vec<Range<usize>> {
    let rows = indptr.len() - 1;
    let cost = |r: usize| indptr[r] as usize + r;
    let total = cost(rows);
    let mut bounds = vec![0];
    for t in 1..chunks {
        let target = total * t / chunks;
        // The first row boundary whose cost reaches the target (cost grows with r).
        let (mut lo, mut hi) = (0, rows);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if cost(mid) < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        bounds.push(lo.max(*bounds.last().unwrap()));
    }
    bounds.push(rows);
    bounds.windows(2).map(|b| b[0]..b[1]).filter(|r| !r.is_empty()).collect()
}

/// The part of row `r` of `w` whose column indices fall in `cols`, as a range of positions in
/// `indices` / `values` (column indices are sorted within a row).
#[inline]
fn row_part<I: ColIndex>(w: CsrRef<I>, r: usize, cols: &Range<usize>) -> Range<usize> {
    let range = w.row_range(r);
    let row = &w.indices()[range.clone()];
    let lo = if cols.start == 0 { 0 } else { row.partition_point(|c| c.to_usize() < cols.start) };
    let hi = if cols.end >= w.cols() {
        row.len()
    } else {
        row.partition_point(|c| c.to_usize() < cols.end)
    };
    range.start + lo..range.start + hi.max(lo)
}

/// The sum of `value * input` over the entries `range` of one row, `term(k)` giving both:
/// four running sums of fused multiply-adds over whole groups of four, combined as
/// `(s0 + s1) + (s2 + s3)`, then the rest one by one. The order of the batch-1 CSR rows
/// (`vector::scalar_row`) and of the coded rows, which give the same bits by sharing it.
#[inline(always)]
pub(super) fn four_sum_row(range: Range<usize>, term: impl Fn(usize) -> (f32, f32)) -> f32 {
    let (mut k, end) = (range.start, range.end);
    let mut acc = [0.0f32; 4];
    let add = |k: usize, acc: f32| {
        let (value, input) = term(k);
        value.mul_add(input, acc)
    };
    while k + 4 <= end {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = add(k + j, *a);
        }
        k += 4;
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    while k < end {
        sum = add(k, sum);
        k += 1;
    }
    sum
}

#[cfg(test)]
mod tests;
