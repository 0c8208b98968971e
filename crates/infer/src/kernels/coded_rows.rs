//! The batch-1 product of a compressed linear layer on CPUs where the copy in slices of 16
//! rows does not pay (`kernels::sliced`: AMD's cores and AVX2-only ones, whose gathers lose to
//! scalar loads): a copy in CSR row order with one 32-bit entry per kept weight, its absolute
//! column in the low 16 bits and its codebook code or int8 byte above them, run by scalar
//! fused multiply-adds like the f32 CSR rows.
//!
//! One example shares the decoding with nothing, and decoding each row into a buffer before
//! the CSR kernel (groups of 8 or 16 fields, a data-dependent exit, a prefix sum of gaps, a
//! left-packing of fillers) took the compressed files 1.5-4x the f32 CSR file's time there.
//! Here a kept weight costs three loads, as in the f32 CSR rows (index, value, input): its
//! entry, its table value (the codebook stays in L1) and its input; the shifts and the int8
//! conversion go to the integer and FP ports, which the loads leave idle.
//!
//! Rounding: each row sums its products exactly as the CSR kernel's scalar rows do (four
//! running sums over groups of four, combined pairwise, the rest in order, then the bias), so
//! a compressed layer's copy gives the f32 CSR rows of its decoded matrix bit for bit on the
//! CPUs that choose it.

use super::sliced::ValueKind;
use super::{four_sum_row, Activation, Isa};
use crate::csr::CsrRef;
use std::ops::Range;
use ticket_core::Par;

/// How a copy holds its kept weights, in the rows of its `indptr`.
#[derive(Clone, Debug)]
enum Layout {
    /// A CSR matrix of 16-bit columns and f32 values, run by the CSR kernel itself (a file of
    /// f32 values with gap columns).
    F32 { columns: Vec<u16>, values: Vec<f32> },
    /// One 32-bit entry a kept weight: its column in the low 16 bits, above them what
    /// `decode` turns into its value.
    Coded { entries: Vec<u32>, decode: Decode },
}

/// The value a coded entry stands for.
#[derive(Clone, Debug)]
enum Decode {
    /// `value = scales[row] * q`, `q` the entry's upper 16 bits as a signed integer.
    Int8(Vec<f32>),
    /// `value = table[code]`, the code the entry's upper 16 bits.
    Codebook(Box<[f32; 256]>),
}

/// A `rows x cols` matrix in CSR row order with packed entries (see the module).
#[derive(Clone, Debug)]
pub struct CodedRows {
    width: usize,
    indptr: Vec<u32>,
    layout: Layout,
}

impl CodedRows {
    /// Columns a layer may have for this copy (columns are 16-bit).
    pub const MAX_COLS: usize = 1 << 16;

    /// The copy of a matrix whose row `r`'s entries `entries(r, out)` appends to `out`, in
    /// order, as (column, value bits) pairs (see [`ValueKind`]). Panics past
    /// [`CodedRows::MAX_COLS`] columns or at a column past `cols`.
    pub(crate) fn build(
        (rows, cols): (usize, usize),
        value_kind: ValueKind,
        entries: impl Fn(usize, &mut Vec<(u32, u32)>),
    ) -> Self {
        assert!(cols <= Self::MAX_COLS, "coded rows: {cols} columns");
        let (mut indptr, mut pairs, mut row) = (vec![0u32], vec![], vec![]);
        for r in 0..rows {
            row.clear();
            entries(r, &mut row);
            pairs.extend_from_slice(&row);
            indptr.push(u32::try_from(pairs.len()).expect("coded rows: entries fit u32"));
        }
        // The kernel reads x[column] unchecked.
        assert!(
            pairs.iter().all(|&(c, _)| (c as usize) < cols),
            "coded rows: a column past {cols}"
        );
        let coded = |upper: fn(u32) -> u32, decode| Layout::Coded {
            entries: pairs.iter().map(|&(c, v)| c | upper(v) << 16).collect(),
            decode,
        };
        let layout = match value_kind {
            ValueKind::F32 => Layout::F32 {
                columns: pairs.iter().map(|&(c, _)| c as u16).collect(),
                values: pairs.iter().map(|&(_, v)| f32::from_bits(v)).collect(),
            },
            // The byte sign-extended, so that an arithmetic shift gives q back.
            ValueKind::Int8(scales) => {
                coded(|v| v as u8 as i8 as i32 as u32, Decode::Int8(scales.to_vec()))
            }
            ValueKind::Codebook(_, table) => {
                coded(|v| v & 0xff, Decode::Codebook(Box::new(*table)))
            }
        };
        CodedRows { width: cols, indptr, layout }
    }

    /// Whether the batch-1 product of a compressed layer runs from this copy: on x86-64
    /// CPUs with FMA where the sliced copy does not pay (the portable CSR rows sum in another
    /// order, which the copy's bit-for-bit agreement with them would have to follow).
    pub fn pays() -> bool {
        Isa::detect() != Isa::Portable && !super::sliced::SlicedRows::pays()
    }

    /// Bytes the copy holds.
    pub fn bytes(&self) -> usize {
        let weights = match &self.layout {
            Layout::F32 { columns, values } => size_of_val(&columns[..]) + size_of_val(&values[..]),
            Layout::Coded { entries, decode: Decode::Int8(scales) } => {
                size_of_val(&entries[..]) + size_of_val(&scales[..])
            }
            Layout::Coded { entries, decode: Decode::Codebook(table) } => {
                size_of_val(&entries[..]) + size_of_val(&**table)
            }
        };
        size_of_val(&self.indptr[..]) + weights
    }

    /// `y = act(bias + W x)`, the rows split over `threads` threads in parts of about equal
    /// entries. Panics when the lengths do not fit.
    pub fn spmv(
        &self,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        act: Activation,
        threads: usize,
    ) {
        self.spmv_with(Isa::detect(), bias, x, y, act, threads);
    }

    /// [`CodedRows::spmv`] compiled for `isa`: with FMA instructions on x86-64, else with
    /// `f32::mul_add` through the library (the same sums, slower).
    pub(crate) fn spmv_with(
        &self,
        isa: Isa,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        act: Activation,
        threads: usize,
    ) {
        let rows = self.indptr.len() - 1;
        super::check_spmv_lengths("coded rows", (rows, self.width), x, y, bias);
        let (entries, decode) = match &self.layout {
            Layout::F32 { columns, values } => {
                let csr = CsrRef::new_prechecked(rows, self.width, &self.indptr, columns, values);
                let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
                return super::spmm_with(isa, csr, bias, x, y, 1, act, par, 0);
            }
            Layout::Coded { entries, decode } => (entries, decode),
        };
        let relu = act == Activation::Relu;
        let coded = Coded { indptr: &self.indptr, entries, decode };
        let run = |rows: Range<usize>, y: &mut [f32]| match isa {
            // SAFETY: FMA is present with either x86-64 instruction set `Isa` names; x and
            // y have the lengths asserted above and `rows` lies within the copy.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma | Isa::Avx512 => unsafe { coded.rows_fma(rows, bias, x, y, relu) },
            // SAFETY: as above, without any instruction set needed.
            _ => unsafe { coded.rows(rows, bias, x, y, relu) },
        };
        if threads > 1 && rows > 1 {
            super::for_row_parts(&self.indptr, threads, y, 1, run);
        } else {
            run(0..rows, y);
        }
    }
}

/// The coded entries of a copy, borrowed for one product.
#[derive(Clone, Copy)]
struct Coded<'a> {
    indptr: &'a [u32],
    entries: &'a [u32],
    decode: &'a Decode,
}

impl Coded<'_> {
    /// # Safety
    /// FMA available; as [`Coded::rows`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn rows_fma(
        &self,
        rows: Range<usize>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ) {
        // SAFETY: the caller's contract.
        unsafe { self.rows(rows, bias, x, y, relu) }
    }

    /// Rows `rows` of `act(bias + W x)` into `y`.
    ///
    /// # Safety
    /// `x.len()` the copy's width, `y.len() == rows.len()`, `rows` within the copy, `bias` (when
    /// given) one entry a row.
    #[inline(always)]
    unsafe fn rows(
        &self,
        rows: Range<usize>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ) {
        let (entries, xp) = (self.entries.as_ptr(), x.as_ptr());
        // SAFETY (all reads): k < indptr[last] = entries.len();
        // every column was checked below width = x.len() at build; a code is 8 bits, below
        // the table's 256 entries; r < rows = scales.len().
        let column = |k: usize| unsafe { (*entries.add(k) & 0xffff) as usize };
        let upper = |k: usize| unsafe { (*entries.add(k) as i32) >> 16 };
        let input = |k: usize| unsafe { *xp.add(column(k)) };
        for (r, out) in rows.zip(y.iter_mut()) {
            let range = self.indptr[r] as usize..self.indptr[r + 1] as usize;
            let sum = unsafe {
                match self.decode {
                    Decode::Int8(scales) => {
                        let scale = *scales.get_unchecked(r);
                        four_sum_row(range, |k| (scale * upper(k) as f32, input(k)))
                    }
                    Decode::Codebook(table) => {
                        four_sum_row(range, |k| (*table.get_unchecked(upper(k) as usize), input(k)))
                    }
                }
            };
            let sum = sum + bias.map_or(0.0, |b| b[r]);
            *out = if relu { sum.max(0.0) } else { sum };
        }
    }
}

#[cfg(test)]
mod tests;
