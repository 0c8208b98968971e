//! Products over compressed layers, decoded on the fly from the file's own bytes: values as
//! f32, int8 with one scale per row, or packed codebook indices (looked up in a table of
//! `2^N` centroids, padded to 256 so that an index never needs a bounds check); columns as
//! absolute U16/U32 indices or packed gaps with fillers (`ticket_core::packed`). Nothing is
//! expanded to f32 ahead of time: each nonzero's column and value are decoded in registers
//! right before its multiply-add.
//!
//! Every kernel sums in exactly the order of the f32 CSR kernel of the same instruction set
//! (`portable::spmm_rows`, `avx2::spmm_rows`), so a compressed layer gives bit for bit the
//! result of its decoded f32 CSR matrix. Conv layers decode one output channel's row into a
//! small buffer and run the f32 direct convolution on it (see [`CompressedWeights::conv2d`]).

use super::conv2d::Conv2d;
use super::{Activation, Image, Isa, Window};
use crate::csr::{ColIndex, CsrRef};
use crate::slab::Slab;
use std::cell::RefCell;
use ticket_core::packed::{self, filler};

/// How a compressed layer stores its values.
pub(crate) enum ValueStore {
    F32(Slab<f32>),
    /// `value = scales[row] * q`.
    Int8 { q: Slab<i8>, scales: Slab<f32> },
    /// `value = table[code]`, codes packed `bits` to a field.
    Codebook { bits: u32, codes: Slab<u8>, table: Box<[f32; 256]> },
}

/// How a compressed layer stores its column indices.
pub(crate) enum ColumnStore {
    U16(Slab<u16>),
    U32(Slab<u32>),
    /// `starts[r]` is the first gap field of row `r` (derived once when the stream was
    /// checked: `rows + 1` u32, the only array not in the file).
    Gaps { bits: u32, stream: Slab<u8>, starts: Vec<u32> },
}

/// A validated compressed weight: every codebook index below the codebook's length, every
/// decoded column below `cols`, `indptr` spanning the values and the gap rows.
pub(crate) struct CompressedWeights {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) values: ValueStore,
    pub(crate) columns: ColumnStore,
}

/// The value of nonzero `k` (of row `row`).
trait Values: Copy {
    fn get(&self, row: usize, k: usize) -> f32;
}

#[derive(Clone, Copy)]
struct F32Values<'a>(&'a [f32]);

impl Values for F32Values<'_> {
    #[inline(always)]
    fn get(&self, _: usize, k: usize) -> f32 {
        self.0[k]
    }
}

#[derive(Clone, Copy)]
struct Int8Values<'a> {
    q: &'a [i8],
    scales: &'a [f32],
}

impl Values for Int8Values<'_> {
    #[inline(always)]
    fn get(&self, row: usize, k: usize) -> f32 {
        self.scales[row] * self.q[k] as f32
    }
}

#[derive(Clone, Copy)]
struct CodebookValues<'a> {
    codes: &'a [u8],
    bits: u32,
    table: &'a [f32; 256],
}

impl Values for CodebookValues<'_> {
    #[inline(always)]
    fn get(&self, _: usize, k: usize) -> f32 {
        // A field is below 2^bits <= 256: the lookup needs no check.
        self.table[packed::field(self.codes, k, self.bits) as u8 as usize]
    }
}

/// Calls `f(k, column)` for each nonzero `k` of row `r`, columns ascending.
trait Columns: Copy {
    fn for_each(&self, indptr: &[u32], r: usize, f: impl FnMut(usize, usize));
}

#[derive(Clone, Copy)]
struct Absolute<'a, I>(&'a [I]);

impl<I: ColIndex> Columns for Absolute<'_, I> {
    #[inline(always)]
    fn for_each(&self, indptr: &[u32], r: usize, mut f: impl FnMut(usize, usize)) {
        for k in indptr[r] as usize..indptr[r + 1] as usize {
            f(k, self.0[k].to_usize());
        }
    }
}

#[derive(Clone, Copy)]
struct Gaps<'a> {
    stream: &'a [u8],
    bits: u32,
    starts: &'a [u32],
}

impl Columns for Gaps<'_> {
    #[inline(always)]
    fn for_each(&self, indptr: &[u32], r: usize, mut f: impl FnMut(usize, usize)) {
        let fill = filler(self.bits) as usize;
        let (mut k, mut next) = (indptr[r] as usize, 0usize);
        for i in self.starts[r] as usize..self.starts[r + 1] as usize {
            let field = packed::field(self.stream, i, self.bits) as usize;
            if field == fill {
                next += fill;
            } else {
                f(k, next + field);
                k += 1;
                next += field + 1;
            }
        }
    }
}

/// Runs `$body` with `$v` and `$c` bound to the layer's value and column decoders.
macro_rules! with_streams {
    ($w:expr, |$v:ident, $c:ident| $body:expr) => {{
        let w = $w;
        macro_rules! columns {
            ($vv:expr) => {{
                let $v = $vv;
                match &w.columns {
                    ColumnStore::U16(i) => {
                        let $c = Absolute(&i[..]);
                        $body
                    }
                    ColumnStore::U32(i) => {
                        let $c = Absolute(&i[..]);
                        $body
                    }
                    ColumnStore::Gaps { bits, stream, starts } => {
                        let $c = Gaps { stream, bits: *bits, starts };
                        $body
                    }
                }
            }};
        }
        match &w.values {
            ValueStore::F32(v) => columns!(F32Values(v)),
            ValueStore::Int8 { q, scales } => columns!(Int8Values { q, scales }),
            ValueStore::Codebook { bits, codes, table } => {
                columns!(CodebookValues { codes, bits: *bits, table })
            }
        }
    }};
}

thread_local! {
    /// One decoded row (columns, values) for the conv path and for densifying.
    static ROW: RefCell<(Vec<u32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl CompressedWeights {
    /// Bytes of the arrays the forward pass reads (the file's bytes, plus the padded
    /// codebook table and the gap row starts).
    pub(crate) fn bytes(&self) -> usize {
        let values = match &self.values {
            ValueStore::F32(v) => v.bytes(),
            ValueStore::Int8 { q, scales } => q.bytes() + scales.bytes(),
            ValueStore::Codebook { codes, table, .. } => codes.bytes() + size_of_val(&**table),
        };
        values + self.column_bytes()
    }

    /// 2 or 4 for absolute U16 / U32 indices, 0 for gaps.
    pub(crate) fn index_bytes(&self) -> usize {
        match self.columns {
            ColumnStore::U16(_) => 2,
            ColumnStore::U32(_) => 4,
            ColumnStore::Gaps { .. } => 0,
        }
    }

    fn column_bytes(&self) -> usize {
        match &self.columns {
            ColumnStore::U16(i) => i.bytes(),
            ColumnStore::U32(i) => i.bytes(),
            ColumnStore::Gaps { stream, starts, .. } => stream.bytes() + 4 * starts.len(),
        }
    }

    /// How many of [`CompressedWeights::bytes`] are borrowed from the mapped file.
    pub(crate) fn mapped_bytes(&self) -> usize {
        let m = |mapped: bool, n: usize| if mapped { n } else { 0 };
        let values = match &self.values {
            ValueStore::F32(v) => m(v.is_mapped(), v.bytes()),
            ValueStore::Int8 { q, scales } => {
                m(q.is_mapped(), q.bytes()) + m(scales.is_mapped(), scales.bytes())
            }
            ValueStore::Codebook { codes, .. } => m(codes.is_mapped(), codes.bytes()),
        };
        let columns = match &self.columns {
            ColumnStore::U16(i) => m(i.is_mapped(), i.bytes()),
            ColumnStore::U32(i) => m(i.is_mapped(), i.bytes()),
            ColumnStore::Gaps { stream, .. } => m(stream.is_mapped(), stream.bytes()),
        };
        values + columns
    }

    /// Calls `f(row, column, value)` for every nonzero, rows and columns ascending.
    pub(crate) fn for_each(&self, indptr: &[u32], mut f: impl FnMut(usize, usize, f32)) {
        with_streams!(self, |v, c| for r in 0..self.rows {
            c.for_each(indptr, r, |k, col| f(r, col, v.get(r, k)));
        })
    }

    /// Row `r` decoded into `cols` / `vals` (cleared first).
    fn decode_row(&self, indptr: &[u32], r: usize, cols: &mut Vec<u32>, vals: &mut Vec<f32>) {
        cols.clear();
        vals.clear();
        with_streams!(self, |v, c| c.for_each(indptr, r, |k, col| {
            cols.push(col as u32);
            vals.push(v.get(r, k));
        }))
    }

    /// `y = act(W x + bias)` for `x` `[cols][batch]`, `y` `[rows][batch]`, on this thread.
    pub(crate) fn spmm(
        &self,
        indptr: &[u32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        self.spmm_with(Isa::detect(), indptr, bias, x, y, batch, act)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spmm_with(
        &self,
        isa: Isa,
        indptr: &[u32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        assert_eq!(x.len(), self.cols * batch, "compressed spmm: x length");
        assert_eq!(y.len(), self.rows * batch, "compressed spmm: y length");
        assert_eq!(bias.len(), self.rows, "compressed spmm: bias length");
        assert_eq!(indptr.len(), self.rows + 1, "compressed spmm: indptr length");
        if batch == 0 {
            return;
        }
        let relu = act == Activation::Relu;
        with_streams!(self, |v, c| match isa {
            Isa::Portable => portable_rows(v, c, indptr, bias, x, y, batch, relu),
            // SAFETY: AVX2 and FMA are present (Isa::detect); the streams were validated
            // (every decoded column below cols) and the lengths asserted above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { avx2::rows(v, c, indptr, bias, x, y, batch, relu) },
        })
    }

    /// `y = act(conv(x, W) + bias)`: each output channel's row is decoded into a per-thread
    /// buffer (at most `in * kh * kw` entries) and convolved by the f32 direct kernel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv2d(
        &self,
        indptr: &[u32],
        bias: &[f32],
        input: Image,
        window: Window,
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        let plane = y.len() / self.rows.max(1);
        ROW.with_borrow_mut(|(cols, vals)| {
            for (r, yr) in y.chunks_exact_mut(plane.max(1)).enumerate().take(self.rows) {
                self.decode_row(indptr, r, cols, vals);
                let span = [0, cols.len() as u32];
                let row = CsrRef::new_prechecked(1, self.cols, &span, &cols[..], &vals[..]);
                Conv2d::new(row, &bias[r..r + 1], input, window).run(x, yr, batch, act);
            }
        })
    }
}

/// The portable kernel: each output starts from its bias and adds `value * x` per nonzero,
/// as `portable::spmm_rows` does.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn portable_rows<V: Values, C: Columns>(
    v: V,
    c: C,
    indptr: &[u32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    relu: bool,
) {
    for (r, yr) in y.chunks_exact_mut(batch).enumerate() {
        yr.fill(bias[r]);
        c.for_each(indptr, r, |k, col| {
            let w = v.get(r, k);
            for (yb, xb) in yr.iter_mut().zip(&x[col * batch..(col + 1) * batch]) {
                *yb += w * xb;
            }
        });
        if relu {
            yr.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::avx2::{first_lanes, for_each_block, Lanes, BLOCK, LANES};
    use super::{Columns, Values};
    use std::arch::x86_64::*;

    /// See `avx2::spmm_rows`: batch 1 in four interleaved scalar sums, wider batches in
    /// blocks of up to 64 examples held in registers.
    ///
    /// # Safety
    /// AVX2 and FMA available; every column `c` decodes below `x.len() / batch`;
    /// `y.len() == rows * batch`, `batch > 0`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows<V: Values, C: Columns>(
        v: V,
        c: C,
        indptr: &[u32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        relu: bool,
    ) {
        if batch == 1 {
            for (r, yr) in y.iter_mut().enumerate() {
                let n = (indptr[r + 1] - indptr[r]) as usize;
                let full = n / 4 * 4;
                let (mut acc, mut sum, mut t) = ([0.0f32; 4], 0.0f32, 0usize);
                c.for_each(indptr, r, |k, col| {
                    // SAFETY: col < cols = x.len() (validated stream).
                    let xv = unsafe { *x.get_unchecked(col) };
                    let w = v.get(r, k);
                    if t < full {
                        acc[t % 4] = w.mul_add(xv, acc[t % 4]);
                    } else {
                        if t == full {
                            sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
                        }
                        sum = w.mul_add(xv, sum);
                    }
                    t += 1;
                });
                if full == n {
                    sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
                }
                sum += bias[r];
                *yr = if relu { sum.max(0.0) } else { sum };
            }
            return;
        }
        for (r, yr) in y.chunks_exact_mut(batch).enumerate() {
            for_each_block!(batch, |j, N, lanes| {
                // SAFETY: forwarded contract; the lanes of block j lie inside yr and x rows.
                unsafe { block::<N, V, C>(v, c, indptr, r, x, batch, j, lanes, bias[r], relu, yr) };
            });
        }
    }

    /// Examples `j..j + 8 * N` of row `r` (only the lanes `lanes` selects).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const N: usize, V: Values, C: Columns>(
        v: V,
        c: C,
        indptr: &[u32],
        r: usize,
        x: &[f32],
        batch: usize,
        j: usize,
        lanes: Lanes,
        bias: f32,
        relu: bool,
        yr: &mut [f32],
    ) {
        let xp = x.as_ptr();
        let mut acc = [_mm256_set1_ps(bias); N];
        c.for_each(indptr, r, |k, col| {
            // SAFETY: col < cols, so the selected lanes of x[col * batch + j ..] lie in x.
            unsafe {
                let w = _mm256_set1_ps(v.get(r, k));
                let xr = xp.add(col * batch + j);
                for (n, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, lanes.load(xr.add(n * LANES)), *a);
                }
            }
        });
        for (n, a) in acc.iter().enumerate() {
            let a = if relu { _mm256_max_ps(*a, _mm256_setzero_ps()) } else { *a };
            // SAFETY: the selected lanes of yr[j + 8n ..] lie inside yr.
            unsafe { lanes.store(yr.as_mut_ptr().add(j + n * LANES), a) };
        }
    }
}

#[cfg(test)]
mod tests;
