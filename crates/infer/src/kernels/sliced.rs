//! The batch-1 product over rows taken sixteen at a time (sliced ELLPACK): a copy of a linear
//! layer's weight in which each slice of 16 rows is stored step by step, step `j` holding the
//! `j`-th kept weight of each of the 16 rows side by side. One AVX-512 register then carries
//! 16 rows' running sums: a step is one load of 16 columns, one gather of their inputs, one
//! load of 16 values and one fused multiply-add, with no per-row loop, no reduction across
//! lanes and no branch on a row's length. The CSR row kernel ends a loop and folds a register
//! for every row, which a short row (LeNet-300-100's 10-30 kept weights) cannot amortise.
//!
//! Rows are sorted by length, longest first, before they are cut into slices, so the rows of
//! a slice have nearly equal lengths and few steps carry lanes past their row's end (those
//! lanes are masked off, neither gathered nor added). The copy is only chosen where a 16-lane
//! gather pays (`Isa::gathers_pay`, Intel's AVX-512 cores): one thread, Intel Xeon, the CSR
//! kernel against this one, `examples/spmm_ab.rs`: LeNet-300-100's first layer shape (300 x
//! 784 at 3.5 %, 27 a row) 2.24 against 1.80 us, 100 x 300 at 3.3 % 0.46 against 0.33 us,
//! 500 x 800 at 8 % 7.1 against 6.8 us, 256 x 12544 at 10.7 % 91 against 85 us.
//!
//! Rounding: each row's sum starts at zero and adds its kept weights' products in increasing
//! column order, each a fused multiply-add, then the bias. The portable version computes the
//! same with `f32::mul_add`, so the two agree bit for bit; against the CSR kernel (four
//! partial sums, another order) both are within the bound `kernels::csc` states.

use super::{Activation, Isa};
use crate::csr::{ColIndex, CsrRef};

/// Rows in a slice: the lanes of one AVX-512 register.
const LANES: usize = 16;

/// The columns of one step of a slice: those of the `j`-th kept weight of its 16 rows (a lane
/// past its row's end holds column 0 and is masked off). 16-bit, as in the CSR file: a step
/// is then 96 bytes, as the CSR arrays hold, and a large layer stays in the cache as well.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct StepCols([u16; LANES]);

/// The values of one step of a slice, on one cache line (0 in a lane past its row's end).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct StepValues([f32; LANES]);

/// Sixteen rows: which they are and how many kept weights each has.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Slice {
    /// The row each lane computes (`u32::MAX` for the lanes of a last slice past the layer's
    /// last row, whose length is 0).
    rows: [u32; LANES],
    lens: [u32; LANES],
}

/// A `rows x cols` matrix in slices of 16 rows (see the module).
#[derive(Clone, Debug)]
pub struct SlicedRows {
    rows: usize,
    width: usize,
    slices: Vec<Slice>,
    /// Slice `s` holds steps `starts[s]..starts[s + 1]` of `cols` and `values`.
    starts: Vec<u32>,
    cols: Vec<StepCols>,
    values: Vec<StepValues>,
}

impl SlicedRows {
    /// Columns a layer may have for a sliced copy (its column indices fit 16 bits).
    pub const MAX_COLS: usize = 1 << 16;

    /// The sliced copy of `w`. Panics when `w` has more than [`SlicedRows::MAX_COLS`] columns.
    pub fn new<I: ColIndex>(w: CsrRef<I>) -> Self {
        assert!(w.cols() <= Self::MAX_COLS, "sliced rows: {} columns", w.cols());
        let mut order: Vec<usize> = (0..w.rows()).collect();
        // Stable: rows of equal length keep their order.
        order.sort_by_key(|&r| std::cmp::Reverse(w.row_range(r).len()));
        let (mut slices, mut starts, mut cols, mut values) = (vec![], vec![0], vec![], vec![]);
        for rows in order.chunks(LANES) {
            let mut slice = Slice { rows: [u32::MAX; LANES], lens: [0; LANES] };
            for (lane, &r) in rows.iter().enumerate() {
                slice.rows[lane] = r as u32;
                slice.lens[lane] = w.row_range(r).len() as u32;
            }
            for j in 0..w.row_range(rows[0]).len() {
                let (mut c, mut v) = (StepCols([0; LANES]), StepValues([0.0; LANES]));
                for (lane, &r) in rows.iter().enumerate() {
                    let range = w.row_range(r);
                    if j < range.len() {
                        c.0[lane] = w.indices()[range.start + j].to_usize() as u16;
                        v.0[lane] = w.values()[range.start + j];
                    }
                }
                cols.push(c);
                values.push(v);
            }
            slices.push(slice);
            starts.push(cols.len() as u32);
        }
        SlicedRows { rows: w.rows(), width: w.cols(), slices, starts, cols, values }
    }

    /// Whether this CPU runs the sliced product faster than the CSR one (see the module).
    pub fn pays() -> bool {
        #[cfg(target_arch = "x86_64")]
        return Isa::detect() == Isa::Avx512 && Isa::Avx512.gathers_pay();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Bytes the copy holds.
    pub fn bytes(&self) -> usize {
        let steps = size_of_val(&self.cols[..]) + size_of_val(&self.values[..]);
        size_of_val(&self.slices[..]) + 4 * self.starts.len() + steps
    }

    /// `y = act(bias + W x)`, the slices split over `threads` threads in parts of about
    /// equal steps, their sums kept in `sums` (which grows to 16 a slice). Panics when the
    /// lengths do not fit.
    pub fn spmv(
        &self,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        act: Activation,
        (threads, sums): (usize, &mut Vec<f32>),
    ) {
        self.spmv_with(Isa::detect(), bias, x, y, act, (threads, sums));
    }

    /// [`SlicedRows::spmv`] with `isa`'s kernel: AVX-512's, or the portable one (the same
    /// sums, lane by lane) for any other.
    pub(crate) fn spmv_with(
        &self,
        isa: Isa,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        act: Activation,
        (threads, sums): (usize, &mut Vec<f32>),
    ) {
        assert_eq!(x.len(), self.width, "sliced spmv: x has {} entries", x.len());
        assert_eq!(y.len(), self.rows, "sliced spmv: y has {} entries", y.len());
        if let Some(b) = bias {
            assert_eq!(b.len(), self.rows, "sliced spmv: bias has {} entries", b.len());
        }
        sums.resize(LANES * self.slices.len(), 0.0);
        let run = |slices: std::ops::Range<usize>, out: &mut [f32]| {
            for (s, out) in slices.zip(out.chunks_exact_mut(LANES)) {
                let steps = self.starts[s] as usize..self.starts[s + 1] as usize;
                let (cols, values) = (&self.cols[steps.clone()], &self.values[steps]);
                let out: &mut [f32; LANES] = out.try_into().expect("16 sums a slice");
                match isa {
                    // SAFETY: AVX-512 is present (Isa::detect); every column `new` stored is
                    // below the layer's columns = x.len().
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe {
                        avx512::slice_sums(&self.slices[s], (cols, values), x, out)
                    },
                    _ => portable_sums(&self.slices[s], (cols, values), x, out),
                }
            }
        };
        if threads > 1 && self.slices.len() > 1 {
            super::for_row_parts(&self.starts, threads, sums, LANES, run);
        } else {
            run(0..self.slices.len(), sums);
        }
        for (slice, sums) in self.slices.iter().zip(sums.chunks_exact(LANES)) {
            for (&r, &sum) in slice.rows.iter().zip(sums) {
                if let Some(out) = y.get_mut(r as usize) {
                    *out = sum + bias.map_or(0.0, |b| b[r as usize]);
                }
            }
        }
        act.apply(y);
    }
}

/// The 16 running sums of one slice, lane by lane.
fn portable_sums(
    slice: &Slice,
    (cols, values): (&[StepCols], &[StepValues]),
    x: &[f32],
    sums: &mut [f32; LANES],
) {
    *sums = [0.0; LANES];
    for (j, (c, v)) in cols.iter().zip(values).enumerate() {
        for lane in 0..LANES {
            if (j as u32) < slice.lens[lane] {
                sums[lane] = v.0[lane].mul_add(x[c.0[lane] as usize], sums[lane]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Slice, StepCols, StepValues, LANES};
    use std::arch::x86_64::*;

    /// [`super::portable_sums`] in one register: step `j` gathers and adds only the lanes
    /// whose row has more than `j` kept weights.
    ///
    /// # Safety
    /// AVX-512 F available; every column of `cols` below `x.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn slice_sums(
        slice: &Slice,
        (cols, values): (&[StepCols], &[StepValues]),
        x: &[f32],
        sums: &mut [f32; LANES],
    ) {
        // SAFETY: the step arrays are aligned to their size (repr(align)), so no load splits
        // a cache line; the gathered lanes' offsets are columns below x.len().
        unsafe {
            let lens = _mm512_load_si512(slice.lens.as_ptr().cast());
            let (mut acc, mut j) = (_mm512_setzero_ps(), _mm512_setzero_si512());
            let one = _mm512_set1_epi32(1);
            for (c, v) in cols.iter().zip(values) {
                let live = _mm512_cmplt_epu32_mask(j, lens);
                let at = _mm512_cvtepu16_epi32(_mm256_load_si256(c.0.as_ptr().cast()));
                let xv = _mm512_mask_i32gather_ps::<4>(acc, live, at, x.as_ptr());
                acc = _mm512_mask3_fmadd_ps(_mm512_load_ps(v.0.as_ptr()), xv, acc, live);
                j = _mm512_add_epi32(j, one);
            }
            _mm512_storeu_ps(sums.as_mut_ptr(), acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{CsrParts, Random};

    /// Every instruction set's product equals the portable one bit for bit and a naive f64
    /// product within the rounding of a sum of the row's length, on layers whose rows are
    /// empty, shorter than, equal to and longer than a slice, with a row count that leaves the
    /// last slice part-filled, on one thread and two, and with infinite inputs (whose
    /// infinite sums a step past a row's end would turn into NaN were it not masked off).
    #[test]
    fn every_isa_matches_portable_bit_for_bit_and_the_f64_product() {
        let mut rng = Random::new(11);
        for (rows, cols, density) in [(1, 5, 1.0), (37, 50, 0.3), (16, 40, 0.0), (300, 784, 0.035)]
        {
            let w = CsrParts::random(rows, cols, density, &mut rng);
            let idx = w.indices_u16();
            let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &w.values).unwrap();
            let sliced = SlicedRows::new(csr);
            let mut x = rng.vec(cols, -1.0, 1.0);
            // Column 0 is what padding lanes name: an infinity there shows any that leak.
            let uses_zero = w.indices.contains(&0);
            if !uses_zero {
                x[0] = f32::INFINITY;
            }
            let mut want = vec![0.0f32; rows];
            let relu = Activation::Relu;
            sliced.spmv_with(Isa::Portable, Some(&w.bias), &x, &mut want, relu, (1, &mut vec![]));
            for (r, &got) in want.iter().enumerate() {
                let range = w.indptr[r] as usize..w.indptr[r + 1] as usize;
                let term = |k: usize| w.values[k] as f64 * x[w.indices[k] as usize] as f64;
                let exact = w.bias[r] as f64 + range.clone().map(term).sum::<f64>();
                let size =
                    w.bias[r].abs() as f64 + range.clone().map(|k| term(k).abs()).sum::<f64>();
                let gamma = (range.len() + 1) as f64 * f32::EPSILON as f64;
                let got = got as f64;
                assert!(
                    (got - exact.max(0.0)).abs() <= gamma * size + 1e-30,
                    "row {r}: {got} vs {exact}"
                );
            }
            // Infinite inputs make infinite sums, which a step past the row's end would turn
            // into NaN (0 times infinity) were it not masked off.
            let mut infinite = x.clone();
            infinite.iter_mut().step_by(7).for_each(|v| *v = f32::INFINITY);
            for x in [&x, &infinite] {
                let mut want = vec![0.0f32; rows];
                sliced.spmv_with(
                    Isa::Portable,
                    None,
                    x,
                    &mut want,
                    Activation::Identity,
                    (1, &mut vec![]),
                );
                for (isa, threads) in Isa::available().into_iter().flat_map(|i| [(i, 1), (i, 2)]) {
                    let mut y = vec![f32::NAN; rows];
                    let sums = &mut vec![f32::NAN; 3];
                    sliced.spmv_with(isa, None, x, &mut y, Activation::Identity, (threads, sums));
                    assert_eq!(
                        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{} on {threads} threads, {rows} x {cols}",
                        isa.name()
                    );
                }
            }
        }
    }

    #[test]
    fn slices_hold_rows_longest_first_and_count_their_bytes() {
        let mut rng = Random::new(3);
        let w = CsrParts::random(40, 30, 0.4, &mut rng);
        let idx = w.indices_u16();
        let csr = CsrRef::new(40, 30, &w.indptr, &idx, &w.values).unwrap();
        let sliced = SlicedRows::new(csr);
        assert_eq!(sliced.slices.len(), 3);
        let lens: Vec<u32> = sliced.slices.iter().flat_map(|s| s.lens).collect();
        assert!(lens.windows(2).all(|p| p[0] >= p[1]), "longest first: {lens:?}");
        let mut seen: Vec<u32> = sliced.slices.iter().flat_map(|s| s.rows).take(40).collect();
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let steps = *sliced.starts.last().unwrap() as usize;
        assert_eq!(sliced.starts.len(), 4);
        assert_eq!(sliced.bytes(), 3 * 128 + 4 * 4 + steps * 96);
    }
}
