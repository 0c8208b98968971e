//! The row kernels with AVX2 + FMA, selected at run time by `Isa::detect`.
//!
//! Batch 1 runs scalar fused multiply-adds (faster than gathers, see `spmv_rows`); wider
//! batches keep up to 64 examples of a row in 8 registers while they walk the row's nonzeros,
//! so each nonzero costs one broadcast and 8 fused multiply-adds reading `x` from memory.
//!
//! Every function here trusts what a validated [`CsrRef`] guarantees (`indptr` within
//! `indices`, each column index below `cols`) and the slice lengths the dispatcher asserted;
//! those make the unchecked pointer reads below stay in bounds.

use super::conv2d::{self, Conv2d};
use super::{row_part, Activation};
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

/// Which lanes of a register a block reads and writes: all 8, or only the first few (the
/// batch's last `< 8` examples, with masked loads and stores that touch nothing beyond).
#[derive(Clone, Copy)]
enum Lanes {
    All,
    First(__m256i),
}

impl Lanes {
    /// # Safety
    /// AVX2 available; the selected lanes from `p` readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Lanes::All => _mm256_loadu_ps(p),
                Lanes::First(mask) => _mm256_maskload_ps(p, mask),
            }
        }
    }

    /// # Safety
    /// AVX2 available; the selected lanes from `p` writable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Lanes::All => _mm256_storeu_ps(p, v),
                Lanes::First(mask) => _mm256_maskstore_ps(p, mask, v),
            }
        }
    }
}

/// Runs `$body` for consecutive blocks of the batch: `$j` is the first example of the block,
/// `$n` (a const) its number of registers, `$lanes` which lanes they use. Blocks of 64
/// examples first, then one each of 32, 16 and 8 while they fit, then a masked rest.
macro_rules! for_each_block {
    ($batch:expr, |$j:ident, $n:ident, $lanes:ident| $body:block) => {{
        let batch: usize = $batch;
        let mut $j = 0;
        while $j + BLOCK * LANES <= batch {
            {
                const $n: usize = BLOCK;
                let $lanes = Lanes::All;
                $body
            }
            $j += BLOCK * LANES;
        }
        if $j + 4 * LANES <= batch {
            {
                const $n: usize = 4;
                let $lanes = Lanes::All;
                $body
            }
            $j += 4 * LANES;
        }
        if $j + 2 * LANES <= batch {
            {
                const $n: usize = 2;
                let $lanes = Lanes::All;
                $body
            }
            $j += 2 * LANES;
        }
        if $j + 1 * LANES <= batch {
            {
                const $n: usize = 1;
                let $lanes = Lanes::All;
                $body
            }
            $j += 1 * LANES;
        }
        if $j < batch {
            const $n: usize = 1;
            // SAFETY: batch - j < 8.
            let $lanes = Lanes::First(unsafe { first_lanes(batch - $j) });
            $body
        }
    }};
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
        // SAFETY: every column index c < cols, so x[c * batch + j ..] plus the lanes read
        // stays below cols * batch = x.len(); the lanes written lie inside yr (batch entries).
        for_each_block!(batch, |j, N, lanes| {
            unsafe { row_block::<N, I>(w, range.clone(), x, batch, j, lanes, b, relu, yr) };
        });
    }
}

/// Examples `j..j + 8 * N` of one row (only the lanes `lanes` selects).
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    range: Range<usize>,
    x: &[f32],
    batch: usize,
    j: usize,
    lanes: Lanes,
    bias: f32,
    relu: bool,
    yr: &mut [f32],
) {
    let (idx, val, xp) = (w.indices().as_ptr(), w.values().as_ptr(), x.as_ptr());
    let mut acc = [_mm256_set1_ps(bias); N];
    for k in range {
        // SAFETY: k < nnz (validated indptr); the column index c < cols and the selected
        // lanes of the N registers from x[c * batch + j] lie inside x.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let xr = xp.add((*idx.add(k)).to_usize() * batch + j);
            for (n, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(v, lanes.load(xr.add(n * LANES)), *a);
            }
        }
    }
    for (n, a) in acc.iter().enumerate() {
        let a = if relu { _mm256_max_ps(*a, _mm256_setzero_ps()) } else { *a };
        // SAFETY: the selected lanes of yr[j + 8n ..] lie inside yr.
        unsafe { lanes.store(yr.as_mut_ptr().add(j + n * LANES), a) };
    }
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
        // SAFETY: row_part only yields column indices in cols, so (c - cols.start) * batch + j
        // plus the lanes touched stays inside y; the lanes read lie inside xr (batch entries).
        for_each_block!(batch, |j, N, lanes| {
            unsafe { scatter_block::<N, I>(w, part.clone(), cols.start, xr, batch, j, lanes, y) };
        });
    }
}

/// `y[c][j..j + 8N] += W[r, c] * x[r][j..j + 8N]` for the nonzeros `part` of row `r`, with
/// `x[r][j..j + 8N]` held in registers (only the lanes `lanes` selects).
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn scatter_block<const N: usize, I: ColIndex>(
    w: CsrRef<I>,
    part: Range<usize>,
    col0: usize,
    xr: &[f32],
    batch: usize,
    j: usize,
    lanes: Lanes,
    y: &mut [f32],
) {
    let (idx, val, yp) = (w.indices().as_ptr(), w.values().as_ptr(), y.as_mut_ptr());
    let mut xv = [_mm256_setzero_ps(); N];
    for (n, v) in xv.iter_mut().enumerate() {
        // SAFETY: the selected lanes from xr[j + 8n] lie inside xr.
        *v = unsafe { lanes.load(xr.as_ptr().add(j + n * LANES)) };
    }
    for k in part {
        // SAFETY: the caller's contract keeps every selected lane inside y.
        unsafe {
            let v = _mm256_broadcast_ss(&*val.add(k));
            let yc = yp.add(((*idx.add(k)).to_usize() - col0) * batch + j);
            for (n, x) in xv.iter().enumerate() {
                let p = yc.add(n * LANES);
                lanes.store(p, _mm256_fmadd_ps(v, *x, lanes.load(p)));
            }
        }
    }
}

/// See `conv2d::direct`, with [`axpy`] as its inner loop.
///
/// # Safety
/// AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn conv2d_direct<I: ColIndex>(
    conv: &Conv2d<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
) {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    conv2d::direct(conv, x, y, batch, act, |v, x, y| unsafe { axpy(v, x, y) });
}

/// `y += v * x` over two slices of equal length, 32 lanes per step, then 8, then a masked
/// rest.
///
/// # Safety
/// AVX2 and FMA available.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy(v: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let vv = _mm256_set1_ps(v);
    let mut i = 0;
    // SAFETY (all accesses): every lane read or written is below n, inside both slices.
    unsafe {
        while i + 4 * LANES <= n {
            for u in 0..4 {
                let p = yp.add(i + u * LANES);
                let s =
                    _mm256_fmadd_ps(vv, _mm256_loadu_ps(xp.add(i + u * LANES)), _mm256_loadu_ps(p));
                _mm256_storeu_ps(p, s);
            }
            i += 4 * LANES;
        }
        while i + LANES <= n {
            let p = yp.add(i);
            _mm256_storeu_ps(
                p,
                _mm256_fmadd_ps(vv, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(p)),
            );
            i += LANES;
        }
        if i < n {
            let lanes = Lanes::First(first_lanes(n - i));
            let p = yp.add(i);
            lanes.store(p, _mm256_fmadd_ps(vv, lanes.load(xp.add(i)), lanes.load(p)));
        }
    }
}
