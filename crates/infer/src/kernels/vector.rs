//! The row kernels over vector registers, written once over [`Simd`] and compiled once per
//! instruction set by `isa_entry_points!` (`spmm_rows::avx2`, `spmm_rows::avx512`, ...),
//! selected at run time by `Isa::detect`.
//!
//! Batches wider than one keep up to 8 registers of examples of a row in accumulators while
//! they walk the row's nonzeros, so each nonzero costs one broadcast and up to 8 fused
//! multiply-adds reading `x` from memory. Batch 1 has no examples to spread over lanes: with
//! AVX2 it runs scalar fused multiply-adds (faster than 8-lane gathers on Zen 3); with
//! AVX-512 it gathers 16 inputs per instruction for rows of [`GATHER_MIN`] nonzeros or more
//! (see [`spmv_rows`]).
//!
//! Every function here trusts what a validated [`CsrRef`] guarantees (`indptr` within
//! `indices`, each column index below `cols`) and the slice lengths the dispatcher asserted;
//! those make the unchecked pointer reads below stay in bounds.

use super::conv2d::{self, Conv2d};
use super::simd::{isa_entry_points, Lanes, Simd};
use super::{row_part, Activation, Isa};
use crate::csr::{ColIndex, CsrRef};
use std::ops::Range;

/// Registers of accumulators per block of examples (64 examples with AVX2, 128 with AVX-512).
const BLOCK: usize = 8;

/// Runs `$body` for consecutive blocks of examples `$from..$batch`: `$j` is the first example
/// of the block, `$n` (a const) its number of registers, `$lanes` which lanes they use.
/// Blocks of `BLOCK` registers first, then one each of 4, 2 and 1 while they fit, then a
/// masked rest.
macro_rules! for_each_block {
    ($S:ty, $from:expr, $batch:expr, |$j:ident, $n:ident, $lanes:ident| $body:block) => {{
        let batch: usize = $batch;
        let lanes = <$S as Simd>::LANES;
        let mut $j = $from;
        while $j + BLOCK * lanes <= batch {
            {
                const $n: usize = BLOCK;
                let $lanes = Lanes::<$S>::All;
                $body
            }
            $j += BLOCK * lanes;
        }
        if $j + 4 * lanes <= batch {
            {
                const $n: usize = 4;
                let $lanes = Lanes::<$S>::All;
                $body
            }
            $j += 4 * lanes;
        }
        if $j + 2 * lanes <= batch {
            {
                const $n: usize = 2;
                let $lanes = Lanes::<$S>::All;
                $body
            }
            $j += 2 * lanes;
        }
        if $j + lanes <= batch {
            {
                const $n: usize = 1;
                let $lanes = Lanes::<$S>::All;
                $body
            }
            $j += lanes;
        }
        if $j < batch {
            const $n: usize = 1;
            // SAFETY: batch - j < LANES, and the instruction set is available (the kernel's
            // contract).
            let $lanes = Lanes::<$S>::First(unsafe { <$S as Simd>::first(batch - $j) });
            $body
        }
    }};
}

isa_entry_points!(pub(super) fn spmm_rows<I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    relu: bool,
));
isa_entry_points!(pub(super) fn spmm_t_cols<I: ColIndex>(
    w: CsrRef<I>,
    cols: Range<usize>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
));
isa_entry_points!(pub(super) fn conv2d_direct<I: ColIndex>(
    conv: &Conv2d<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
));

/// See `conv2d::direct`, with [`axpy`] as its inner loop.
///
/// # Safety
/// `S`'s instruction set available.
#[inline(always)]
unsafe fn conv2d_direct<S: Simd, I: ColIndex>(
    conv: &Conv2d<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
) {
    // SAFETY: the instruction set is available (this function's contract).
    unsafe { conv2d::direct::<I, S>(conv, x, y, batch, act) }
}

/// See `portable::spmm_rows`: rows `rows` of `act(bias + W x)`.
///
/// # Safety
/// `S`'s instruction set available; `w` validated; `x.len() == w.cols() * batch`,
/// `y.len() == rows.len() * batch`, `rows` within `w`, `batch > 0`.
#[inline(always)]
unsafe fn spmm_rows<S: Simd, I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    relu: bool,
) {
    debug_assert!(x.len() == w.cols() * batch && y.len() == rows.len() * batch);
    if batch == 1 {
        // SAFETY: forwarded contract.
        return unsafe { spmv_rows::<S, I>(w, rows, bias, x, y, relu) };
    }
    // Rows go in pairs: a block of up to 4 registers then runs two rows' independent chains
    // of fused multiply-adds side by side (a tile of 32 examples is 2 AVX-512 registers, whose
    // one chain per register would wait on the FMA latency). Each row still sums its
    // nonzeros in order, so the results equal those of one row at a time bit for bit.
    for (pair, ys) in y.chunks_mut(2 * batch).enumerate() {
        let r = rows.start + 2 * pair;
        let bias_of = |r: usize| bias.map_or(0.0, |b| b[r]);
        let out = ys.as_mut_ptr();
        // SAFETY: every column index c < cols, so x[c * batch + j ..] plus the lanes read
        // stays below cols * batch = x.len(); the lanes written lie inside the batch entries
        // of the row's output, inside ys.
        if ys.len() == 2 * batch {
            let ranges = [w.row_range(r), w.row_range(r + 1)];
            // SAFETY: as above; the second row's output starts batch entries into ys.
            let outs = [out, unsafe { out.add(batch) }];
            let b = [bias_of(r), bias_of(r + 1)];
            unsafe { rows_all_blocks::<S, I, 2>(w, &ranges, x, batch, &b, relu, outs) };
        } else {
            let (ranges, b) = ([w.row_range(r)], [bias_of(r)]);
            unsafe { rows_all_blocks::<S, I, 1>(w, &ranges, x, batch, &b, relu, [out]) };
        }
    }
}

/// Every example of one or two rows: the blocks of `S`'s registers, then the narrower rest.
///
/// # Safety
/// As [`row_blocks`], for all `batch` examples.
#[inline(always)]
unsafe fn rows_all_blocks<S: Simd, I: ColIndex, const R: usize>(
    w: CsrRef<I>,
    ranges: &[Range<usize>; R],
    x: &[f32],
    batch: usize,
    bias: &[f32; R],
    relu: bool,
    outs: [*mut f32; R],
) {
    let wide = S::wide_part(batch);
    // SAFETY: the caller's contract, for each block of examples.
    for_each_block!(S, 0, wide, |j, N, lanes| {
        unsafe { row_blocks::<S, N, I, R>(w, ranges, x, batch, j, lanes, bias, relu, outs) };
    });
    for_each_block!(S::Narrow, wide, batch, |j, N, lanes| {
        unsafe {
            row_blocks::<S::Narrow, N, I, R>(w, ranges, x, batch, j, lanes, bias, relu, outs)
        };
    });
}

/// Examples `j..j + LANES * N` (only the lanes `lanes` selects) of one or two rows (their
/// nonzeros `ranges`, outputs `outs`). Two rows of up to 4 registers each are interleaved over
/// their common length, then each finishes alone; wider blocks already keep enough chains in
/// flight and go one row after the other (16 accumulators would not fit AVX2's registers).
///
/// # Safety
/// As [`spmm_rows`]; each range one row's nonzeros, each output the row's `batch` entries.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_blocks<S: Simd, const N: usize, I: ColIndex, const R: usize>(
    w: CsrRef<I>,
    ranges: &[Range<usize>; R],
    x: &[f32],
    batch: usize,
    j: usize,
    lanes: Lanes<S>,
    bias: &[f32; R],
    relu: bool,
    outs: [*mut f32; R],
) {
    let xj = &x[j..];
    // SAFETY (all): the instruction set is available; k < nnz (validated indptr); the column
    // index c < cols and the selected lanes of the N registers from x[c * batch + j] lie
    // inside x; the selected lanes of out[j + LANES * n ..] lie inside the row's output.
    unsafe {
        if R == 2 && N <= 4 {
            let mut acc = [[S::splat(bias[0]); N], [S::splat(bias[R - 1]); N]];
            let common = ranges[0].len().min(ranges[R - 1].len());
            for k in 0..common {
                add_nonzero(w, ranges[0].start + k, xj, batch, lanes, &mut acc[0]);
                add_nonzero(w, ranges[R - 1].start + k, xj, batch, lanes, &mut acc[1]);
            }
            for (range, a) in [&ranges[0], &ranges[R - 1]].into_iter().zip(&mut acc) {
                for k in range.start + common..range.end {
                    add_nonzero(w, k, xj, batch, lanes, a);
                }
            }
            store_block::<S, N>(&acc[0], lanes, relu, outs[0].add(j));
            store_block::<S, N>(&acc[1], lanes, relu, outs[R - 1].add(j));
        } else {
            for ((range, &b), out) in ranges.iter().zip(bias).zip(outs) {
                let mut acc = [S::splat(b); N];
                for k in range.clone() {
                    add_nonzero(w, k, xj, batch, lanes, &mut acc);
                }
                store_block::<S, N>(&acc, lanes, relu, out.add(j));
            }
        }
    }
}

/// `acc += W[., k] * x[c_k, j..]` over `N` registers: the nonzero `k`'s value times the
/// selected lanes of its column's examples (`xj` is `x` from example `j`).
///
/// # Safety
/// The instruction set available; `k < nnz`; the selected lanes of the `N` registers from
/// `xj[c_k * batch]` readable.
#[inline(always)]
unsafe fn add_nonzero<S: Simd, const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    k: usize,
    xj: &[f32],
    batch: usize,
    lanes: Lanes<S>,
    acc: &mut [S::F32; N],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let v = S::splat(*w.values().as_ptr().add(k));
        let xr = xj.as_ptr().add((*w.indices().as_ptr().add(k)).to_usize() * batch);
        for (n, a) in acc.iter_mut().enumerate() {
            *a = S::fmadd(v, lanes.load(xr.add(n * S::LANES)), *a);
        }
    }
}

/// Stores `N` registers of sums (ReLU applied if asked) at `out`, the lanes `lanes` selects.
///
/// # Safety
/// The instruction set available; the selected lanes from `out` writable.
#[inline(always)]
unsafe fn store_block<S: Simd, const N: usize>(
    acc: &[S::F32; N],
    lanes: Lanes<S>,
    relu: bool,
    out: *mut f32,
) {
    for (n, a) in acc.iter().enumerate() {
        let a = if relu { S::relu(*a) } else { *a };
        // SAFETY: the caller's contract.
        unsafe { lanes.store(out.add(n * S::LANES), a) };
    }
}

/// Batch 1: `y[i] = act(bias + row_sum(nonzeros of row i))` for the rows `rows`.
///
/// # Safety
/// `w` validated; `y.len() == rows.len()`, `rows` within `w`; `row_sum` sound for any
/// range of one row's nonzeros.
#[inline(always)]
unsafe fn spmv_rows_by<I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    relu: bool,
    row_sum: impl Fn(Range<usize>) -> f32,
) {
    let (indptr, y) = (&w.indptr()[rows.start..=rows.end], &mut y[..rows.len()]);
    let bias = bias.map(|b| &b[rows.clone()]);
    // SAFETY: i < y.len() = rows.len(), so indptr (rows.len() + 1 entries) and bias
    // (rows.len()) have entries i and i + 1. Checked indexing here cost 4 % of a LeNet-300-100
    // pass at batch 1.
    unsafe {
        for i in 0..y.len() {
            let range = *indptr.get_unchecked(i) as usize..*indptr.get_unchecked(i + 1) as usize;
            let mut sum = row_sum(range);
            if let Some(b) = bias {
                sum += *b.get_unchecked(i);
            }
            *y.get_unchecked_mut(i) = if relu { sum.max(0.0) } else { sum };
        }
    }
}

/// Batch 1. With AVX2, scalar fused multiply-adds ([`scalar_row`]): on Zen 3 they beat an
/// 8-lane gather (one element per cycle) because each product needs only three loads (index,
/// value, `x`) and the core issues three per cycle. With AVX-512 on a CPU whose gathers pay
/// ([`Isa::gathers_pay`]: Intel's), rows of [`GATHER_MIN`] nonzeros or more gather 16 inputs
/// at a time ([`gather_row`]); shorter rows, and columns past the gather's i32 offsets, stay
/// scalar, as does every row on AMD's AVX-512 cores.
///
/// # Safety
/// `S`'s instruction set (with FMA) available; `w` validated; `x.len() == w.cols()`,
/// `y.len() == rows.len()`, `rows` within `w`.
#[inline(always)]
unsafe fn spmv_rows<S: Simd, I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    relu: bool,
) {
    let gathers = S::LANES == 16 && Isa::Avx512.gathers_pay() && w.cols() <= i32::MAX as usize;
    // SAFETY: the caller's contract; each range is one row's nonzeros; gathers only with
    // 16-lane registers, that is with AVX-512.
    let row_sum = |range: Range<usize>| unsafe {
        if gathers && range.len() >= GATHER_MIN {
            gather_row(w, range, x)
        } else {
            scalar_row(w, range, x)
        }
    };
    // SAFETY: the caller's contract.
    unsafe { spmv_rows_by(w, rows, bias, y, relu, row_sum) }
}

/// The sum of `W[r, k] x[k]` over the nonzeros `range` of one row, in 4 running sums.
///
/// # Safety
/// FMA available; `range` within `w`'s nonzeros, `x.len() == w.cols()`.
#[inline(always)]
unsafe fn scalar_row<I: ColIndex>(w: CsrRef<I>, range: Range<usize>, x: &[f32]) -> f32 {
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    // SAFETY (all reads): k < range.end <= nnz keeps index and value reads inside their
    // slices, and every column index is below cols = x.len().
    super::four_sum_row(range, |k| unsafe { (*val.add(k), *xp.add((*idx.add(k)).to_usize())) })
}

/// Rows with fewer nonzeros than this take [`scalar_row`] in [`spmv_rows`] on AVX-512. One
/// thread, Intel Xeon, scalar against gathered (`examples/spmm_ab.rs ROWS COLS DENSITY 1 0
/// 1`): 300 x 784 at 2 %, 16 a row, 1.5 against 1.6 us; 100 x 300 at 7 %, 21 a row, 0.6 either
/// way; 300 x 784 at 3.5 %, 27 a row, 2.0 either way; 1000 x 1000 at 3.2 %, 32 a row, 8.2 against 7.3;
/// 500 x 800 at 8 %, 64 a row, 7.7 against 6.4; 4096 x 4096 at 5 %, 232 against 178. The
/// threshold sits low because the branch on each row's length mispredicts wherever a layer's
/// rows straddle it: at 32, a LeNet-300-100 ticket's fc1 (27 a row on average) took 2.52
/// against 2.06 us. Before whole groups of 16 were gathered unmasked, rows paid from about 48.
const GATHER_MIN: usize = 16;

/// The sum of `W[r, k] x[k]` over the nonzeros `range` of one row, 16 at a time: their
/// inputs gathered into one register, one register of sums reduced at the end. Whole groups
/// of 16 load and gather unmasked, the row's last `< 16` masked: masked gathers for every
/// group took LeNet-5's fc1 (500 x 800 at 8 %, 64 a row) 7.5 us against 6.3.
///
/// # Safety
/// AVX-512 F, BW and VL available; `range` within `w`'s nonzeros, `x.len() == w.cols()`,
/// `w.cols() <= i32::MAX`.
#[inline(always)]
unsafe fn gather_row<I: ColIndex>(w: CsrRef<I>, range: Range<usize>, x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    /// Column indices `p[..16]` (only the lanes of `m`) as i32 offsets.
    #[inline(always)]
    unsafe fn offsets<I: ColIndex>(p: *const I, m: __mmask16) -> __m512i {
        // SAFETY: the selected lanes from p are readable (the caller's contract); u16 and u32
        // are the only column index types.
        unsafe {
            if std::mem::size_of::<I>() == 2 {
                _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p.cast()))
            } else {
                _mm512_maskz_loadu_epi32(m, p.cast())
            }
        }
    }
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    // SAFETY (all reads): the range is one row's nonzeros (below nnz); masked-off lanes are
    // neither loaded nor gathered, and every gathered offset is a column index below
    // cols = x.len() <= i32::MAX.
    unsafe {
        let mut acc = _mm512_setzero_ps();
        let mut k = range.start;
        while k + 16 <= range.end {
            let at = if std::mem::size_of::<I>() == 2 {
                _mm512_cvtepu16_epi32(_mm256_loadu_si256(idx.add(k).cast()))
            } else {
                _mm512_loadu_si512(idx.add(k).cast())
            };
            let xv = _mm512_i32gather_ps::<4>(at, xp);
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(val.add(k)), xv, acc);
            k += 16;
        }
        if k < range.end {
            let m = ((1u32 << (range.end - k)) - 1) as __mmask16;
            let xv =
                _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, offsets(idx.add(k), m), xp);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, val.add(k)), xv, acc);
        }
        _mm512_reduce_add_ps(acc)
    }
}

/// See `portable::spmm_t_cols`: columns `cols` of `W^T x`, added into `y`.
///
/// # Safety
/// `S`'s instruction set available; `w` validated; `x.len() == w.rows() * batch`,
/// `y.len() == cols.len() * batch`, `cols` within `w.cols()`, `batch > 0`.
#[inline(always)]
unsafe fn spmm_t_cols<S: Simd, I: ColIndex>(
    w: CsrRef<I>,
    cols: Range<usize>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
) {
    debug_assert!(x.len() == w.rows() * batch && y.len() == cols.len() * batch);
    for (r, xr) in x.chunks_exact(batch).enumerate() {
        let part = row_part(w, r, &cols);
        if part.is_empty() {
            continue;
        }
        // SAFETY: row_part only yields column indices in cols, so (c - cols.start) * batch + j
        // plus the lanes touched stays inside y; the lanes read lie inside xr (batch entries).
        let wide = S::wide_part(batch);
        for_each_block!(S, 0, wide, |j, N, lanes| {
            unsafe {
                scatter_block::<S, N, I>(w, part.clone(), cols.start, xr, batch, j, lanes, y)
            };
        });
        for_each_block!(S::Narrow, wide, batch, |j, N, lanes| {
            unsafe {
                scatter_block::<S::Narrow, N, I>(
                    w,
                    part.clone(),
                    cols.start,
                    xr,
                    batch,
                    j,
                    lanes,
                    y,
                )
            };
        });
    }
}

/// `y[c][j..j + LANES * N] += W[r, c] * x[r][j..j + LANES * N]` for the nonzeros `part` of
/// row `r`, with `x[r][j..]` held in registers (only the lanes `lanes` selects).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scatter_block<S: Simd, const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    part: Range<usize>,
    col0: usize,
    xr: &[f32],
    batch: usize,
    j: usize,
    lanes: Lanes<S>,
    y: &mut [f32],
) {
    let (idx, val, yp) = (w.indices().as_ptr(), w.values().as_ptr(), y.as_mut_ptr());
    // SAFETY (all): the instruction set is available; the selected lanes from xr[j + LANES n]
    // lie inside xr, and the caller's contract keeps every selected lane inside y.
    unsafe {
        let mut xv = [S::splat(0.0); N];
        for (n, v) in xv.iter_mut().enumerate() {
            *v = lanes.load(xr.as_ptr().add(j + n * S::LANES));
        }
        for k in part {
            let v = S::splat(*val.add(k));
            let yc = yp.add(((*idx.add(k)).to_usize() - col0) * batch + j);
            for (n, x) in xv.iter().enumerate() {
                let p = yc.add(n * S::LANES);
                lanes.store(p, S::fmadd(v, *x, lanes.load(p)));
            }
        }
    }
}

impl<S: Simd> conv2d::Axpy for S {
    #[inline(always)]
    unsafe fn axpy(v: f32, x: &[f32], y: &mut [f32]) {
        // SAFETY: the trait's contract.
        unsafe { axpy::<S>(v, x, y) }
    }
}

/// `y += v * x` over two slices of equal length, 4 registers per step, then 1, then a
/// masked rest.
///
/// # Safety
/// The instruction set available.
#[inline(always)]
unsafe fn axpy<S: Simd>(v: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let lanes = S::LANES;
    let mut i = 0;
    // SAFETY (all accesses): every lane read or written is below n, inside both slices.
    unsafe {
        let vv = S::splat(v);
        while i + 4 * lanes <= n {
            for u in 0..4 {
                let p = yp.add(i + u * lanes);
                S::store(p, S::fmadd(vv, S::load(xp.add(i + u * lanes)), S::load(p)));
            }
            i += 4 * lanes;
        }
        while i + lanes <= n {
            let p = yp.add(i);
            S::store(p, S::fmadd(vv, S::load(xp.add(i)), S::load(p)));
            i += lanes;
        }
        if i < n {
            let part = Lanes::<S>::First(S::first(n - i));
            let p = yp.add(i);
            part.store(p, S::fmadd(vv, part.load(xp.add(i)), part.load(p)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{CsrParts, Random};

    /// Both row sums of row `r`, from inside a function compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
    unsafe fn gathered_and_scalar<I: ColIndex>(w: CsrRef<I>, r: usize, x: &[f32]) -> (f32, f32) {
        let range = w.indptr()[r] as usize..w.indptr()[r + 1] as usize;
        // SAFETY: AVX-512 and FMA are enabled; the range is row r's, x fits w.
        unsafe { (gather_row(w, range.clone(), x), scalar_row(w, range, x)) }
    }

    /// The gathered batch-1 rows run only where gathers pay ([`Isa::gathers_pay`]), so they
    /// are tested directly on every AVX-512 CPU: rows of 0 to about 400 nonzeros (whole
    /// groups of 16 and masked rests), 16- and 32-bit column indices, against the f64 sum.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gathered_rows_match_the_f64_sum() {
        if !Isa::available().contains(&Isa::Avx512) {
            return;
        }
        let mut rng = Random::new(9);
        for density in [0.0, 0.01, 0.04, 0.12, 0.5, 1.0] {
            let w = CsrParts::random(16, 400, density, &mut rng);
            let idx = w.indices_u16();
            let csr = CsrRef::new(w.rows, w.cols, &w.indptr, &idx, &w.values).unwrap();
            let x = rng.vec(w.cols, -1.0, 1.0);
            for r in 0..w.rows {
                let range = w.indptr[r] as usize..w.indptr[r + 1] as usize;
                let terms = range.map(|k| w.values[k] as f64 * x[idx[k] as usize] as f64);
                let (want, mag) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                // SAFETY: AVX-512 is available (checked above).
                let sums = unsafe {
                    [gathered_and_scalar(csr, r, &x), gathered_and_scalar(w.csr(), r, &x)]
                };
                for (got, how) in sums.iter().flat_map(|&(g, s)| [(g, "gathered"), (s, "scalar")]) {
                    let tol = 1e-5 * (mag + 1e-3);
                    assert!((got as f64 - want).abs() <= tol, "{how} row {r} at {density}");
                }
            }
        }
    }
}
