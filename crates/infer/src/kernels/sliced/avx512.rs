//! The AVX-512 kernel of sliced rows: one register of 16 rows' sums a slice, each step's
//! columns and values decoded in registers by a [`StepColumns`] and a [`StepValues`] source
//! (absolute or gap columns; f32, int8 or codebook values), chosen once per slice.

use super::{Columns, Lanes, SlicedRows, StepCols, StepInt8, Values, LANES};
use crate::kernels::compressed::avx512::{pairs_lookup, Unpack};
use crate::kernels::compressed::Unpacker;
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

/// How a source reads the 16 fields of a step: unpacked from `2N` bytes, or, for 8-bit
/// fields, widened from 16 bytes in one instruction (a tenth of LeNet-300-100's batch-1
/// time with f32 values and 8-bit gaps).
#[derive(Clone, Copy)]
enum Fields {
    Packed(Unpack),
    Bytes,
}

impl Fields {
    /// # Safety
    /// AVX-512 available.
    #[inline(always)]
    unsafe fn new(bits: u32) -> Fields {
        // SAFETY: the caller's contract; 1 <= bits <= 8.
        if bits == 8 {
            Fields::Bytes
        } else {
            Fields::Packed(unsafe { Unpack::new(bits, 0) })
        }
    }

    /// The 16 fields of the step whose bytes start at `bytes[byte]`, and the bytes a step
    /// takes.
    ///
    /// # Safety
    /// AVX-512 F and BW available; 16 bytes from `byte` inside `bytes` (the slack).
    #[inline(always)]
    unsafe fn read(self, bytes: &[u8], byte: usize) -> (__m512i, usize) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Fields::Packed(unpack) => (unpack.fields(bytes, byte), 2 * unpack.bits()),
                Fields::Bytes => {
                    debug_assert!(byte + 16 <= bytes.len());
                    let p = bytes.as_ptr().add(byte);
                    (_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())), 16)
                }
            }
        }
    }
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

/// Gap fields 16 to a step; each lane's running column in `next`.
struct Gaps<'a> {
    fields: &'a [u8],
    byte: usize,
    reader: Fields,
    next: __m512i,
    fill: __m512i,
}

impl StepColumns for Gaps<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> (__m512i, __mmask16) {
        // SAFETY: AVX-512 available; the fields hold every step plus slack for the windows.
        unsafe {
            let (f, step) = self.reader.read(self.fields, self.byte);
            self.byte += step;
            let real = !_mm512_cmpeq_epi32_mask(f, self.fill);
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
    q: std::slice::Iter<'a, StepInt8>,
    scales: __m512,
}

impl StepValues for Int8<'_> {
    #[inline(always)]
    unsafe fn next(&mut self) -> __m512 {
        let step = self.q.next().expect("a step per column");
        // SAFETY: AVX-512 available; StepInt8 is 16 aligned bytes. `scale * q`, one rounding,
        // as the scalar decoder.
        unsafe {
            let q = _mm512_cvtepi8_epi32(_mm_load_si128(step.0.as_ptr().cast()));
            _mm512_mul_ps(self.scales, _mm512_cvtepi32_ps(q))
        }
    }
}

/// Codebook codes 16 to a step, looked up by `lookup`.
struct Codes<'a, L> {
    codes: &'a [u8],
    byte: usize,
    reader: Fields,
    lookup: L,
}

impl<L: Fn(__m512i) -> __m512> StepValues for Codes<'_, L> {
    #[inline(always)]
    unsafe fn next(&mut self) -> __m512 {
        // SAFETY: AVX-512 available; the codes hold every step plus slack for the windows.
        unsafe {
            let (codes, step) = self.reader.read(self.codes, self.byte);
            self.byte += step;
            (self.lookup)(codes)
        }
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
                        let (byte, reader) = (first * 2 * *bits as usize, Fields::new(*bits));
                        macro_rules! lookup {
                            ($f:expr) => {
                                sums(
                                    lens,
                                    steps,
                                    $cols,
                                    Codes { codes, byte, reader, lookup: $f },
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
            Columns::Gaps { bits, fields } => with_values!(Gaps {
                fields,
                byte: first * 2 * *bits as usize,
                reader: Fields::new(*bits),
                next: _mm512_setzero_si512(),
                fill: _mm512_set1_epi32(filler(*bits) as i32),
            }),
        }
    }
}
