//! The batch-1 product over rows taken sixteen at a time (sliced ELLPACK): a copy of a linear
//! layer's weight in which each slice of 16 rows is stored step by step, step `j` holding the
//! `j`-th entry of each of the 16 rows side by side. One AVX-512 register then carries 16
//! rows' running sums: a step is one load of 16 columns, one gather of their inputs, one load
//! of 16 values and one fused multiply-add, with no per-row loop, no reduction across lanes
//! and no branch on a row's length. The CSR row kernel ends a loop and folds a register for
//! every row, which a short row (LeNet-300-100's 10-30 kept weights) cannot amortise.
//!
//! A compressed layer's copy keeps its value codec, reordered into steps: codebook codes and
//! int8 values a byte each (int8 with their rows' scales), which a step widens into a
//! register in one instruction and looks up as `kernels::compressed` does. Its columns are
//! absolute 16-bit ones whatever the file's index codec: 8-bit gaps (one vector add a step,
//! fillers as masked lanes) cost 4-8 % more time at batch 1 than they saved in bytes
//! (LeNet-300-100 at 2.87 %, one thread, Intel Xeon: k6 with the file's 5-bit gaps, copied as
//! 8-bit gaps 2.10 us, as absolute columns 1.97, f32 CSR 1.98-2.00), and the file's own
//! narrower fields, unpacked from two 16-byte windows a step, a fifth to a third more than
//! that (2.93 us).
//!
//! Rows are sorted by entries, most first, before they are cut into slices, so the rows of a
//! slice have nearly equal lengths and few steps carry lanes past their row's end (those
//! lanes are masked off, neither gathered nor added). The copy is only chosen where a 16-lane
//! gather pays (`Isa::gathers_pay`, Intel's AVX-512 cores): one thread, Intel Xeon, the CSR
//! kernel against this one (`examples/csc_ab.rs`): 300 x 784 at 3.5 % (LeNet-300-100's first
//! layer, 27 a row) 2.27 against 1.76 us, 100 x 300 at 3.3 % 0.48 against 0.32, 500 x 800 at
//! 8 % 7.2 against 6.2, 256 x 12544 at 10.7 % 104 against 76.
//!
//! Rounding: each row's sum starts at zero and adds its kept weights' products in increasing
//! column order, each a fused multiply-add, then the bias. The portable version computes the
//! same with `f32::mul_add`, so the two agree bit for bit, and a compressed layer's copy gives
//! the f32 copy of its decoded matrix bit for bit; against the CSR kernel (four partial
//! sums, another order) all are within the bound `kernels::csc` states.

use super::{Activation, Isa};
use crate::csr::{ColIndex, CsrRef};

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
mod tests;

/// Rows in a slice: the lanes of one AVX-512 register.
const LANES: usize = 16;

/// The absolute columns of one step of a slice (column 0 in a lane past its row's end).
/// 16-bit, as in a CSR file: with f32 values a step is then 96 bytes, as the CSR arrays hold,
/// and a large layer stays in the cache as well.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct StepCols([u16; LANES]);

/// Sixteen f32 values on one cache line: a step's (0 past a row's end), or a slice's scales.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Lanes([f32; LANES]);

/// Sixteen bytes of one step of a slice: its codes or int8 values.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct StepBytes([u8; LANES]);

/// Sixteen rows: which they are and how many entries each has.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Slice {
    /// The row each lane computes (`u32::MAX` for the lanes of a last slice past the layer's
    /// last row, whose length is 0).
    rows: [u32; LANES],
    lens: [u32; LANES],
}

/// How the steps give their values.
#[derive(Clone, Debug)]
enum Values {
    F32(Vec<Lanes>),
    /// `value = scale * q` (`q` the byte as an `i8`), the scales of each slice's rows in
    /// `scales[slice]`.
    Int8 {
        q: Vec<StepBytes>,
        scales: Vec<Lanes>,
    },
    /// `value = table[code]`, codes below `2^bits`, the table padded to 256 entries.
    Codebook {
        bits: u32,
        codes: Vec<StepBytes>,
        table: Box<[f32; 256]>,
    },
}

/// What the entries handed to [`SlicedRows::build`] hold in their second field.
pub(crate) enum ValueKind<'a> {
    /// `f32::to_bits`.
    F32,
    /// The byte of an `i8`, with the scale of each row.
    Int8(&'a [f32]),
    /// A code of this many bits into the table.
    Codebook(u32, &'a [f32; 256]),
}

/// A `rows x cols` matrix in slices of 16 rows (see the module).
#[derive(Clone, Debug)]
pub struct SlicedRows {
    rows: usize,
    width: usize,
    slices: Vec<Slice>,
    /// Slice `s` holds steps `starts[s]..starts[s + 1]`.
    starts: Vec<u32>,
    columns: Vec<StepCols>,
    values: Values,
}

impl SlicedRows {
    /// Columns a layer may have for a sliced copy (absolute columns are 16-bit).
    pub const MAX_COLS: usize = 1 << 16;

    /// The sliced copy of `w`. Panics when `w` has more than [`SlicedRows::MAX_COLS`] columns.
    pub fn new<I: ColIndex>(w: CsrRef<I>) -> Self {
        let entries = |r: usize, out: &mut Vec<(u32, u32)>| {
            let (cols, values) = (&w.indices()[w.row_range(r)], &w.values()[w.row_range(r)]);
            out.extend(cols.iter().zip(values).map(|(c, v)| (c.to_usize() as u32, v.to_bits())));
        };
        Self::build((w.rows(), w.cols()), ValueKind::F32, entries)
    }

    /// The sliced copy of a matrix whose row `r`'s entries `entries(r, out)` appends to
    /// `out`, in order, as (column, value bits) pairs (see [`ValueKind`]). Panics past
    /// [`SlicedRows::MAX_COLS`] columns.
    pub(crate) fn build(
        (rows, cols): (usize, usize),
        value_kind: ValueKind,
        entries: impl Fn(usize, &mut Vec<(u32, u32)>),
    ) -> Self {
        assert!(cols <= Self::MAX_COLS, "sliced rows: {cols} columns");
        let mut of_row: Vec<Vec<(u32, u32)>> = vec![Vec::new(); rows];
        for (r, out) in of_row.iter_mut().enumerate() {
            entries(r, out);
            // The kernels gather x[column] unchecked.
            assert!(
                out.iter().all(|&(c, _)| (c as usize) < cols),
                "sliced rows: a column past {cols}"
            );
        }
        let mut order: Vec<usize> = (0..rows).collect();
        // Stable: rows of equal length keep their order.
        order.sort_by_key(|&r| std::cmp::Reverse(of_row[r].len()));
        let (mut slices, mut starts) = (vec![], vec![0u32]);
        // Per step and lane, the entry (0, 0 past a row's end).
        let mut steps: Vec<[(u32, u32); LANES]> = vec![];
        let mut scales = vec![];
        for chunk in order.chunks(LANES) {
            let mut slice = Slice { rows: [u32::MAX; LANES], lens: [0; LANES] };
            let mut lane_scales = Lanes([0.0; LANES]);
            for (lane, &r) in chunk.iter().enumerate() {
                slice.rows[lane] = r as u32;
                slice.lens[lane] = of_row[r].len() as u32;
                if let ValueKind::Int8(s) = value_kind {
                    lane_scales.0[lane] = s[r];
                }
            }
            for j in 0..of_row[chunk[0]].len() {
                steps.push(std::array::from_fn(|lane| {
                    chunk.get(lane).and_then(|&r| of_row[r].get(j)).copied().unwrap_or((0, 0))
                }));
            }
            slices.push(slice);
            scales.push(lane_scales);
            starts.push(steps.len() as u32);
        }
        let bytes = || -> Vec<StepBytes> {
            steps.iter().map(|s| StepBytes(s.map(|(_, v)| v as u8))).collect()
        };
        let columns = steps.iter().map(|s| StepCols(s.map(|(c, _)| c as u16))).collect();
        let values = match value_kind {
            ValueKind::F32 => Values::F32(
                steps.iter().map(|s| Lanes(s.map(|(_, v)| f32::from_bits(v)))).collect(),
            ),
            ValueKind::Int8(_) => Values::Int8 { q: bytes(), scales },
            ValueKind::Codebook(bits, table) => {
                Values::Codebook { bits, codes: bytes(), table: Box::new(*table) }
            }
        };
        SlicedRows { rows, width: cols, slices, starts, columns, values }
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
        let columns = size_of_val(&self.columns[..]);
        let values = match &self.values {
            Values::F32(v) => size_of_val(&v[..]),
            Values::Int8 { q, scales } => size_of_val(&q[..]) + size_of_val(&scales[..]),
            Values::Codebook { codes, table, .. } => {
                size_of_val(&codes[..]) + size_of_val(&**table)
            }
        };
        size_of_val(&self.slices[..]) + 4 * self.starts.len() + columns + values
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
        super::check_spmv_lengths("sliced spmv", (self.rows, self.width), x, y, bias);
        sums.resize(LANES * self.slices.len(), 0.0);
        let run = |slices: std::ops::Range<usize>, out: &mut [f32]| {
            for (s, out) in slices.zip(out.chunks_exact_mut(LANES)) {
                let out: &mut [f32; LANES] = out.try_into().expect("16 sums a slice");
                match isa {
                    // SAFETY: AVX-512 is present (Isa::detect); every column `build` stored
                    // is below the layer's columns = x.len() (asserted there).
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { avx512::slice_sums(self, s, x, out) },
                    _ => self.portable_sums(s, x, out),
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

    /// The 16 running sums of slice `s`, lane by lane.
    fn portable_sums(&self, s: usize, x: &[f32], sums: &mut [f32; LANES]) {
        let (first, slice) = (self.starts[s] as usize, &self.slices[s]);
        for (lane, sum) in sums.iter_mut().enumerate() {
            *sum = 0.0;
            for step in first..first + slice.lens[lane] as usize {
                let col = self.columns[step].0[lane] as usize;
                let value = match &self.values {
                    Values::F32(v) => v[step].0[lane],
                    Values::Int8 { q, scales } => scales[s].0[lane] * q[step].0[lane] as i8 as f32,
                    Values::Codebook { codes, table, .. } => table[codes[step].0[lane] as usize],
                };
                *sum = value.mul_add(x[col], *sum);
            }
        }
    }
}
