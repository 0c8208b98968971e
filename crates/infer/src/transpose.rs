//! Row-major `[rows][cols]` to `[cols][rows]`: between the `[batch][features]` layout of data
//! and the `[features][batch]` layout of the kernels. With AVX2, 8 x 8 blocks are transposed
//! in registers (8 loads, 24 shuffles, 8 stores); the edges are copied one by one.

use crate::kernels::Isa;
use rayon::prelude::*;
use std::ops::Range;
use ticket_core::Par;

/// Writes the transpose of `src` (`rows x cols`, row-major) into `dst` (`cols x rows`).
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_with(Isa::detect(), src, rows, cols, dst, rows);
}

/// Writes the transpose of `src` (`rows x cols`, row-major) into the first `rows` entries of
/// each of the `cols` rows of `dst`, `stride` apart; the entries past `rows` are not touched.
/// A batch padded to whole vectors this way keeps every row of an aligned buffer aligned.
pub fn transpose_into_stride(
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    stride: usize,
) {
    transpose_with(Isa::detect(), src, rows, cols, dst, stride);
}

/// As [`transpose_into_stride`] for rows that lie anywhere (each `cols` long): a training
/// batch read straight from its data set, with no copy into a `[batch][features]` buffer
/// first. Columns are split over `par`'s threads, so each reads its part of every row.
/// Panics when a row is not `cols` long or `dst` is not `cols * stride`.
pub fn gather_transpose(rows: &[&[f32]], cols: usize, dst: &mut [f32], stride: usize, par: Par) {
    gather_transpose_with(Isa::detect(), rows, cols, dst, stride, par);
}

/// Columns per piece of a parallel [`gather_transpose`] (a multiple of the block width).
const GATHER_COLUMNS: usize = 128;

pub(crate) fn gather_transpose_with(
    isa: Isa,
    rows: &[&[f32]],
    cols: usize,
    dst: &mut [f32],
    stride: usize,
    par: Par,
) {
    assert!(rows.iter().all(|r| r.len() == cols), "gather_transpose: a row is not {cols} long");
    assert!(stride >= rows.len(), "transpose: stride {stride} below {} rows", rows.len());
    assert_eq!(dst.len(), cols * stride, "transpose: destination length");
    if stride == 0 {
        return; // no rows
    }
    let row = Rows::Gathered(rows);
    let piece = |(i, dst): (usize, &mut [f32])| {
        let start = i * GATHER_COLUMNS;
        let columns = start..start + dst.len() / stride;
        // SAFETY: every row holds cols >= columns.end values (asserted above); dst holds
        // columns.len() rows of stride >= rows.len() entries.
        unsafe { transpose_rows(isa, &row, rows.len(), columns, dst, stride) }
    };
    if par.threads() > 1 && cols > GATHER_COLUMNS {
        dst.par_chunks_mut(GATHER_COLUMNS * stride).enumerate().for_each(piece);
    } else {
        piece((0, dst));
    }
}

pub(crate) fn transpose_with(
    isa: Isa,
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    stride: usize,
) {
    assert_eq!(src.len(), rows * cols, "transpose: source length");
    assert!(stride >= rows, "transpose: stride {stride} below {rows} rows");
    assert_eq!(dst.len(), cols * stride, "transpose: destination length");
    let row = Rows::Contiguous { src, cols };
    // SAFETY: src holds rows x cols values and dst cols rows of stride >= rows entries
    // (asserted).
    unsafe { transpose_rows(isa, &row, rows, 0..cols, dst, stride) }
}

/// Where the rows of a transpose lie.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// One after the other, `cols` apart.
    Contiguous { src: &'a [f32], cols: usize },
    /// Anywhere.
    Gathered(&'a [&'a [f32]]),
}

impl Rows<'_> {
    /// The start of row `r`.
    ///
    /// # Safety
    /// `r` is a row of the transpose (`r * cols` inside `src` for contiguous rows).
    #[inline(always)]
    unsafe fn start(&self, r: usize) -> *const f32 {
        match *self {
            // SAFETY: the caller's contract.
            Rows::Contiguous { src, cols } => unsafe { src.as_ptr().add(r * cols) },
            Rows::Gathered(rows) => rows[r].as_ptr(),
        }
    }
}

/// Columns `columns` of rows `row(0..rows)` into `dst`, whose row `c - columns.start` gets
/// column `c`.
///
/// # Safety
/// Each row `r < rows` holds at least `columns.end` floats;
/// `dst.len() == columns.len() * stride` and `stride >= rows`.
unsafe fn transpose_rows(
    isa: Isa,
    row: &Rows,
    rows: usize,
    columns: Range<usize>,
    dst: &mut [f32],
    stride: usize,
) {
    let (r8, c8) = match isa {
        Isa::Portable => (0, columns.start),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 => {
            // SAFETY: AVX2 is present; the caller's contract.
            unsafe { avx2_blocks(row, rows, columns.clone(), dst, stride) };
            (rows / 8 * 8, columns.start + columns.len() / 8 * 8)
        }
    };
    // SAFETY (both): the caller's contract.
    unsafe {
        copy(row, 0..r8, c8..columns.end, (dst, stride), columns.start);
        copy(row, r8..rows, columns.clone(), (dst, stride), columns.start);
    }
}

/// Element by element, for the part of the matrix the blocks do not cover.
///
/// # Safety
/// As [`transpose_rows`], for these rows and columns.
unsafe fn copy(
    row: &Rows,
    rs: Range<usize>,
    cs: Range<usize>,
    (dst, stride): (&mut [f32], usize),
    first: usize,
) {
    for r in rs {
        // SAFETY: r is a row of the transpose (the caller's contract).
        let src = unsafe { row.start(r) };
        for c in cs.clone() {
            // SAFETY: c < columns.end (the caller's contract).
            dst[(c - first) * stride + r] = unsafe { *src.add(c) };
        }
    }
}

/// Transposes every full 8 x 8 block.
///
/// # Safety
/// AVX2 available; as [`transpose_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_blocks(
    row: &Rows,
    rows: usize,
    columns: Range<usize>,
    dst: &mut [f32],
    stride: usize,
) {
    let d = dst.as_mut_ptr();
    let r8 = rows / 8 * 8;
    let c8 = columns.start + columns.len() / 8 * 8;
    let first = columns.start;
    // SAFETY (as for every use of `row` below): r0 + 8 <= rows.
    let rows_at = |r0: usize| {
        let mut p = [std::ptr::null(); 8];
        for (i, p) in p.iter_mut().enumerate() {
            *p = unsafe { row.start(r0 + i) };
        }
        p
    };
    // The inner loop runs along the shorter side, so what one pass of it touches stays in
    // the first-level cache: a 32 x 784 tile took 6.6 us with row blocks outside (each pass
    // wrote 32 bytes into every one of 784 rows of `dst`) and 3.2 us with them inside, while
    // its 784 x 32 transpose took 3.3 us with row blocks outside and 5.0 inside (Intel Xeon).
    // SAFETY (both loops): r0 + 8 <= rows and c0 + 8 <= columns.end.
    if rows <= columns.len() {
        for c0 in (first..c8).step_by(8) {
            for r0 in (0..r8).step_by(8) {
                unsafe { block8(rows_at(r0), d, stride, (r0, c0 - first), c0) };
            }
        }
    } else {
        for r0 in (0..r8).step_by(8) {
            let src = rows_at(r0);
            for c0 in (first..c8).step_by(8) {
                unsafe { block8(src, d, stride, (r0, c0 - first), c0) };
            }
        }
    }
}

/// The 8 x 8 block of rows `src` at column `c` into `d` (rows of `stride`) at row `d0` and
/// entry `r0`, in registers: 8 loads, 24 shuffles, 8 stores.
///
/// # Safety
/// AVX2 available; each `src` row holds `c + 8` floats; `d` holds rows `d0..d0 + 8` of
/// `stride >= r0 + 8` entries.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block8(
    src: [*const f32; 8],
    d: *mut f32,
    stride: usize,
    (r0, d0): (usize, usize),
    c: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the 8 floats read from each row and the 8 rows of 8 written lie inside the
    // matrices (the caller's contract).
    unsafe {
        let row = |i: usize| _mm256_loadu_ps(src[i].add(c));
        let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
        let (a4, a5, a6, a7) = (row(4), row(5), row(6), row(7));
        let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
        let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
        let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
        let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = |i: usize, v: __m256| _mm256_storeu_ps(d.add((d0 + i) * stride + r0), v);
        out(0, _mm256_permute2f128_ps::<0x20>(s0, s4));
        out(1, _mm256_permute2f128_ps::<0x20>(s1, s5));
        out(2, _mm256_permute2f128_ps::<0x20>(s2, s6));
        out(3, _mm256_permute2f128_ps::<0x20>(s3, s7));
        out(4, _mm256_permute2f128_ps::<0x31>(s0, s4));
        out(5, _mm256_permute2f128_ps::<0x31>(s1, s5));
        out(6, _mm256_permute2f128_ps::<0x31>(s2, s6));
        out(7, _mm256_permute2f128_ps::<0x31>(s3, s7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows from anywhere, on one thread or split by columns, equal the contiguous transpose.
    #[test]
    fn gathered_rows_transpose_like_a_matrix() {
        for isa in Isa::available() {
            for (rows, cols) in [(60usize, 784), (9, 17), (64, 300), (1, 1), (16, 129)] {
                let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                // Every third row taken from a copy elsewhere, in a shuffled order.
                let copy = src.clone();
                let order: Vec<usize> = (0..rows).map(|r| (r * 7) % rows).collect();
                let picked: Vec<&[f32]> = order
                    .iter()
                    .map(|&r| {
                        let m = if r % 3 == 0 { &copy } else { &src };
                        &m[r * cols..(r + 1) * cols]
                    })
                    .collect();
                let shuffled: Vec<f32> =
                    order.iter().flat_map(|&r| src[r * cols..(r + 1) * cols].to_vec()).collect();
                let stride = rows.next_multiple_of(16);
                let mut want = vec![f32::NAN; cols * stride];
                transpose_with(isa, &shuffled, rows, cols, &mut want, stride);
                for par in [Par::Seq, Par::Rayon(2)] {
                    let mut got = vec![f32::NAN; cols * stride];
                    gather_transpose_with(isa, &picked, cols, &mut got, stride, par);
                    let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa:?} {rows}x{cols} {par:?}");
                }
            }
        }
    }

    #[test]
    fn transposes_odd_shapes_with_every_instruction_set() {
        for isa in Isa::available() {
            for (rows, cols) in [(1usize, 1), (3, 5), (8, 8), (9, 17), (64, 784), (10, 1), (16, 24)]
            {
                let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                for stride in [rows, rows + 3, rows.next_multiple_of(16)] {
                    let mut dst = vec![f32::NAN; cols * stride];
                    transpose_with(isa, &src, rows, cols, &mut dst, stride);
                    for (c, row) in dst.chunks_exact(stride).enumerate() {
                        for r in 0..rows {
                            assert_eq!(row[r], src[r * cols + c], "{isa:?} {rows}x{cols}/{stride}");
                        }
                        assert!(row[rows..].iter().all(|v| v.is_nan()), "padding written");
                    }
                }
            }
        }
    }
}
