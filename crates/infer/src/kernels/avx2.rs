//! The row kernels with AVX2 + FMA, selected at run time by `Isa::detect`.
//!
//! Batch 1 runs scalar fused multiply-adds (faster than gathers, see `spmv_rows`); wider
//! batches keep up to 64 examples of a row in 8 registers while they walk the row's nonzeros,
//! so each nonzero costs one broadcast and 8 fused multiply-adds reading `x` from memory.
//!
//! Every function here trusts what a validated [`CsrRef`] guarantees (`indptr` within
//! `indices`, each column index below `cols`) and the slice lengths the dispatcher asserted;
//! those make the unchecked pointer reads below stay in bounds.

use super::row_part;
use crate::csr::{ColIndex, CsrRef};
use std::arch::x86_64::*;
use std::ops::Range;

/// `f32` lanes of one register.
const LANES: usize = 8;
/// Registers of accumulators per block of examples (64 examples).
const BLOCK: usize = 8;

/// `-1` in the first `n` lanes (`n <= 8`), for masked loads and stores.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn first_lanes(n: usize) -> __m256i {
    const TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 - n is at most 8, so the 8 lanes read lie inside TABLE.
    unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(LANES - n).cast()) }
}

/// See `portable::spmm_rows`.
///
/// # Safety
/// AVX2 and FMA available; `w` validated; `x.len() == w.cols() * batch`,
/// `y.len() == rows.len() * batch`, `rows` within `w`, `batch > 0`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn spmm_rows<I: ColIndex>(
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
        return unsafe { spmv_rows(w, rows, bias, x, y, relu) };
    }
    for (r, yr) in rows.zip(y.chunks_exact_mut(batch)) {
        let range = w.row_range(r);
        let b = bias.map_or(0.0, |b| b[r]);
        let mut j = 0;
        // SAFETY (all three calls): every column index c < cols, so x[c * batch + j ..] plus the
        // lanes read stays below cols * batch = x.len() (masked lanes are not read); the
        // stores stay inside yr, which has batch entries.
        while j + BLOCK * LANES <= batch {
            unsafe { row_block::<BLOCK, I>(w, range.clone(), x, batch, j, b, relu, yr) };
            j += BLOCK * LANES;
        }
        // What is left is below 64 examples: one pass each for 32, 16 and 8 of them.
        if j + 4 * LANES <= batch {
            unsafe { row_block::<4, I>(w, range.clone(), x, batch, j, b, relu, yr) };
            j += 4 * LANES;
        }
        if j + 2 * LANES <= batch {
            unsafe { row_block::<2, I>(w, range.clone(), x, batch, j, b, relu, yr) };
            j += 2 * LANES;
        }
        if j + LANES <= batch {
            unsafe { row_block::<1, I>(w, range.clone(), x, batch, j, b, relu, yr) };
            j += LANES;
        }
        if j < batch {
            unsafe { row_masked(w, range, x, batch, j, b, relu, yr) };
        }
    }
}

/// Examples `j..j + 8 * N` of one row.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    range: Range<usize>,
    x: &[f32],
    batch: usize,
    j: usize,
    bias: f32,
    relu: bool,
    yr: &mut [f32],
) {
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    let mut acc = [_mm256_set1_ps(bias); N];
    for k in range {
        // SAFETY: k < nnz (validated indptr); the column index c < cols and j + 8N <= batch
        // keep the N loads inside x.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let xr = xp.add((*idx.add(k)).to_usize() * batch + j);
            for (n, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr.add(n * LANES)), *a);
            }
        }
    }
    let out = &mut yr[j..j + N * LANES];
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(LANES)) {
        let a = if relu { _mm256_max_ps(*a, _mm256_setzero_ps()) } else { *a };
        // SAFETY: o has exactly 8 entries.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), a) };
    }
}

/// The last `batch - j < 8` examples of one row, with masked loads and stores.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_masked<I: ColIndex>(
    w: CsrRef<I>,
    range: Range<usize>,
    x: &[f32],
    batch: usize,
    j: usize,
    bias: f32,
    relu: bool,
    yr: &mut [f32],
) {
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    // SAFETY: batch - j <= 8.
    let mask = unsafe { first_lanes(batch - j) };
    let mut acc = _mm256_set1_ps(bias);
    for k in range {
        // SAFETY: as in row_block; the masked load reads only the batch - j lanes that exist.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let xr = xp.add((*idx.add(k)).to_usize() * batch + j);
            acc = _mm256_fmadd_ps(v, _mm256_maskload_ps(xr, mask), acc);
        }
    }
    if relu {
        acc = _mm256_max_ps(acc, _mm256_setzero_ps());
    }
    // SAFETY: only the batch - j lanes inside yr are written.
    unsafe { _mm256_maskstore_ps(yr.as_mut_ptr().add(j), mask, acc) };
}

/// Batch 1: scalar fused multiply-adds into 4 independent sums. On Zen 3 this beats an
/// 8-lane gather (one element per cycle) because each product needs only three loads (index,
/// value, `x`) and the core issues three per cycle.
#[target_feature(enable = "avx2,fma")]
unsafe fn spmv_rows<I: ColIndex>(
    w: CsrRef<I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    relu: bool,
) {
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    let (indptr, y) = (&w.indptr()[rows.start..=rows.end], &mut y[..rows.len()]);
    let bias = bias.map(|b| &b[rows.clone()]);
    // SAFETY (all reads): indptr has rows.len() + 1 entries; k < indptr[i + 1] <= nnz keeps
    // index and value reads inside their slices, and every column index is below
    // cols = x.len(); i < y.len() = bias.len().
    unsafe {
        let term =
            |k: usize, acc: f32| (*val.add(k)).mul_add(*xp.add((*idx.add(k)).to_usize()), acc);
        for i in 0..y.len() {
            let (start, end) =
                (*indptr.get_unchecked(i) as usize, *indptr.get_unchecked(i + 1) as usize);
            let mut acc = [0.0f32; 4];
            let mut k = start;
            while k + 4 <= end {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = term(k + j, *a);
                }
                k += 4;
            }
            let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            while k < end {
                sum = term(k, sum);
                k += 1;
            }
            if let Some(b) = bias {
                sum += *b.get_unchecked(i);
            }
            *y.get_unchecked_mut(i) = if relu { sum.max(0.0) } else { sum };
        }
    }
}

/// See `portable::spmm_t_cols`.
///
/// # Safety
/// AVX2 and FMA available; `w` validated; `x.len() == w.rows() * batch`,
/// `y.len() == cols.len() * batch`, `cols` within `w.cols()`, `batch > 0`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn spmm_t_cols<I: ColIndex>(
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
        let mut j = 0;
        // SAFETY (all three calls): row_part only yields column indices in cols, so
        // (c - cols.start) * batch + j plus the lanes touched stays inside y; xr has batch
        // entries.
        while j + BLOCK * LANES <= batch {
            unsafe { scatter_block::<BLOCK, I>(w, part.clone(), cols.start, xr, batch, j, y) };
            j += BLOCK * LANES;
        }
        if j + 4 * LANES <= batch {
            unsafe { scatter_block::<4, I>(w, part.clone(), cols.start, xr, batch, j, y) };
            j += 4 * LANES;
        }
        if j + 2 * LANES <= batch {
            unsafe { scatter_block::<2, I>(w, part.clone(), cols.start, xr, batch, j, y) };
            j += 2 * LANES;
        }
        if j + LANES <= batch {
            unsafe { scatter_block::<1, I>(w, part.clone(), cols.start, xr, batch, j, y) };
            j += LANES;
        }
        if j < batch {
            unsafe { scatter_masked(w, part, cols.start, xr, batch, j, y) };
        }
    }
}

/// `y[c][j..j + 8N] += W[r, c] * x[r][j..j + 8N]` for the nonzeros `part` of row `r`, with
/// `x[r][j..j + 8N]` held in registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_block<const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    part: Range<usize>,
    col0: usize,
    xr: &[f32],
    batch: usize,
    j: usize,
    y: &mut [f32],
) {
    let (idx, val, yp) = (w.indices().as_ptr(), w.values().as_ptr(), y.as_mut_ptr());
    let mut xv = [_mm256_setzero_ps(); N];
    for (n, v) in xv.iter_mut().enumerate() {
        // SAFETY: j + 8N <= batch = xr.len().
        *v = unsafe { _mm256_loadu_ps(xr.as_ptr().add(j + n * LANES)) };
    }
    for k in part {
        // SAFETY: the caller's contract keeps every touched lane inside y.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let yc = yp.add(((*idx.add(k)).to_usize() - col0) * batch + j);
            for (n, x) in xv.iter().enumerate() {
                let p = yc.add(n * LANES);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(v, *x, _mm256_loadu_ps(p)));
            }
        }
    }
}

/// The last `batch - j < 8` examples of [`scatter_block`], masked.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_masked<I: ColIndex>(
    w: CsrRef<I>,
    part: Range<usize>,
    col0: usize,
    xr: &[f32],
    batch: usize,
    j: usize,
    y: &mut [f32],
) {
    let (idx, val, yp) = (w.indices().as_ptr(), w.values().as_ptr(), y.as_mut_ptr());
    // SAFETY: batch - j <= 8.
    let mask = unsafe { first_lanes(batch - j) };
    // SAFETY: only the batch - j lanes inside xr are read.
    let xv = unsafe { _mm256_maskload_ps(xr.as_ptr().add(j), mask) };
    for k in part {
        // SAFETY: only the batch - j lanes of row c inside y are read and written.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let p = yp.add(((*idx.add(k)).to_usize() - col0) * batch + j);
            _mm256_maskstore_ps(p, mask, _mm256_fmadd_ps(v, xv, _mm256_maskload_ps(p, mask)));
        }
    }
}
