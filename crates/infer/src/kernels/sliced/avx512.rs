//! The AVX-512 kernel of sliced rows: one register of 16 rows' sums a slice, each step's
//! columns and values decoded in registers by a [`StepColumns`] and a [`StepValues`] source
//! (absolute or 8-bit gap columns; f32, int8 or codebook values), chosen once per slice.

use super::{Columns, Lanes, SlicedRows, StepBytes, StepCols, Values, LANES};
use crate::kernels::compressed::avx512::pairs_lookup;
use std::arch::x86_64::*;
use ticket_core::packed::filler;

/// The columns of consecutive steps.
trait StepColumns {
    /// The next step's 16 columns and the lanes that are entries (not gap fillers).
    ///
    /// # Safety
    /// AVX-512 F and BW available; the steps not exhausted.
    unsafe fn next(&mut self) -> (__m512i, __mmask16);
}

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

struct Absolute<'a>(std::slice::Iter<'a, StepCols>);

impl StepColumns for Absolute<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> (__m512i, __mmask16) {
        let step = self.0.next().expect("a step per value");
        // SAFETY: AVX-512 available; StepCols is 32 bytes on a 32-byte boundary.
        unsafe { (_mm512_cvtepu16_epi32(_mm256_load_si256(step.0.as_ptr().cast())), !0) }
    }
}

/// 8-bit gap fields; each lane's running column in `next`.
struct Gaps<'a> {
    fields: std::slice::Iter<'a, StepBytes>,
    next: __m512i,
}

impl StepColumns for Gaps<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> (__m512i, __mmask16) {
        let step = self.fields.next().expect("a step per value");
        // SAFETY: AVX-512 available.
        unsafe {
            let f = widen(step);
            let real = !_mm512_cmpeq_epi32_mask(f, _mm512_set1_epi32(filler(8) as i32));
            let col = _mm512_add_epi32(self.next, f);
            // An entry moves past its column; a filler moves on by its field.
            self.next = _mm512_mask_add_epi32(col, real, col, _mm512_set1_epi32(1));
            (col, real)
        }
    }
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

/// The sums of one slice: step `j` gathers and adds the lanes that are entries of rows with
/// more than `j` of them.
///
/// # Safety
/// AVX-512 F and BW available; every entry's column below `x.len()`; `cols` and `values`
/// hold `steps` steps.
#[inline(always)]
unsafe fn sums(
    lens: &[u32; LANES],
    steps: usize,
    mut cols: impl StepColumns,
    mut values: impl StepValues,
    x: &[f32],
    out: &mut [f32; LANES],
) {
    // SAFETY: the caller's contract; gathered lanes are entries, whose columns are below
    // x.len().
    unsafe {
        let lens = _mm512_loadu_si512(lens.as_ptr().cast());
        let (mut acc, mut j) = (_mm512_setzero_ps(), _mm512_setzero_si512());
        for _ in 0..steps {
            let (at, real) = cols.next();
            let v = values.next();
            let live = _mm512_cmplt_epu32_mask(j, lens) & real;
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
/// validated matrix or a checked gap stream).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn slice_sums(m: &SlicedRows, s: usize, x: &[f32], out: &mut [f32; LANES]) {
    let (first, end) = (m.starts[s] as usize, m.starts[s + 1] as usize);
    let (lens, steps) = (&m.slices[s].lens, end - first);
    // SAFETY: AVX-512 available; each source starts at the slice's first step, of which
    // there are `steps`.
    unsafe {
        macro_rules! with_values {
            ($cols:expr) => {
                match &m.values {
                    Values::F32(v) => sums(lens, steps, $cols, F32(v[first..end].iter()), x, out),
                    Values::Int8 { q, scales } => {
                        let scales = _mm512_load_ps(scales[s].0.as_ptr());
                        let values = Int8 { q: q[first..end].iter(), scales };
                        sums(lens, steps, $cols, values, x, out)
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
                                sums(
                                    lens,
                                    steps,
                                    $cols,
                                    Codes { codes: codes.iter(), lookup: $f },
                                    x,
                                    out,
                                )
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
        match &m.columns {
            Columns::Absolute(c) => with_values!(Absolute(c[first..end].iter())),
            Columns::Gaps(fields) => with_values!(Gaps {
                fields: fields[first..end].iter(),
                next: _mm512_setzero_si512(),
            }),
        }
    }
}
