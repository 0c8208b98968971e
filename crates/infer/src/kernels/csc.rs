//! The batch-1 product that skips zero inputs: a column-ordered (CSC) copy of a linear layer's
//! weight, walked only at the columns whose input is nonzero. Raw pixels are often zero
//! (about half of a Fashion-MNIST image) and so are about half of a ReLU layer's outputs; the
//! row-ordered (CSR) product multiplies every kept weight whatever its input, this one only
//! those whose input is nonzero.
//!
//! [`ColumnCopy::nonzero_columns`] lists the nonzero inputs (branch-free, one pass) and
//! counts the weights they meet, so that the caller can pick this path only when it pays
//! ([`ColumnCopy::pays`]); [`ColumnCopy::spmv`] then scatters each listed column into `y`.
//!
//! Rounding: `y[r]` starts at the bias and adds the terms `W[r, k] * x[k]` for increasing
//! `k`. The portable version rounds each product, then each sum, exactly as the portable CSR
//! kernel does; the terms it skips are the `W[r, k] * 0 = ±0` ones, which change no sum. So
//! it equals the portable CSR result bit for bit (up to the sign of a zero), for finite
//! weights (an infinite weight times a zero input is NaN in the CSR product and skipped
//! here). With FMA (AVX2 machines) each term is one fused multiply-add, and the AVX2 CSR
//! kernel sums in another order (four partial sums, the bias last). Every one of these is
//! within `gamma(n) * (|b| + sum_k |W[r, k] x[k]|)` of the exact value, `n` the row's kept
//! weights plus one and `gamma(n) = n u / (1 - n u)`, `u = 2^-24`, so any two differ by at
//! most twice that; the tests check both bounds.

use super::{Activation, Isa};
use crate::csr::{ColIndex, CsrRef};

/// The weights a zero-skipping product may meet, relative to the CSR product's, and still be
/// chosen: scattering into `y` costs a load and a store per weight where the CSR product
/// keeps its sums in registers, and listing the nonzero inputs costs a pass over `x`.
/// Measured on Zen 3 (AVX2, busy machine) with the first LeNet-300-100 layer at 3.5 % density
/// and Fashion-MNIST images: 3.3 ns per weight met against 1.4 ns for the CSR product, so the
/// copy pays when it skips more than about 60 % of the weights (MNIST-like inputs, 80 %
/// zeros), not at Fashion-MNIST's 50 %. `ticket infer --bench` reports the batch-1 latency
/// with and without skipping, and `examples/csc_ab.rs` times both paths, which is how to
/// check it on another machine.
const COST_VS_CSR: f32 = 0.4;
/// [`COST_VS_CSR`] on CPUs with AVX-512, whose CSR batch-1 kernel gains more on the scatter:
/// on both measured the copy paid only from about 75-80 % zeros (`examples/csc_ab.rs`,
/// 300 x 784 at 3.5 %: Intel Xeon 2.20 us CSR against 2.60 / 2.27 / 1.78 us at 60 / 70 / 80 %
/// zeros; AMD EPYC Zen 5 about 2.0 us against 3.27 / 2.77 / 1.75; 100 x 300: Intel 0.41
/// against 0.57 / 0.50 / 0.40, AMD 0.50 against 0.77 / 0.64 / 0.57), so 0.4 chose it too
/// early there: Fashion-MNIST's images ran 3.48 against 3.05 us with skipping off (Intel),
/// 2.98 against 2.72 (AMD). The instruction set stands in for the core; it is known before
/// anything runs and so keeps the choice the same from run to run.
const COST_VS_CSR_AVX512: f32 = 0.2;
/// [`COST_VS_CSR`] where the row product is the sliced one (`kernels::sliced`, about a fifth
/// faster than the CSR one on short rows): Intel Xeon, `examples/csc_ab.rs`, 300 x 784 at
/// 3.5 %: 1.71 us sliced against 2.33 / 1.50 us here at 80 / 90 % zeros (21 / 10 % of the
/// weights met); 100 x 300 at 7 %: 0.52 against 0.55 / 0.43.
const COST_VS_SLICED: f32 = 0.15;
/// Every how many inputs [`ColumnCopy::may_pay`] looks at one (7 is prime to an image
/// row's 28 pixels, so the sample does not run down a few columns of the image).
const SAMPLE_STRIDE: usize = 7;

/// A `rows x cols` matrix in column order: column `k` holds `values[colptr[k]..colptr[k+1]]`
/// at rows `rows_of[..]` (increasing).
#[derive(Clone, Debug)]
pub struct ColumnCopy {
    rows: usize,
    colptr: Vec<u32>,
    rows_of: Vec<u32>,
    values: Vec<f32>,
}

impl ColumnCopy {
    /// The column-ordered copy of `w` (a counting sort: O(nnz + cols)).
    pub fn new<I: ColIndex>(w: CsrRef<I>) -> Self {
        let mut colptr = vec![0u32; w.cols() + 1];
        for &c in w.indices() {
            colptr[c.to_usize() + 1] += 1;
        }
        for k in 0..w.cols() {
            colptr[k + 1] += colptr[k];
        }
        let mut next: Vec<u32> = colptr[..w.cols()].to_vec();
        let (mut rows_of, mut values) = (vec![0u32; w.nnz()], vec![0.0f32; w.nnz()]);
        for r in 0..w.rows() {
            for k in w.row_range(r) {
                let slot = &mut next[w.indices()[k].to_usize()];
                rows_of[*slot as usize] = r as u32;
                values[*slot as usize] = w.values()[k];
                *slot += 1;
            }
        }
        ColumnCopy { rows: w.rows(), colptr, rows_of, values }
    }

    pub fn cols(&self) -> usize {
        self.colptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Bytes the copy holds.
    pub fn bytes(&self) -> usize {
        4 * (self.colptr.len() + self.rows_of.len() + self.values.len())
    }

    /// Whether `x` has enough zeros for skipping them to have a chance of paying in a layer
    /// of `nnz` kept weights, judged from every 7th input (all of them below 64) and columns
    /// of average length: a check that costs far less than the list, so inputs without zeros
    /// lose little to it, and that needs no copy (one is built only once it may pay). It stops
    /// at the first sampled nonzero past the most that may pay (LeNet-300-100 at 3.6 % on
    /// random inputs, Intel Xeon: 2.82 against 2.84 us a pass with the whole sample counted).
    pub fn may_pay(nnz: usize, x: &[f32], csr_threads: usize) -> bool {
        let stride = if x.len() < 64 { 1 } else { SAMPLE_STRIDE };
        let sampled = x.len().div_ceil(stride).max(1);
        // Nonzeros in the sample from which the expected work, nnz * nonzero / sampled,
        // reaches 1.25 times the limit.
        let most = 1.25 * limit(nnz, csr_threads) * sampled as f32 / nnz.max(1) as f32;
        let mut nonzero = 0usize;
        for &v in x.iter().step_by(stride) {
            nonzero += (v != 0.0) as usize;
            if nonzero as f32 >= most {
                return false;
            }
        }
        (nonzero as f32) < most
    }

    /// Fills `list` with the indices of the nonzero entries of `x` (`cols` of them), in
    /// increasing order, and returns how many kept weights those columns hold: the work of
    /// [`ColumnCopy::spmv`]. A NaN input counts as nonzero.
    pub fn nonzero_columns(&self, x: &[f32], list: &mut Vec<u32>) -> usize {
        assert_eq!(x.len(), self.cols(), "nonzero_columns: x has {} entries", x.len());
        list.resize(x.len(), 0);
        let (mut n, mut work) = (0usize, 0usize);
        // Branch-free: every index is written, and kept by advancing past it when nonzero
        // (a ReLU output's zeros follow no pattern a branch predictor could learn).
        for (k, (&v, ends)) in x.iter().zip(self.colptr.windows(2)).enumerate() {
            let keep = (v != 0.0) as usize;
            // SAFETY: n <= k < x.len() = list.len().
            unsafe { *list.get_unchecked_mut(n) = k as u32 };
            n += keep;
            work += keep * (ends[1] - ends[0]) as usize;
        }
        list.truncate(n);
        work
    }

    /// Whether skipping zeros with `work` weights beats the CSR product over all `nnz` kept
    /// weights split over `csr_threads` threads (this product runs on one).
    pub fn pays(&self, work: usize, csr_threads: usize) -> bool {
        (work as f32) < limit(self.nnz(), csr_threads)
    }

    /// `y = act(bias + W x)` reading only the columns `list` names, which must hold every
    /// `k` with `x[k] != 0` ([`ColumnCopy::nonzero_columns`]). Panics when the lengths do not
    /// fit or `list` names a column beyond `x`.
    pub fn spmv(
        &self,
        bias: Option<&[f32]>,
        x: &[f32],
        list: &[u32],
        y: &mut [f32],
        act: Activation,
    ) {
        self.spmv_with(Isa::detect(), bias, x, list, y, act);
    }

    pub(crate) fn spmv_with(
        &self,
        isa: Isa,
        bias: Option<&[f32]>,
        x: &[f32],
        list: &[u32],
        y: &mut [f32],
        act: Activation,
    ) {
        assert_eq!(x.len(), self.cols(), "csc spmv: x has {} entries", x.len());
        assert_eq!(y.len(), self.rows, "csc spmv: y has {} entries", y.len());
        match bias {
            Some(b) => y.copy_from_slice(b),
            None => y.fill(0.0),
        }
        match isa {
            Isa::Portable => self.scatter(x, list, y, |v, xk, acc| acc + v * xk),
            // SAFETY: FMA is present (Isa::detect).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma | Isa::Avx512 => unsafe { self.scatter_fma(x, list, y) },
        }
        act.apply(y);
    }

    /// [`ColumnCopy::scatter`] with fused multiply-adds.
    ///
    /// # Safety
    /// FMA available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn scatter_fma(&self, x: &[f32], list: &[u32], y: &mut [f32]) {
        self.scatter(x, list, y, |v, xk, acc| v.mul_add(xk, acc))
    }

    /// `y[r] = term(W[r, k], x[k], y[r])` for each kept weight of each listed column `k`.
    #[inline(always)]
    fn scatter(&self, x: &[f32], list: &[u32], y: &mut [f32], term: impl Fn(f32, f32, f32) -> f32) {
        assert_eq!(y.len(), self.rows, "csc scatter: y has {} entries", y.len());
        for &k in list {
            let k = k as usize;
            let xk = x[k];
            let (start, end) = (self.colptr[k] as usize, self.colptr[k + 1] as usize);
            for (&r, &v) in self.rows_of[start..end].iter().zip(&self.values[start..end]) {
                // SAFETY: every row index was written by `new` below `rows` = y.len().
                let yr = unsafe { y.get_unchecked_mut(r as usize) };
                *yr = term(v, xk, *yr);
            }
        }
    }
}

/// The most weights a zero-skipping product may meet, in a layer of `nnz`, and still be chosen.
fn limit(nnz: usize, csr_threads: usize) -> f32 {
    let cost = match Isa::detect() {
        _ if super::sliced::SlicedRows::pays() => COST_VS_SLICED,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => COST_VS_CSR_AVX512,
        _ => COST_VS_CSR,
    };
    cost * nnz as f32 / csr_threads.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{CsrParts, Random};
    use crate::kernels::{spmm_with, Isa, PAR_MIN_WORK};
    use ticket_core::Par;

    /// `u = 2^-24`, the unit roundoff of f32.
    const U: f64 = 1.0 / (1u64 << 24) as f64;

    /// Inputs with about `zeros` of them exactly 0.
    fn input(cols: usize, zeros: f64, rng: &mut Random) -> Vec<f32> {
        (0..cols).map(|_| if rng.unit() < zeros { 0.0 } else { rng.uniform(-1.0, 1.0) }).collect()
    }

    fn csc_of(isa: Isa, w: &CsrParts, x: &[f32], b: &[f32], act: Activation) -> (Vec<f32>, usize) {
        let copy = ColumnCopy::new(w.csr());
        let mut list = Vec::new();
        let work = copy.nonzero_columns(x, &mut list);
        let mut y = vec![f32::NAN; w.rows];
        copy.spmv_with(isa, Some(b), x, &list, &mut y, act);
        (y, work)
    }

    fn csr_of(isa: Isa, w: &CsrParts, x: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
        let mut y = vec![0.0; w.rows];
        spmm_with(isa, w.csr(), Some(bias), x, &mut y, 1, act, Par::Seq, PAR_MIN_WORK);
        y
    }

    #[test]
    fn equals_the_portable_csr_product_and_stays_within_the_bound_of_every_other() {
        let mut rng = Random::new(7);
        for (rows, cols, density) in [(300, 784, 0.035), (100, 300, 0.2), (17, 9, 1.0), (5, 3, 0.0)]
        {
            let w = CsrParts::random(rows, cols, density, &mut rng);
            let dense = w.dense();
            let bias = rng.vec(rows, -0.5, 0.5);
            for zeros in [0.0, 0.5, 0.9, 1.0] {
                let x = input(cols, zeros, &mut rng);
                for (act, isa) in [Activation::Identity, Activation::Relu]
                    .into_iter()
                    .flat_map(|a| Isa::available().into_iter().map(move |i| (a, i)))
                {
                    let (got, work) = csc_of(isa, &w, &x, &bias, act);
                    let nonzero = |k: usize| x[k] != 0.0;
                    let want_work =
                        (0..rows * cols).filter(|&i| dense[i] != 0.0 && nonzero(i % cols)).count();
                    assert!(work <= w.nnz() && work >= want_work, "work {work} vs {want_work}");
                    if isa == Isa::Portable {
                        assert_eq!(got, csr_of(isa, &w, &x, &bias, act), "portable CSR");
                    }
                    for csr_isa in Isa::available() {
                        let other = csr_of(csr_isa, &w, &x, &bias, act);
                        for r in 0..rows {
                            let row = &dense[r * cols..(r + 1) * cols];
                            let n = row.iter().filter(|&&v| v != 0.0).count() as f64 + 1.0;
                            let gamma = n * U / (1.0 - n * U);
                            let mag: f64 = bias[r].abs() as f64
                                + row
                                    .iter()
                                    .zip(&x)
                                    .map(|(&v, &xk)| (v as f64 * xk as f64).abs())
                                    .sum::<f64>();
                            let exact: f64 = bias[r] as f64
                                + row
                                    .iter()
                                    .zip(&x)
                                    .map(|(&v, &xk)| v as f64 * xk as f64)
                                    .sum::<f64>();
                            let exact =
                                if act == Activation::Relu { exact.max(0.0) } else { exact };
                            let bound = gamma * mag;
                            assert!(
                                (got[r] as f64 - exact).abs() <= bound,
                                "{isa:?} {csr_isa:?} row {r}"
                            );
                            assert!((got[r] as f64 - other[r] as f64).abs() <= 2.0 * bound);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_work_counts_the_weights_of_nonzero_columns_only() {
        // W = [[1, 0, 2], [0, 3, 4]]: columns hold 1, 1 and 2 weights.
        let w = CsrRef::new(2, 3, &[0, 2, 4], &[0u16, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let copy = ColumnCopy::new(w);
        let mut list = Vec::new();
        assert_eq!(copy.nonzero_columns(&[0.0, 5.0, 1.0], &mut list), 3);
        assert_eq!(list, [1, 2]);
        let mut y = [0.0; 2];
        copy.spmv(Some(&[0.5, -1.0]), &[0.0, 5.0, 1.0], &list, &mut y, Activation::Identity);
        assert_eq!(y, [2.5, 18.0]);
        assert_eq!(copy.nonzero_columns(&[0.0, 0.0, 0.0], &mut list), 0);
        assert!(list.is_empty());
        // The limit is 0.4 of the 4 weights (0.2 with AVX-512), over the CSR product's threads.
        let avx512 = Isa::detect().lanes() == 16;
        assert!(copy.pays(0, 1) && copy.pays(1, 1) != avx512);
        assert!(!copy.pays(2, 1) && !copy.pays(1, 2));
        let may_pay = |x: &[f32]| ColumnCopy::may_pay(copy.nnz(), x, 1);
        // One input in three nonzero: an expected 4/3 weights met, against 1.25 x the limit.
        assert!(may_pay(&[0.0, 0.0, 0.0]) && may_pay(&[0.0, 0.0, 1.0]) != avx512);
        assert!(!may_pay(&[1.0, 1.0, 1.0]));
    }
}
