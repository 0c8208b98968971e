//! The one dense `f32` matrix product of the project, `dst = beta * dst + lhs * rhs`, over
//! strided views so that transposes cost nothing. It calls the `gemm` crate, which picks its
//! AVX-512, AVX2+FMA or scalar kernels at run time from what the CPU offers.
//!
//! Parallelism: the products of a training step are small (60x784x300), where `gemm`'s own
//! threading spends more on coordination than it saves. With `Par::Rayon(t)` we instead cut the
//! destination into `t` blocks along its longer side and run one single-threaded `gemm` per
//! block: one fork-join per product, no shared packing buffers, deterministic for a given `t`.
//! The blocks go out through [`crate::awake_pool::run_parts`], so a product never waits for a
//! sleeping worker to wake: the dense LeNet-300-100 at batch 64 (`ticket infer --bench`'s
//! dense path, Intel Xeon, two threads) took 5.0 us per example with a rayon fork-join per
//! layer and 3.4-3.5 with this (PyTorch dense 3.41 on the same machine), training unchanged.
//!
//! ```
//! use ticket_core::sgemm::{sgemm, MatMut, MatRef};
//! use ticket_core::Par;
//! let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
//! let b = [1.0, 0.0, 0.0, 1.0];
//! let mut c = [0.0; 4];
//! sgemm(MatMut::row_major(&mut c, 2, 2), MatRef::row_major(&a, 2, 2).t(),
//!       MatRef::row_major(&b, 2, 2), 0.0, Par::Seq);
//! assert_eq!(c, [1.0, 3.0, 2.0, 4.0]);
//! ```

/// How many threads a kernel may use. Always an explicit argument, never a hidden global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// The calling thread only.
    Seq,
    /// Up to this many threads of the current rayon pool.
    Rayon(usize),
}

impl Par {
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::Rayon(n) => n.max(1),
        }
    }

    /// The `with_min_len` that lets rayon split `items` into one piece per thread and no
    /// further: `items / threads`. Rayon splits a piece only while both halves keep the
    /// minimum, so the ceiling `items.div_ceil(threads)` left an odd count of tiles (157 of a
    /// 5,000-example validation set) in one piece on one thread.
    pub fn min_len(self, items: usize) -> usize {
        (items / self.threads()).max(1)
    }
}

/// Products smaller than this many multiply-adds run on one thread: a fork-join costs a few
/// microseconds, about what one core needs for this much work.
const PARALLEL_MIN_WORK: usize = 1 << 17;
/// Row blocks of at least this many rows are preferred to column blocks (see [`sgemm`]).
const MIN_ROWS_PER_BLOCK: usize = 128;
/// Blocks are cut at multiples of this, the width of the widest SIMD microkernel.
const BLOCK_ALIGN: usize = 16;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A mutable strided matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Panics unless every element addressed by the view lies inside a slice of `len`.
fn check_view(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
        assert!(last < len, "matrix view {rows}x{cols} overruns a slice of {len}");
    }
}

impl<'a> MatRef<'a> {
    /// A `rows x cols` row-major matrix; `data` must hold exactly `rows * cols` elements.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "row-major {rows}x{cols} needs {} elements",
            rows * cols
        );
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// A general strided view.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_view(data.len(), rows, cols, row_stride, col_stride);
        MatRef { data, rows, cols, row_stride, col_stride }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "row-major {rows}x{cols} needs {} elements",
            rows * cols
        );
        MatMut { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    pub fn strided(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_view(data.len(), rows, cols, row_stride, col_stride);
        MatMut { data, rows, cols, row_stride, col_stride }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatMut {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            data: self.data,
        }
    }
}

/// `dst = beta * dst + lhs * rhs`. `beta` is 0.0 (overwrite; `dst` is not read, so it may hold
/// NaN) or any other value (accumulate).
///
/// Panics when the shapes do not agree: that is a bug in the caller, not bad input.
pub fn sgemm(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, beta: f32, par: Par) {
    assert_eq!(
        lhs.cols, rhs.rows,
        "sgemm: lhs is {}x{}, rhs is {}x{}",
        lhs.rows, lhs.cols, rhs.rows, rhs.cols
    );
    assert_eq!((dst.rows, dst.cols), (lhs.rows, rhs.cols), "sgemm: dst shape");
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let d = &mut dst.data[i * dst.row_stride + j * dst.col_stride];
                *d = if beta == 0.0 { 0.0 } else { beta * *d };
            }
        }
        return;
    }
    let threads = par.threads();
    if threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        // SAFETY: the views were bounds-checked at construction, shapes agree (asserted above),
        // and `dst` is borrowed mutably so it cannot alias `lhs` or `rhs`.
        unsafe { gemm_block(&dst, &lhs, &rhs, 0..m, 0..n, beta) };
        return;
    }
    // Whole rows when each block still gets enough of them: a block of rows is one stretch of
    // a row-major `dst`. Splitting the columns of the 300x784 weight gradient of a training
    // step instead took 200 us on two threads where rows take 160 (one thread alone: 300).
    let split_rows = m >= n || m >= threads * MIN_ROWS_PER_BLOCK;
    let len = if split_rows { m } else { n };
    let block = len.div_ceil(threads).next_multiple_of(BLOCK_ALIGN).min(len);
    let shared = SharedDst(&dst);
    crate::awake_pool::run_parts(len.div_ceil(block), |part| {
        let start = part * block;
        let range = start..(start + block).min(len);
        let (rows, cols) = if split_rows { (range, 0..n) } else { (0..m, range) };
        // SAFETY: as above; in addition the blocks are disjoint ranges of rows (or columns) of
        // `dst`, so no two threads write the same element.
        unsafe { gemm_block(shared.0, &lhs, &rhs, rows, cols, beta) };
    });
}

/// A destination shared by the threads of one product, each writing its own block.
struct SharedDst<'a, 'b>(&'a MatMut<'b>);
// SAFETY: threads write disjoint blocks through raw pointers (see `sgemm`).
unsafe impl Sync for SharedDst<'_, '_> {}
unsafe impl Send for SharedDst<'_, '_> {}

/// `dst[rows, cols] = beta * dst[rows, cols] + lhs[rows, :] * rhs[:, cols]` on one thread.
///
/// # Safety
/// Views must be in bounds and shapes must agree; no other thread may touch `dst[rows, cols]`.
unsafe fn gemm_block(
    dst: &MatMut<'_>,
    lhs: &MatRef<'_>,
    rhs: &MatRef<'_>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    beta: f32,
) {
    let k = lhs.cols;
    let dst_ptr = (dst.data.as_ptr() as *mut f32)
        .add(rows.start * dst.row_stride + cols.start * dst.col_stride);
    let lhs_ptr = lhs.data.as_ptr().add(rows.start * lhs.row_stride);
    let rhs_ptr = rhs.data.as_ptr().add(cols.start * rhs.col_stride);
    gemm::gemm(
        rows.len(),
        cols.len(),
        k,
        dst_ptr,
        dst.col_stride as isize,
        dst.row_stride as isize,
        beta != 0.0,
        lhs_ptr,
        lhs.col_stride as isize,
        lhs.row_stride as isize,
        rhs_ptr,
        rhs.col_stride as isize,
        rhs.row_stride as isize,
        beta,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rayon's pieces under `with_min_len(Par::min_len)`: one per thread for odd and even
    /// counts (a fold keeps one accumulator per piece), where the ceiling kept odd counts whole.
    #[test]
    fn min_len_splits_into_one_piece_per_thread() {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let pieces = |items: usize, min: usize| {
            pool.install(|| {
                (0..items)
                    .into_par_iter()
                    .with_min_len(min)
                    .fold(|| 1usize, |a, _| a)
                    .sum::<usize>()
            })
        };
        for items in [157, 313, 2, 64] {
            assert_eq!(pieces(items, Par::Rayon(2).min_len(items)), 2, "{items} items");
        }
        assert_eq!(pieces(157, 157usize.div_ceil(2)), 1, "the ceiling keeps 157 whole");
        assert_eq!(pieces(1, Par::Rayon(2).min_len(1)), 1);
        assert_eq!(Par::Seq.min_len(10), 10);
    }

    /// The triple loop every result is checked against.
    fn naive(lhs: MatRef, rhs: MatRef) -> Vec<f32> {
        let mut out = vec![0.0f32; lhs.rows() * rhs.cols()];
        for i in 0..lhs.rows() {
            for j in 0..rhs.cols() {
                let mut acc = 0.0f64;
                for p in 0..lhs.cols() {
                    acc += lhs.get(i, p) as f64 * rhs.get(p, j) as f64;
                }
                out[i * rhs.cols() + j] = acc as f32;
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32], k: usize) {
        let tol = 1e-5 * (k as f32).sqrt().max(1.0) * 4.0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "element {i}: {g} vs {w}");
        }
    }

    /// The products of a LeNet-300-100 training step, large enough to take the parallel path,
    /// with every transpose the trainer uses, split by rows and by columns.
    #[test]
    fn training_step_products_match_naive_in_parallel() {
        for &(m, k, n, ta, tb, tdst) in &[
            (60, 784, 300, false, true, false),  // forward: X W^T
            (300, 60, 784, true, false, false),  // weight gradient: dZ^T X
            (60, 300, 784, false, false, false), // input gradient: dZ W
            (784, 60, 300, true, false, true),   // weight gradient written transposed
            (1, 784, 300, false, true, false),
        ] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let l = if ta { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
            let r = if tb { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            for par in [Par::Seq, Par::Rayon(2), Par::Rayon(3)] {
                let mut c = vec![f32::NAN; m * n];
                let dst = if tdst {
                    MatMut::row_major(&mut c, n, m).t()
                } else {
                    MatMut::row_major(&mut c, m, n)
                };
                sgemm(dst, l, r, 0.0, par);
                let want = naive(l, r);
                let got: Vec<f32> = if tdst {
                    (0..m * n).map(|idx| c[(idx % n) * m + idx / n]).collect()
                } else {
                    c
                };
                assert_close(&got, &want, k);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn odd_shapes_and_transposes_match_naive(
            m in 1usize..37, k in 0usize..41, n in 1usize..29,
            ta in any::<bool>(), tb in any::<bool>(), accumulate in any::<bool>(), par in any::<bool>(),
        ) {
            let a = values(m * k, 3);
            let b = values(k * n, 4);
            let l = if ta { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
            let r = if tb { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            let start = values(m * n, 5);
            let mut c = start.clone();
            let beta = if accumulate { 0.5 } else { 0.0 };
            let p = if par { Par::Rayon(2) } else { Par::Seq };
            sgemm(MatMut::row_major(&mut c, m, n), l, r, beta, p);
            let mut want = naive(l, r);
            for (w, s) in want.iter_mut().zip(&start) {
                *w += beta * s;
            }
            assert_close(&c, &want, k);
        }
    }

    #[test]
    #[should_panic(expected = "sgemm: lhs is 2x3")]
    fn mismatched_shapes_panic() {
        let a = [0.0; 6];
        let mut c = [0.0; 4];
        sgemm(
            MatMut::row_major(&mut c, 2, 2),
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&a, 2, 3),
            0.0,
            Par::Seq,
        );
    }
}
