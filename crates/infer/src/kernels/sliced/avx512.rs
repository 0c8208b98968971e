//! The AVX-512 kernel of sliced rows: one register of 16 rows' sums a slice, each step's
//! values decoded in registers by a [`StepValues`] source (f32, int8 or codebook values),
//! chosen once per slice.

use super::{Lanes, SlicedRows, StepBytes, StepCols, Values, LANES};
use crate::kernels::compressed::avx512::pairs_lookup;
use std::arch::x86_64::*;

/// The values of consecutive steps.
trait StepValues {
    /// The next step's 16 values.
    ///
    /// # Safety
    /// AVX-512 F and BW available; the steps not exhausted.
    unsafe fn next(&mut self) -> __m512;
}

/// The 16 bytes of a step, each widened to a 32-bit lane.
///
/// # Safety
/// AVX-512 F available.
#[inline(always)]
unsafe fn widen(step: &StepBytes) -> __m512i {
    // SAFETY: AVX-512 available; StepBytes is 16 bytes on a 16-byte boundary.
    unsafe { _mm512_cvtepu8_epi32(_mm_load_si128(step.0.as_ptr().cast())) }
}

struct F32<'a>(std::slice::Iter<'a, Lanes>);

impl StepValues for F32<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> __m512 {
        let step = self.0.next().expect("a step per column");
        // SAFETY: AVX-512 available; Lanes is one aligned cache line.
        unsafe { _mm512_load_ps(step.0.as_ptr()) }
    }
}

struct Int8<'a> {
    q: std::slice::Iter<'a, StepBytes>,
    scales: __m512,
}

impl StepValues for Int8<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> __m512 {
        let step = self.q.next().expect("a step per column");
        // SAFETY: AVX-512 available; StepBytes is 16 aligned bytes. `scale * q`, one
        // rounding, as the scalar decoder.
        unsafe {
            let q = _mm512_cvtepi8_epi32(_mm_load_si128(step.0.as_ptr().cast()));
            _mm512_mul_ps(self.scales, _mm512_cvtepi32_ps(q))
        }
    }
}

/// Codebook codes a byte each, looked up by `lookup`.
struct Codes<'a, L> {
    codes: std::slice::Iter<'a, StepBytes>,
    lookup: L,
}

impl<L: Fn(__m512i) -> __m512> StepValues for Codes<'_, L> {
    #[inline(always)]
    unsafe fn next(&mut self) -> __m512 {
        let step = self.codes.next().expect("a step per column");
        // SAFETY: AVX-512 available.
        unsafe { (self.lookup)(widen(step)) }
    }
}

/// The sums of one slice: step `j` gathers and adds the lanes of rows with more than `j`
/// entries.
///
/// # Safety
/// AVX-512 F and BW available; every entry's column below `x.len()`; `values` holds as many
/// steps as `cols`.
#[inline(always)]
unsafe fn sums(
    lens: &[u32; LANES],
    cols: &[StepCols],
    mut values: impl StepValues,
    x: &[f32],
    out: &mut [f32; LANES],
) {
    // SAFETY: the caller's contract; gathered lanes are entries, whose columns are below
    // x.len(); StepCols is 32 bytes on a 32-byte boundary.
    unsafe {
        let lens = _mm512_loadu_si512(lens.as_ptr().cast());
        let (mut acc, mut j) = (_mm512_setzero_ps(), _mm512_setzero_si512());
        for step in cols {
            let at = _mm512_cvtepu16_epi32(_mm256_load_si256(step.0.as_ptr().cast()));
            let v = values.next();
            let live = _mm512_cmplt_epu32_mask(j, lens);
            let xv = _mm512_mask_i32gather_ps::<4>(acc, live, at, x.as_ptr());
            acc = _mm512_mask3_fmadd_ps(v, xv, acc, live);
            j = _mm512_add_epi32(j, _mm512_set1_epi32(1));
        }
        _mm512_storeu_ps(out.as_mut_ptr(), acc);
    }
}

/// The 16 sums of slice `s` of `m` over `x`.
///
/// # Safety
/// AVX-512 F and BW available; every entry's column below `x.len()` (columns built from a
/// validated matrix or a checked gap stream, checked again by `build`).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn slice_sums(m: &SlicedRows, s: usize, x: &[f32], out: &mut [f32; LANES]) {
    let (first, end) = (m.starts[s] as usize, m.starts[s + 1] as usize);
    let (lens, cols) = (&m.slices[s].lens, &m.columns[first..end]);
    // SAFETY: AVX-512 available; each source starts at the slice's first step and holds its
    // steps.
    unsafe {
        macro_rules! with_values {
            ($cols:expr) => {
                match &m.values {
                    Values::F32(v) => sums(lens, $cols, F32(v[first..end].iter()), x, out),
                    Values::Int8 { q, scales } => {
                        let scales = _mm512_load_ps(scales[s].0.as_ptr());
                        let values = Int8 { q: q[first..end].iter(), scales };
                        sums(lens, $cols, values, x, out)
                    }
                    Values::Codebook { bits, codes, table } => {
                        // A loop, not `array::map`, whose closure would lose the features.
                        let mut regs = [_mm512_setzero_ps(); 16];
                        for (i, r) in regs.iter_mut().enumerate() {
                            *r = _mm512_loadu_ps(table.as_ptr().add(16 * i));
                        }
                        let codes = &codes[first..end];
                        macro_rules! lookup {
                            ($f:expr) => {
                                sums(lens, $cols, Codes { codes: codes.iter(), lookup: $f }, x, out)
                            };
                        }
                        match bits {
                            1..=4 => lookup!(|i| _mm512_permutexvar_ps(i, regs[0])),
                            5 => lookup!(|i| pairs_lookup::<1>(&regs, i)),
                            6 => lookup!(|i| pairs_lookup::<2>(&regs, i)),
                            7 => lookup!(|i| pairs_lookup::<4>(&regs, i)),
                            _ => lookup!(|i| pairs_lookup::<8>(&regs, i)),
                        }
                    }
                }
            };
        }
        with_values!(cols)
    }
}
